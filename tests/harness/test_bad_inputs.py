"""The bad-input matrix: each a one-line error naming the culprit, exit code 2, no traceback, no record.

Data cases break a private copy of the embedded synthetic set (`data.cache_dir`); checkpoint cases break a
copy of one tiny trained run. A NaN loss (a `failed` record) is tested in test_run_e2e.py, unknown names and
bad `--set` keys in test_cli.py.
"""

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.core.config import CONFIG_ROOT, load_config
from harness.run.experiment import run_experiment
from tasks.pose.synthetic import ensure_synthetic_coco

runner = CliRunner()
POSE = CONFIG_ROOT / "pose/default.yaml"


@pytest.fixture(scope="module")
def pristine_data(tmp_path_factory) -> Path:
    """A data cache holding the tiny synthetic train and val splits, to be copied and broken."""
    cache = tmp_path_factory.mktemp("pristine")
    ensure_synthetic_coco(cache / "pose", split="train", num_images=12, seed=0)
    ensure_synthetic_coco(cache / "pose", split="val", num_images=4, seed=0)
    return cache


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    from tiny_pose import TINY_POSE

    base = tmp_path_factory.mktemp("trained")
    overrides = [*TINY_POSE, "method=clean", f"output.work_dir={base / 'work'}"]
    return run_experiment(load_config(POSE, [*overrides, f"output.results_dir={base / 'results'}"])).run_dir


def _train(cache: Path) -> tuple[Path, Path]:
    folder = cache / "pose" / "synthetic_s0_n12_192x160"
    return folder / "annotations" / "person_keypoints_train.json", folder / "train"


def _edit_annotations(cache: Path, change) -> None:
    ann_file, _ = _train(cache)
    data = json.loads(ann_file.read_text())
    change(data)
    ann_file.write_text(json.dumps(data))


def _first_image(cache: Path) -> Path:
    return sorted(_train(cache)[1].iterdir())[0]


def _zero_boxes(data, count=None):
    for ann in data["annotations"][:count]:
        ann["bbox"][2] = 0.0


# (case id, setup(cache, tmp) -> extra CLI args, fragment of the one-line message)
DATA_CASES = [
    ("missing image", lambda c, t: _first_image(c).unlink(), "000001.jpg is missing"),
    (
        "truncated JPEG",
        lambda c, t: _first_image(c).write_bytes(_first_image(c).read_bytes()[:2000]),
        "000001.jpg is a truncated JPEG (no end-of-image marker)",
    ),
    (
        "annotation not json",
        lambda c, t: _train(c)[0].write_text("{not json"),
        "person_keypoints_train.json: cannot read the COCO annotations (Expecting property name",
    ),
    (
        "wrong keypoint count",
        lambda c, t: _edit_annotations(c, lambda d: d["annotations"][0].update(keypoints=[1, 1, 2] * 16)),
        "annotation 1 field 'keypoints' has 16 keypoints, expected 17",
    ),
    (
        "empty after filtering",
        lambda c, t: _edit_annotations(c, _zero_boxes),
        "no person left after filtering",
    ),
]


