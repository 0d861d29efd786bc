"""One run, top to bottom like HRNet's train.py: build -> data -> optimizers -> resume -> loop ->
evaluate -> record. This is the only place that turns the config tree into objects.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch
from rich.console import Console
from torch.utils.data import DataLoader

from harness import distributed
from harness.backbones import create_backbone
from harness.cache import file_digest
from harness.callbacks import (
    CHECKPOINT_NAME,
    Callback,
    Checkpoint,
    MetricsLogger,
    PeriodicEval,
    ProgressBar,
)
from harness.config import RunConfig, load_config, save_config
from harness.errors import ConfigError, RunInterrupted, TrainingError
from harness.evaluation import evaluate_split
from harness.io import ensure_writable
from harness.model import TaskModel
from harness.occlusion import OcclusionSettings
from harness.precision import Precision
from harness.predictions import save_predictions
from harness.pretraining import (
    EMBEDDED,
    PretrainedBackbone,
    PretrainSettings,
    embedded_backbone,
    load_embedded,
)
from harness.registry import METHODS, TASKS
from harness.results import (
    ResultRecord,
    drop_interrupted_record,
    git_commit,
    package_versions,
    write_record,
)
from harness.roles import split_role
from harness.task import OcclusionPlan
from harness.trainer import EpochSampler, Trainer, build_optimizer, ignore_interrupts, seed_everything


@dataclass
class RunOutcome:
    run_id: str
    run_dir: Path
    records: list[ResultRecord]
    steps: int
    images: int
    train_seconds: float


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_run_id(cfg: RunConfig) -> str:
    backbone = cfg.model.backbone.replace(":", "-").replace("/", "-")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{cfg.task}_{cfg.method}_{backbone}_s{cfg.seed}_{stamp}_{secrets.token_hex(2)}"


def claim_run_dir(cfg: RunConfig) -> Path:
    """Create a new, empty run dir; runs started in the same second never share one (mkdir is exclusive)."""
    work_dir = Path(cfg.output.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    while True:
        run_dir = work_dir / new_run_id(cfg)
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            continue


def occlusion_plan(cfg: RunConfig, needs_twin: bool) -> OcclusionPlan:
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


def read_epoch_logs(path: Path) -> list[dict]:
    """The per-epoch lines of a run's metrics.jsonl (training curves for the record)."""
    if not path.is_file():
        return []
    lines = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return [line for line in lines if line.get("kind") == "epoch"]


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
    args = {**cfg.method_args.get(cfg.method, {}), field: str(run_dir.resolve())}
    settings = method_cls.Settings(**args)
    cfg = cfg.model_copy(
        update={"method_args": {**cfg.method_args, cfg.method: settings.model_dump()}}, deep=True
    )
    return cfg, settings


def pretrained_backbone(cfg: RunConfig, task, device, console) -> PretrainedBackbone | None:
    """The embedded pretraining checkpoint for `model.pretrained: embedded` (built once), else None."""
    if cfg.model.pretrained != EMBEDDED:
        unused = cfg.unused_pretrain_keys()
        if unused:
            console.print(
                f"[yellow]warning:[/] {', '.join(unused)} unused: model.pretrained is not 'embedded'",
                highlight=False,
            )
        return None
    p = cfg.pretrain
    return embedded_backbone(
        task,
        task_name=cfg.task,
        data=cfg.data,
        backbone=cfg.model.backbone,
        settings=PretrainSettings(**p.model_dump()),
        device=device,
        precision=Precision.full(device),  # one checkpoint per key, whatever precision the run uses
        num_workers=cfg.train.num_workers if cfg.train.num_workers is not None else default_workers(),
        console=console,
    )


def pretrained_provenance(cfg: RunConfig, embedded: PretrainedBackbone | None) -> dict | None:
    """What the backbone started from, for every record: the embedded checkpoint's metadata or a digest."""
    if embedded is not None:
        return embedded.provenance()
    if cfg.model.pretrained:
        path = Path(cfg.model.pretrained).expanduser()
        return {"source": cfg.model.pretrained, "sha256": file_digest(path)}
    return None


