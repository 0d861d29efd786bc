"""`harness eval --model KIND:TARGET`: score a model the harness did not train on every split of a task.

The same splits, severity ladder, metrics, records and prediction files as `harness eval RUN_DIR`; only the
predictions come from the model's own library (harness/core/external.py). Records are ordinary result records
with method `external`, backbone the spec (`mmpose:<config>`, `onnx:<file name>`, ...) and an `evaluation`
block naming the spec, the weights file (relative, never a machine path) and its sha256, so trained runs and
external models sit in one leaderboard. Every split is scored before the first record is written: a model
that fails, on any split, leaves no record.

Example:
    >>> evaluate_external(ModelSpec.parse("onnx:w600k_r50.onnx"), task="face_recognition")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import torch
import yaml
from rich.console import Console

from harness.core.cache import file_digest
from harness.core.config import RunConfig, default_config_path, load_config
from harness.core.errors import ConfigError
from harness.core.external import ExternalModel, ModelSpec, file_label, unsupported
from harness.core.io import atomic_write_text, ensure_writable
from harness.core.progress import make_progress
from harness.core.registry import TASKS
from harness.core.reproducibility import cpu_arithmetic
from harness.core.results import ResultRecord, package_versions, source_state, write_record
from harness.core.roles import split_role
from harness.core.task import Task
from harness.evaluate.evaluate_run import EvalOutcome, Scored, score_levels, severity_configs
from harness.evaluate.predictions import save_predictions
from harness.evaluate.records import now
from harness.models.factory import build_task

METHOD = "external"
EXTERNAL_DIR = "external"  # <output.work_dir>/external/<run id>/: config.yaml and predictions/
# What an evaluation of an external model may set: its data and where outputs go. Nothing trains, and the
# model runs at its own precision, so no training or precision key applies.
EXTERNAL_KEYS = ("data.", "occlusion.", "train.eval_batch_size", "device", "output.results_dir",
                 "output.work_dir")  # fmt: skip


def external_config(task: str | None, config_file: Path | None, overrides: list[str]) -> RunConfig:
    """The task's config (`config_file`, default `configs/<task>/default.yaml`) with `overrides`.

    Raises:
        ConfigError: neither a task nor a config, a config of another task, or an override that does not
            apply to an external model.
    """
    if task is None and config_file is None:
        raise ConfigError("--task: required with an external --model (or give --config of the task)")
    if task is not None:
        TASKS.get(task)  # an unknown task is named before any file is read
    for item in overrides:
        key = item.partition("=")[0]
        if not any(key == k or (k.endswith(".") and key.startswith(k)) for k in EXTERNAL_KEYS):
            raise ConfigError(
                f"--set {key}: an external model's evaluation sets only data.*, occlusion.*, "
                "train.eval_batch_size, device, output.results_dir, output.work_dir"
            )
    cfg = load_config(config_file or default_config_path(task), overrides)
    if task is not None and cfg.task != task:
        raise ConfigError(f"--config: {config_file} is a {cfg.task} config, --task says {task}")
    return cfg


def record_config(cfg: RunConfig, model: ExternalModel, weights_sha256: str) -> dict[str, Any]:
    """The config a record of `model` carries: the data and occlusion scored, the model spec and weights in
    `model`, no training sections (nothing was trained) and no machine path."""
    tree = cfg.to_dict()
    for section in ("method_args", "optim", "pretrain"):
        tree.pop(section, None)
    tree["method"] = METHOD
    tree["model"] = {
        "backbone": model.spec.portable,
        "weights": file_label(model.weights_file()),
        "weights_sha256": weights_sha256,
    }
    tree["train"] = {"eval_batch_size": cfg.train.eval_batch_size}
    tree["output"] = {key: Path(value).name for key, value in tree["output"].items()}
    return tree


def config_hash(tree: dict[str, Any]) -> str:
    """As `RunConfig.hash`: everything that can change a number (not outputs, not the device)."""
    payload = {k: v for k, v in tree.items() if k not in ("output", "device")}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[
        :16
    ]


def portable_overrides(overrides: list[str]) -> list[str]:
    """The `--set` strings a record keeps: not where outputs go, and a path value by its portable form."""
    kept = []
    for item in overrides:
        key, _, value = item.partition("=")
        if key.startswith("output."):
            continue
        kept.append(f"{key}={file_label(Path(value))}" if Path(value).is_absolute() else item)
    return kept


def load_external(task: Task, task_name: str, spec: ModelSpec, checkpoint: Path | None) -> ExternalModel:
    """The task's adapter for `spec`, loaded and checked (one-line errors before any data is built)."""
    if spec.kind not in task.external_kinds:
        raise unsupported(task_name, spec, task.external_kinds)
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise ConfigError(f"--checkpoint: no file at {checkpoint}")
    return task.external_model(spec, Path(checkpoint) if checkpoint is not None else None)


