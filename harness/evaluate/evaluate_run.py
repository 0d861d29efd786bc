"""`harness eval`: score a trained run on any split its task can build, without training.

Train once, evaluate many times: on the run's own splits, on another dataset or split (`--config` with the
same task, `--set data.…`), with detected boxes, and along the task's occlusion-severity ladder
(`--severity 0,1,2,3,4`, each level's split built once and cached like the frozen occluded val).

What it writes, and what it never touches:
- ordinary result records in `<results>/runs/`, with `run_id` `<source run id>.eval-<eval id>` and an
  `evaluation` block (source run id, checkpoint and its sha256, the eval config and its hash, the data
  settings given, box source), so they never overwrite or pass for training-time records;
- the predictions of every split under `<run dir>/evaluations/<eval id>/predictions/`.
Nothing of the source run changes: its config, checkpoint, logs and records stay as they were. Everything
is scored before the first record is written, so bad input leaves no record.

Example:
    >>> evaluate_run(Path("work_dirs/<run>"), severities=[0, 1, 2, 3, 4])  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from rich.console import Console

from harness.core.batches import loader_workers
from harness.core.config import RunConfig, apply_overrides, config_from_tree, load_config
from harness.core.errors import ConfigError
from harness.core.io import atomic_write_text, ensure_writable
from harness.core.precision import Precision
from harness.core.results import ResultRecord, write_records
from harness.core.task import Task
from harness.evaluate.records import now, task_record, with_outputs
from harness.evaluate.scoring import evaluate_split
from harness.evaluate.trained_run import load_trained, run_config

EVALUATIONS_DIR = "evaluations"
# What an evaluation may change: the data it scores and how it runs, never what was trained.
EVAL_KEYS = ("data.", "occlusion.", "train.eval_batch_size", "train.num_workers", "train.amp",
             "train.amp_dtype", "device", "output.results_dir")  # fmt: skip


@dataclass
class EvalOutcome:
    source_run_id: str
    eval_id: str
    folder: Path  # <run dir>/evaluations/<eval id>
    records: list[ResultRecord]


def eval_config(source: RunConfig, config_file: Path | None, overrides: list[str]) -> RunConfig:
    """The run's config with the data (and occlusion) settings of `config_file` and `overrides`.

    Raises:
        ConfigError: `config_file` is for another task, or an override touches what was trained.
    """
    tree = source.to_dict()
    if config_file is not None:
        given = load_config(config_file)
        if given.task != source.task:
            raise ConfigError(
                f"--config: {config_file} is a {given.task} config, the run is a {source.task} run"
            )
        tree["data"], tree["occlusion"] = given.to_dict()["data"], given.to_dict()["occlusion"]
    check_eval_overrides(overrides)
    return config_from_tree(apply_overrides(tree, overrides))


def check_eval_overrides(overrides: list[str]) -> None:
    """Raise ConfigError for a `--set` key an evaluation may not change (anything but EVAL_KEYS)."""
    for item in overrides:
        key = item.partition("=")[0]
        if not any(key == k or (k.endswith(".") and key.startswith(k)) for k in EVAL_KEYS):
            raise ConfigError(
                f"--set {key}: an evaluation cannot change what was trained; it sets only data.*, "
                "occlusion.*, train.eval_batch_size, train.num_workers, train.amp, train.amp_dtype, device, "
                "output.results_dir"
            )


def severity_configs(
    cfg: RunConfig, severities: list[int] | None, splits: list[str] | None
) -> dict[int | None, RunConfig]:
    """The eval config per severity level asked for (`--severity`), or `cfg` alone at its own level.

    Raises:
        ConfigError: `--split` together with `--severity`, or a level off the task's ladder.
    """
    if severities is None:
        return {cfg.occlusion.val_severity: cfg}
    if splits:
        raise ConfigError("--split and --severity: a severity ladder scores the occluded split only")
    return {k: _at_severity(cfg, k) for k in severities}


@dataclass
class Scored:
    """One split scored at one level: what its record and prediction file are made from."""

    config: RunConfig
    split: str
    dataset: Any
    metrics: dict
    predictions: list
    provenance: dict


def score_levels(
    task: Task,
    levels: dict[int | None, RunConfig],
    *,
    ladder: bool,
    splits: list[str] | None,
    score: Callable[[str, int | None, Any], tuple[dict, list]],
) -> list[Scored]:
    """Build each level's splits and score the wanted ones with `score(split, level, dataset)`.

    Args:
        ladder: a `--severity` ladder: only the occluded split of each level is scored.
        splits: the splits asked for (default: every split the data defines).

    Raises:
        ConfigError: a split the data does not define.
    """
    from harness.models.factory import occlusion_plan

    scored = []
    for level, level_cfg in levels.items():
        _, available = task.datasets(
            seed=level_cfg.seed, occlusion=occlusion_plan(level_cfg, needs_twin=False)
        )
        wanted = [task.occluded_split] if ladder else (splits or list(available))
        unknown = [name for name in wanted if name not in available]
        if unknown:
            raise ConfigError(f"--split: '{unknown[0]}' is not a split of this data ({', '.join(available)})")
        for split in wanted:
            metrics, predictions = score(split, level, available[split])
            scored.append(Scored(level_cfg, split, available[split], metrics, predictions, task.provenance()))
    return scored


def _at_severity(cfg: RunConfig, level: int) -> RunConfig:
    """`cfg` with `occlusion.val_severity` set (validated: a level off the task's ladder is named)."""
    tree = cfg.to_dict()
    tree["occlusion"]["val_severity"] = level
    return config_from_tree(tree)


def parse_severities(text: str | None) -> list[int] | None:
    """`0,1,2,3,4` -> [0, 1, 2, 3, 4]; None stays None."""
    if text is None:
        return None
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(
            f"--severity: expected comma-separated levels like 0,1,2,3,4, got '{text}'"
        ) from None
    if not levels:
        raise ConfigError("--severity: no level given (e.g. --severity 0,1,2,3,4)")
    return list(dict.fromkeys(levels))


def evaluate_run(
    run_dir: Path,
    *,
    network: str | None = None,
    config_file: Path | None = None,
    overrides: list[str] | None = None,
    splits: list[str] | None = None,
    severities: list[int] | None = None,
    console: Console | None = None,
) -> EvalOutcome:
    """Score `run_dir`'s network on the splits the eval config defines and write records.

    Args:
        run_dir: a run dir (config.yaml + checkpoint.pt), finished or interrupted.
        network: which trained network (default: the method's evaluated one, ENet for D-Slope).
        config_file: a config of the same task whose `data` and `occlusion` sections replace the run's.
        overrides: `--set` strings (data.*, occlusion.*, eval batch size, workers, precision, device).
        splits: score only these splits (default: every split the data defines).
        severities: score the occluded split at these levels of the task's severity ladder instead.

    Returns:
        the eval id, its folder and the records written.

    Raises:
        ConfigError, CheckpointError, DataError: bad input, before any record is written.
    """
    console = console or Console(stderr=True)
    run_dir = Path(run_dir)
    overrides = list(overrides or [])
    source = run_config(run_dir, "eval")
    cfg = eval_config(source, config_file, overrides)
    levels = severity_configs(cfg, severities, splits)
    results_dir = Path(cfg.output.results_dir)
    ensure_writable(results_dir / "runs", "output.results_dir")
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available here")
    precision = Precision.resolve(cfg.train.amp, cfg.train.amp_dtype, device)
    trained = load_trained(run_dir, cfg, "eval")
    network, model = trained.network(network)
    model.to(device)
    task = trained.task
    eval_id = hashlib.sha256(
        json.dumps([cfg.hash(), severities, network, trained.checkpoint_sha256]).encode()
    ).hexdigest()[:10]
    folder = run_dir / EVALUATIONS_DIR / eval_id
    started_at = now()

    def score(split: str, level: int | None, dataset: Any) -> tuple[dict, list]:
        return evaluate_split(
            task, model, dataset, device=device, batch_size=cfg.train.eval_batch_size,
            num_workers=loader_workers(cfg), precision=precision, console=console,
            description=f"eval {network} on {split}" + ("" if level is None else f" (severity {level})"),
        )  # fmt: skip

    scored = score_levels(task, levels, ladder=severities is not None, splits=splits, score=score)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    records = []
    for item in scored:
        level_cfg, split, provenance = item.config, item.split, item.provenance
        level = level_cfg.occlusion.val_severity if split == task.occluded_split else None
        record = task_record(
            cfg,
            task,
            split=split,
            network=network,
            run_id=f"{run_dir.name}.eval-{eval_id}",
            status="ok",
            metrics=item.metrics,
            config=level_cfg.to_dict(),
            config_hash=level_cfg.hash(),
            data=provenance,
            training={k: trained.state.get(k) for k in ("step", "epoch", "images", "train_seconds")},
            started_at=started_at,
            ended_at=now(),
            severity=level,
            evaluated=network == trained.evaluated,
            evaluation={
                "model": f"run:{run_dir.name}",
                "source_run_id": run_dir.name,
                "source_run_dir": str(run_dir),
                "source_config_hash": source.hash(),
                "checkpoint": str(trained.checkpoint),
                "checkpoint_sha256": trained.checkpoint_sha256,
                "eval_id": eval_id,
                "eval_config_hash": cfg.hash(),
                "config_file": str(config_file) if config_file else None,
                "overrides": overrides,
                "box_source": provenance.get("box_source"),
            },
        )
        record.training = {"steps": record.training["step"], "epochs": record.training["epoch"],
                           "images": record.training["images"], "device": str(device),
                           "precision": precision.name}  # fmt: skip
        records.append(with_outputs(record, task, item.predictions, item.dataset, folder))
    write_records(records, results_dir)
    return EvalOutcome(run_dir.name, eval_id, folder, records)
