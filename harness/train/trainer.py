"""The single training loop, shared by every method and task.

A method says what one step computes; the trainer owns device placement, mixed precision, the
backward pass, the optimizers and schedulers, limits (`max_steps`), the NaN guard and the full
checkpoint (weights, optimizers, schedulers, RNG state) that `--resume` continues from.
"""

from __future__ import annotations

import math
import random
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

# ignore_interrupts: still importable here
from harness.core.batches import ignore_interrupts, to_device  # noqa: F401
from harness.core.distributed import DataParallelStep
from harness.core.errors import CheckpointError, RunInterrupted, TrainingError
from harness.core.io import atomic_torch_save, safe_torch_load
from harness.core.precision import Precision
from harness.core.run_files import check_checkpoint
from harness.methods.base import Method


class Callback:
    """Hooks the trainer calls; every method is optional."""

    def on_fit_start(self, trainer: Trainer) -> None: ...

    def on_step_end(self, trainer: Trainer, logs: dict[str, float]) -> None: ...

    def on_epoch_end(self, trainer: Trainer, logs: dict[str, float]) -> None: ...

    def on_fit_end(self, trainer: Trainer) -> None: ...

    def on_interrupt(self, trainer: Trainer) -> None:
        """SIGINT/SIGTERM stopped the fit after a finished step (then `RunInterrupted` is raised)."""


@dataclass
class TrainerState:
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps done (each optimizer steps once per batch)
    images: int = 0  # training samples seen
    train_seconds: float = 0.0
    # Mid-epoch position, so an interrupted epoch resumes at the next batch (0 at epoch boundaries).
    epoch_step: int = 0  # batches of the current epoch already trained
    epoch_sums: dict[str, float] = field(default_factory=dict)  # running sums of the epoch's step logs


def epoch_seed(seed: int, epoch: int) -> int:
    """The shuffle seed of one epoch: depends only on the run's seed and the epoch number."""
    return seed * 100_003 + epoch


