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

`harness sweep FILE --set key=value` adds overrides to every trial, after the YAML's `set` (as `harness run
--set` comes after the config file); one that would change a value the grid or an arm sets is refused.
Tune's state goes to `storage` (or `--storage`), by default `<results_dir>/../sweeps/<name>`: an absolute
folder beside the records, never inside the temporary working dir Ray unpacks a submitted job into.

With `resources.workers_per_trial: N` (or a trial whose config says `train.world_size: N`) a trial is a
Ray Train `TorchTrainer` run of the same training on N data-parallel workers, each with the trial's CPUs and
GPUs (harness/core/distributed.py).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from harness.cluster.finished_trials import finished_trials
from harness.core.config import apply_overrides, load_config, load_tree, read_yaml, validate
from harness.core.errors import ConfigError
from harness.core.results import ResultRecord, package_versions, source_state, write_record
from harness.models.weights import describe_start, starting_weights
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
    # Ray Tune's experiment folder (shared storage on a cluster); None: `sweeps/` beside the results dir.
    storage: str | None = None


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


def with_cli_overrides(base: Path, trials: list[list[str]], shared: int, cli: list[str]) -> list[list[str]]:
    """Insert `--set` overrides after the YAML's `set` in every trial (the first `shared` entries).

    A trial whose grid or arm values would replace a `--set` value (or the reverse) is refused: the order of
    the two would silently decide which one the trial runs with.
    """
    if not cli:
        return trials
    tree = load_tree(base)
    out = []
    for index, overrides in enumerate(trials):
        before = [*overrides[:shared], *cli, *overrides[shared:]]
        if apply_overrides(tree, before) != apply_overrides(tree, [*overrides, *cli]):
            varied = " ".join(overrides[shared:])
            raise ConfigError(
                f"--set {' '.join(cli)}: trial {index} ({varied}) sets the same key; a --set applies to "
                "every trial, so it may not name a key the grid or an arm varies"
            )
        out.append(before)
    return out


def ray_job_working_dir() -> Path | None:
    """The temporary folder Ray unpacked a submitted job's `--working-dir` into (the job's cwd), else None.

    `ray job submit` hands the driver its job config in RAY_JOB_CONFIG_JSON_ENV_VAR; with a working dir the
    driver runs inside Ray's session folder (`runtime_resources/working_dir_files/`), which goes with the
    cluster.
    """
    cwd = Path.cwd().resolve()
    if "working_dir_files" in cwd.parts:
        return cwd
    try:
        job = json.loads(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR", "") or "{}")
    except ValueError:
        return None
    runtime_env = job.get("runtime_env") if isinstance(job, dict) else None
    return cwd if isinstance(runtime_env, dict) and runtime_env.get("working_dir") else None


def tune_storage(storage: str | None, results_dir: Path) -> str:
    """Tune's storage folder: `storage` (a URI as given, a path made absolute) or `<results_dir>/../sweeps`.

    Raises:
        ConfigError: under a Ray job, when the records or the Tune state would land in Ray's temporary
            working dir.
    """
    if storage and "://" in storage:
        return storage
    path = Path(storage).expanduser().resolve() if storage else results_dir.parent / "sweeps"
    job_dir = ray_job_working_dir()
    if job_dir is not None:
        hint = (
            "give absolute folders every node sees (--set output.results_dir=/shared/results, --storage ...)"
        )
        for key, where in (("output.results_dir", results_dir), ("storage", path)):
            if where == job_dir or job_dir in where.parents:
                raise ConfigError(
                    f"{key}: {where} lies inside the Ray job's temporary working dir {job_dir}, "
                    f"which Ray deletes with the cluster; {hint}"
                )
    return str(path)


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
    once, and fetch each backbone's ImageNet weights into their library's cache, before trials race for
    them (on a cluster, nodes without a shared cache fetch their own copy)."""
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
        starting_weights(cfg.model.pretrained, cfg.model.backbone)


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


@dataclass(frozen=True)
class SweepOutcome:
    """What a sweep did: one row per trial, and where its records and Tune's state are."""

    table: pd.DataFrame
    records_dir: Path
    tune_dir: str


def run_sweep(
    path: Path,
    *,
    overrides: list[str] | None = None,
    address: str | None = None,
    gpus_per_trial: float | None = None,
    cpus_per_trial: float | None = None,
    max_concurrent: int | None = None,
    resume: bool = False,
    dry_run: bool = False,
    storage: str | None = None,
    allow_dirty: bool = False,
    local: bool = False,
) -> SweepOutcome:
    """Expand a sweep YAML and run its trials on Ray Tune (or only list them with `dry_run`).

    Args:
        path: the sweep YAML.
        overrides: `key=value` strings applied to every trial (`harness sweep --set`).
        address: Ray cluster address (`auto`, `ray://host:port`); None starts a local Ray instance.
        gpus_per_trial / cpus_per_trial / max_concurrent: override the YAML's resources.
        resume: continue an interrupted sweep from its Tune state, without re-running finished trials; with
            no Tune state (another machine, a later session), run only the trials that have no ok records
            in the results dir yet.
        dry_run: return the expanded trial list without running anything.
        storage: override the YAML's storage folder (a shared path on a cluster).
        allow_dirty: run a sweep file tracked by git although tracked files differ from the commit.
        local: run the trials as processes of this machine instead of on Ray (harness/cluster/local_sweep.py);
            `resume` then skips the trials whose ok records are in the results dir.

    Returns:
        one row per trial (its overrides, status, run id and final metrics), the records' folder and
        Tune's experiment folder.

    Example:
        >>> run_sweep(Path("configs/sweeps/quick_pose.yaml"), dry_run=True).table  # doctest: +SKIP
    """
    spec, base = load_sweep(path)
    cli = list(overrides or [])
    shared = len(spec.set) + len(cli)
    trials = with_cli_overrides(base, expand(spec), len(spec.set), cli)
    trials = [absolute_outputs(o, Path.cwd()) for o in trials]
    configs = [load_config(base, trial) for trial in trials]  # all valid before anything runs
    results_dir = Path(configs[0].output.results_dir)
    storage_path = tune_storage(storage or spec.storage, results_dir)
    tune_dir = os.path.join(storage_path, spec.name)
    rows = [
        {
            "trial": i,
            "overrides": _label(o, shared),
            "starts from": describe_start(cfg.model.pretrained, cfg.model.backbone),  # fetches nothing
        }
        for i, (o, cfg) in enumerate(zip(trials, configs, strict=True))
    ]
    if dry_run:
        return SweepOutcome(pd.DataFrame(rows), results_dir / "runs", tune_dir)
    if not allow_dirty:
        refuse_dirty_study(path)

    cpus = cpus_per_trial if cpus_per_trial is not None else spec.resources.cpus_per_trial
    gpus = gpus_per_trial if gpus_per_trial is not None else spec.resources.gpus_per_trial
    if local:
        return _run_local(base, trials, configs, spec, shared, resume, tune_dir, cpus, gpus, max_concurrent)

    import ray
    from ray import tune

    from harness.cluster.ray_train import trial_resources

    if resume:
        _check_resumed_trials(tune_dir, trials)
    earlier: dict[int, str] = {}  # trials answered by records already in the results dir
    if resume and not tune.Tuner.can_restore(tune_dir):
        earlier = finished_trials(configs, results_dir)
        if not earlier:
            raise ConfigError(
                f"--resume: no sweep state to resume at {tune_dir} and no finished trial's records in "
                f"{results_dir / 'runs'}"
            )
        resume = False  # a new Tune experiment for the trials without records
    todo = [t for i, t in enumerate(trials) if i not in earlier]
    if not todo:
        return SweepOutcome(_earlier_rows(earlier, trials, shared), results_dir / "runs", tune_dir)
    prepare_shared_inputs(base, todo)
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    default_workers = spec.resources.workers_per_trial
    workers = {tuple(o): trial_workers(load_config(base, o), default_workers) for o in todo}
    trainable = tune.with_resources(
        run_trial,
        lambda config: trial_resources(workers[tuple(config["overrides"])], cpus, gpus),
    )
    if resume:
        tuner = tune.Tuner.restore(tune_dir, trainable, resume_errored=True)
    else:
        _write_trials(tune_dir, trials)
        param_space = {
            "base": str(base), "overrides": tune.grid_search(todo), "workers": default_workers,
            "cpus": cpus, "gpus": gpus, "storage": os.path.join(tune_dir, "ray_train"),
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
    table = pd.concat([_earlier_rows(earlier, trials, shared), summarise(grid, trials, base, spec, shared)])
    return SweepOutcome(table.sort_values("trial").reset_index(drop=True), results_dir / "runs", tune_dir)


def _run_local(
    base: Path, trials: list[list[str]], configs: list, spec: SweepSpec, shared: int, resume: bool,
    tune_dir: str, cpus: float, gpus: float, max_concurrent: int | None,
) -> SweepOutcome:  # fmt: skip
    """`run_sweep(local=True)`: the trials as local processes; one row per trial, from their records."""
    from harness.cluster.local_sweep import gpu_slots, run_local

    results_dir = Path(configs[0].output.results_dir)
    earlier = finished_trials(configs, results_dir) if resume else {}
    todo = [i for i in range(len(trials)) if i not in earlier]
    if todo:
        slots = gpu_slots(gpus)  # refused before anything is built
        prepare_shared_inputs(base, [trials[i] for i in todo])
        ended = run_local(
            base, trials, configs, todo, log_dir=Path(tune_dir) / "local", cpus_per_trial=cpus,
            gpus_per_trial=gpus, slots=slots, max_concurrent=max_concurrent or spec.max_concurrent,
        )  # fmt: skip
    else:
        ended = {}
    found = finished_trials(configs, results_dir)
    rows = []
    for i, (code, tail) in sorted(ended.items()):
        row = {"trial": i, "overrides": _label(trials[i], shared)}
        if code == 0 and i in found:
            row.update(status="ok", run_id=found[i], **_primary_metrics(results_dir, found[i]))
        else:
            record = failed_record(base, trials[i], tail or f"exit {code}", spec.name or "sweep", i)
            write_record(record, results_dir)
            row.update(status="failed", run_id=record.run_id, reason=record.reason)
        rows.append(row)
    table = pd.concat([_earlier_rows(earlier, trials, shared), pd.DataFrame(rows)])
    return SweepOutcome(table.sort_values("trial").reset_index(drop=True), results_dir / "runs", tune_dir)


def _primary_metrics(results_dir: Path, run_id: str) -> dict[str, float]:
    """network/split/<primary metric> of a run's training records (the Ray path's final metrics)."""
    found = {}
    for path in sorted(Path(results_dir, "runs").glob(f"{run_id}__*.json")):
        record = json.loads(path.read_text())
        primary = record.get("primary_metric")
        if record.get("severity") is None and not record.get("evaluation") and primary in record["metrics"]:
            found[f"{record['network']}/{record['split']}/{primary}"] = record["metrics"][primary]
    return found


def _earlier_rows(earlier: dict[int, str], trials: list[list[str]], shared: int) -> pd.DataFrame:
    """Rows of the trials whose records were already in the results dir (`--resume` from records)."""
    rows = [
        {"trial": i, "overrides": _label(trials[i], shared), "status": "ok (records found)", "run_id": run_id}
        for i, run_id in sorted(earlier.items())
    ]
    return pd.DataFrame(rows, columns=["trial", "overrides", "status", "run_id"])


TRIALS_FILE = "harness_trials.json"  # the trial list a sweep started with, beside Tune's own state


def _label(overrides: list[str], shared: int) -> str:
    """A trial's own overrides: without the shared `set` / `--set` ones and the two pinned output paths."""
    return " ".join(overrides[shared:-2]) or "(base)"


