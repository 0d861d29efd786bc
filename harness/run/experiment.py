"""One run, top to bottom like HRNet's train.py: build -> data -> optimizers -> resume -> loop ->
evaluate -> record. `run_experiment` reads as that list; each step is a named helper (harness/run/setup.py,
harness/models/factory.py, harness/run/records.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from harness.core import distributed
from harness.core.batches import loader_workers
from harness.core.config import RunConfig
from harness.core.errors import RunInterrupted, TrainingError
from harness.core.registry import METHODS
from harness.core.results import ResultRecord, drop_interrupted_record, write_record, write_records
from harness.core.run_files import CHECKPOINT_NAME, run_reference
from harness.evaluate.records import now, with_outputs
from harness.evaluate.scoring import evaluate_split
from harness.models.factory import build_method, build_task, occlusion_plan
from harness.run.records import RunRecords
from harness.run.setup import (
    backbone_weights,
    build_optimizers,
    build_trainer,
    check_outputs,
    claim_run_dir,
    pretrained_backbone,
    pretrained_provenance,
    read_epoch_logs,
    resolve_config,
    save_run_config,
    setup_device,
    train_loader,
    warn_step_budget,
)
from harness.train.callbacks import Callback
from harness.train.trainer import seed_everything


@dataclass
class RunOutcome:
    run_id: str
    run_dir: Path
    records: list[ResultRecord]
    steps: int
    images: int
    train_seconds: float


def finished_run(cfg: RunConfig) -> Path | None:
    """A run dir under `output.work_dir` that trained exactly `cfg` (same config hash) to the end: its
    checkpoint is there and all its records in `output.results_dir` say ok. None if there is none."""
    runs = Path(cfg.output.results_dir) / "runs"
    want = cfg.hash()
    for run_dir in sorted(Path(cfg.output.work_dir).glob(f"{cfg.task}_{cfg.method}_*")):
        hash_file = run_dir / "config_hash"
        if not (hash_file.is_file() and (run_dir / CHECKPOINT_NAME).is_file()):
            continue
        if hash_file.read_text().strip() != want:
            continue
        records = [json.loads(p.read_text()) for p in runs.glob(f"{run_dir.name}__*.json")]
        if records and all(r.get("status") == "ok" for r in records):
            return run_dir
    return None


def train_prerequisite(cfg: RunConfig, method_cls, console, callbacks) -> tuple[RunConfig, object]:
    """Point the config at the run a method depends on (e.g. distillation's clean teacher): a finished run of
    exactly that config (same seed, same everything; e.g. a sweep's own clean trial) when one exists, else
    train it first."""
    needed, field = method_cls.prerequisite
    needed_cfg = cfg.model_copy(update={"method": needed}, deep=True)
    found = finished_run(needed_cfg)
    if found is not None:
        console.print(f"{cfg.method}: {field} = finished {needed} run {found}", highlight=False)
        run_dir = found
    else:
        console.rule(f"{cfg.method} needs a {needed} run first ({field}): training it")
        run_dir = run_experiment(needed_cfg, console=console, callbacks=callbacks).run_dir
    args = {**cfg.method_args.get(cfg.method, {}), field: run_reference(run_dir, cfg.output.work_dir)}
    settings = method_cls.Settings(**args)
    cfg = cfg.model_copy(
        update={"method_args": {**cfg.method_args, cfg.method: settings.model_dump()}}, deep=True
    )
    return cfg, settings


def run_experiment(
    cfg: RunConfig | None,
    *,
    resume_dir: Path | None = None,
    console: Console | None = None,
    callbacks: list[Callback] | None = None,
) -> RunOutcome:
    """Train and evaluate one method as `cfg` says, writing the run dir and result records.

    Args:
        cfg: the resolved configuration.
        resume_dir: an existing run dir to continue from its last checkpoint (its own config is used).
        console: where progress goes.
        callbacks: extra trainer callbacks (e.g. the sweep's per-epoch report to Ray Tune); they see the
            epoch logs after the periodic evaluation and before they are written.

    Returns:
        the run id, its dir, the records written and how much was trained.

    Raises:
        HarnessError: bad data or config (no record is written); TrainingError when training itself
            fails, e.g. a non-finite loss (a `failed` record is written first).
        KeyboardInterrupt: SIGINT/SIGTERM (`RunInterrupted` when training stopped at a step boundary
            with a checkpoint); an `interrupted` record is written first once training has started.
    """
    resume_dir = Path(resume_dir) if resume_dir is not None else None
    cfg = resolve_config(cfg, resume_dir)
    check_outputs(cfg, resume_dir)
    started_at = now()
    ctx, device, precision = setup_device(cfg, resumed=resume_dir is not None)
    console = distributed.quiet_unless_main(console or Console(stderr=True), ctx)

    # Build: task, method (its networks come from the model factory), after what the method depends on.
    seed_everything(cfg.seed)
    task = build_task(cfg)
    method_cls = METHODS.get(cfg.method)
    settings = method_cls.Settings(**cfg.method_args.get(cfg.method, {}))
    if method_cls.prerequisite and not getattr(settings, method_cls.prerequisite[1]):
        cfg, settings = train_prerequisite(cfg, method_cls, console, callbacks)
    embedded = pretrained_backbone(cfg, task, device, console)
    weights = backbone_weights(cfg, ctx)  # ImageNet weights fetched (or a local file), before any data
    seed_everything(cfg.seed)  # the same initial draw whether the pretraining was built here or cached
    warn_step_budget(cfg, task, console)
    start = str(weights.path) if weights else None
    method = build_method(cfg, task, settings=settings, weights=start, embedded=embedded)
    method = distributed.convert_sync_bn(method, cfg.train.sync_bn, device, ctx)

    # Data: training set with twins when the method needs them, clean and frozen occluded val.
    with distributed.main_first(ctx):  # rank 0 generates the embedded data, the others read it
        train_set, splits = task.datasets(seed=cfg.seed, occlusion=occlusion_plan(cfg, method_cls.needs_twin))
    for warning in task.data_warnings():
        console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    loader = train_loader(cfg, train_set, ctx, device)
    optimizers, schedulers = build_optimizers(cfg.optim, method)

    def score(network: str, split: str, show_progress: bool = True) -> tuple[dict[str, float], list[dict]]:
        return evaluate_split(
            task, method.networks()[network], splits[split], device=device,
            batch_size=cfg.train.eval_batch_size, num_workers=loader_workers(cfg), precision=precision,
            description=f"eval {network} on {split}", console=console, show_progress=show_progress,
        )  # fmt: skip

    run_dir = resume_dir or distributed.from_main(lambda: claim_run_dir(cfg), ctx)
    if ctx.is_main:
        save_run_config(cfg, run_dir)
    trainer = build_trainer(
        cfg, method, optimizers, schedulers, device=device, precision=precision, ctx=ctx, run_dir=run_dir,
        periodic_eval=lambda: score(method.evaluated, task.clean_split, False)[0],
        callbacks=callbacks or [], console=console,
    )  # fmt: skip
    if resume_dir is not None:
        trainer.load_checkpoint(run_dir / CHECKPOINT_NAME)
    prerequisite = method_cls.prerequisite
    record = RunRecords(
        cfg, task, run_dir.name, method.evaluated,
        f"method_args.{cfg.method}.{prerequisite[1]}" if prerequisite else None,
        trainer, device, precision, ctx.world_size,
        {**task.provenance(), "pretrained": pretrained_provenance(embedded, weights)}, started_at,
    )  # fmt: skip

    # Loop, then evaluate: the evaluated network on every split, the others on the clean split.
    jobs = [(method.evaluated, split) for split in splits]
    jobs += [(name, task.clean_split) for name in method.also_evaluated]
    scores = fit_and_score(trainer, loader, jobs, score, record, ctx, run_dir)

    # Record: one file per (network, split), written only once everything has been scored.
    records = scored_records(cfg, task, scores, splits, record, run_dir, ctx)
    return RunOutcome(
        run_dir.name, run_dir, records, trainer.state.step, trainer.state.images, trainer.state.train_seconds
    )


def fit_and_score(trainer, loader, jobs, score, record: RunRecords, ctx, run_dir: Path) -> dict:
    """Train, then score every (network, split) job. From here on a failure or an interruption is the run's
    outcome: a `failed` or `interrupted` record is written (by rank 0) before the error goes up."""
    results_dir = Path(record.cfg.output.results_dir)
    try:
        trainer.fit(loader)
        return {(network, split): score(network, split) for network, split in jobs}
    except TrainingError as err:
        if ctx.is_main:
            write_record(record(None, None, "failed", reason=str(err)), results_dir)
        distributed.barrier(ctx)  # every rank saw the same loss: none exits before the record is written
        raise
    except KeyboardInterrupt as err:
        state = trainer.state
        where = (
            str(err) or f"interrupted after step {state.step} ({state.epoch} of {trainer.epochs} epochs done)"
        )
        if ctx.is_main:
            write_record(record(None, None, "interrupted", reason=where), results_dir)
        if isinstance(err, RunInterrupted):  # a stop all ranks agreed on: wait for rank 0's record
            distributed.barrier(ctx)
        raise RunInterrupted(
            f"{where}; checkpoint in {run_dir}, continue with `harness run --resume {run_dir}`",
            getattr(err, "signum", None),
        ) from None


def scored_records(cfg, task, scores: dict, splits: dict, record: RunRecords, run_dir: Path, ctx) -> list:
    """The `ok` records with curves, showcase samples and prediction files; rank 0 writes them and drops the
    run's `interrupted` record if a resume finished it."""
    results_dir = Path(cfg.output.results_dir)
    curves = read_epoch_logs(run_dir / "metrics.jsonl")
    records = []
    for (network, split), (metrics, predictions) in scores.items():
        rec = record(split, network, "ok", metrics)
        rec.curves = curves
        rec.severity = cfg.occlusion.val_severity if split == task.occluded_split else None
        records.append(with_outputs(rec, task, predictions, splits[split], run_dir if ctx.is_main else None))
    if ctx.is_main:
        write_records(records, results_dir)
        drop_interrupted_record(results_dir, run_dir.name)
    return records
