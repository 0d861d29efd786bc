"""`make bench`: the harness measured against the bare model and against its targets, in one run.

P1  D-Slope step time / clean step time (hrnet_w32, batch 8, 128x96 and 256x192)        target <= 2.05
    with, from the same rounds, the floor the hardware sets: a bare two-network step (both graphs
    alive, as D-Slope needs them) / a bare one-network step, and the harness's D-Slope over that floor
P2  harness clean step / bare timm forward+backward+Adam step, same tensors (128x96)    target <= 1.10
P3  occluded twin + crop + heatmaps from JPEG files, pairs/s on one core (256x192)       target >= 150
P4  wall time of each task's embedded default job from a fresh cache (`make run` = `harness run --task pose`,
    embedded pretraining included; face_alignment/hrnet_w18, face_recognition/resnet18)   target <= 300 s
    and its peak memory (max RSS)                                                         target <= 4 GiB
P5  evaluation throughput: decode + flip merge + back-projection + OKS AP, predictions/s  (reported)

Every row: median and spread (max - min) of several repetitions after a warm-up. Step-time ratios come
from interleaved rounds (one step of each variant per round, ratio per round, median over rounds), so
the drift of a shared VM hits both sides of a ratio alike. Ratios hold across machines; absolute
numbers are this machine's. Writes results/bench/bench.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from harness.core.config import CONFIG_ROOT, load_config
from harness.core.io import atomic_torch_save, atomic_write_json
from harness.core.registry import METHODS
from harness.models.factory import build_task, model_builder
from harness.train.trainer import Trainer


def measure(fn: Callable[[], object], repeats: int, warmup: int = 1) -> tuple[float, float]:
    """Median and spread of `fn`'s wall time after `warmup` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), max(times) - min(times)


def interleaved(fns: dict[str, Callable[[], object]], rounds: int, warmup: int = 1) -> dict[str, list[float]]:
    """Wall times of each function over `rounds` rounds, one call of each per round, after `warmup` rounds."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for index in range(warmup + rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            if index >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


def ratio(times: dict[str, list[float]], top: str, bottom: str) -> tuple[float, float]:
    """Median and spread (max - min) of the per-round ratio top/bottom."""
    ratios = [a / b for a, b in zip(times[top], times[bottom], strict=True)]
    return statistics.median(ratios), max(ratios) - min(ratios)


CPU = torch.device("cpu")


def pose_config(size: tuple[int, int], backbone: str = "hrnet_w32"):
    size_key = f"data.input_size=[{size[0]},{size[1]}]"
    return load_config(
        CONFIG_ROOT / "pose/default.yaml", [size_key, f"model.backbone={backbone}", "model.pretrained=null"]
    )


def pose_task(size: tuple[int, int]):
    return build_task(pose_config(size))


def batch_for(size: tuple[int, int], n: int, device: torch.device = CPU) -> dict:
    g = torch.Generator().manual_seed(0)
    h, w = size
    batch = {
        "image": torch.randn(n, 3, h, w, generator=g),
        "twin": torch.randn(n, 3, h, w, generator=g),
        "target": torch.rand(n, 17, h // 4, w // 4, generator=g),
        "target_weight": torch.ones(n, 17),
    }
    return {key: value.to(device) for key, value in batch.items()}


def method_for(name: str, build, loss):
    """A registered method with default settings. distill needs a teacher checkpoint on disk: an untrained
    clean one is written to a temp dir and loaded (only time and memory are measured, not accuracy)."""
    cls = METHODS.get(name)
    if name != "distill":
        return cls(build, loss)
    with tempfile.TemporaryDirectory() as tmp:
        atomic_torch_save(
            Path(tmp) / "checkpoint.pt", {"method": METHODS.get("clean")(build, loss).state_dict()}
        )
        return cls(build, loss, cls.Settings(teacher=tmp))


def harness_trainer(
    method_name: str, size, backbone: str = "hrnet_w32", device: torch.device = CPU
) -> Trainer:
    """The harness's own Trainer around a method with one Adam per network, full precision."""
    task = pose_task(size)
    build = model_builder(pose_config(size, backbone), task)
    torch.manual_seed(0)
    method = method_for(method_name, build, task.loss)
    optimizers = {k: torch.optim.Adam(p, lr=1e-3) for k, p in method.optimizer_groups().items()}
    return Trainer(method, optimizers, {}, device=device, epochs=1)


