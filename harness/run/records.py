"""Result records of a run: the fields every record of a task takes from the config and the task, and the
records `run_experiment` writes (ok per scored split, or one failed / interrupted record)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.core.config import RunConfig
from harness.core.registry import METHODS
from harness.core.reproducibility import cpu_arithmetic
from harness.core.results import ResultRecord, package_versions, source_state
from harness.core.roles import split_role
from harness.core.task import Task
from harness.run.setup import now


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


@dataclass
class RunRecords:
    """Makes the records of one training run; the trainer's counters are read when a record is made."""

    cfg: RunConfig
    task: Task
    run_id: str
    evaluated: str
    prerequisite_key: str | None
    trainer: Any
    device: Any
    precision: Any
    world_size: int
    data: dict[str, Any]
    started_at: str

    def __call__(self, split, network, status, metrics=None, reason=None) -> ResultRecord:
        state = self.trainer.state
        return task_record(
            self.cfg,
            self.task,
            split=split,
            network=network,
            run_id=self.run_id,
            status=status,
            metrics=metrics or {},
            evaluated=network == self.evaluated if network else None,
            prerequisite_key=self.prerequisite_key,
            config=self.cfg.to_dict(),
            config_hash=self.cfg.hash(),
            data=self.data,
            training={
                "steps": state.step,
                "epochs": state.epoch,
                "images": state.images,
                "train_seconds": round(state.train_seconds, 2),
                "device": str(self.device),
                "precision": self.precision.name,
                "steps_per_second": round(state.step / max(state.train_seconds, 1e-9), 4),
                "world_size": self.world_size,
                "batch_size_per_rank": self.cfg.train.batch_size,
                "global_batch_size": self.cfg.train.batch_size * self.world_size,
            },
            started_at=self.started_at,
            ended_at=now(),
            reason=reason,
        )
