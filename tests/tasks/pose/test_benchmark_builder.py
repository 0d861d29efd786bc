"""`harness benchmark build c-coco / c-mpii`: determinism, flags, severity, resume, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.core.errors import DataError
from harness.core.io import read_image
from tasks.pose import benchmark
from tasks.pose.benchmark import build_coco_split, severity_settings
from tasks.pose.dataset import CocoKeypoints, MpiiKeypoints
from tasks.pose.keypoints import COCO_BODY_PARTS
from tasks.pose.patches import cut_body_part_patches

runner = CliRunner()


def patch_args(fixtures: Path) -> list[str]:
    return ["--patch-ann", str(fixtures / "test_coco.json"), "--patch-images", str(fixtures)]


def build_c_coco(coco_root: Path, out: Path, coco_fixture, *extra: str):
    args = ["benchmark", "build", "c-coco", "--coco-root", str(coco_root), "--split", "val2017"]
    args += ["--seed", "0", "--out", str(out), *patch_args(coco_fixture[1]), *extra]
    return runner.invoke(app, args)


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_c_coco_is_byte_identical_and_flags_covered_keypoints(coco_root, coco_fixture, tmp_path):
    first = build_c_coco(coco_root, tmp_path / "a", coco_fixture)
    assert first.exit_code == 0, first.output
    assert build_c_coco(coco_root, tmp_path / "b", coco_fixture).exit_code == 0
    files_a, files_b = tree_bytes(tmp_path / "a"), tree_bytes(tmp_path / "b")
    assert files_a == files_b and len(files_a) == 4 + 2  # 4 images, annotations, manifest

    ann = tmp_path / "a" / "annotations" / "person_keypoints_val2017.json"
    data = json.loads(ann.read_text())
    source = json.loads((coco_root / "annotations" / "person_keypoints_val2017.json").read_text())
    assert [a["keypoints"] for a in data["annotations"]] == [a["keypoints"] for a in source["annotations"]]
    persons = [a for a in data["annotations"] if "occluded_keypoints" in a]
    assert len(persons) == 14 and all(len(a["occluded_keypoints"]) == 17 for a in persons)
    # Only the anchors (elbows .. knees) are aimed at, but a patch may cover a neighbour too; every person
    # at severity 2 gets at least one patch, so most persons have a covered keypoint.
    assert sum(any(a["occluded_keypoints"]) for a in persons) >= 10
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["persons"] == 14 and manifest["images"] == 4 and manifest["severity"] == 2
    assert manifest["covered_keypoints"] == sum(sum(a["occluded_keypoints"]) for a in persons)
    assert sum(manifest["covered_per_keypoint"].values()) == manifest["covered_keypoints"]
    # The built folder is itself a COCO root that the real loader reads.
    occluded = CocoKeypoints(ann, tmp_path / "a" / "val2017")
    clean = CocoKeypoints(coco_root / "annotations" / "person_keypoints_val2017.json", coco_root / "val2017")
    assert len(occluded) == len(clean) == 12
    changed = (read_image(occluded.records[0].image_path) != read_image(clean.records[0].image_path)).any(-1)
    assert changed.mean() > 0.005


def test_severity_ladder_covers_more_keypoints(coco_root, coco_fixture, tmp_path):
    covered = []
    for level in (0, 2, 4):
        result = build_c_coco(coco_root, tmp_path / f"s{level}", coco_fixture, "--severity", str(level))
        assert result.exit_code == 0, result.output
        covered.append(
            json.loads((tmp_path / f"s{level}" / "manifest.json").read_text())["covered_keypoints"]
        )
    assert covered[0] == 0 and covered[0] < covered[1] < covered[2]
    # Severity 0 is the clean split re-encoded losslessly.
    clean = read_image(coco_root / "val2017" / "000000000785.jpg")
    assert np.array_equal(read_image(tmp_path / "s0" / "val2017" / "000000000785.png"), clean)


def test_interrupted_build_resumes_and_matches_an_uninterrupted_one(coco_root, coco_fixture, tmp_path):
    library = cut_body_part_patches(
        coco_fixture[0], coco_fixture[1], parts=COCO_BODY_PARTS, max_patches=60, seed=0
    )
    ann = coco_root / "annotations" / "person_keypoints_val2017.json"
    kwargs = {"library": library, "settings": severity_settings(3), "seed": 7}
    build_coco_split(ann, coco_root / "val2017", tmp_path / "whole", "val2017", **kwargs)

    class Stop(Exception):
        pass

    def stop_after_two(total):
        done = []

        def advance():
            done.append(1)
            if len(done) == 2:
                raise Stop

        return advance

    out = tmp_path / "resumed"
    with pytest.raises(Stop):
        build_coco_split(ann, coco_root / "val2017", out, "val2017", progress=stop_after_two, **kwargs)
    assert not (out / "manifest.json").exists()  # no manifest claiming unwritten files
    assert not (out / "annotations").exists()
    written = {p.name: p.stat().st_mtime_ns for p in (out / "val2017").iterdir()}
    assert len(written) == 2
    build_coco_split(ann, coco_root / "val2017", out, "val2017", **kwargs)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "val2017").iterdir() if p.name in written} == written
    assert tree_bytes(out) == tree_bytes(tmp_path / "whole")


def test_c_mpii_keeps_the_mpii_format_and_flags_joints(mpii_root, coco_fixture, tmp_path):
    args = ["benchmark", "build", "c-mpii", "--mpii-root", str(mpii_root), "--seed", "3"]
    for out in ("a", "b"):
        result = runner.invoke(app, [*args, "--out", str(tmp_path / out), *patch_args(coco_fixture[1])])
        assert result.exit_code == 0, result.output
    assert tree_bytes(tmp_path / "a") == tree_bytes(tmp_path / "b")
    entries = json.loads((tmp_path / "a" / "annot" / "valid.json").read_text())
    source = json.loads((mpii_root / "annot" / "valid.json").read_text())
    assert [e["joints"] for e in entries] == [e["joints"] for e in source]
    assert all(len(e["occluded_joints"]) == 16 for e in entries)
    assert sum(map(sum, (e["occluded_joints"] for e in entries))) > 0
    dataset = MpiiKeypoints(tmp_path / "a" / "annot" / "valid.json", tmp_path / "a" / "images")
    assert len(dataset) == 5


def test_c_mpii_without_patch_source_is_one_line_error(mpii_root, tmp_path):
    result = runner.invoke(
        app, ["benchmark", "build", "c-mpii", "--mpii-root", str(mpii_root), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2
    assert "--patch-ann and --patch-images" in result.output
    assert not (tmp_path / "o").exists()


def test_missing_image_fails_before_anything_is_written(coco_root, coco_fixture, tmp_path):
    (coco_root / "val2017" / "000000040083.jpg").unlink()
    result = build_c_coco(coco_root, tmp_path / "out", coco_fixture)
    assert result.exit_code == 2
    assert "000000040083.jpg (field file_name) not found" in " ".join(result.output.split())
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_unknown_option_and_bad_severity_are_named(coco_root, coco_fixture, tmp_path):
    bad = build_c_coco(coco_root, tmp_path / "o", coco_fixture, "--colour", "red")
    assert bad.exit_code == 2 and "unknown option --colour" in bad.output
    bad = build_c_coco(coco_root, tmp_path / "o", coco_fixture, "--severity", "9")
    assert bad.exit_code == 2 and "--severity" in bad.output


def test_out_folder_with_other_settings_is_refused(coco_root, coco_fixture, tmp_path):
    assert build_c_coco(coco_root, tmp_path / "o", coco_fixture).exit_code == 0
    again = build_c_coco(coco_root, tmp_path / "o", coco_fixture, "--severity", "4")
    assert again.exit_code == 2 and "other settings" in again.output


def test_severity_levels_are_ordered():
    settings = [severity_settings(level) for level in sorted(benchmark.SEVERITY_LEVELS)]
    assert all(s.clean_fraction == 0.0 for s in settings)
    assert [s.patches_per_person[1] for s in settings] == sorted(s.patches_per_person[1] for s in settings)
    with pytest.raises(DataError, match="--severity"):
        severity_settings(7)


def test_a_runs_occluded_val_is_the_c_coco_build_of_the_same_seed(coco_root, coco_fixture, tmp_path):
    """Default occlusion settings + val_seed 0 give the images `benchmark build c-coco --seed 0` writes."""
    from harness.core.config import CONFIG_ROOT, load_config
    from harness.models.factory import occlusion_plan
    from tasks.pose.task import PoseSettings, PoseTask

    cfg = load_config(CONFIG_ROOT / "pose" / "c-coco_hrnet-w32_256x192.yaml")
    settings = PoseSettings(**{**cfg.data, "root": str(coco_root), "train_split": "val2017"})
    task = PoseTask(settings, cache_dir=tmp_path / "cache")
    _, splits = task.datasets(seed=0, occlusion=occlusion_plan(cfg, needs_twin=False))
    assert build_c_coco(coco_root, tmp_path / "built", coco_fixture).exit_code == 0
    on_the_fly = splits["occluded_val"].image_dir
    assert tree_bytes(on_the_fly) == tree_bytes(tmp_path / "built" / "val2017")
    # ... and pointing data.occluded_root at the build uses it directly.
    task = PoseTask(
        settings.model_copy(update={"occluded_root": str(tmp_path / "built")}), cache_dir=tmp_path / "c"
    )
    _, splits = task.datasets(seed=0, occlusion=occlusion_plan(cfg, needs_twin=False))
    assert splits["occluded_val"].image_dir == tmp_path / "built" / "val2017"
