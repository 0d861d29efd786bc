"""The records `run_experiment` writes (ok per scored split, or one failed / interrupted record), with the
trainer's counters; the fields every record of a task shares come from harness/evaluate/records.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.core.config import RunConfig
from harness.core.results import ResultRecord
from harness.core.task import Task
from harness.evaluate.records import now, task_record


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
