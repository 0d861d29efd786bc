"""The parts of `make gpu-check` (benchmarks/gpu_check.py), each run in a process of its own.

A part is a function of the check's `Plan` that puts what it measured into `Figures` as it goes, so a part
stopped at its time limit still leaves its first numbers on disk. Parts drive the harness as a researcher
does (`harness run / eval / export`, torchrun) and reuse `make bench`'s step helpers. Nothing here is
specific to the GPU except that the plan says `cuda`, so `--dry-run` (the CPU, tiny sizes) walks the same
code.

    python -m benchmarks.gpu_parts PART PLAN_JSON    # how gpu_check.py starts each part
"""

from __future__ import annotations

import gc
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import torch

from benchmarks.bench import bare_step, batch_for, harness_step, harness_trainer, interleaved, measure, ratio
from harness.io import atomic_write_json

METHOD_NAMES = ("clean", "occ_aug", "distill", "dslope")
# name -> (train.amp, train.amp_dtype, what the records' training.precision must say on CUDA)
PRECISIONS = {
    "fp32": (False, "float16", "float32"),
    "fp16": (True, "float16", "amp-float16"),
    "bf16": (True, "bfloat16", "amp-bfloat16"),
}
TINY = "configs/pose/tiny.yaml"  # the precision and torchrun runs: a few steps, sizes set by the plan
CELL = "configs/pose/quick_hrnet_w18_small.yaml"  # the pose validity grid's config
CELL_METHODS = ("occ_aug", "dslope")


@dataclass(frozen=True)
class Plan:
    """What the parts run: the device, the sizes, and the --set overrides that make a dry run tiny."""

    device: str
    workdir: str
    big: tuple[str, tuple[int, int]]  # backbone and input size of the precision, memory and loader parts
    small: tuple[str, tuple[int, int]]  # P1's second, launch-bound case
    batch: int
    rounds: int  # interleaved P1 rounds, after `warmup` rounds
    warmup: int
    loader_batches: int
    precisions: list[str] = field(default_factory=lambda: list(PRECISIONS))
    run_sets: list[str] = field(default_factory=list)  # on configs/pose/tiny.yaml (precision, torchrun)
    cell_sets: list[str] = field(default_factory=list)  # on the validity cell's config
    loader_sets: list[str] = field(default_factory=list)  # on configs/pose/default.yaml
    eval_sets: list[str] = field(default_factory=list)  # on `harness eval`

    @property
    def cuda(self) -> bool:
        return self.device == "cuda"

    def save(self, path: Path) -> None:
        atomic_write_json(path, asdict(self))

    @classmethod
    def load(cls, path: Path) -> Plan:
        raw = json.loads(Path(path).read_text())
        for key in ("big", "small"):
            raw[key] = (raw[key][0], tuple(raw[key][1]))
        return cls(**raw)


class Figures(dict):
    """A part's numbers, rewritten to its json at every `put`: a part cut short keeps those it has."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path

    def put(self, key: str, value) -> None:
        self[key] = value
        atomic_write_json(self.path, dict(self))


# --------------------------------------------------------------------------- helpers


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


def as_sets(*overrides: str) -> list[str]:
    return [x for item in overrides for x in ("--set", item)]


def size_sets(backbone: str, size: tuple[int, int], batch: int) -> list[str]:
    return [
        f"model.backbone={backbone}",
        f"data.input_size=[{size[0]},{size[1]}]",
        f"train.batch_size={batch}",
    ]


def outputs(folder: Path) -> list[str]:
    return [f"output.work_dir={folder / 'work'}", f"output.results_dir={folder / 'results'}"]


def torchrun(nproc: int) -> list[str]:
    """torchrun's module and options for `nproc` ranks on this machine (the README's torchrun form)."""
    return ["torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "--max-restarts=0", "-m"]


def harness(args: list[str], launcher: list[str] | None = None) -> tuple[int, float, str]:
    """A harness command as a researcher types it: exit code, wall seconds, output (echoed to the log)."""
    command = [sys.executable, "-m", *(launcher or []), "harness.cli", *args]
    start = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(f"$ {' '.join(command[1:])}\n{done.stdout}", flush=True)
    return done.returncode, round(time.perf_counter() - start, 1), done.stdout


def records(results_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((results_dir / "runs").glob("*.json"))]


def evaluated(recs: list[dict], **match) -> list[dict]:
    """Records of each run's evaluated network (ENet for D-Slope) whose fields equal `match`."""
    return [r for r in recs if r["evaluated"] is True and all(r[k] == v for k, v in match.items())]


def run_dir_of(folder: Path, method: str) -> Path | None:
    found = sorted((folder / "work").glob(f"pose_{method}_*"))
    return found[-1] if found else None


def last_loss(run_dir: Path | None) -> float | None:
    """A run's last logged training loss (metrics.jsonl), None when it logged none."""
    path = run_dir / "metrics.jsonl" if run_dir else None
    if path is None or not path.is_file():
        return None
    losses = [json.loads(line).get("train_loss") for line in path.read_text().splitlines()]
    losses = [v for v in losses if v is not None]
    return losses[-1] if losses else None


