"""Sweeps on Ray Tune: a grid of ordinary runs scheduled across CPUs, GPUs or a Ray cluster.

Ray Tune is the scheduler; this module only turns a sweep YAML into trials. Each trial is one
`run_experiment` through the same trainer, writing the same result records, and reporting its epoch
logs to Tune. Expensive shared inputs (embedded datasets, patch libraries, frozen occluded val splits)
are built once by the driver before any trial starts.

A sweep YAML:
    base: ../pose/default.yaml        # the run config every trial starts from (relative to this file)
    set: [train.max_steps=50]         # overrides shared by all trials
    grid:                             # every combination becomes one trial
      method: [clean, occ_aug, dslope]
      seed: [0, 1, 2]
    resources: {cpus_per_trial: 1, gpus_per_trial: 0}
    max_failures: 1                   # retries of a crashed trial

With `resources.workers_per_trial: N` (or a trial whose config says `train.world_size: N`) a trial is a
Ray Train `TorchTrainer` run of the same training on N data-parallel workers, each with the trial's CPUs and
GPUs (harness/core/distributed.py).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from harness.core.config import load_config, read_yaml, validate
from harness.core.errors import ConfigError
from harness.core.results import ResultRecord, package_versions, source_state, write_record
from harness.train.callbacks import Callback


class Resources(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cpus_per_trial: float = 1.0  # per worker when a trial has several
    gpus_per_trial: float = 0.0  # per worker when a trial has several
    workers_per_trial: int = Field(1, ge=1)  # data-parallel workers of one trial (Ray Train)


class SweepSpec(BaseModel):
    """A sweep YAML, validated like run configs: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    base: str
    set: list[str] = []
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    # One-factor-at-a-time arms: each a list of `key=value` overrides; every arm is crossed with the grid
    # (an ablation changes one thing per arm, which a grid's cartesian product cannot express).
    arms: list[list[str]] = Field(default_factory=list)
    resources: Resources = Resources()
    max_failures: int = 1
    max_concurrent: int | None = None
    name: str | None = None
    storage: str = "results/sweeps"  # Ray Tune's experiment folder (shared storage on a cluster)


def load_sweep(path: Path) -> tuple[SweepSpec, Path]:
    """Read a sweep YAML; returns the spec and the absolute base config path."""
    path = Path(path)
    spec = validate(read_yaml(path), SweepSpec)
    base = (path.parent / spec.base).resolve()
    if not base.is_file():
        raise ConfigError(f"{path}: base config not found: {base}")
    if spec.name is None:
        spec.name = path.stem
    return spec, base


def expand(spec: SweepSpec) -> list[list[str]]:
    """Every grid combination as a list of `key=value` overrides (shared `set` first), in a stable order."""
    keys = list(spec.grid)
    combos = list(itertools.product(*(spec.grid[k] for k in keys)) if keys else [()])
    arms = spec.arms or [[]]
    return [
        [*spec.set, *arm, *(f"{k}={json.dumps(v)}" for k, v in zip(keys, combo, strict=True))]
        for arm in arms
        for combo in combos
    ]


def absolute_outputs(overrides: list[str], cwd: Path) -> list[str]:
    """Trials run in Ray's own folders: pin the output paths of the driver's working directory."""
    cfg = load_config(None, [o for o in overrides if o.startswith("output.")])
    return [
        *overrides,
        f"output.results_dir={(cwd / cfg.output.results_dir).resolve()}",
        f"output.work_dir={(cwd / cfg.output.work_dir).resolve()}",
    ]


def prepare_shared_inputs(base: Path, trials: list[list[str]]) -> None:
    """Build each distinct dataset / patch library / frozen occluded val / embedded pretraining checkpoint
    once, before trials race for it."""
    import torch

    from harness.core.registry import METHODS
    from harness.models.factory import build_task, occlusion_plan
    from harness.run.setup import pretrained_backbone

    seen = set()
    for overrides in trials:
        cfg = load_config(base, overrides)
        pretrain = cfg.to_dict().get("pretrain") if cfg.model.pretrained else None
        key = json.dumps(
            [cfg.task, cfg.data, cfg.seed, cfg.occlusion.model_dump(), cfg.model.model_dump(), pretrain],
            sort_keys=True,
        )
        if key in seen:
            continue
        seen.add(key)
        task = build_task(cfg)
        task.datasets(seed=cfg.seed, occlusion=occlusion_plan(cfg, METHODS.get(cfg.method).needs_twin))
        cpu = torch.device("cpu") if cfg.device == "cpu" else torch.device(cfg.device)
        pretrained_backbone(cfg, task, cpu, None)