def _run_id(spec: ModelSpec, eval_id: str) -> str:
    stem = Path(spec.target).stem if spec.target.endswith((".py", ".onnx")) else spec.target
    return f"{spec.kind}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', stem)}.eval-{eval_id}"


def evaluate_external(
    spec: ModelSpec,
    *,
    task: str | None = None,
    checkpoint: Path | None = None,
    config_file: Path | None = None,
    overrides: list[str] | None = None,
    splits: list[str] | None = None,
    severities: list[int] | None = None,
    console: Console | None = None,
) -> EvalOutcome:
    """Score an external model on the task's splits (or its severity ladder) and write records.

    Args:
        spec: `KIND:TARGET` of a kind the task scores (`Task.external_kinds`).
        task: the task; default the config's.
        checkpoint: local weights where the spec's target is a config (mmpose, face_alignment).
        config_file: the task config whose data and occlusion are scored (default the task's default).
        overrides: `--set` strings (EXTERNAL_KEYS).
        splits: score only these splits (default: every split the data defines).
        severities: score the occluded split at these levels of the task's ladder instead.

    Returns:
        the eval id, the folder holding its predictions and the records written.

    Raises:
        ConfigError, CheckpointError, DataError: bad input, before any record is written.
    """
    console = console or Console(stderr=True)
    overrides = list(overrides or [])
    cfg = external_config(task, config_file, overrides)
    levels = severity_configs(cfg, severities, splits)
    results_dir = Path(cfg.output.results_dir)
    ensure_writable(results_dir / "runs", "output.results_dir")
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available here")
    built = build_task(cfg)
    model = load_external(built, cfg.task, spec, checkpoint)
    weights_sha256 = file_digest(model.weights_file())
    eval_id = hashlib.sha256(
        json.dumps([cfg.hash(), severities, spec.portable, weights_sha256]).encode()
    ).hexdigest()[:10]
    run_id = _run_id(spec, eval_id)
    started_at = now()

    def score(split: str, level: int | None, dataset: Any) -> tuple[dict, list]:
        label = f"eval {spec.portable} on {split}" + ("" if level is None else f" (severity {level})")
        with make_progress(console) as progress:
            job = progress.add_task(label, total=len(dataset), info="")
            predictions = model.predict_split(
                dataset, device=device, batch_size=cfg.train.eval_batch_size,
                progress=lambda n: progress.advance(job, n),
            )  # fmt: skip
        return built.evaluate(predictions, dataset), predictions

    scored = score_levels(built, levels, ladder=severities is not None, splits=splits, score=score)
    folder = Path(cfg.output.work_dir) / EXTERNAL_DIR / run_id
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "config.yaml", yaml.safe_dump(record_config(cfg, model, weights_sha256)))
    common = {
        "run_id": run_id, "task": cfg.task, "method": METHOD, "backbone": spec.portable,
        "dataset": built.dataset_name, "status": "ok", "network": METHOD, "evaluated": True,
        "higher_is_better": {m.name: m.higher_is_better for m in built.metrics},
        "primary_metric": built.primary_metric, "method_role": METHOD, "seed": cfg.seed,
        "versions": package_versions(), **source_state().fields(), "compute": cpu_arithmetic(),
        "started_at": started_at,
    }  # fmt: skip
    evaluation = {
        "model": spec.portable,
        "checkpoint": file_label(model.weights_file()),
        "checkpoint_sha256": weights_sha256,
        "eval_id": eval_id,
        "eval_config_hash": cfg.hash(),
        "config_file": file_label(config_file),
        "overrides": portable_overrides(overrides),
        **model.describe(),
    }
    records = [_record(built, item, common, evaluation, model, weights_sha256, device) for item in scored]
    for record, item in zip(records, scored, strict=True):
        record.samples = built.showcase(item.predictions, item.dataset)
        record.predictions = save_predictions(built, item.predictions, item.dataset, folder, record)
        if record.predictions:  # relative to output.work_dir, like the folder the config names
            record.predictions["file"] = str(
                Path(record.predictions["file"]).relative_to(cfg.output.work_dir)
            )
    for record in records:
        write_record(record, results_dir)
    return EvalOutcome(spec.portable, eval_id, folder, records)


def _record(
    task: Task, item: Scored, common: dict, evaluation: dict, model, sha: str, device
) -> ResultRecord:
    level = item.config.occlusion.val_severity if item.split == task.occluded_split else None
    config = record_config(item.config, model, sha)
    return ResultRecord(
        **common,
        split=item.split,
        split_role=split_role(item.split, task.clean_split, task.occluded_split),
        metrics=item.metrics,
        config=config,
        config_hash=config_hash(config),
        data=item.provenance,
        training={"steps": 0, "images": 0, "device": str(device), "precision": "float32"},
        ended_at=now(),
        severity=level,
        evaluation={**evaluation, "box_source": item.provenance.get("box_source")},
    )