def harness_step(
    method_name: str, size, n: int, backbone: str = "hrnet_w32", device: torch.device = CPU
) -> Callable[[], object]:
    """One optimizer step through the harness's own Trainer._step (data already in memory, on `device`)."""
    trainer = harness_trainer(method_name, size, backbone, device)
    batch = batch_for(size, n, device)
    return lambda: trainer._step(batch)


def bare_step(
    size, n: int, backbone: str = "hrnet_w32", networks: int = 1, device: torch.device = CPU
) -> Callable[[], object]:
    """The same network written by hand with timm: forward, weighted MSE, backward, Adam.

    With `networks=2`, two such networks on the clean image and the twin, both forwards before one
    backward of the summed loss, one Adam each: D-Slope's step without the harness and the imitation.
    """
    import timm

    from tasks.common.heatmap_model import HeatmapHead

    torch.manual_seed(0)
    batch = batch_for(size, n, device)
    nets = []
    for _ in range(networks):
        body = timm.create_model(backbone, features_only=True, feature_location="", out_indices=(1,))
        head = HeatmapHead(body.feature_info.channels()[0], 4, 17)
        body, head = body.to(device), head.to(device)
        optimizer = torch.optim.Adam([*body.parameters(), *head.parameters()], lr=1e-3)
        nets.append((body, head, optimizer))
    inputs = (batch["image"], batch["twin"])[:networks]
    w = batch["target_weight"][:, :, None, None]

    def step():
        loss = 0.0
        for (body, head, _), x in zip(nets, inputs, strict=True):
            out = head(body(x)[0])
            loss = loss + 0.5 * torch.mean((out * w - batch["target"] * w) ** 2)
        for _, _, optimizer in nets:
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for _, _, optimizer in nets:
            optimizer.step()

    return step


def twin_pipeline(cache: Path, count: int) -> tuple[Callable[[], object], dict[str, float]]:
    """CocoKeypoints with twins + augmentation at 256x192 on synthetic JPEGs; plus a per-stage breakdown."""
    import cv2

    from harness.core.io import read_image
    from harness.core.occlusion import OcclusionSettings, occluded_twin
    from tasks.common import heatmap
    from tasks.pose.dataset import Augmentation, CocoKeypoints, TwinSource
    from tasks.pose.keypoints import COCO_BODY_PARTS, COCO_OCCLUSION_ANCHORS
    from tasks.pose.patches import cut_body_part_patches
    from tasks.pose.synthetic import ensure_synthetic_coco

    ann, images = ensure_synthetic_coco(cache, split="bench", num_images=200, seed=0)
    library = cut_body_part_patches(ann, images, parts=COCO_BODY_PARTS, max_patches=300)
    settings = OcclusionSettings(clean_fraction=0.0)
    twins = TwinSource(library, settings, COCO_OCCLUSION_ANCHORS)
    dataset = CocoKeypoints(ann, images, input_size=(256, 192), augmentation=Augmentation(), twins=twins)
    n = min(count, len(dataset))

    def run():
        for i in range(n):
            dataset[i]

    records = dataset.records[:n]
    rng = np.random.default_rng(0)
    stages = {}
    start = time.perf_counter()
    decoded = [read_image(r.image_path) for r in records]
    stages["decode"] = (time.perf_counter() - start) / n
    start = time.perf_counter()
    for img, r in zip(decoded, records, strict=True):
        occluded_twin(
            img, r.keypoints, r.box, library, rng, anchors=COCO_OCCLUSION_ANCHORS, settings=settings
        )
    stages["paste"] = (time.perf_counter() - start) / n
    start = time.perf_counter()
    for img, r in zip(decoded, records, strict=True):
        center, size = heatmap.box_to_center_size(r.box, 0.75)
        m = heatmap.crop_affine(center, size, 10.0, (256, 192))
        for _ in range(2):  # clean and twin
            cv2.warpAffine(img, m, (192, 256), flags=cv2.INTER_LINEAR)
    stages["affine (x2)"] = (time.perf_counter() - start) / n
    start = time.perf_counter()
    for r in records:
        heatmap.encode_heatmaps(r.keypoints[:, :2] / 4, r.keypoints[:, 2] > 0, (64, 48), 2.0)
    stages["heatmaps"] = (time.perf_counter() - start) / n
    return run, {"n": n, **{k: round(v * 1000, 3) for k, v in stages.items()}}


