"""The parts of `make gpu-check` (benchmarks/gpu_check.py), each run in a process of its own.

A part is a function of the check's `Plan` that puts what it measured into `Figures` as it goes, so a part
stopped at its time limit still leaves its first numbers on disk. The parts here drive the harness as a
researcher does (`harness run / eval / export`, torchrun) and import no torch; those that measure steps and
the data loader with `make bench`'s helpers are in gpu_measure.py. Nothing is specific to the GPU except that
the plan says `cuda`, so `--dry-run` (the CPU, tiny sizes) walks the same code.

    python -m benchmarks.gpu_parts PART PLAN_JSON    # how gpu_check.py starts each part
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

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
    gpus: int = 0  # CUDA devices on this machine (--nproc 2 needs 2)
    precisions: list[str] = field(default_factory=lambda: list(PRECISIONS))
    run_sets: list[str] = field(default_factory=list)  # on configs/pose/tiny.yaml (precision, torchrun)
    cell_sets: list[str] = field(default_factory=list)  # on the validity cell's config
    loader_sets: list[str] = field(default_factory=list)  # on configs/pose/default.yaml
    eval_sets: list[str] = field(default_factory=list)  # on `harness eval`

    @property
    def cuda(self) -> bool:
        return self.device == "cuda"

    def save(self, path: Path) -> None:
        write_json(path, asdict(self))

    @classmethod
    def load(cls, path: Path) -> Plan:
        raw = json.loads(Path(path).read_text())
        for key in ("big", "small"):
            raw[key] = (raw[key][0], tuple(raw[key][1]))
        return cls(**raw)


def write_json(path: Path, data) -> None:
    """Whole or not at all (a temp file renamed over it), keys in the order they were put."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(temp, path)


class Figures(dict):
    """A part's numbers, rewritten to its json at every `put`: a part cut short keeps those it has."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path

    def put(self, key: str, value) -> None:
        self[key] = value
        write_json(self.path, dict(self))


# --------------------------------------------------------------------------- helpers


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
    gpus = plan.gpus

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


DRIVING = {
    "precision": part_precision,
    "ddp": part_ddp,
    "validity": part_validity,
    "eval_export": part_eval_export,
}
MEASURING = ("step_time", "loader", "ddp_probe")  # in benchmarks/gpu_measure.py


def main() -> None:
    name, plan_file = sys.argv[1], Path(sys.argv[2])
    plan = Plan.load(plan_file)
    figures = Figures(plan_file.parent / "parts" / f"{name}.json")
    if name in DRIVING:
        DRIVING[name](plan, figures)
        return
    from benchmarks import gpu_measure

    if name == "ddp_probe":
        gpu_measure.ddp_probe(plan)
    else:
        getattr(gpu_measure, f"part_{name}")(plan, figures)


if __name__ == "__main__":
    main()
