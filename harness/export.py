"""`harness export`: write a finished run's deployed network (ENet for D-Slope) as ONNX.

What is deployed is the task's business (`Task.deployable`): face recognition exports the embedding
model at insightface's 112x112 input. This module only rebuilds the run's networks from its config,
loads the final checkpoint, exports with the TorchScript-based exporter and checks the ONNX graph
against PyTorch with onnxruntime on a random input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from harness.backbones import create_backbone
from harness.config import load_config
from harness.errors import CheckpointError, ConfigError
from harness.io import safe_torch_load
from harness.model import TaskModel
from harness.registry import METHODS, TASKS
from harness.run_files import CHECKPOINT_NAME


@dataclass
class ExportSummary:
    path: Path
    network: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    max_abs_diff: float  # onnxruntime vs PyTorch on a random input


def export_onnx(run_dir: Path, out: Path, *, opset: int = 17) -> ExportSummary:
    """Export the evaluated network of `run_dir` to `out` and check it with onnxruntime.

    Args:
        run_dir: a finished run dir (config.yaml + checkpoint.pt).
        out: the .onnx file to write.
        opset: ONNX opset.

    Returns:
        what was written and how closely onnxruntime reproduces PyTorch.

    Raises:
        ConfigError: `run_dir` is not a run dir. CheckpointError: its checkpoint is missing or does not fit.

    Example:
        >>> export_onnx(Path("work_dirs/<run dir>"), Path("enet.onnx"))  # doctest: +SKIP
    """
    import onnxruntime

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"export: {run_dir} is not a run dir (no config.yaml)")
    cfg = load_config(run_dir / "config.yaml")
    task_cls = TASKS.get(cfg.task)
    task = task_cls(task_cls.Settings(**cfg.data))
    method_cls = METHODS.get(cfg.method)

    def build_model() -> TaskModel:
        backbone = create_backbone(cfg.model.backbone, None, input_size=task.input_size)
        return TaskModel(backbone, task.head(backbone.out_channels, backbone.out_stride))

    method = method_cls(build_model, task.loss, method_cls.Settings(**cfg.method_args.get(cfg.method, {})))
    state = safe_torch_load(run_dir / CHECKPOINT_NAME, "export checkpoint")
    try:
        method.load_state_dict(state["method"])
    except (KeyError, TypeError, RuntimeError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{run_dir / CHECKPOINT_NAME} does not fit the run's config: {message}"
        ) from None
    network = method.networks()[method.evaluated].eval()
    module, example = task.deployable(network)
    module.eval()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(
            module, (example,), str(out), dynamo=False, opset_version=opset,
            input_names=["data"], output_names=["output"],
            dynamic_axes={"data": {0: "batch"}, "output": {0: "batch"}},
        )  # fmt: skip
        probe = torch.randn(2, *example.shape[1:], generator=torch.Generator().manual_seed(0))
        expected = module(probe).numpy()
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: probe.numpy()})[0]
    return ExportSummary(
        out, method.evaluated, tuple(example.shape), tuple(expected.shape[1:]),
        float(np.abs(got - expected).max()),
    )  # fmt: skip
