"""The embedded pretraining stage: a stand-in for ImageNet weights on the embedded benchmarks.

The paper fine-tunes ImageNet-initialised networks; from-scratch networks on a few hundred CPU steps are
another regime (there, even plain occlusion augmentation does not beat the clean model on occluded val,
and imitating a partner whose features are still noise costs more than it gives). With
`model.pretrained: embedded` every method and seed starts from one backbone checkpoint trained clean and
supervised on the task's *pretraining split* (its own images, none shared with train or val), built once
per (task, data settings, backbone, input size, pretrain settings) on first use and cached under
`$HARNESS_CACHE/pretrained/`. Builds are serialised with a file lock and land by rename, so parallel
sweep trials never see half a checkpoint. A cached checkpoint whose metadata does not fit the run is
refused with one line, never loaded in part.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch.utils.data import DataLoader

from harness.core.cache import file_digest
from harness.core.errors import CheckpointError
from harness.core.io import atomic_torch_save, atomic_write_json
from harness.core.precision import Precision
from harness.core.reproducibility import cpu_arithmetic
from harness.methods.base import Method
from harness.models.backbones import create_backbone
from harness.models.pretrained import PretrainedBackbone
from harness.models.task_model import TaskModel
from harness.train.callbacks import Callback, ProgressBar
from harness.train.trainer import (
    EpochSampler,
    Trainer,
    build_optimizer,
    ignore_interrupts,
    seed_everything,
)

FORMAT_VERSION = 2  # bump when what is saved or how it is trained changes: old caches are then rebuilt
WEIGHTS_NAME, META_NAME = "backbone.pt", "meta.json"


@dataclass(frozen=True)
class PretrainSettings:
    """How the pretraining model is trained (the `pretrain:` config section)."""

    steps: int
    images: int
    batch_size: int
    lr: float
    seed: int
    threads: int | None = 1


class _SupervisedStep(Method):
    """One network, clean images, the task's supervised loss: the pretraining step (not a compared method)."""

    def __init__(self, model: TaskModel, supervised_loss):
        super().__init__(lambda: model, supervised_loss)
        self.net = model

    def networks(self):
        return {"net": self.net}

    def training_step(self, batch):
        loss = self.supervised_loss(self.net(batch["image"]), batch)
        return {"loss": loss}


class _LastLosses(Callback):
    """Keeps the last steps' losses, so the metadata says where pretraining ended."""

    def __init__(self, keep: int = 20):
        self.values: list[float] = []
        self.keep = keep

    def on_step_end(self, trainer, logs):
        self.values = [*self.values[-(self.keep - 1) :], logs["loss"]]

    def mean(self) -> float:
        return sum(self.values) / max(len(self.values), 1)