def _write_trials(tune_dir: str, trials: list[list[str]]) -> None:
    if "://" in tune_dir:
        return
    from harness.core.io import atomic_write_text

    Path(tune_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(tune_dir) / TRIALS_FILE, json.dumps(trials, indent=1))


def _check_resumed_trials(tune_dir: str, trials: list[list[str]]) -> None:
    """Tune restores the trials it was started with: a --resume with other --set values would be ignored."""
    saved = Path(tune_dir) / TRIALS_FILE if "://" not in tune_dir else None
    if saved is not None and saved.is_file() and json.loads(saved.read_text()) != trials:
        raise ConfigError(
            f"--resume: the sweep at {tune_dir} was started with other trial overrides ({saved}); "
            "resume with the same YAML, --set values and working directory"
        )


def summary_table(frame: pd.DataFrame, width: int = 120) -> str:
    """The trial table as text for the terminal: one line per trial within `width` columns (overrides, run
    ids and reasons give way first and end in "…"), metric columns headed network / split / metric on three
    lines, values to 3 decimals."""
    cells = [[_cell(value) for value in row] for row in frame.itertuples(index=False)]
    headers = [str(column).split("/") for column in frame.columns]
    widths = [max([len(h) for h in head] + [len(row[i]) for row in cells]) for i, head in enumerate(headers)]
    long_text = ("overrides", "starts from", "run_id", "reason")
    shrinkable = [i for i, column in enumerate(frame.columns) if column in long_text]
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


def summarise(grid, trials: list[list[str]], base: Path, spec: SweepSpec, shared: int) -> pd.DataFrame:
    """One row per trial; trials that still failed after their retries get a `failed` record."""
    results_dir = Path(load_config(base, trials[0]).output.results_dir)
    rows = []
    for result in grid:
        overrides = result.config["overrides"]
        index = trials.index(overrides)
        row = {"trial": index, "overrides": _label(overrides, shared)}
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
