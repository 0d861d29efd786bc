"""Build the robustness leaderboard on the embedded benchmarks (README: "Scoring models you already have").

Rows, each scored at every level of its task's occlusion ladder (`harness eval --severity 0,1,2,3,4`):
- pose: the validity v3 studies' trained runs, one starting checkpoint (pretrain.seed 1000) per backbone
  family (HRNet-W18-small, LiteHRNet-18, ResNet-18), 4 methods x 3 seeds; their run dirs must be on this
  machine (run `harness sweep configs/sweeps/validity_v3_pose.yaml` and `..._backbones.yaml` first);
- face alignment and face recognition: clean and D-Slope in each task's validity regime (the `quick_*` config
  its validity sweep runs: fine-tuned from the embedded pretraining checkpoint), 3 seeds, trained here;
- one random-init external model per spec (`mmpose:`, `face_alignment:`, `onnx:`), its weights drawn from
  seed 0 and saved by this script: a pipeline check that scores what a random network scores, not a result.
Every step is skipped when its records are already in --results, so an interrupted build resumes, and the
leaderboard is then `harness report --results <results>`.

    python benchmarks/embedded_leaderboard.py [--part pose --part face_alignment ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEVERITY = "0,1,2,3,4"
PARTS = ("pose", "face_alignment", "face_recognition")
MMPOSE_CONFIG = "td-hm_litehrnet-18_8xb64-210e_coco-256x192"
FAN_VARIANT = "2DFAN-4"
# The pose studies whose runs are scored: (records, their work dir), both relative to the repository.
POSE_STUDIES = (
    ("results/validity/v3/pose", "work_dirs/validity/v3/pose"),
    ("results/validity/v3/pose_backbones", "work_dirs/validity/v3/pose_backbones"),
)
POSE_CHECKPOINT = 1000  # pretrain.seed of the one starting checkpoint per backbone family
# Face tasks: clean and D-Slope in the validity regime on the embedded data (face alignment in the 68-point
# layout, so its trained rows share a table with FAN, which predicts 300W's points).
FACE_JOBS = {
    "face_alignment": ["--config", "configs/face_alignment/quick_hrnetv2_w18_small.yaml",
                       "--set", "data.synthetic_layout=300w"],
    "face_recognition": ["--config", "configs/face_recognition/quick_resnet18.yaml"],
}  # fmt: skip


def harness(*args: str) -> None:
    """Run one harness command in its own process (as a user would), stopping the build if it fails."""
    command = [sys.executable, "-m", "harness.cli", *args]
    print("+ harness " + " ".join(args), flush=True)
    subprocess.run(command, cwd=ROOT, check=True)


def records(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((results / "runs").glob("*.json"))]


def scored(results: Path, prefix: str) -> bool:
    """Whether the leaderboard already holds severity records of run id `prefix`.eval-*."""
    mine = (r for r in records(results) if r["run_id"].startswith(prefix + ".eval-"))
    return any(r.get("severity") is not None for r in mine)


def pose_runs(seeds: list[int] | None = None) -> Iterator[Path]:
    """Run dirs of the pose studies' finished runs on the chosen starting checkpoint (evaluated network,
    clean split: one record per run), of the given run seeds (None: all)."""
    for study, work in POSE_STUDIES:
        for record in records(ROOT / study):
            pretrain = record["config"].get("pretrain", {})
            if seeds is not None and record["seed"] not in seeds:
                continue
            if record["evaluated"] and record["split_role"] == "clean" and record["status"] == "ok":
                if pretrain.get("seed") == POSE_CHECKPOINT and record["training"]["steps"] == 150:
                    yield ROOT / work / record["run_id"]


def random_models(folder: Path) -> dict[str, Path]:
    """One random-init model per external spec, drawn from seed 0 (same files on every machine and run)."""
    import torch
    import torchvision

    folder.mkdir(parents=True, exist_ok=True)
    files = {"mmpose": folder / f"{MMPOSE_CONFIG}_random.pth", "fan": folder / f"{FAN_VARIANT}_random.pth",
             "onnx": folder / "arcface_resnet18_random.onnx"}  # fmt: skip
    if not files["mmpose"].is_file():
        from mmengine.config import Config
        from mmengine.registry import init_default_scope

        from harness.models.mmpose_imports import import_mmpose_models
        from tasks.pose.external_mmpose import resolve_config

        import_mmpose_models()
        from mmpose.models.builder import build_pose_estimator

        config = Config.fromfile(str(resolve_config(MMPOSE_CONFIG)))
        init_default_scope("mmpose")
        config.model.backbone.pop("init_cfg", None)  # no ImageNet download: random init
        torch.manual_seed(0)
        torch.save({"state_dict": build_pose_estimator(config.model).state_dict()}, files["mmpose"])
    if not files["fan"].is_file():
        from face_alignment.models import FAN

        torch.manual_seed(0)
        torch.save(FAN(int(FAN_VARIANT[-1])).state_dict(), files["fan"])
    if not files["onnx"].is_file():
        torch.manual_seed(0)
        model = torchvision.models.resnet18(num_classes=512).eval()  # the default config's embedding size
        torch.onnx.export(
            model, (torch.zeros(1, 3, 112, 112),), str(files["onnx"]), dynamo=False, input_names=["data"],
            output_names=["fc1"], dynamic_axes={"data": {0: "batch"}, "fc1": {0: "batch"}},
        )  # fmt: skip
    return files


def trained(results: Path, task: str, seed: int) -> list[dict]:
    """The training records (not evaluations) of `task` at `seed` in the leaderboard."""
    return [r for r in records(results) if (r["task"], r["seed"], r["severity"]) == (task, seed, None)]


def trained_face_runs(results: Path, task: str, seeds: list[int]) -> Iterator[Path]:
    """Train the task's job once per seed (skipped when its records exist), yield its run dirs."""
    work = ROOT / "work_dirs" / "leaderboard"
    for seed in seeds:
        if not trained(results, task, seed):
            outputs = ["--set", f"output.results_dir={results}", "--set", f"output.work_dir={work}"]
            harness("run", *FACE_JOBS[task], "--set", f"seed={seed}", *outputs)
        mine = trained(results, task, seed)
        yield from sorted({work / r["run_id"] for r in mine if "." not in r["run_id"]})


