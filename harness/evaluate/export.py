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

from harness.evaluate.trained_run import load_trained, run_config


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

    trained = load_trained(Path(run_dir), run_config(run_dir, "export"), "export")
    network = trained.networks[trained.evaluated]
    task = trained.task
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
        out, trained.evaluated, tuple(example.shape), tuple(expected.shape[1:]),
        float(np.abs(got - expected).max()),
    )  # fmt: skip
