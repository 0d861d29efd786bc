"""Batches between a DataLoader and a network: moving a nested batch to the device, the loader workers' signal
setup and their number. Shared by training, evaluation and prediction, so none of them imports another for
these."""

from __future__ import annotations

import os
import signal
from typing import Any

import torch

from harness.core.config import RunConfig


def ignore_interrupts(worker_id: int) -> None:
    """DataLoader `worker_init_fn`: workers leave Ctrl-C to the main process, which stops gracefully."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor of a nested batch; non-blocking so pinned host memory overlaps with compute."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def default_workers() -> int:
    """Leave one core to the training process; at most 8 loader workers."""
    return max(0, min(8, (os.cpu_count() or 1) - 1))


def loader_workers(cfg: RunConfig) -> int:
    """`train.num_workers`, or `default_workers()` when the config leaves it unset."""
    return cfg.train.num_workers if cfg.train.num_workers is not None else default_workers()