def eval_pipeline(cache: Path) -> tuple[Callable[[], object], int]:
    """predict (flip merge, decode, back-projection) + OKS AP with a stand-in network of fixed heatmaps."""
    from torch.utils.data import DataLoader

    from tasks.pose.dataset import CocoKeypoints
    from tasks.pose.synthetic import ensure_synthetic_coco

    ann, images = ensure_synthetic_coco(cache, split="bench", num_images=200, seed=0)
    task = pose_task((256, 192))
    dataset = CocoKeypoints(ann, images, input_size=(256, 192))
    batches = list(DataLoader(dataset, batch_size=64))
    heatmaps = {id(b["image"]): b["target"] for b in batches}

    def model(images):  # the network is not what P5 measures
        return heatmaps.get(id(images), next(iter(heatmaps.values()))[: len(images)])

    def run():
        predictions = []
        for b in batches:
            predictions += task.predict(model, b)
        task.evaluate(predictions, dataset)

    return run, len(dataset)


# Runs the job and reports its peak RSS from a tiny fresh interpreter: measured from this process, Linux
# would fold this process's own high-water mark (inherited across fork/exec) into the child's.
_PEAK_WRAPPER = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


# The embedded default job of each task, as the README gives it (`harness run --task T [--backbone B]`);
# pose's is exactly `make run` (its config's own backbone, the embedded pretraining paid in the fresh cache).
DEFAULT_JOBS = (("pose", None), ("face_alignment", "hrnet_w18"), ("face_recognition", "resnet18"))