class TuneReport(Callback):
    """Sends every epoch's logs (losses, val_<metric>) to Ray Tune."""

    def on_epoch_end(self, trainer, logs):
        from ray import tune

        tune.report({"epoch": trainer.state.epoch, "step": trainer.state.step, **logs})


def run_trial(config: dict[str, Any]) -> None:
    """The Tune trainable: one ordinary run, its final metrics reported as the last result."""
    from ray import tune

    from harness.cluster.ray_train import ray_train_trial
    from harness.run.experiment import run_experiment

    cfg = load_config(Path(config["base"]), config["overrides"])
    workers = trial_workers(cfg, config.get("workers", 1))
    if workers > 1:
        return ray_train_trial(config, workers, final_metrics)
    tune.report(final_metrics(run_experiment(cfg, callbacks=[TuneReport()])))


def trial_workers(cfg, default: int) -> int:
    """A trial's data-parallel workers: its `train.world_size`, else the sweep's workers_per_trial."""
    return cfg.train.world_size if cfg.train.world_size > 1 else default


def final_metrics(outcome) -> dict[str, Any]:
    """A trial's last result for Tune: its run id and every record's metrics as network/split/metric."""
    final = {"run_id": outcome.run_id, "done": True, "primary_metric": outcome.records[0].primary_metric}
    for record in outcome.records:
        final.update({f"{record.network}/{record.split}/{k}": v for k, v in record.metrics.items()})
    return final


def failed_record(base: Path, overrides: list[str], reason: str, sweep: str, trial: int) -> ResultRecord:
    """A `failed` record for a trial Tune gave up on, so the failure is visible next to the results.

    Its run id is fixed per sweep and trial, so resuming a sweep replaces the record instead of adding one.
    """
    cfg = load_config(base, overrides)
    stamp = datetime.now(timezone.utc)
    run_id = f"{sweep}_trial{trial:03d}_{cfg.task}_{cfg.method}_s{cfg.seed}_failed"
    return ResultRecord(
        run_id=run_id, task=cfg.task, method=cfg.method, backbone=cfg.model.backbone, dataset="", split=None,
        network=None, status="failed", seed=cfg.seed, config=cfg.to_dict(), config_hash=cfg.hash(),
        versions=package_versions(), **source_state().fields(), ended_at=stamp.isoformat(timespec="seconds"),
        reason=reason.strip().splitlines()[-1][:500] if reason.strip() else "trial failed",
    )  # fmt: skip


def refuse_dirty_study(path: Path) -> None:
    """A committed study config (a sweep file tracked by git) runs only from a clean tree, so its records
    name a commit that holds the code that made them.

    Raises:
        ConfigError: tracked files differ from the commit.
    """
    state = source_state()
    if not state.dirty or not tracked_by_git(path):
        return
    raise ConfigError(
        f"harness sweep {path}: tracked files differ from commit {state.commit[:12]} (diff sha256 "
        f"{state.diff_sha256[:12]}); commit them first so the records name the code that made them, or pass "
        "--allow-dirty (the records then say dirty and carry the diff digest)"
    )


