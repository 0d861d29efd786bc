"""The measuring parts of `make gpu-check` (see benchmarks/gpu_parts.py): step time and peak memory, the
data loader against the GPU, and the DDP probe torchrun starts. They hold torch and the networks; the parts
that only drive `harness` commands stay in gpu_parts.py, whose processes need not import torch at all."""

from __future__ import annotations

import gc
import math
import os
import statistics
import time
from functools import partial
from pathlib import Path

import torch

from benchmarks.bench import bare_step, batch_for, harness_step, harness_trainer, interleaved, measure, ratio
from benchmarks.gpu_parts import METHOD_NAMES, Figures, Plan, size_sets, write_json


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def synced(fn, device: torch.device):
    """`fn` that returns only when the GPU is done, so a wall clock times the GPU's work, not its queueing."""

    def call():
        fn()
        sync(device)

    return call


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def part_step_time(plan: Plan, out: Figures) -> None:
    """Peak GPU memory of each method's step on `plan.big`, then P1 as `make bench` measures it: interleaved
    rounds of the harness's clean and D-Slope steps and of bare one- and two-network timm steps (the floor),
    on `plan.big` and `plan.small`, batch `plan.batch`, float32."""
    device = torch.device(plan.device)
    backbone, size = plan.big
    memory = {}
    for method in METHOD_NAMES:
        free_memory()
        if plan.cuda:
            torch.cuda.reset_peak_memory_stats(device)
        step = synced(harness_step(method, size, plan.batch, backbone, device), device)
        step()
        step()
        memory[method] = round(torch.cuda.max_memory_allocated(device) / 2**30, 3) if plan.cuda else None
        del step
    out.put(
        "peak_memory_gib", {"backbone": backbone, "input_size": list(size), "batch": plan.batch, **memory}
    )
    lines = []
    for backbone, size in (plan.big, plan.small):
        free_memory()
        fns = {
            "clean": harness_step("clean", size, plan.batch, backbone, device),
            "dslope": harness_step("dslope", size, plan.batch, backbone, device),
            "bare_one": bare_step(size, plan.batch, backbone, device=device),
            "bare_two": bare_step(size, plan.batch, backbone, networks=2, device=device),
        }
        times = interleaved({k: synced(f, device) for k, f in fns.items()}, plan.rounds, plan.warmup)
        del fns
        seconds = {k: statistics.median(v) for k, v in times.items()}
        row = {
            "batch": plan.batch,
            "rounds": plan.rounds,
            "step_s": {k: round(v, 5) for k, v in seconds.items()},
            "clean_images_per_s": round(plan.batch / seconds["clean"], 1),
            "dslope_over_clean": [round(v, 4) for v in ratio(times, "dslope", "clean")],
            "floor_bare_two_over_one": [round(v, 4) for v in ratio(times, "bare_two", "bare_one")],
            "dslope_over_bare_two": [round(v, 4) for v in ratio(times, "dslope", "bare_two")],
        }
        key = f"{backbone} {size[0]}x{size[1]}"
        out.put(key, row)
        lines.append(
            f"{key}: dslope/clean {row['dslope_over_clean'][0]:.2f}x "
            f"(floor {row['floor_bare_two_over_one'][0]:.2f}x)"
        )
    out.put("ok", True)
    peaks = ", ".join(f"{m} {v}" for m, v in memory.items()) if plan.cuda else "not measured on the CPU"
    out.put("summary", "; ".join([*lines, f"peak GiB {peaks}"]))


def train_set_for(plan: Plan, method: str):
    """The config and training set (twins for D-Slope) a `harness run` of `method` on `plan.big` builds."""
    from harness.core.config import CONFIG_ROOT, load_config
    from harness.core.registry import METHODS
    from harness.models.factory import build_task, occlusion_plan

    backbone, size = plan.big
    sets = [
        *size_sets(backbone, size, plan.batch),
        "model.pretrained=null",
        f"method={method}",
        *plan.loader_sets,
    ]
    cfg = load_config(CONFIG_ROOT / "pose/default.yaml", sets)
    train_set, _ = build_task(cfg).datasets(
        seed=0, occlusion=occlusion_plan(cfg, METHODS.get(method).needs_twin)
    )
    return cfg, train_set


