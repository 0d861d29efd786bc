"""Task-agnostic evaluation: run `task.predict` over an eval split, then `task.evaluate`.

With several ranks (harness/core/distributed.py) every rank predicts a disjoint shard of the split, the
predictions are gathered back into dataset order, and the metric is computed once, on rank 0.
"""

from __future__ import annotations

import torch
from rich.console import Console
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from harness.core import distributed
from harness.core.batches import ignore_interrupts, to_device
from harness.core.errors import TrainingError
from harness.core.precision import Precision
from harness.core.progress import make_progress
from harness.core.task import Task


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
    ctx = distributed.current()
    distributed.sync_buffers(model, ctx)  # every shard is scored by rank 0's network
    part = Subset(dataset, distributed.shard(len(dataset), ctx)) if ctx.active else dataset
    was_training = model.training
    model.eval()
    loader = DataLoader(
        part,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        worker_init_fn=ignore_interrupts,
    )
    predictions = []
    progress = make_progress(console, disable=not (show_progress and ctx.is_main))
    overflow = []  # set by the hook, per batch
    non_finite, rescored = False, 0  # ranks agree on non_finite after the loop, so none waits alone
    watch = model.register_forward_hook(_watch_non_finite(overflow))
    try:
        with progress:
            job = progress.add_task(description, total=len(part), info="")
            for batch in loader:
                batch = to_device(batch, device)
                with precision.autocast():
                    batch_predictions = task.predict(model, batch)
                if overflow and precision.dtype is not None:  # past float16's range: this batch in float32
                    overflow.clear()
                    rescored += len(batch["image"])
                    batch_predictions = task.predict(model, batch)
                non_finite |= bool(overflow)
                overflow.clear()
                predictions += batch_predictions
                progress.advance(job, len(batch["image"]))
    finally:
        watch.remove()
        model.train(was_training)
    if distributed.any_rank(non_finite, ctx):
        raise TrainingError(
            f"{description}: the network's output holds inf or NaN (in float32 too); nothing was scored"
        )
    if rescored:
        (console or Console(stderr=True)).print(
            f"{description}: {rescored} of {len(part)} samples scored in float32 "
            f"({precision.name} overflowed)",
            highlight=False,
        )
    if not ctx.active:
        return task.evaluate(predictions, dataset), predictions
    assert len(predictions) == len(part), "task.predict must return one prediction per sample"
    predictions = distributed.gather_in_order(predictions, len(dataset), ctx)
    metrics = distributed.from_main(lambda: task.evaluate(predictions, dataset), ctx)
    return metrics, predictions


def _watch_non_finite(found: list):
    """A forward hook that notes a network output holding inf or NaN: decoded into keypoints or embeddings it
    would give a metric with no error. Under float16 autocast (max 65504) the batch is scored again in
    float32 (a barely trained network's eval-mode BatchNorm reaches 1e5 and more, as in the GPU check)."""

    def tensors(value):
        if isinstance(value, torch.Tensor):
            yield value
        elif isinstance(value, dict):
            for item in value.values():
                yield from tensors(item)
        elif isinstance(value, list | tuple):
            for item in value:
                yield from tensors(item)

    def hook(_module, _inputs, output):
        if not found and any(t.is_floating_point() and not torch.isfinite(t).all() for t in tensors(output)):
            found.append(True)

    return hook