def default_job(task: str, backbone: str | None) -> tuple[float, float]:
    """Wall seconds and peak RSS (GiB) of a task's embedded default job, in a fresh cache and output dir."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "HARNESS_CACHE": str(Path(tmp) / "cache")}
        command = [
            sys.executable,
            "-m",
            "harness.cli",
            "run",
            "--task",
            task,
            *(["--backbone", backbone] if backbone else []),
            "--set",
            f"output.results_dir={tmp}/results",
            "--set",
            f"output.work_dir={tmp}/work",
        ]
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", _PEAK_WRAPPER, *command], env=env, check=True,
                              capture_output=True, text=True)  # fmt: skip
        wall = time.perf_counter() - start
    return wall, int(done.stdout.split()[-1]) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description="Performance targets of the harness (see module doc).")
    parser.add_argument("--repeats", type=int, default=3, help="repetitions of P3 and P5")
    parser.add_argument(
        "--rounds", type=int, default=15, help="interleaved step rounds of P1/P2 at 128x96 (half at 256x192)"
    )
    parser.add_argument("--skip-job", action="store_true", help="skip P4 (the tasks' default jobs, ~10 min)")
    parser.add_argument("--out", type=Path, default=Path("results/bench/bench.json"))
    args = parser.parse_args()
    rows = []

    def row(name, what, value, spread, target, passed, unit=""):
        rows.append(
            {
                "id": name,
                "what": what,
                "value": round(value, 4),
                "spread": round(spread, 4),
                "unit": unit,
                "target": target,
                "pass": passed,
            }
        )

    # The short 128x96 step gets more rounds: its per-round ratio is the noisier one.
    for size, rounds in (((128, 96), args.rounds), ((256, 192), max(3, args.rounds // 2))):
        times = interleaved(
            {
                "clean": harness_step("clean", size, 8),
                "dslope": harness_step("dslope", size, 8),
                "bare_one": bare_step(size, 8),
                "bare_two": bare_step(size, 8, networks=2),
            },
            rounds,
        )
        seconds = {name: statistics.median(t) for name, t in times.items()}
        label = f"hrnet_w32 b8 {size[0]}x{size[1]}, {rounds} rounds"
        p1 = ratio(times, "dslope", "clean")
        row(
            "P1",
            f"dslope/clean step, {label} ({seconds['dslope']:.2f}/{seconds['clean']:.2f} s)",
            *p1,
            "<= 2.05",
            p1[0] <= 2.05,
            "x",
        )
        floor = ratio(times, "bare_two", "bare_one")
        pair = f"{seconds['bare_two']:.2f}/{seconds['bare_one']:.2f} s"
        what = f"floor: bare two-network / one-network step, {label} ({pair})"
        row("P1", what, *floor, "reported", True, "x")
        over = ratio(times, "dslope", "bare_two")
        row("P1", f"harness dslope / bare two-network step, {label}", *over, "reported", True, "x")
        if size == (128, 96):
            p2 = ratio(times, "clean", "bare_one")
            pair = f"{seconds['clean']:.3f}/{seconds['bare_one']:.3f} s"
            row("P2", f"harness clean / bare timm step, {label} ({pair})", *p2, "<= 1.10", p2[0] <= 1.10, "x")
    with tempfile.TemporaryDirectory() as tmp:
        torch.set_num_threads(1)
        cv_threads = __import__("cv2").getNumThreads()
        __import__("cv2").setNumThreads(1)
        pipeline, breakdown = twin_pipeline(Path(tmp), 150)
        seconds, spread = measure(pipeline, args.repeats)
        rate = breakdown["n"] / seconds
        row(
            "P3",
            f"twin+crop+heatmaps 256x192 from JPEG, 1 core (ms/pair: {breakdown})",
            rate,
            rate * spread / seconds,
            ">= 150",
            rate >= 150,
            "pairs/s",
        )
        evaluate, count = eval_pipeline(Path(tmp))
        seconds, spread = measure(evaluate, args.repeats)
        row(
            "P5",
            f"predict (flip) + decode + OKS AP, {count} persons, 1 core",
            count / seconds,
            count * spread / seconds**2,
            "reported",
            True,
            "predictions/s",
        )
        torch.set_num_threads(os.cpu_count() or 1)
        __import__("cv2").setNumThreads(cv_threads)
    if not args.skip_job:
        for task, backbone in DEFAULT_JOBS:
            wall, peak = default_job(task, backbone)
            what = f"embedded default {task} job ({backbone or 'config default'}, fresh cache, no install)"
            row("P4", f"{what}, wall", wall, 0.0, "<= 300 s", wall <= 300, "s")
            row("P4", f"{what}, peak memory (max RSS)", peak, 0.0, "<= 4 GiB", peak <= 4, "GiB")
    table = Table(
        title=f"make bench ({platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__})"
    )
    for column in ("id", "what", "median", "spread", "target", "pass"):
        table.add_column(column, overflow="fold")
    for r in rows:
        value = "–" if r["value"] is None else f"{r['value']:.3f} {r['unit']}"
        spread = "–" if r["spread"] is None else f"±{r['spread']:.3f}"
        verdict = {True: "pass", False: "FAIL", None: r.get("note", "–")}[r["pass"]]
        table.add_row(r["id"], r["what"], value, spread, r["target"], verdict)
    Console(width=160).print(table)
    summary = {"repeats": args.repeats, "cores": os.cpu_count(), "rows": rows}
    atomic_write_json(args.out, summary)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