def all_ok(recs: list[dict]) -> bool:
    return bool(recs) and all(r["status"] == "ok" for r in recs)


def run_ok(rc: int, recs: list[dict]) -> bool:
    return rc == 0 and all_ok(recs)


def verdict(ok: bool | None) -> str:
    return {True: "ok", False: "FAIL", None: "not run"}[ok]


# --------------------------------------------------------------------------- parts


def part_precision(plan: Plan, out: Figures) -> None:
    """Every method, two steps on `plan.big` at `plan.batch` in fp32, fp16 (grad scaler) and bf16, through
    `harness run --method all`: each run must finish (a non-finite loss fails it) and its records must name
    the precision. float16 autocast is CUDA-only: on the CPU the harness trains fp16 runs in float32."""
    backbone, size = plan.big
    for name in plan.precisions:
        amp, dtype, on_cuda = PRECISIONS[name]
        expected = "float32" if name == "fp16" and not plan.cuda else on_cuda
        folder = Path(plan.workdir) / "precision" / name
        sets = [
            *size_sets(backbone, size, plan.batch),
            *plan.run_sets,
            f"train.amp={str(amp).lower()}",
            f"train.amp_dtype={dtype}",
            *outputs(folder),
        ]
        rc, seconds, _ = harness(
            ["run", "--config", TINY, "--method", "all", "--device", plan.device, *as_sets(*sets)]
        )
        methods = {}
        for method in METHOD_NAMES:
            recs = [r for r in records(folder / "results") if r["method"] == method]
            named = sorted({r["training"]["precision"] for r in recs})
            loss = last_loss(run_dir_of(folder, method))
            ok = all_ok(recs) and named == [expected] and loss is not None and math.isfinite(loss)
            speed = recs[0]["training"]["steps_per_second"] if recs else None
            methods[method] = {
                "precision": named,
                "expected": expected,
                "loss": loss,
                "steps_per_s": speed,
                "ok": ok,
            }
        out.put(name, {"exit_code": rc, "seconds": seconds, "methods": methods})
    out.put(
        "ok",
        all(
            out[p]["exit_code"] == 0 and all(m["ok"] for m in out[p]["methods"].values())
            for p in plan.precisions
        ),
    )
    out.put(
        "summary",
        "; ".join(
            f"{p}: " + ", ".join(f"{m} {verdict(r['ok'])}" for m, r in out[p]["methods"].items())
            for p in plan.precisions
        ),
    )


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
    from harness.config import CONFIG_ROOT, load_config
    from harness.factory import build_task
    from harness.registry import METHODS
    from harness.run_setup import occlusion_plan

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
    from harness import distributed
    from harness.run_setup import train_loader

    cfg.train.num_workers = workers
    return train_loader(cfg, train_set, distributed.Context(), torch.device(plan.device))


def images_per_s(batches, count: int, step=None, device=None) -> float:
    """Samples per second over `count` batches (the first, the workers' start-up, is not timed); with
    `step`, each batch is also moved to `device` and trained on."""
    from harness.batches import to_device

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
    from harness.batches import to_device
    from harness.run_setup import default_workers

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


def part_validity(plan: Plan, out: Figures) -> None:
    """One cell of the pose validity grid end to end (configs/pose/quick_hrnet_w18_small.yaml, seed 0):
    occ_aug then D-Slope from a fresh cache (embedded data and pretraining built here), records, wall time."""
    folder = Path(plan.workdir) / "validity"
    for method in CELL_METHODS:
        sets = [*outputs(folder), "seed=0", *plan.cell_sets]
        rc, seconds, _ = harness(
            ["run", "--config", CELL, "--method", method, "--device", plan.device, *as_sets(*sets)]
        )
        recs = evaluated(records(folder / "results"), method=method)
        out.put(
            method,
            {
                "exit_code": rc,
                "wall_s": seconds,
                "AP": {r["split"]: r["metrics"].get("AP") for r in recs},
                "train_s": recs[0]["training"]["train_seconds"] if recs else None,
                "ok": run_ok(rc, recs) and len(recs) == 2,
            },
        )
    out.put("wall_s", round(sum(out[m]["wall_s"] for m in CELL_METHODS), 1))
    out.put("ok", all(out[m]["ok"] for m in CELL_METHODS))
    aps = "; ".join(
        f"{m} AP " + ", ".join(f"{k} {v:.3f}" for k, v in out[m]["AP"].items() if v is not None)
        for m in CELL_METHODS
    )
    out.put("summary", f"{out['wall_s']:.0f} s wall; {aps}")


