"""`make gpu-check`: the harness's CUDA path proven on one GPU in one bounded command (issue 30).

Parts (benchmarks/gpu_parts.py and gpu_measure.py; each in its own process under its own time limit, all
within --budget):
  precision    a train step of clean / occ_aug / distill / dslope on HRNet-W32 256x192, batch 32, in fp32,
               fp16 (grad scaler) and bf16 via `harness run`: finite loss, records' training.precision right
  step_time    peak GPU memory per method; P1 D-Slope / clean step and its floor (bare two networks / one),
               interleaved rounds as in `make bench`, HRNet-W32 256x192 and HRNet-W18-small 128x96
  ddp          `harness run` under torchrun (1 process), the harness's DDP step over NCCL, --nproc 2 on 2 GPUs
  validity     one pose validity cell (quick_hrnet_w18_small.yaml, occ_aug + dslope, seed 0), wall time
  eval_export  `harness eval` and `harness export` (ONNX vs PyTorch) of the validity cell's D-Slope run
  loader       samples/s of the DataLoader with N workers vs. samples/s the GPU trains (clean, dslope)

It first checks that a CUDA device exists (one line and exit 2 otherwise) and that the packages the harness
imports are there. After every part it rewrites results/bench/gpu.json (device, torch / CUDA versions, every
figure, each part's status: ok, failed, error, timeout or skipped), so a later failure loses nothing; a part
that fails or runs out of time is recorded and the next one runs. At the end it prints a table.

    python -m benchmarks.gpu_check                 # on a CUDA machine (make gpu-check)
    python -m benchmarks.gpu_check --dry-run       # the same parts on the CPU at tiny sizes (CI, a test)
    python -m benchmarks.gpu_check --parts ddp     # rerun some parts, keeping the others' results
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# In this order: the quick checks first; validity (the longest) from an empty cache, eval_export on its run;
# loader last, on the data validity generated. Limits: about twice what each part is expected to take.
DRY_RUN_SLACK = 3.0
TIMEOUTS = {"precision": 150, "step_time": 120, "ddp": 100, "validity": 240, "eval_export": 75, "loader": 90}
WHAT = {
    "precision": "train step per method in fp32 / fp16+GradScaler / bf16 (records' training.precision)",
    "step_time": "peak GPU memory per method; P1 dslope/clean step ratio and floor, interleaved rounds",
    "validity": "one pose validity cell end to end (occ_aug + dslope, seed 0): records, wall time",
    "loader": "DataLoader samples/s with N workers vs GPU training samples/s (clean, dslope)",
    "ddp": "torchrun 1 process; harness DDP step over NCCL; --nproc 2 where 2 GPUs exist",
    "eval_export": "harness eval + harness export of the D-Slope run (ONNX vs PyTorch)",
}
# Import names the harness's pose path needs besides torch; the lent GPU machine's image lacks some.
NEEDED = (
    "timm",
    "cv2",
    "pycocotools",
    "pydantic",
    "yaml",
    "typer",
    "rich",
    "pandas",
    "scipy",
    "onnx",
    "onnxruntime",
    "tensorboard",
)
TINY_DATA = ["data.synthetic_train_images=12", "data.synthetic_val_images=4", "occlusion.max_patches=50"]


def fail(message: str) -> None:
    print(f"gpu-check: {message}", file=sys.stderr)
    raise SystemExit(2)


def environment(dry_run: bool) -> dict:
    """Device and versions; exits 2 with one line when no CUDA device is usable (unless a dry run) or a
    package the harness imports is missing."""
    import torch

    from harness.core.results import source_state

    if not dry_run and not torch.cuda.is_available():
        fail(
            f"no CUDA device: torch {torch.__version__} (built for CUDA {torch.version.cuda}) sees none; "
            "run it on a GPU machine, or `--dry-run` to walk the parts on the CPU"
        )
    missing = [name for name in NEEDED if importlib.util.find_spec(name) is None]
    if missing:
        fail(f"missing Python packages: {', '.join(missing)} (README, Benchmarks, GPU: how to carry them)")
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cpus": os.cpu_count(),
        "gpus": torch.cuda.device_count() if torch.cuda.is_available() else 0,
        **source_state().fields(),  # from git, or the source manifest a copy without .git carries
    }
    if torch.cuda.is_available() and not dry_run:
        props = torch.cuda.get_device_properties(0)
        info.update(
            device=props.name,
            capability=f"{props.major}.{props.minor}",
            memory_gib=round(props.total_memory / 2**30, 1),
            driver=_driver(),
        )
    else:
        info["device"] = "cpu (dry run)"
    return info


def _driver() -> str | None:
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else None


def make_plan(dry_run: bool, workdir: Path, gpus: int):
    """The GPU sizes of issue 30, or tiny ones on the CPU for --dry-run (same parts, same code)."""
    from benchmarks.gpu_parts import Plan

    if not dry_run:
        return Plan(
            device="cuda",
            workdir=str(workdir),
            gpus=gpus,
            big=("hrnet_w32", (256, 192)),
            small=("hrnet_w18_small", (128, 96)),
            batch=32,
            rounds=20,
            warmup=3,
            loader_batches=20,
            run_sets=[
                "data.synthetic_train_images=64",
                "data.synthetic_val_images=16",
                "train.num_workers=2",
                "train.eval_batch_size=32",
            ],
        )
    return Plan(
        device="cpu",
        workdir=str(workdir),
        big=("hrnet_w18_small", (96, 64)),
        small=("hrnet_w18_small", (64, 64)),
        batch=2,
        rounds=1,
        warmup=1,
        loader_batches=2,
        # bf16 alone: fp32 is every other part's path, and fp16 autocast is CUDA-only (float32 on the CPU).
        precisions=["bf16"],
        run_sets=["train.eval_batch_size=8"],
        cell_sets=[
            *TINY_DATA,
            "data.input_size=[96,64]",
            "train.batch_size=2",
            "train.max_steps=2",
            "train.num_workers=0",
            "train.eval_batch_size=8",
            "pretrain.steps=1",
            "pretrain.images=4",
            "pretrain.batch_size=2",
        ],
        loader_sets=TINY_DATA,
        eval_sets=["train.num_workers=0"],
    )


def part_command(name: str, plan_file: Path) -> list[str]:
    return [sys.executable, "-m", "benchmarks.gpu_parts", name, str(plan_file)]


def run_part(
    name: str, command: list[str], parts_dir: Path, timeout: float, env: dict | None = None
) -> tuple[str, float, dict, str | None]:
    """Run a part's `command` in its own process group, killed whole at `timeout`.

    Returns its status (ok, failed: a check did not pass, error: it crashed, timeout), wall seconds, the
    figures it left in parts_dir/<name>.json (also when stopped) and, unless ok or failed, why.
    """
    log = parts_dir / f"{name}.log"
    start = time.perf_counter()
    with open(log, "w") as sink:
        child = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            code = child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
            _stop_group(child)
    seconds = round(time.perf_counter() - start, 1)
    found = parts_dir / f"{name}.json"
    figures = json.loads(found.read_text()) if found.is_file() else {}
    tail = log.read_text(errors="replace").strip().splitlines()[-15:]
    if code is None:
        where = log.relative_to(REPO) if log.is_relative_to(REPO) else log  # no machine path in gpu.json
        reason = f"stopped after {timeout:.0f} s ({where}): " + "\n".join(tail[-5:])
        return "timeout", seconds, figures, reason
    if code != 0:
        return "error", seconds, figures, f"exit {code}: " + "\n".join(tail)
    return ("ok" if figures.get("ok") else "failed"), seconds, figures, None


def _stop_group(child: subprocess.Popen) -> None:
    """SIGTERM to the part's whole process group (its harness runs, torchrun ranks), SIGKILL 15 s later."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(child.pid, sig)
            child.wait(timeout=wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def print_table(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    env = summary["environment"]
    title = (
        f"gpu-check{' (dry run)' if summary['dry_run'] else ''}: {env.get('device')}, torch {env['torch']}, "
        f"CUDA {env['cuda']}, {summary['wall_s']:.0f} s"
    )
    table = Table(title=title)
    for column in ("part", "status", "s", "figures"):
        table.add_column(column, overflow="fold")
    for name, part in summary["parts"].items():
        text = part.get("summary") or part.get("error") or ""
        table.add_row(name, part["status"], f"{part['seconds']:.0f}", text)
    Console(width=160).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description="The harness's CUDA path on one GPU, within a time budget.")
    parser.add_argument("--dry-run", action="store_true", help="the same parts on the CPU at tiny sizes")
    parser.add_argument("--parts", default=",".join(TIMEOUTS), help="comma-separated subset, in this order")
    parser.add_argument("--budget", type=float, default=540.0, help="seconds for all parts together")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="default results/bench/gpu.json (dry run: work_dirs/gpu_check_dry/gpu.json)",
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="runs and cache; default work_dirs/gpu_check"
    )
    parser.add_argument("--list", action="store_true", help="list the parts and exit")
    args = parser.parse_args()
    names = [n.strip() for n in args.parts.split(",") if n.strip()]
    unknown = [n for n in names if n not in TIMEOUTS]
    if unknown or not names:
        fail(f"--parts: unknown part(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(TIMEOUTS)}")
    if args.budget <= 0:
        fail(f"--budget must be positive seconds, got {args.budget}")
    listing = "\n".join(f"  {n:<12} {TIMEOUTS[n]:>4} s  {WHAT[n]}" for n in TIMEOUTS)
    if args.list:
        print(f"parts (time limit each; all within --budget):\n{listing}")
        return
    suffix = "_dry" if args.dry_run else ""
    workdir = (args.workdir or REPO / f"work_dirs/gpu_check{suffix}").resolve()
    out = args.out or REPO / (
        "work_dirs/gpu_check_dry/gpu.json" if args.dry_run else "results/bench/gpu.json"
    )
    info = environment(args.dry_run)
    from benchmarks.gpu_parts import write_json

    fresh = set(names) == set(TIMEOUTS)  # the whole check starts from an empty cache; a rerun keeps it
    if fresh and workdir.exists():
        if any(workdir.iterdir()) and not (workdir / "plan.json").is_file():
            fail(f"--workdir {workdir} holds files that are not a gpu-check's; name an empty or new folder")
        shutil.rmtree(workdir)
    (workdir / "parts").mkdir(parents=True, exist_ok=True)
    plan_file = workdir / "plan.json"
    make_plan(args.dry_run, workdir, info["gpus"]).save(plan_file)
    print(
        f"gpu-check{' --dry-run' if args.dry_run else ''} on {info['device']}: parts\n{listing}", flush=True
    )
    previous = json.loads(out.read_text()) if not fresh and out.is_file() else {}
    if previous.get("dry_run") != args.dry_run:  # never mix dry-run figures with GPU ones
        previous = {}
    summary = {
        "dry_run": args.dry_run,
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "budget_s": args.budget,
        "environment": info,
        "parts": {k: v for k, v in previous.get("parts", {}).items() if k not in names},
    }
    env = {
        **os.environ,
        "HARNESS_CACHE": str(workdir / "cache"),
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    start = time.perf_counter()
    # A dry run checks the code path, not the speed: a loaded CI machine gets 3x each limit and the budget.
    slack = DRY_RUN_SLACK if args.dry_run else 1.0
    for name in [n for n in TIMEOUTS if n in names]:
        left = args.budget * slack - (time.perf_counter() - start)
        if left < 10:
            status, seconds, figures, error = "skipped", 0.0, {}, "the total budget was spent"
        else:
            limit = min(TIMEOUTS[name] * slack, left)
            status, seconds, figures, error = run_part(
                name, part_command(name, plan_file), workdir / "parts", limit, env
            )
        summary["parts"][name] = {
            "status": status,
            "seconds": seconds,
            "what": WHAT[name],
            "error": error,
            "summary": figures.pop("summary", None),
            "figures": figures,
        }
        summary["wall_s"] = round(time.perf_counter() - start, 1)
        write_json(out, summary)
        print(f"{name}: {status} in {seconds:.0f} s", flush=True)
    print_table(summary)
    print(f"wrote {out}")
    raise SystemExit(0 if all(p["status"] == "ok" for p in summary["parts"].values()) else 1)


if __name__ == "__main__":
    main()