def score_run(results: Path, run_dir: Path) -> None:
    if not scored(results, run_dir.name):
        harness("eval", str(run_dir), "--severity", SEVERITY, "--set", f"output.results_dir={results}")


def score_external(results: Path, spec: str, checkpoint: Path | None, task: str, *extra: str) -> None:
    kind, _, target = spec.partition(":")
    if not scored(results, f"{kind}-{Path(target).stem if kind == 'onnx' else target}"):
        weights = ["--checkpoint", str(checkpoint)] if checkpoint else []
        harness("eval", "--model", spec, *weights, "--task", task, "--severity", SEVERITY,
                "--set", f"output.results_dir={results}", *extra)  # fmt: skip


def main() -> None:
    """Score every row of the embedded leaderboard (resumable), then `harness report --results RESULTS`."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--results", type=Path, default=Path("results/leaderboard"), help="records go here")
    parser.add_argument("--part", action="append", choices=PARTS, help="task (repeatable; default: all)")
    parser.add_argument("--seeds", default="0,1,2", help="seeds of the face tasks' trained jobs")
    parser.add_argument("--pose-seeds", default="0,1,2", help="run seeds of the pose studies' runs to score")
    args = parser.parse_args()
    results, part = (ROOT / args.results).resolve(), args.part or list(PARTS)
    models = random_models(ROOT / "work_dirs" / "leaderboard" / "models")
    face_seeds = [int(s) for s in args.seeds.split(",")]
    if "pose" in part:
        for run_dir in pose_runs([int(seed) for seed in args.pose_seeds.split(",")]):
            score_run(results, run_dir)
        score_external(results, f"mmpose:{MMPOSE_CONFIG}", models["mmpose"], "pose",
                       "--config", "configs/pose/quick_hrnet_w18_small.yaml")  # fmt: skip
    if "face_alignment" in part:
        for run_dir in trained_face_runs(results, "face_alignment", face_seeds):
            score_run(results, run_dir)
        score_external(results, f"face_alignment:{FAN_VARIANT}", models["fan"], "face_alignment",
                       "--set", "data.synthetic_layout=300w")  # fmt: skip
    if "face_recognition" in part:
        for run_dir in trained_face_runs(results, "face_recognition", face_seeds):
            score_run(results, run_dir)
        score_external(results, f"onnx:{models['onnx']}", None, "face_recognition")
    harness("report", "--results", str(results))


if __name__ == "__main__":
    main()
