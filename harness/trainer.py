"""The single training loop, shared by every method and task.

A method says what one step computes; the trainer owns device placement, mixed precision, the
backward pass, the optimizers and schedulers, limits (`max_steps`), the NaN guard and the full
checkpoint (weights, optimizers, schedulers, RNG state) that `--resume` continues from.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from harness.callbacks import Callback
from harness.errors import CheckpointError, TrainingError
from harness.io import atomic_torch_save
from harness.methods.base import Method


@dataclass
class TrainerState:
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps done (each optimizer steps once per batch)
    images: int = 0  # training samples seen
    train_seconds: float = 0.0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor of a nested batch; non-blocking so pinned host memory overlaps with compute."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def build_optimizer(params, *, name: str, lr: float, momentum: float, weight_decay: float):
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


class Trainer:
    """Runs `method.training_step` over a DataLoader for a number of epochs (or steps).

    Args:
        method: the networks and the step.
        optimizers: one per entry of `method.optimizer_groups()`.
        schedulers: epoch-wise LR schedulers, one per optimizer.
        device: where training runs.
        epochs: epochs to train.
        max_steps: stop early after this many steps (None: no limit).
        amp: float16 autocast with a grad scaler on CUDA; ignored on the CPU.
        seed: seeds the per-epoch shuffle, so data order survives a resume.
        callbacks: checkpointing, logging, progress.
    """

    def __init__(
        self,
        method: Method,
        optimizers: dict[str, torch.optim.Optimizer],
        schedulers: dict[str, Any],
        *,
        device: torch.device,
        epochs: int,
        max_steps: int | None = None,
        amp: bool = False,
        seed: int = 0,
        callbacks: list[Callback] | None = None,
    ):
        self.method = method.to(device)
        self.optimizers = optimizers
        self.schedulers = schedulers
        self.device = device
        self.epochs = epochs
        self.max_steps = max_steps
        self.amp = amp and device.type == "cuda"
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp)
        self.seed = seed
        self.callbacks = callbacks or []
        self.state = TrainerState()
        self.total_steps = 0

    def _call(self, hook: str, *args) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

    def reached_max_steps(self) -> bool:
        return self.max_steps is not None and self.state.step >= self.max_steps

    def fit(self, loader: DataLoader) -> TrainerState:
        """Train from the current state to the end; returns the final state."""
        steps_per_epoch = len(loader)
        self.total_steps = self.epochs * steps_per_epoch
        if self.max_steps is not None:
            self.total_steps = min(self.total_steps, self.max_steps)
        self._call("on_fit_start")
        while self.state.epoch < self.epochs and not self.reached_max_steps():
            if hasattr(loader.dataset, "set_epoch"):
                loader.dataset.set_epoch(self.state.epoch)
            if hasattr(loader.sampler, "generator") and loader.sampler.generator is not None:
                loader.sampler.generator.manual_seed(self._epoch_seed())
            sums: dict[str, float] = {}
            count = 0
            self.method.train()
            started = time.perf_counter()
            for batch in loader:
                logs = self._step(to_device(batch, self.device))
                for key, value in logs.items():
                    sums[key] = sums.get(key, 0.0) + value
                count += 1
                self.state.images += len(batch["image"])
                self._call("on_step_end", logs)
                if self.reached_max_steps():
                    break
            self.state.train_seconds += time.perf_counter() - started
            for scheduler in self.schedulers.values():
                scheduler.step()
            self.state.epoch += 1
            self._call("on_epoch_end", {f"train_{k}": v / max(count, 1) for k, v in sums.items()})
        self._call("on_fit_end")
        return self.state

    def _epoch_seed(self) -> int:
        return self.seed * 100_003 + self.state.epoch

    def _step(self, batch: dict[str, Any]) -> dict[str, float]:
        with torch.autocast(self.device.type, enabled=self.amp):
            terms = self.method.training_step(batch)
        loss = terms["loss"]
        value = float(loss.detach())
        if not math.isfinite(value):
            raise TrainingError(
                f"loss became {value} at step {self.state.step + 1} (epoch {self.state.epoch}); run stopped"
            )
        for optimizer in self.optimizers.values():
            optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        for optimizer in self.optimizers.values():
            self.scaler.step(optimizer)
        self.scaler.update()
        self.state.step += 1
        return {name: float(t.detach()) for name, t in terms.items()}

    def save_checkpoint(self, path: Path) -> None:
        """Everything needed to continue exactly: weights, optimizers, schedulers, scaler, RNG, counters."""
        atomic_torch_save(
            path,
            {
                "method": self.method.state_dict(),
                "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
                "scaler": self.scaler.state_dict(),
                "state": asdict(self.state),
                "rng": {
                    "torch": torch.get_rng_state(),
                    "numpy": _numpy_state(),
                    "python": list(random.getstate()[1]),
                },
            },
        )

    def load_checkpoint(self, path: Path) -> None:
        """Restore a checkpoint written by `save_checkpoint` (weights_only: no code runs on load)."""
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"no checkpoint at {path}")
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001  (torch raises many types for corrupt files)
            raise CheckpointError(
                f"checkpoint {path} is corrupt or unsafe: {str(err).splitlines()[0]}"
            ) from None
        try:
            self.method.load_state_dict(ckpt["method"])
        except RuntimeError as err:
            raise CheckpointError(
                f"checkpoint {path} does not fit this model: {str(err).splitlines()[0]}"
            ) from None
        for key, optimizer in self.optimizers.items():
            optimizer.load_state_dict(ckpt["optimizers"][key])
        for key, scheduler in self.schedulers.items():
            scheduler.load_state_dict(ckpt["schedulers"][key])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.state = TrainerState(**ckpt["state"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        np.random.set_state(
            (
                "MT19937",
                ckpt["rng"]["numpy"]["keys"].numpy().astype(np.uint32),
                int(ckpt["rng"]["numpy"]["pos"]),
                0,
                0.0,
            )
        )
        random.setstate((3, tuple(ckpt["rng"]["python"]), None))


def _numpy_state() -> dict[str, Any]:
    _, keys, pos, _, _ = np.random.get_state()
    return {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos)}
