"""The steps `run_experiment` (harness/run/experiment.py) reads as one line each: where a run writes, what
device and precision it uses, its pretrained starting point (embedded checkpoint or weights file), data
loader, optimizers and trainer.

Each helper does one step; none trains or evaluates. The sweep's shared-input builder uses the pretraining
step too.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from harness.core import distributed
from harness.core.batches import loader_workers
from harness.core.config import OptimConfig, RunConfig, load_config, save_config
from harness.core.errors import ConfigError
from harness.core.io import ensure_writable
from harness.core.precision import Precision
from harness.models.backbones import create_backbone
from harness.models.pretrained import EMBEDDED, PretrainedBackbone
from harness.models.weights import FROM_SCRATCH, StartingWeights, starting_weights
from harness.train.callbacks import Callback, Checkpoint, MetricsLogger, PeriodicEval, ProgressBar
from harness.train.pretraining import PretrainSettings, embedded_backbone
from harness.train.trainer import EpochSampler, Trainer, build_optimizer, ignore_interrupts


def resolve_config(cfg: RunConfig | None, resume_dir: Path | None) -> RunConfig:
    """The config to run: the given one, or a resumed run dir's own."""
    if resume_dir is None:
        return cfg
    if not (Path(resume_dir) / "config.yaml").is_file():
        raise ConfigError(f"--resume: {resume_dir} is not a run dir (no config.yaml)")
    return load_config(Path(resume_dir) / "config.yaml")


def check_outputs(cfg: RunConfig, resume_dir: Path | None) -> None:
    """Fail before any work when the results or the run dir cannot be written."""
    ensure_writable(Path(cfg.output.results_dir) / "runs", "output.results_dir")
    ensure_writable(resume_dir or Path(cfg.output.work_dir), "--resume" if resume_dir else "output.work_dir")


def setup_device(cfg: RunConfig, resumed: bool) -> tuple[distributed.Context, torch.device, Precision]:
    """Device, precision and rank context: one process, or one of the ranks torchrun / Ray Train started
    (rank 0 alone writes). Records the world size in the config."""
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available here")
    precision = Precision.resolve(cfg.train.amp, cfg.train.amp_dtype, device)
    ctx, device = distributed.setup(device)
    distributed.check_world_size(cfg.train.world_size, ctx, resumed=resumed)
    cfg.train.world_size = ctx.world_size
    return ctx, device, precision


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


def save_run_config(cfg: RunConfig, run_dir: Path) -> None:
    """The run dir's config.yaml and its hash (what `finished_run` and `--resume` read back)."""
    save_config(cfg, run_dir / "config.yaml")
    (run_dir / "config_hash").write_text(cfg.hash() + "\n")


def read_epoch_logs(path: Path) -> list[dict]:
    """The per-epoch lines of a run's metrics.jsonl (training curves for the record)."""
    if not path.is_file():
        return []
    lines = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return [line for line in lines if line.get("kind") == "epoch"]


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
        num_workers=loader_workers(cfg),
        console=console,
    )


def backbone_weights(cfg: RunConfig, ctx: distributed.Context) -> StartingWeights | None:
    """The weights file `model.pretrained` names (ImageNet weights fetched into their library's cache, or a
    local file), before any data or training; rank 0 fetches first, the others then read its cache."""
    with distributed.main_first(ctx):
        return starting_weights(cfg.model.pretrained, cfg.model.backbone)


def pretrained_provenance(embedded: PretrainedBackbone | None, weights: StartingWeights | None) -> dict:
    """What the backbone started from, for every record: the embedded checkpoint's metadata, the weights
    file's source, name and sha256, or `from_scratch` (model.pretrained null or from_scratch)."""
    if embedded is not None:
        return embedded.provenance()
    if weights is not None:
        return weights.provenance
    return {"source": FROM_SCRATCH}


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


def train_loader(
    cfg: RunConfig, train_set: Dataset, ctx: distributed.Context, device: torch.device
) -> DataLoader:
    """Batches in an order that depends only on (seed, epoch): it survives a mid-epoch resume, and with
    several ranks each trains its own shard of it."""
    sampler = EpochSampler(len(train_set), cfg.seed, ctx.rank, ctx.world_size)
    return DataLoader(
        train_set,
        batch_size=cfg.train.batch_size,
        sampler=sampler,
        drop_last=sampler.shard_size > cfg.train.batch_size,
        num_workers=loader_workers(cfg),
        pin_memory=device.type == "cuda",
        worker_init_fn=ignore_interrupts,
        persistent_workers=False,
    )


def build_optimizers(o: OptimConfig, method) -> tuple[dict, dict]:
    """One optimizer per network (unless the method groups them), same settings; multi-step LR per epoch."""
    optimizers = {
        name: build_optimizer(params, name=o.name, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
        for name, params in method.optimizer_groups().items()
    }
    schedulers = {
        name: torch.optim.lr_scheduler.MultiStepLR(opt, milestones=o.milestones, gamma=o.gamma)
        for name, opt in optimizers.items()
    }
    return optimizers, schedulers


def build_trainer(
    cfg: RunConfig, method, optimizers: dict, schedulers: dict, *, device: torch.device, precision: Precision,
    ctx: distributed.Context, run_dir: Path, periodic_eval, callbacks: list[Callback], console,
) -> Trainer:  # fmt: skip
    """The trainer with its callbacks in order: periodic eval, the caller's (e.g. the sweep's report, which
    sees the eval's logs), then rank 0's writers (metrics log, checkpoint), then the progress bar."""
    writers = [MetricsLogger(run_dir, cfg.train.log_every), Checkpoint(run_dir)] if ctx.is_main else []
    return Trainer(
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
            PeriodicEval(periodic_eval, cfg.train.eval_every),
            *callbacks,
            *writers,
            ProgressBar(f"train {cfg.method}", console),
        ],
        world_size=ctx.world_size,
    )