class EpochSampler(Sampler[int]):
    """A shuffle that depends only on (seed, epoch), and can start part-way into an epoch.

    The trainer sets the epoch before each pass; on a mid-epoch resume it also sets how many samples of
    that epoch's order were already trained, so data order survives an interruption exactly (a
    DataLoader's own shuffle draws from its generator in a version-dependent order).

    With several ranks (`world_size` > 1) the epoch's one order is cut to a multiple of the world size and
    rank r takes its positions r, r + N, ...: disjoint shards of equal length, so every rank takes the same
    number of steps, and `start` counts samples of this rank's shard.
    """

    def __init__(self, size: int, seed: int = 0, rank: int = 0, world_size: int = 1):
        self.size = size
        self.seed = seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def order(self) -> list[int]:
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        order = torch.randperm(self.size, generator=generator).tolist()
        if self.world_size == 1:
            return order
        return order[: self.shard_size * self.world_size][self.rank :: self.world_size]

    @property
    def shard_size(self) -> int:
        """Samples of one epoch on this rank (the whole set in one process)."""
        return self.size // self.world_size

    def __iter__(self) -> Iterator[int]:
        return iter(self.order()[self.start :])

    def __len__(self) -> int:
        return self.shard_size - self.start


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


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
        precision: autocast dtype (and grad scaler for float16); full precision when omitted.
        seed: seeds the per-epoch shuffle, so data order survives a resume.
        callbacks: checkpointing, logging, progress.
        tags: what the checkpoint belongs to (e.g. task, method, backbone); a checkpoint whose tags differ
            is refused on load with a message naming both.
        world_size: ranks training together (harness/core/distributed.py). Above 1 the step runs under
            DistributedDataParallel, logged losses are means over ranks, and a stop request on any rank
            stops every rank after the same step.

    SIGINT or SIGTERM during `fit` (main thread only) stops after the current step: callbacks get
    `on_interrupt` (the checkpoint callback saves the mid-epoch state) and `RunInterrupted` is raised. A
    second signal stops at once.
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
        precision: Precision | None = None,
        seed: int = 0,
        callbacks: list[Callback] | None = None,
        tags: dict[str, str] | None = None,
        world_size: int = 1,
    ):
        self.method = method.to(device)
        self.world_size = world_size
        self.parallel = DataParallelStep(self.method, device) if world_size > 1 else None
        self.optimizers = optimizers
        self.schedulers = schedulers
        self.device = device
        self.epochs = epochs
        self.max_steps = max_steps
        self.precision = precision or Precision.full(device)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.precision.needs_scaler)
        self.seed = seed
        self.callbacks = callbacks or []
        self.tags = dict(tags or {})
        self.state = TrainerState()
        self.total_steps = 0
        self.stop_signal: int | None = None  # set by SIGINT/SIGTERM (or `request_stop`) during fit
        self.agreed_stop: int | None = None  # the stop every rank agreed on at the last step (several ranks)

    def _call(self, hook: str, *args) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

    def reached_max_steps(self) -> bool:
        return self.max_steps is not None and self.state.step >= self.max_steps

    def request_stop(self, signum: int = signal.SIGINT) -> None:
        """Stop after the current step with a checkpoint (what SIGINT/SIGTERM do during `fit`)."""
        if self.stop_signal is not None:
            raise KeyboardInterrupt  # a second request: stop now
        self.stop_signal = signum

    @contextmanager
    def _stop_on_signals(self):
        if threading.current_thread() is not threading.main_thread():  # e.g. a Ray Tune trial thread
            yield
            return
        signals = (signal.SIGINT, signal.SIGTERM)
        previous = {s: signal.getsignal(s) for s in signals}
        for s in signals:
            signal.signal(s, lambda signum, frame: self.request_stop(signum))
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _set_epoch(self, loader: DataLoader, start: int = 0) -> None:
        """Point dataset augmentation and sampler order at the current epoch (from `start` samples in)."""
        if hasattr(loader.dataset, "set_epoch"):
            loader.dataset.set_epoch(self.state.epoch)
        if isinstance(loader.sampler, EpochSampler):
            loader.sampler.set_epoch(self.state.epoch, start)
        elif hasattr(loader.sampler, "generator") and loader.sampler.generator is not None:
            if start:
                raise CheckpointError("a mid-epoch checkpoint needs a loader with an EpochSampler")
            loader.sampler.generator.manual_seed(epoch_seed(self.seed, self.state.epoch))

    def fit(self, loader: DataLoader) -> TrainerState:
        """Train from the current state to the end; returns the final state.

        Raises:
            TrainingError: the loss became non-finite.
            RunInterrupted: SIGINT/SIGTERM arrived; the state after the last finished step was checkpointed.
        """
        self._set_epoch(loader)
        steps_per_epoch = len(loader)
        self.total_steps = self.epochs * steps_per_epoch
        if self.max_steps is not None:
            self.total_steps = min(self.total_steps, self.max_steps)
        self.stop_signal = self.agreed_stop = None
        self._call("on_fit_start")
        with self._stop_on_signals():
            while self.state.epoch < self.epochs and not self.reached_max_steps():
                self._set_epoch(loader, self.state.epoch_step * (loader.batch_size or 1))
                self.method.train()
                started = time.perf_counter()
                for batch in loader:
                    logs = self._step(to_device(batch, self.device))
                    sums = self.state.epoch_sums
                    for key, value in logs.items():
                        sums[key] = sums.get(key, 0.0) + value
                    self.state.epoch_step += 1
                    self.state.images += len(batch["image"]) * self.world_size
                    self._call("on_step_end", logs)
                    if self.parallel is None:
                        self.agreed_stop = self.stop_signal
                    if self.agreed_stop is not None:
                        self.state.train_seconds += time.perf_counter() - started
                        self._interrupt(steps_per_epoch)
                    if self.reached_max_steps():
                        break
                self.state.train_seconds += time.perf_counter() - started
                for scheduler in self.schedulers.values():
                    scheduler.step()
                count = max(self.state.epoch_step, 1)
                logs = {f"train_{k}": v / count for k, v in self.state.epoch_sums.items()}
                self.state.epoch += 1
                self.state.epoch_step, self.state.epoch_sums = 0, {}
                self._call("on_epoch_end", logs)
        self._call("on_fit_end")
        return self.state

    def _interrupt(self, steps_per_epoch: int) -> None:
        self._call("on_interrupt")
        self.stop_signal = self.agreed_stop
        name = signal.Signals(self.stop_signal).name
        raise RunInterrupted(
            f"{name} at step {self.state.step}: stopped in epoch {self.state.epoch + 1} of {self.epochs} "
            f"after batch {self.state.epoch_step} of {steps_per_epoch}",
            signum=self.stop_signal,
        )

    def _step(self, batch: dict[str, Any]) -> dict[str, float]:
        with self.precision.autocast():
            terms = (self.parallel or self.method.training_step)(batch)
        loss = terms["loss"]
        logs = {name: float(t.detach()) for name, t in terms.items()}
        if self.parallel is not None:  # every rank sees the same losses and stop request
            logs, self.agreed_stop = self.parallel.agree(logs, self.stop_signal)
        value = logs["loss"]
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
        return logs

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
                "tags": self.tags,
                "rng": {
                    "torch": torch.get_rng_state(),
                    "numpy": _numpy_state(),
                    "python": list(random.getstate()[1]),
                },
            },
        )

    def load_checkpoint(self, path: Path) -> None:
        """Restore a checkpoint written by `save_checkpoint` (weights_only: no code runs on load).

        Raises:
            CheckpointError: the file is missing, corrupt, unsafe, not a trainer checkpoint, or was
                written for other tags (another backbone or method) or another model.
        """
        path = Path(path)
        ckpt = safe_torch_load(path, "checkpoint")
        if not isinstance(ckpt, dict):
            raise CheckpointError(f"checkpoint {path} is not a harness training checkpoint")
        needed = ("method", "optimizers", "schedulers", "scaler", "state", "rng")
        missing = [k for k in needed if k not in ckpt]
        if missing:
            raise CheckpointError(
                f"checkpoint {path} is not a harness training checkpoint (no '{missing[0]}')"
            )
        own = self.method.state_dict()
        check_checkpoint(ckpt, own, self.tags, path=path, label="checkpoint ", config="the run's config")
        self.method.load_state_dict(ckpt["method"])
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
