"""Task-agnostic evaluation: run `task.predict` over an eval split, then `task.evaluate`."""

from __future__ import annotations

import torch
from rich.console import Console
from torch import nn
from torch.utils.data import DataLoader, Dataset

from harness.callbacks import make_progress
from harness.precision import Precision
from harness.task import Task
from harness.trainer import ignore_interrupts, to_device


@torch.no_grad()
def evaluate_split(
    task: Task,
    model: nn.Module,
    dataset: Dataset,
    *,
    device: torch.device,
    batch_size: int,
    num_workers: int = 0,
    precision: Precision | None = None,
    description: str = "eval",
    console: Console | None = None,
    show_progress: bool = True,
) -> tuple[dict[str, float], list[dict]]:
    """Predict every sample of `dataset` with `model` (in eval mode) and score it.

    Returns:
        the task's metrics and the predictions they were computed from.

    `show_progress=False` when called while another progress display is live (evaluation during training).
    """
    precision = precision or Precision.full(device)
    was_training = model.training
    model.eval()
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        worker_init_fn=ignore_interrupts,
    )
    predictions = []
    progress = make_progress(console, disable=not show_progress)
    with progress:
        job = progress.add_task(description, total=len(dataset), info="")
        for batch in loader:
            with precision.autocast():
                predictions += task.predict(model, to_device(batch, device))
            progress.advance(job, len(batch["image"]))
    model.train(was_training)
    return task.evaluate(predictions, dataset), predictions
