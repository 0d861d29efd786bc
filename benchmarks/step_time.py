"""Training step time per backbone × method on this machine (random tensors, data already in memory).

Usage:
    python -m benchmarks.step_time [--backbones hrnet_w32,resnet50] [--batch 8] [--size 128x96] [--repeats 3]

Without --backbones it times the default list plus, where the mmpose extra is installed
(`make setup-mmpose`), every `mmpose:*` backbone; otherwise it says why those rows are missing.

Prints a table (parameters per network, median step time and spread after one warm-up step) and writes
results/bench/step_time.json. Ratios between rows are what carries over to other machines.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from benchmarks.bench import method_for
from harness.core.config import CONFIG_ROOT, load_config
from harness.core.io import atomic_write_json
from harness.models.factory import build_task, model_builder
from harness.models.mmpose_backbones import ARCHS as MMPOSE_ARCHS
from harness.models.mmpose_imports import extra_status

DEFAULT_BACKBONES = "hrnet_w18_small,hrnet_w32,resnet50,vit_tiny_patch16_224,mobilenetv3_large_100"
METHOD_NAMES = ("clean", "occ_aug", "distill", "dslope")


def time_method(name: str, build, loss, batch: dict, repeats: int) -> tuple[float, float, int]:
    """Median and spread (max - min) of one optimizer step, in seconds, and parameters per network."""
    torch.manual_seed(0)
    method = method_for(name, build, loss)
    optimizers = [torch.optim.Adam(p, lr=1e-3) for p in method.optimizer_groups().values()]
    times = []
    for _ in range(repeats + 1):  # the first step is warm-up
        start = time.perf_counter()
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        method.training_step(batch)["loss"].backward()
        for opt in optimizers:
            opt.step()
        times.append(time.perf_counter() - start)
    params = sum(p.numel() for p in next(iter(method.networks().values())).parameters())
    steady = times[1:]
    return statistics.median(steady), max(steady) - min(steady), params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", default=None, help="comma-separated; default: see the module doc")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", default="128x96")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("results/bench/step_time.json"))
    args = parser.parse_args()
    if args.backbones is None:
        missing = extra_status()
        mmpose = [f"mmpose:{name}" for name in MMPOSE_ARCHS] if missing is None else []
        args.backbones = ",".join([DEFAULT_BACKBONES, *mmpose])
        if missing is not None:
            print(f"no mmpose:* rows: {missing} (make setup-mmpose)")
    height, width = (int(v) for v in args.size.split("x"))
    base = [f"data.input_size=[{height},{width}]", "model.pretrained=null"]
    task = build_task(load_config(CONFIG_ROOT / "pose/default.yaml", base))
    g = torch.Generator().manual_seed(0)
    batch = {
        "image": torch.randn(args.batch, 3, height, width, generator=g),
        "twin": torch.randn(args.batch, 3, height, width, generator=g),
        "target": torch.rand(args.batch, 17, height // 4, width // 4, generator=g),
        "target_weight": torch.ones(args.batch, 17),
    }
    table = Table(title=f"Step time, batch {args.batch}, {height}x{width}, {torch.get_num_threads()} threads")
    for column in ("backbone", "params/net (M)", *METHOD_NAMES, "dslope/clean"):
        table.add_column(column, justify="right")
    rows = []
    for backbone_name in args.backbones.split(","):
        build = model_builder(
            load_config(CONFIG_ROOT / "pose/default.yaml", [*base, f"model.backbone={backbone_name}"]), task
        )
        timings = {m: time_method(m, build, task.loss, batch, args.repeats) for m in METHOD_NAMES}
        params = timings["clean"][2]
        ratio = timings["dslope"][0] / timings["clean"][0]
        cells = [f"{t:.3f} s ±{s:.3f}" for t, s, _ in timings.values()]
        table.add_row(backbone_name, f"{params / 1e6:.2f}", *cells, f"{ratio:.2f}")
        rows.append(
            {
                "backbone": backbone_name,
                "params": params,
                "dslope_over_clean": ratio,
                **{m: {"median_s": t, "spread_s": s} for m, (t, s, _) in timings.items()},
            }
        )
    Console(width=160).print(table)
    atomic_write_json(
        args.out,
        {
            "batch": args.batch,
            "input_size": [height, width],
            "repeats": args.repeats,
            "machine": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "rows": rows,
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
