"""The record of one scored (network, split): the fields every record of a task takes from the config and the
task (names, metric directions, split and method roles, versions, source state, CPU arithmetic).

Shared by `harness run` (harness/run/records.py adds the trainer's counters) and `harness eval`, so both
write the same fields.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from harness.core.config import RunConfig
from harness.core.registry import METHODS
from harness.core.reproducibility import cpu_arithmetic
from harness.core.results import ResultRecord, package_versions, source_state
from harness.core.roles import split_role
from harness.core.task import Task
from harness.evaluate.predictions import save_predictions


def now() -> str:
    """A record's timestamp: UTC, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def task_record(
    cfg: RunConfig, task: Task, *, split: str | None, network: str | None, **fields
) -> ResultRecord:
    """A record with what the config and the task say (names, metric directions, split and method roles,
    versions); `fields` give the rest (run id, status, metrics, evaluated, provenance, ...)."""
    names = [m.name for m in task.metrics]
    return ResultRecord(
        task=cfg.task,
        method=cfg.method,
        backbone=cfg.model.backbone,
        dataset=task.dataset_name,
        split=split,
        network=network,
        higher_is_better={n: task.metric(n).higher_is_better for n in names},
        primary_metric=task.primary_metric,
        split_role=split_role(split, task.clean_split, task.occluded_split),
        method_role=METHODS.get(cfg.method).role,
        seed=cfg.seed,
        versions=package_versions(),
        **source_state().fields(),
        compute=cpu_arithmetic(),
        **fields,
    )


def with_outputs(
    record: ResultRecord, task: Task, predictions: list[dict[str, Any]], dataset: Dataset, folder: Path | None
) -> ResultRecord:
    """`record` (its severity set) with what its scored split leaves besides the metrics: the showcase samples
    and, when `folder` is given (rank 0 alone writes), the prediction file under it."""
    record.samples = task.showcase(predictions, dataset)
    if folder is not None:
        record.predictions = save_predictions(task, predictions, dataset, folder, record)
    return record