def part_ddp(plan: Plan, out: Figures) -> None:
    """torchrun with one process (a whole `harness run`; at world size 1 the harness starts no process
    group), the harness's DDP step over NCCL through torchrun (`ddp_probe`), and `harness run --nproc 2`
    where 2 GPUs exist."""
    gpus = torch.cuda.device_count() if plan.cuda else 0

    def run(name: str, launcher: list[str] | None, extra: list[str]) -> dict:
        folder = Path(plan.workdir) / "ddp" / name
        sets = [*plan.run_sets, *outputs(folder)]
        args = [
            "run",
            "--config",
            TINY,
            "--method",
            "dslope",
            "--device",
            plan.device,
            *extra,
            *as_sets(*sets),
        ]
        rc, seconds, _ = harness(args, launcher)
        recs = records(folder / "results")
        sizes = sorted({r["training"]["world_size"] for r in recs})
        return {"exit_code": rc, "seconds": seconds, "world_size": sizes, "ok": run_ok(rc, recs)}

    out.put("torchrun_nproc_1", run("torchrun1", torchrun(1), []))
    ranks = min(max(gpus, 1), 2)
    plan_file = Path(plan.workdir) / "plan.json"
    command = [sys.executable, "-m", *torchrun(ranks), "benchmarks.gpu_parts", "ddp_probe", str(plan_file)]
    probe = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(f"$ {' '.join(command[1:])}\n{probe.stdout}", flush=True)
    found = Path(plan.workdir) / "parts" / "ddp_probe.json"
    result = json.loads(found.read_text()) if found.is_file() else {}
    out.put(
        "ddp_probe",
        {
            "exit_code": probe.returncode,
            **result,
            "ok": probe.returncode == 0 and result.get("ranks_agree") is True,
        },
    )
    if gpus >= 2:
        out.put("nproc_2", run("nproc2", None, ["--nproc", "2"]))
    else:
        out.put("nproc_2", {"ok": None, "note": f"not run: {gpus} GPU(s) here, --nproc 2 needs 2"})
    steps = [out["torchrun_nproc_1"], out["ddp_probe"], out["nproc_2"]]
    out.put("ok", all(s["ok"] is not False for s in steps))
    over = f"{result.get('backend', '?')} x{result.get('world_size', '?')}"
    nproc2 = verdict(steps[2]["ok"]) if steps[2]["ok"] is not None else steps[2]["note"]
    out.put(
        "summary",
        f"torchrun 1 process {verdict(steps[0]['ok'])}; harness DDP step over {over} "
        f"{verdict(steps[1]['ok'])}; --nproc 2 {nproc2}",
    )


def ddp_probe(plan: Plan) -> None:
    """Under torchrun: two D-Slope steps of the harness's Trainer through its DataParallelStep over NCCL
    (gloo on the CPU); every rank's weights must then agree. Rank 0 writes parts/ddp_probe.json."""
    import torch.distributed as dist

    from harness import distributed

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
        atomic_write_json(
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


def part_eval_export(plan: Plan, out: Figures) -> None:
    """`harness eval` and `harness export` of the validity cell's D-Slope run: the eval must give the AP the
    run recorded on each split; onnxruntime must reproduce PyTorch's output (max |diff| < 1e-3)."""
    cell = Path(plan.workdir) / "validity"
    run_dir = run_dir_of(cell, "dslope")
    if run_dir is None:
        out.put("ok", False)
        out.put("summary", "no D-Slope run dir from the validity part to evaluate")
        return
    results = Path(plan.workdir) / "eval"
    sets = [f"output.results_dir={results}", *plan.eval_sets]
    rc, seconds, _ = harness(["eval", str(run_dir), "--device", plan.device, *as_sets(*sets)])
    trained = {
        r["split"]: r["metrics"].get("AP") for r in evaluated(records(cell / "results"), run_id=run_dir.name)
    }
    again = {r["split"]: r["metrics"].get("AP") for r in records(results)}
    diffs = [abs(again[k] - v) for k, v in trained.items() if again.get(k) is not None and v is not None]
    diff = max(diffs) if len(diffs) == len(trained) and diffs else None
    ok = rc == 0 and diff is not None and diff < 1e-3
    out.put(
        "eval",
        {
            "exit_code": rc,
            "seconds": seconds,
            "AP": again,
            "AP_at_training": trained,
            "max_abs_AP_diff": diff,
            "ok": ok,
        },
    )
    rc, seconds, text = harness(["export", str(run_dir), "--onnx", str(Path(plan.workdir) / "enet.onnx")])
    found = re.search(r"max \|diff\| (\S+)", text)
    max_diff = float(found.group(1)) if rc == 0 and found else None
    out.put(
        "export",
        {
            "exit_code": rc,
            "seconds": seconds,
            "onnx_vs_pytorch_max_abs_diff": max_diff,
            "ok": max_diff is not None and max_diff < 1e-3,
        },
    )
    out.put("ok", out["eval"]["ok"] and out["export"]["ok"])
    out.put(
        "summary",
        f"eval {verdict(ok)} (AP {again}, max |diff| to training {diff}); "
        f"ONNX vs PyTorch max |diff| {max_diff} {verdict(out['export']['ok'])}",
    )


PARTS = {
    "precision": part_precision,
    "step_time": part_step_time,
    "validity": part_validity,
    "loader": part_loader,
    "ddp": part_ddp,
    "eval_export": part_eval_export,
}


def main() -> None:
    name, plan_file = sys.argv[1], Path(sys.argv[2])
    plan = Plan.load(plan_file)
    if name == "ddp_probe":
        ddp_probe(plan)
    else:
        PARTS[name](plan, Figures(plan_file.parent / "parts" / f"{name}.json"))


if __name__ == "__main__":
    main()