def tracked_by_git(path: Path) -> bool:
    """Whether `path` is a file git tracks (a committed study config)."""
    path = Path(path).resolve()
    try:
        command = ["git", "ls-files", "--error-unmatch", path.name]
        out = subprocess.run(command, cwd=path.parent, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0


def run_sweep(
    path: Path,
    *,
    address: str | None = None,
    gpus_per_trial: float | None = None,
    cpus_per_trial: float | None = None,
    max_concurrent: int | None = None,
    resume: bool = False,
    dry_run: bool = False,
    storage: str | None = None,
    allow_dirty: bool = False,
) -> pd.DataFrame:
    """Expand a sweep YAML and run its trials on Ray Tune (or only list them with `dry_run`).

    Args:
        path: the sweep YAML.
        address: Ray cluster address (`auto`, `ray://host:port`); None starts a local Ray instance.
        gpus_per_trial / cpus_per_trial / max_concurrent: override the YAML's resources.
        resume: continue an interrupted sweep from its Tune state, without re-running finished trials.
        dry_run: return the expanded trial list without running anything.
        storage: override the YAML's storage folder (a shared path on a cluster).
        allow_dirty: run a sweep file tracked by git although tracked files differ from the commit.

    Returns:
        one row per trial: its overrides, status, run id and final metrics.

    Example:
        >>> run_sweep(Path("configs/sweeps/quick_pose.yaml"), dry_run=True)  # doctest: +SKIP
    """
    spec, base = load_sweep(path)
    trials = [absolute_outputs(o, Path.cwd()) for o in expand(spec)]
    for overrides in trials:
        load_config(base, overrides)  # every trial's config is valid before anything runs
    rows = [
        {"trial": i, "overrides": " ".join(o[len(spec.set) :][:-2]) or "(base)"} for i, o in enumerate(trials)
    ]
    if dry_run:
        return pd.DataFrame(rows)
    if not allow_dirty:
        refuse_dirty_study(path)

    import ray
    from ray import tune

    from harness.cluster.ray_train import trial_resources

    cpus = cpus_per_trial if cpus_per_trial is not None else spec.resources.cpus_per_trial
    gpus = gpus_per_trial if gpus_per_trial is not None else spec.resources.gpus_per_trial
    storage_path = (
        str(Path(storage or spec.storage).resolve()) if "://" not in (storage or spec.storage) else storage
    )
    prepare_shared_inputs(base, trials)
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    default_workers = spec.resources.workers_per_trial
    workers = {tuple(o): trial_workers(load_config(base, o), default_workers) for o in trials}
    trainable = tune.with_resources(
        run_trial,
        lambda config: trial_resources(workers[tuple(config["overrides"])], cpus, gpus),
    )
    experiment = os.path.join(storage_path, spec.name)
    if resume:
        if not tune.Tuner.can_restore(experiment):
            raise ConfigError(f"--resume: no sweep state to resume at {experiment}")
        tuner = tune.Tuner.restore(experiment, trainable, resume_errored=True)
    else:
        param_space = {
            "base": str(base), "overrides": tune.grid_search(trials), "workers": default_workers,
            "cpus": cpus, "gpus": gpus, "storage": os.path.join(storage_path, spec.name, "ray_train"),
        }  # fmt: skip
        tuner = tune.Tuner(
            trainable,
            param_space=param_space,
            tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent or spec.max_concurrent),
            run_config=tune.RunConfig(
                name=spec.name, storage_path=storage_path, verbose=0,
                failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            ),
        )  # fmt: skip
    grid = tuner.fit()
    return summarise(grid, trials, base, spec)


def summary_table(frame: pd.DataFrame, width: int = 120) -> str:
    """The trial table as text for the terminal: one line per trial within `width` columns (overrides, run
    ids and reasons give way first and end in "…"), metric columns headed network / split / metric on three
    lines, values to 3 decimals."""
    cells = [[_cell(value) for value in row] for row in frame.itertuples(index=False)]
    headers = [str(column).split("/") for column in frame.columns]
    widths = [max([len(h) for h in head] + [len(row[i]) for row in cells]) for i, head in enumerate(headers)]
    shrinkable = [i for i, column in enumerate(frame.columns) if column in ("overrides", "run_id", "reason")]
    while sum(widths) + 2 * (len(widths) - 1) > width and any(widths[i] > 16 for i in shrinkable):
        widest = max(shrinkable, key=lambda i: widths[i])
        widths[widest] -= 1
    numeric = [pd.api.types.is_numeric_dtype(frame[column]) for column in frame.columns]

    def line(values: list[str]) -> str:
        out = []
        for value, size, right in zip(values, widths, numeric, strict=True):
            value = value if len(value) <= size else value[: size - 1] + "…"
            out.append(value.rjust(size) if right else value.ljust(size))
        return "  ".join(out).rstrip()

    depth = max(len(head) for head in headers)
    lines = [line([([""] * (depth - len(head)) + head)[k] for head in headers]) for k in range(depth)]
    lines.append("  ".join("-" * size for size in widths))
    return "\n".join([*lines, *(line(row) for row in cells)])


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):  # missing, or NaN
        return "–"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def summarise(grid, trials: list[list[str]], base: Path, spec: SweepSpec) -> pd.DataFrame:
    """One row per trial; trials that still failed after their retries get a `failed` record."""
    results_dir = Path(load_config(base, trials[0]).output.results_dir)
    rows = []
    for result in grid:
        overrides = result.config["overrides"]
        index = trials.index(overrides)
        row = {"trial": index, "overrides": " ".join(overrides[len(spec.set) : -2]) or "(base)"}
        if result.error is not None:
            record = failed_record(base, overrides, str(result.error), spec.name, index)
            write_record(record, results_dir)
            row.update(status="failed", run_id=record.run_id, reason=record.reason)
        else:
            metrics = result.metrics or {}
            row.update(status="ok", run_id=metrics.get("run_id"))
            primary = metrics.get("primary_metric")  # the task's headline metric, as its records declare it
            row.update({k: v for k, v in metrics.items() if k.count("/") == 2 and k.endswith(f"/{primary}")})
        rows.append(row)
    return pd.DataFrame(rows).sort_values("trial").reset_index(drop=True)