def loader(plan: Plan, cfg, train_set, workers: int):
    """The harness's own training DataLoader (pinned memory on CUDA) with `workers` worker processes."""
    from harness.core import distributed
    from harness.run.setup import train_loader

    cfg.train.num_workers = workers
    return train_loader(cfg, train_set, distributed.Context(), torch.device(plan.device))


def images_per_s(batches, count: int, step=None, device=None) -> float:
    """Samples per second over `count` batches (the first, the workers' start-up, is not timed); with
    `step`, each batch is also moved to `device` and trained on."""
    from harness.core.batches import to_device

    next(batches)
    start, images = time.perf_counter(), 0
    for _, batch in zip(range(count), batches, strict=False):
        if step is not None:
            step(to_device(batch, device))
            sync(device)
        images += len(batch["image"])
    return round(images / (time.perf_counter() - start), 1)


def part_loader(plan: Plan, out: Figures) -> None:
    """Is the GPU starved? Samples/s the harness's DataLoader delivers with N workers (twins pasted on the
    fly for D-Slope) against samples/s the GPU trains on in-memory batches, and the two together (fed)."""
    from harness.core.batches import default_workers, to_device

    device = torch.device(plan.device)
    run_workers = default_workers()
    counts = sorted({run_workers, max(1, (os.cpu_count() or 1) - 1)})
    for method in ("clean", "dslope"):
        cfg, train_set = train_set_for(plan, method)
        row = {"workers_of_a_run": run_workers, "loader_images_per_s": {}}
        for n in counts:
            row["loader_images_per_s"][str(n)] = images_per_s(
                iter(loader(plan, cfg, train_set, n)), plan.loader_batches
            )
            out.put(method, row)
        trainer = harness_trainer(method, plan.big[1], plan.big[0], device)
        batch = next(iter(loader(plan, cfg, train_set, 0)))
        step = partial(trainer._step, to_device(batch, device))
        seconds, _ = measure(synced(step, device), plan.loader_batches, warmup=2)
        row["gpu_images_per_s"] = round(len(batch["image"]) / seconds, 1)
        fed = iter(loader(plan, cfg, train_set, run_workers))
        row["fed_images_per_s"] = images_per_s(fed, plan.loader_batches, trainer._step, device)
        row["starved"] = row["loader_images_per_s"][str(run_workers)] < row["gpu_images_per_s"]
        out.put(method, row)
        trainer = step = None  # the next method's networks get the GPU memory
        free_memory()
    out.put("ok", True)
    out.put(
        "summary",
        "; ".join(
            f"{m}: loader {out[m]['loader_images_per_s']} img/s by workers, "
            f"GPU {out[m]['gpu_images_per_s']}, fed {out[m]['fed_images_per_s']}"
            + (" (starved)" if out[m]["starved"] else "")
            for m in ("clean", "dslope")
        ),
    )


def ddp_probe(plan: Plan) -> None:
    """Under torchrun: two D-Slope steps of the harness's Trainer through its DataParallelStep over NCCL
    (gloo on the CPU); every rank's weights must then agree. Rank 0 writes parts/ddp_probe.json."""
    import torch.distributed as dist

    from harness.core import distributed

    device = torch.device(plan.device)
    if plan.cuda:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if plan.cuda else "gloo")
    ctx = distributed.current()
    backbone, size = plan.small
    trainer = harness_trainer("dslope", size, backbone, device)
    # A world of one gets no DDP wrapper from the Trainer: the probe puts the multi-rank step in on purpose.
    trainer.parallel = distributed.DataParallelStep(trainer.method, device)
    losses = [trainer._step(batch_for(size, plan.batch, device))["loss"] for _ in range(2)]
    checksum = sum(float(p.detach().double().sum()) for p in trainer.method.parameters())
    sums = [None] * ctx.world_size
    dist.all_gather_object(sums, checksum)
    if ctx.is_main:
        write_json(
            Path(plan.workdir) / "parts" / "ddp_probe.json",
            {
                "backend": dist.get_backend(),
                "world_size": ctx.world_size,
                "losses": losses,
                "nccl": str(torch.cuda.nccl.version()) if plan.cuda else None,
                "ranks_agree": len(set(sums)) == 1 and all(math.isfinite(v) for v in losses),
            },
        )
    dist.destroy_process_group()
