"""The CLI: help, list, one-line errors with non-zero exit and no result record."""

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from harness.cli import app

runner = CliRunner()


def test_help_documents_every_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("run", "list"):
        assert command in result.output


def test_module_form_knows_every_command():
    """`python -m harness.cli` (torchrun's and gpu-check's form) registers eval, predict and benchmark too."""
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    for command in ("run", "eval", "predict", "export", "benchmark"):
        assert command in done.stdout


def test_list_shows_registered_names():
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0
    for name in ("pose", "clean", "dslope", "hrnet_w32", "hrnet_w18_small", "resnet50"):
        assert name in result.output


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--backbone", "hrnet_w99"], "unknown backbone 'hrnet_w99'"),
        (["--task", "poze"], "unknown task 'poze'"),
        (["--method", "dslop"], "unknown method 'dslop'"),
        (["--set", "train.batchsize=2"], "unknown config key 'train.batchsize'"),
        (
            ["--set", "data.dataset=coco", "--set", "data.root=/no/such/coco"],
            "data.root: folder not found: /no/such/coco",
        ),
    ],
)
def test_bad_input_is_one_line_nonzero_and_writes_nothing(args, fragment, tiny_pose_overrides, tmp_path):
    sets = [x for o in tiny_pose_overrides for x in ("--set", o)]
    result = runner.invoke(app, ["run", "--task", "pose", *sets, *args])
    assert result.exit_code == 2, result.output
    assert fragment in result.output
    assert "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) <= 2
    assert not list((tmp_path / "results").rglob("*.json"))


def test_run_trains_both_methods_and_prints_comparison(tiny_pose_overrides, tmp_path):
    sets = [x for o in tiny_pose_overrides for x in ("--set", o)]
    result = runner.invoke(app, ["run", "--task", "pose", "--backbone", "hrnet_w18_small", *sets])
    assert result.exit_code == 0, result.output
    assert "Comparison" in result.output
    assert "clean: trained 2 steps on 8 images" in result.output
    assert "dslope: trained 2 steps on 8 images" in result.output
    assert len(list((tmp_path / "results" / "runs").glob("*.json"))) == 5
    # The verdict line: dslope minus clean on each split's primary metric, from the records just written.
    flat = " ".join(result.output.split())
    assert "verdict: pose/synthetic-coco/hrnet_w18_small: dslope − clean on occluded_val AP:" in flat
    assert "paired over 1 seed; too few seeds to judge" in flat


def test_unreadable_training_image_in_a_worker_is_one_line(tiny_pose_overrides, tmp_path):
    from tasks.pose.synthetic import ensure_synthetic_coco
    from tasks.pose.task import PoseSettings, PoseTask

    cache = tmp_path / "cache"
    ann_file, image_dir = ensure_synthetic_coco(cache / "pose", split="train", num_images=12, seed=0)
    # Cut (and cache) the patch library first, so the broken images are met by the loader's worker.
    PoseTask(PoseSettings(), cache_dir=cache).patch_library(ann_file, image_dir, max_patches=50, seed=0)
    for image in image_dir.iterdir():
        image.write_bytes(b"\xff\xd8\xff truncated")
    sets = [x for o in tiny_pose_overrides for x in ("--set", o)]
    extra = ["--set", f"data.cache_dir={cache}", "--set", "train.num_workers=1", "--method", "clean"]
    result = runner.invoke(app, ["run", "--task", "pose", *sets, *extra])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip() and "error" in line]
    assert len(lines) == 1 and "is a truncated JPEG" in lines[0]
    assert "Traceback" not in result.output
    assert not list((tmp_path / "results").rglob("*.json"))


def test_method_all_trains_every_method_with_the_clean_run_as_teacher(tiny_pose_overrides, tmp_path):
    sets = [x for o in tiny_pose_overrides for x in ("--set", o)]
    result = runner.invoke(app, ["run", "--task", "pose", "--method", "all", *sets])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    trained = [line.split(":")[0] for line in lines if ": trained 2 steps on 8 images" in line]
    assert trained == ["clean", "distill", "occ_aug", "dslope"]  # by role; distill after its prerequisite
    clean_runs = {p.name.split("__")[0] for p in (tmp_path / "results" / "runs").glob("pose_clean_*.json")}
    assert len(clean_runs) == 1  # the clean run of this command is the teacher: not trained a second time
    import json

    records = [json.loads(p.read_text()) for p in (tmp_path / "results" / "runs").glob("*distill*.json")]
    teacher = records[0]["config"]["method_args"]["distill"]["teacher"]
    assert "pose_clean_" in teacher and {r["network"] for r in records} == {"student"}


def test_distill_alone_trains_its_clean_teacher_first(tiny_pose_overrides, tmp_path):
    import json

    sets = [x for o in tiny_pose_overrides for x in ("--set", o)]
    result = runner.invoke(app, ["run", "--task", "pose", "--method", "distill", *sets])
    assert result.exit_code == 0, result.output
    runs = tmp_path / "results" / "runs"
    clean = [json.loads(p.read_text()) for p in runs.glob("pose_clean_*.json")]
    distill = [json.loads(p.read_text()) for p in runs.glob("pose_distill_*.json")]
    assert clean and distill
    teacher = distill[0]["config"]["method_args"]["distill"]["teacher"]
    assert teacher.endswith(clean[0]["run_id"])
