"""Trainer callbacks: checkpointing, metric logging, progress display (Lightning's split of concerns).

The `Callback` base they extend is the trainer's own (harness/train/trainer.py), so the trainer imports
nothing of this module and the two form no import cycle."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress

from harness.core.io import atomic_write_text
from harness.core.progress import make_progress
from harness.core.run_files import CHECKPOINT_NAME
from harness.train.trainer import Callback


class Checkpoint(Callback):
    """Saves the full training state (atomically) at the end of every epoch, of the fit, and when a signal
    stops the fit mid-epoch (the state then includes the position in the epoch)."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / CHECKPOINT_NAME

    def on_epoch_end(self, trainer, logs):
        trainer.save_checkpoint(self.path)

    def on_fit_end(self, trainer):
        trainer.save_checkpoint(self.path)

    def on_interrupt(self, trainer):
        trainer.save_checkpoint(self.path)


class PeriodicEval(Callback):
    """Scores the evaluated network on one split every `every` epochs; adds `val_<metric>` to the epoch logs.

    Runs before the logger, so the per-epoch JSON lines and TensorBoard carry validation curves.
    """

    def __init__(self, evaluate: Callable[[], dict[str, float]], every: int):
        self.evaluate = evaluate
        self.every = every

    def on_epoch_end(self, trainer, logs):
        last = trainer.state.epoch >= trainer.epochs or trainer.reached_max_steps()
        if self.every > 0 and (trainer.state.epoch % self.every == 0) and not last:
            logs.update({f"val_{k}": v for k, v in self.evaluate().items()})


class MetricsLogger(Callback):
    """Appends JSON lines to metrics.jsonl and writes TensorBoard scalars into the run dir.

    On a resume, lines logged after the checkpoint (by a run killed later on) are dropped first, so the
    file reads as if the run had never stopped.
    """

    def __init__(self, run_dir: Path, every: int = 10):
        from torch.utils.tensorboard import SummaryWriter

        self.path = Path(run_dir) / "metrics.jsonl"
        self.every = max(1, every)
        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))

    def _write(self, kind: str, trainer, logs: dict[str, float]) -> None:
        entry = {"kind": kind, "epoch": trainer.state.epoch, "step": trainer.state.step, **logs}
        with self.path.open("a") as handle:
            handle.write(json.dumps(entry) + "\n")
        for name, value in logs.items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(f"{kind}/{name}", value, trainer.state.step)

    def on_fit_start(self, trainer):
        if not self.path.is_file():
            return
        lines = [line for line in self.path.read_text().splitlines() if line.strip()]
        kept = []
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:  # a line cut short by a kill
                continue
            if entry.get("step", 0) <= trainer.state.step:
                kept.append(line)
        if kept != lines:
            atomic_write_text(self.path, "".join(f"{line}\n" for line in kept))

    def on_step_end(self, trainer, logs):
        if trainer.state.step % self.every == 0:
            self._write("step", trainer, logs)

    def on_epoch_end(self, trainer, logs):
        self._write("epoch", trainer, logs)
        self.writer.flush()

    def on_fit_end(self, trainer):
        self.writer.close()

    def on_interrupt(self, trainer):
        self.writer.close()


class ProgressBar(Callback):
    """Shows steps done, the running loss and the ETA of the fit."""

    def __init__(self, description: str, console: Console | None = None):
        self.description = description
        self.console = console
        self.progress: Progress | None = None
        self.job: Any = None

    def on_fit_start(self, trainer):
        self.progress = make_progress(self.console)
        self.progress.start()
        self.job = self.progress.add_task(
            self.description, total=trainer.total_steps, completed=trainer.state.step, info=""
        )

    def on_step_end(self, trainer, logs):
        info = f"epoch {trainer.state.epoch} loss {logs.get('loss', float('nan')):.4g}"
        self.progress.update(self.job, completed=trainer.state.step, info=info)

    def on_fit_end(self, trainer):
        self.progress.stop()

    def on_interrupt(self, trainer):
        self.progress.stop()
