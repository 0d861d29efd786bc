"""Config -> objects: the one place that turns a run's config into its task, networks, method and occlusion
plan.

Shared by `harness run` (run/experiment.py), `harness eval` / `predict` (evaluate/trained_run.py), `harness
export`, the sweep's shared-input builder and the benchmarks, so a run is rebuilt exactly as it was trained.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.core.config import RunConfig
from harness.core.errors import ConfigError
from harness.core.occlusion import OcclusionSettings
from harness.core.registry import METHODS, TASKS
from harness.core.run_files import resolve_run_reference
from harness.core.task import OcclusionPlan, Task
from harness.models.backbones import create_backbone
from harness.models.pretrained import PretrainedBackbone, load_embedded
from harness.models.task_model import TaskModel


def build_task(cfg: RunConfig) -> Task:
    """The registered task `cfg.task` with its `data:` settings."""
    task_cls = TASKS.get(cfg.task)
    return task_cls(task_cls.Settings(**cfg.data))


def model_builder(
    cfg: RunConfig, task: Task, *, weights: str | None = None, embedded: PretrainedBackbone | None = None
) -> Callable[[], TaskModel]:
    """What a method calls once per network: backbone (from `weights`, or the embedded pretraining
    checkpoint) + the task's head on its output."""

    def build_model() -> TaskModel:
        initial = None if embedded else weights
        backbone = create_backbone(cfg.model.backbone, initial, input_size=task.input_size)
        if embedded:
            load_embedded(backbone, embedded)
        return TaskModel(backbone, task.head(backbone.out_channels, backbone.out_stride))

    return build_model


def build_method(
    cfg: RunConfig, task: Task, *, settings: Any = None, weights: str | None = None,
    embedded: PretrainedBackbone | None = None,
):  # fmt: skip
    """The registered method `cfg.method` with its networks built for `task`; `settings` default to the
    config's `method_args.<method>`. Without `weights` or `embedded` the networks start at random (a
    checkpoint is loaded into them next)."""
    method_cls = METHODS.get(cfg.method)
    if settings is None:
        settings = method_cls.Settings(**cfg.method_args.get(cfg.method, {}))
    if method_cls.prerequisite and getattr(settings, method_cls.prerequisite[1], None):
        field = method_cls.prerequisite[1]  # a run id names a run of this work dir
        where = resolve_run_reference(str(getattr(settings, field)), cfg.output.work_dir)
        settings = settings.model_copy(update={field: str(where)})
    return method_cls(model_builder(cfg, task, weights=weights, embedded=embedded), task.loss, settings)


def occlusion_plan(cfg: RunConfig, needs_twin: bool) -> OcclusionPlan:
    """The `occlusion:` section as a task reads it: the training twin's settings (only for a method that
    trains on twins) and the frozen occluded val's."""
    o = cfg.occlusion

    def settings(clean_fraction: float) -> OcclusionSettings:
        return OcclusionSettings(
            clean_fraction=clean_fraction,
            patches_per_person=tuple(o.patches_per_person),
            size_range=tuple(o.size_range),
            max_rotation=o.max_rotation,
        )

    if needs_twin and not o.enabled:
        raise ConfigError(f"method '{cfg.method}' trains on occluded twins but occlusion.enabled is false")
    train = settings(o.clean_fraction) if needs_twin else None
    return OcclusionPlan(
        train=train, val=settings(o.val_clean_fraction), val_seed=o.val_seed, max_patches=o.max_patches,
        val_severity=o.val_severity,
    )  # fmt: skip