def warn_step_budget(cfg: RunConfig, task, console) -> None:
    """Say plainly when the config's step budget was sized for a lighter backbone than the one asked for."""
    sized_for = cfg.train.sized_for
    if not sized_for or sized_for == cfg.model.backbone:
        return

    def millions(name: str) -> float:
        backbone = create_backbone(name, None, input_size=task.input_size)
        return sum(p.numel() for p in backbone.parameters()) / 1e6

    console.print(
        f"[yellow]warning:[/] this config's {cfg.train.max_steps} steps were sized for {sized_for} "
        f"({millions(sized_for):.1f} M backbone parameters); {cfg.model.backbone} has "
        f"{millions(cfg.model.backbone):.1f} M and will not converge in that budget: expect far lower "
        "numbers, or raise train.max_steps",
        highlight=False,
        soft_wrap=True,
    )


def default_workers() -> int:
    """Leave one core to the training process; at most 8 loader workers."""
    return max(0, min(8, (os.cpu_count() or 1) - 1))


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
    console = console or Console(stderr=True)
    if resume_dir is not None:
        resume_dir = Path(resume_dir)
        if not (resume_dir / "config.yaml").is_file():
            raise ConfigError(f"--resume: {resume_dir} is not a run dir (no config.yaml)")
        cfg = load_config(resume_dir / "config.yaml")
    results_dir = Path(cfg.output.results_dir)
    # Fail before any work when outputs cannot be written.
    ensure_writable(results_dir / "runs", "output.results_dir")
    ensure_writable(resume_dir or Path(cfg.output.work_dir), "--resume" if resume_dir else "output.work_dir")
    started_at = _now()
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available here")
    precision = Precision.resolve(cfg.train.amp, cfg.train.amp_dtype, device)
    # Ranks: one process, or one of the ranks torchrun / Ray Train started (rank 0 alone writes).
    ctx, device = distributed.setup(device)
    distributed.check_world_size(cfg.train.world_size, ctx, resumed=resume_dir is not None)
    cfg.train.world_size = ctx.world_size
    console = distributed.quiet_unless_main(console, ctx)

    # Build: task, method (its networks come from the model factory).
    seed_everything(cfg.seed)
    task = TASKS.get(cfg.task)(TASKS.get(cfg.task).Settings(**cfg.data))
    method_cls = METHODS.get(cfg.method)
    method_settings = method_cls.Settings(**cfg.method_args.get(cfg.method, {}))
    if method_cls.prerequisite and not getattr(method_settings, method_cls.prerequisite[1]):
        cfg, method_settings = train_prerequisite(cfg, method_cls, console, callbacks)

    embedded = pretrained_backbone(cfg, task, device, console)
    seed_everything(cfg.seed)  # the same initial draw whether the pretraining was built here or cached

    def build_model() -> TaskModel:
        weights = None if embedded else cfg.model.pretrained
        backbone = create_backbone(cfg.model.backbone, weights, input_size=task.input_size)
        if embedded:
            load_embedded(backbone, embedded)
        return TaskModel(backbone, task.head(backbone.out_channels, backbone.out_stride))

    warn_step_budget(cfg, task, console)

    method = method_cls(build_model, task.loss, method_settings)
    method = distributed.convert_sync_bn(method, cfg.train.sync_bn, device, ctx)

    # Data: training set with twins when the method needs them, clean and frozen occluded val.
    with distributed.main_first(ctx):  # rank 0 generates the embedded data, the others read it
        train_set, eval_splits = task.datasets(
            seed=cfg.seed, occlusion=occlusion_plan(cfg, method_cls.needs_twin)
        )
    for warning in task.data_warnings():
        console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    workers = cfg.train.num_workers if cfg.train.num_workers is not None else default_workers()
    loader = DataLoader(
        train_set,
        batch_size=cfg.train.batch_size,
        # Data order survives a mid-epoch resume; with several ranks each trains its own shard of it.
        sampler=(sampler := EpochSampler(len(train_set), cfg.seed, ctx.rank, ctx.world_size)),
        drop_last=sampler.shard_size > cfg.train.batch_size,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        worker_init_fn=ignore_interrupts,
        persistent_workers=False,
    )

    # Optimizers: one per network (unless the method groups them), same settings; multi-step LR per epoch.
    o = cfg.optim
    optimizers = {
        name: build_optimizer(params, name=o.name, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
        for name, params in method.optimizer_groups().items()
    }
    schedulers = {
        name: torch.optim.lr_scheduler.MultiStepLR(opt, milestones=o.milestones, gamma=o.gamma)
        for name, opt in optimizers.items()
    }

    def score(network: str, split: str, show_progress: bool = True) -> tuple[dict[str, float], list[dict]]:
        return evaluate_split(
            task,
            method.networks()[network],
            eval_splits[split],
            device=device,
            batch_size=cfg.train.eval_batch_size,
            num_workers=workers,
            precision=precision,
            description=f"eval {network} on {split}",
            console=console,
            show_progress=show_progress,
        )

    run_dir = resume_dir or distributed.from_main(lambda: claim_run_dir(cfg), ctx)
    writers = [MetricsLogger(run_dir, cfg.train.log_every), Checkpoint(run_dir)] if ctx.is_main else []
    run_id = run_dir.name
    if ctx.is_main:
        save_config(cfg, run_dir / "config.yaml")
        (run_dir / "config_hash").write_text(cfg.hash() + "\n")
    trainer = Trainer(
        method,
        optimizers,
        schedulers,
        device=device,
        epochs=cfg.train.epochs,
        max_steps=cfg.train.max_steps,
        precision=precision,
        seed=cfg.seed,
        tags={"task": cfg.task, "method": cfg.method, "backbone": cfg.model.backbone},
        callbacks=[
            PeriodicEval(lambda: score(method.evaluated, task.clean_split, False)[0], cfg.train.eval_every),
            *(callbacks or []),
            *writers,
            ProgressBar(f"train {cfg.method}", console),
        ],
        world_size=ctx.world_size,
    )

    # Resume.
    if resume_dir is not None:
        trainer.load_checkpoint(run_dir / CHECKPOINT_NAME)

    def record(split, network, status, metrics=None, reason=None) -> ResultRecord:
        names = [m.name for m in task.metrics]
        return ResultRecord(
            run_id=run_id,
            task=cfg.task,
            method=cfg.method,
            backbone=cfg.model.backbone,
            dataset=task.dataset_name,
            split=split,
            network=network,
            status=status,
            metrics=metrics or {},
            higher_is_better={n: task.metric(n).higher_is_better for n in names},
            primary_metric=task.primary_metric,
            evaluated=network == method.evaluated if network else None,
            split_role=split_role(split, task.clean_split, task.occluded_split),
            prerequisite_key=(
                f"method_args.{cfg.method}.{method_cls.prerequisite[1]}" if method_cls.prerequisite else None
            ),
            method_role=method_cls.role,
            seed=cfg.seed,
            config=cfg.to_dict(),
            config_hash=cfg.hash(),
            data={**task.provenance(), "pretrained": pretrained_provenance(cfg, embedded)},
            training={
                "steps": trainer.state.step,
                "epochs": trainer.state.epoch,
                "images": trainer.state.images,
                "train_seconds": round(trainer.state.train_seconds, 2),
                "device": str(device),
                "precision": precision.name,
                "steps_per_second": round(trainer.state.step / max(trainer.state.train_seconds, 1e-9), 4),
                "world_size": ctx.world_size,
                "batch_size_per_rank": cfg.train.batch_size,
                "global_batch_size": cfg.train.batch_size * ctx.world_size,
            },
            versions=package_versions(),
            commit=git_commit(),
            started_at=started_at,
            ended_at=_now(),
            reason=reason,
        )

    # Loop, then evaluate: the evaluated network on every split, the others on the clean split. From here
    # on a failure or an interruption is the run's outcome, recorded as such.
    try:
        trainer.fit(loader)
        jobs = [(method.evaluated, split) for split in eval_splits]
        jobs += [(name, task.clean_split) for name in method.also_evaluated]
        scores = {(network, split): score(network, split) for network, split in jobs}
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

    # Record: one file per (network, split), written only once everything has been scored.
    curves = read_epoch_logs(run_dir / "metrics.jsonl")
    records = []
    for (network, split), (metrics, predictions) in scores.items():
        rec = record(split, network, "ok", metrics)
        rec.curves = curves
        rec.samples = task.showcase(predictions, eval_splits[split])
        rec.severity = cfg.occlusion.val_severity if split == task.occluded_split else None
        if ctx.is_main:
            rec.predictions = save_predictions(task, predictions, eval_splits[split], run_dir, rec)
        records.append(rec)
    if ctx.is_main:
        for rec in records:
            write_record(rec, results_dir)
        drop_interrupted_record(results_dir, run_id)
    return RunOutcome(
        run_id, run_dir, records, trainer.state.step, trainer.state.images, trainer.state.train_seconds
    )
