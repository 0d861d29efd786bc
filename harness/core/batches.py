"""Batches between a DataLoader and a network: moving a nested batch to the device, and the loader workers'
signal setup. Shared by training, evaluation and prediction, so none of them imports another for these."""

from __future__ import annotations

import signal
from typing import Any

import torch


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
