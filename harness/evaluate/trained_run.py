"""A finished (or interrupted) run, loaded back for scoring or inference: config, task, networks.

Shared by `harness eval` and `harness predict`. Only the run dir's own files are read, and the checkpoint
only with `torch.load(weights_only=True)`; nothing in the run dir is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from harness.core.cache import file_digest
from harness.core.config import RunConfig, load_config
from harness.core.errors import CheckpointError, ConfigError
from harness.core.io import safe_torch_load
from harness.core.run_files import CHECKPOINT_NAME, check_checkpoint
from harness.core.task import Task
from harness.models.factory import build_method, build_task


@dataclass
class TrainedRun:
    """What a run dir holds, rebuilt: its config, the task, every trained network (in eval mode)."""

    run_dir: Path
    config: RunConfig
    task: Task
    networks: dict[str, nn.Module]
    evaluated: str  # the method's evaluated network (ENet for D-Slope)
    checkpoint: Path
    checkpoint_sha256: str
    state: dict[str, Any]  # the trainer counters at the checkpoint (step, epoch, images, ...)

    def network(self, name: str | None) -> tuple[str, nn.Module]:
        """(name, module) of `name`, default the evaluated network.

        Raises:
            ConfigError: no such network in this run, naming the valid ones.
        """
        name = name or self.evaluated
        if name not in self.networks:
            valid = ", ".join(sorted(self.networks))
            raise ConfigError(
                f"--network: '{name}' is not a network of this {self.config.method} run ({valid})"
            )
        return name, self.networks[name]


def run_config(run_dir: Path, what: str) -> RunConfig:
    """The saved config of a run dir, or a one-line error when `run_dir` is not one."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{what}: {run_dir} is not a run dir (no config.yaml)")
    cfg = load_config(run_dir / "config.yaml")
    if Path(cfg.output.work_dir).resolve() != run_dir.resolve().parent:
        # The run dir was moved (another folder or machine): the runs it names by id live beside it now.
        output = cfg.output.model_copy(update={"work_dir": str(run_dir.parent)})
        cfg = cfg.model_copy(update={"output": output})
    return cfg


def load_trained(run_dir: Path, cfg: RunConfig, what: str) -> TrainedRun:
    """Build the run's networks for `cfg` (its task settings may differ from training) and load weights.

    Args:
        run_dir: the run dir (checkpoint.pt).
        cfg: the config to build the task from; model and method are the run's own.
        what: the command, for messages.

    Raises:
        CheckpointError: missing, corrupt or unsafe checkpoint, or one written for another task, method,
            backbone or model (tags or tensor shapes differ).
    """
    run_dir = Path(run_dir)
    path = run_dir / CHECKPOINT_NAME
    state = safe_torch_load(path, f"{what} checkpoint")
    if not isinstance(state, dict) or not isinstance(state.get("method"), dict):
        raise CheckpointError(f"{what}: {path} is not a harness training checkpoint (no 'method' weights)")
    task = build_task(cfg)
    method = build_method(cfg, task)
    wanted = {"task": cfg.task, "method": cfg.method, "backbone": cfg.model.backbone}
    check_checkpoint(
        state, method.state_dict(), wanted, path=path, label=f"{what}: ", config=str(run_dir / "config.yaml")
    )
    method.load_state_dict(state["method"])
    networks = {name: module.eval() for name, module in method.networks().items()}
    return TrainedRun(
        run_dir,
        cfg,
        task,
        networks,
        method.evaluated,
        path,
        file_digest(path),
        dict(state.get("state") or {}),
    )