def cache_key(
    task_name: str, data: dict[str, Any], backbone: str, input_size, settings: PretrainSettings
) -> str:
    """Content key of a pretraining checkpoint: everything that changes its weights."""
    payload = {
        "format": FORMAT_VERSION,
        "task": task_name,
        "data": data,
        "backbone": backbone,
        "input_size": list(input_size) if input_size else None,
        "pretrain": settings.__dict__,
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@contextmanager
def _locked(path: Path):
    """An exclusive inter-process lock held for the `with` body (parallel trials build once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _check_meta(folder: Path, expected: dict[str, Any]) -> dict[str, Any]:
    meta_path = folder / META_NAME
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(
            f"{meta_path}: unreadable pretraining metadata ({err}); delete {folder}"
        ) from None
    for key, want in expected.items():
        if meta.get(key) != want:
            raise CheckpointError(
                f"{meta_path}: cached pretraining checkpoint has {key}={meta.get(key)!r}, this run needs "
                f"{want!r}; delete {folder} to rebuild it"
            )
    if file_digest(folder / WEIGHTS_NAME) != meta.get("sha256"):
        raise CheckpointError(f"{folder / WEIGHTS_NAME}: sha256 differs from {META_NAME}; delete {folder}")
    return meta


def embedded_backbone(
    task,
    *,
    task_name: str,
    data: dict[str, Any],
    backbone: str,
    settings: PretrainSettings,
    device: torch.device,
    precision: Precision,
    num_workers: int = 0,
    console: Console | None = None,
) -> PretrainedBackbone:
    """Return the cached pretraining checkpoint for this run, training it first if needed.

    Args:
        task: the run's Task; it supplies `pretraining_set` and `pretraining_head`.
        task_name, data: the run's task name and data settings (part of the cache key).
        backbone: registered backbone name.
        settings: steps, images, batch size, learning rate and seed of the pretraining run.
        device, precision: where and how it trains.
        num_workers: DataLoader worker processes.
        console: where its progress bar goes.

    Raises:
        ConfigError: the task has no embedded pretraining split (real data: give a local checkpoint).
        CheckpointError: a cached checkpoint does not fit (metadata or digest differ).
    """
    input_size = task.input_size
    key = cache_key(task_name, data, backbone, input_size, settings)
    size = "x".join(str(v) for v in input_size) if input_size else "any"
    folder = task.cache_dir / "pretrained" / task_name / f"{backbone.replace(':', '-')}_{size}_{key}"
    expected = {
        "format_version": FORMAT_VERSION,
        "task": task_name,
        "backbone": backbone,
        "input_size": list(input_size) if input_size else None,
        "key": key,
    }
    with _locked(folder.with_name(folder.name + ".lock")):
        if not (folder / META_NAME).is_file():
            _build(task, folder, backbone, settings, device, precision, num_workers, console, expected)
        meta = _check_meta(folder, expected)
    return PretrainedBackbone(folder / WEIGHTS_NAME, meta)


@contextmanager
def _intra_op_threads(count: int | None):
    """Run the body with `count` intra-op threads (None: unchanged), restoring the process's count after."""
    before = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _build(task, folder, backbone_name, settings, device, precision, num_workers, console, expected) -> None:
    with _intra_op_threads(settings.threads):
        _train(task, folder, backbone_name, settings, device, precision, num_workers, console, expected)


def _train(task, folder, backbone_name, settings, device, precision, num_workers, console, expected) -> None:
    console = console or Console(stderr=True)
    backbone = create_backbone(backbone_name, None, input_size=task.input_size)  # a bad name fails first
    dataset = task.pretraining_set(seed=settings.seed, images=settings.images)
    console.print(
        f"pretraining {backbone_name} on {len(dataset)} samples of the embedded pretraining split "
        f"({settings.steps} steps, once; cached in {folder})",
        highlight=False,
    )
    seed_everything(settings.seed)
    backbone = create_backbone(backbone_name, None, input_size=task.input_size)  # drawn under its own seed
    model = TaskModel(backbone, task.pretraining_head(backbone.out_channels, backbone.out_stride))
    loader = DataLoader(
        dataset,
        batch_size=settings.batch_size,
        sampler=EpochSampler(len(dataset), seed=settings.seed),
        drop_last=len(dataset) > settings.batch_size,
        num_workers=num_workers,
        worker_init_fn=ignore_interrupts,
    )
    step = _SupervisedStep(model, task.loss)
    losses = _LastLosses()
    optimizer = build_optimizer(
        model.parameters(), name="adam", lr=settings.lr, momentum=0.0, weight_decay=0.0
    )
    trainer = Trainer(
        step,
        {"net": optimizer},
        {},
        device=device,
        epochs=math.ceil(settings.steps / max(len(loader), 1)),
        max_steps=settings.steps,
        precision=precision,
        seed=settings.seed,
        callbacks=[losses, ProgressBar(f"pretrain {backbone_name}", console)],
    )
    trainer.fit(loader)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / WEIGHTS_NAME
    atomic_torch_save(weights, {k: v.detach().cpu() for k, v in backbone.body.state_dict().items()})
    meta = {
        **expected,
        "sha256": file_digest(weights),
        "steps": trainer.state.step,
        "samples": len(dataset),
        "batch_size": settings.batch_size,
        "lr": settings.lr,
        "seed": settings.seed,
        "final_loss": round(losses.mean(), 8),  # mean over the last 20 steps
        "train_seconds": round(trainer.state.train_seconds, 2),
        **cpu_arithmetic(),  # what the digest depends on besides the settings
    }
    atomic_write_json(folder / META_NAME, meta)  # last: its presence means "complete"