@pytest.mark.parametrize(("setup", "fragment"), [c[1:] for c in DATA_CASES], ids=[c[0] for c in DATA_CASES])
def test_bad_data_is_one_line(setup, fragment, pristine_data, tiny_pose_overrides, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(pristine_data, cache)
    setup(cache, tmp_path)
    _expect_one_line(_run(tiny_pose_overrides, ["--set", f"data.cache_dir={cache}"]), fragment, tmp_path)


def _run(overrides: list[str], extra: list[str]):
    sets = [x for o in overrides for x in ("--set", o)]
    return runner.invoke(app, ["run", "--task", "pose", "--method", "clean", *sets, *extra])


def _expect_one_line(result, fragment: str, results_root: Path, before: int = 0) -> None:
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and fragment in errors[0], result.output
    assert "Traceback" not in result.output
    assert len(list(results_root.rglob("runs/*.json"))) == before  # no record


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("task: pose\ntrain: {epochs: 2\nseed: 1\n")
    result = runner.invoke(app, ["run", "--config", str(path), "--method", "clean"])
    _expect_one_line(result, f"YAML syntax error in {path} line 3", tmp_path)


def test_bad_set_type_names_the_key(tiny_pose_overrides, tmp_path):
    result = _run(tiny_pose_overrides, ["--set", "train.batch_size=many"])
    _expect_one_line(result, "config key 'train.batch_size': Input should be a valid integer", tmp_path)


def test_unwritable_results_dir_fails_before_training(tiny_pose_overrides, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    overrides = [*tiny_pose_overrides, f"output.results_dir={blocker / 'results'}"]
    result = _run(overrides, [])
    _expect_one_line(result, f"output.results_dir: cannot write to {blocker / 'results' / 'runs'}", tmp_path)
    assert not (tmp_path / "work").exists()  # nothing was started


def _copy_run(trained_run: Path, tmp_path: Path) -> tuple[Path, int]:
    run_dir = tmp_path / trained_run.name
    shutil.copytree(trained_run, run_dir)
    return run_dir, len(list(trained_run.parents[1].rglob("runs/*.json")))


def _resume(run_dir: Path):
    return runner.invoke(app, ["run", "--resume", str(run_dir)])


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, (f"touch {_Evil.marker}",))


def test_checkpoint_from_another_backbone(trained_run, tmp_path):
    run_dir, before = _copy_run(trained_run, tmp_path)
    config = run_dir / "config.yaml"
    config.write_text(config.read_text().replace("backbone: hrnet_w18_small", "backbone: resnet18"))
    message = (
        f"checkpoint {run_dir / 'checkpoint.pt'} was trained with backbone 'hrnet_w18_small', "
        "but the run's config says 'resnet18'"
    )
    _expect_one_line(_resume(run_dir), message, trained_run.parents[1], before)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "not a checkpoint", "malicious pickle"])
def test_corrupt_or_unsafe_checkpoint(damage, trained_run, tmp_path):
    import torch

    run_dir, before = _copy_run(trained_run, tmp_path)
    path = run_dir / "checkpoint.pt"
    marker = tmp_path / "pwned"
    if damage == "garbage":
        path.write_bytes(b"this is not a checkpoint")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "not a checkpoint":
        torch.save({"weights": torch.zeros(3)}, path)
    else:
        _Evil.marker = marker
        torch.save({"method": _Evil()}, path)
    fragment = {
        "not a checkpoint": "is not a harness training checkpoint (no 'method')",
        "malicious pickle": "refused (weights_only=True)",
    }.get(damage, f"checkpoint {path} is corrupt or unsafe")
    _expect_one_line(_resume(run_dir), fragment, trained_run.parents[1], before)
    assert not marker.exists()  # the pickle's code never ran


def test_resume_of_a_dir_that_is_no_run(tmp_path):
    _expect_one_line(_resume(tmp_path), f"--resume: {tmp_path} is not a run dir (no config.yaml)", tmp_path)


def test_zero_boxes_are_skipped_with_a_count_and_outside_keypoints_are_kept(
    pristine_data, tiny_pose_overrides, tmp_path
):
    cache = tmp_path / "cache"
    shutil.copytree(pristine_data, cache)

    def damage(data):
        _zero_boxes(data, 2)
        data["annotations"][2]["keypoints"][0:3] = [-500.0, 9000.0, 2]  # labelled, far outside the image

    _edit_annotations(cache, damage)
    result = _run(tiny_pose_overrides, ["--set", f"data.cache_dir={cache}"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, result.output
    assert "skipped 2 person annotation(s) with a zero or negative box size" in warnings[0]
    (record, *_) = [json.loads(p.read_text()) for p in (tmp_path / "results" / "runs").glob("*.json")]
    assert record["status"] == "ok" and record["data"]["skipped_boxes"] == 2
