"""Every keypoint layout builds its frozen occluded val (and each severity level of it).

CrowdPose runs used to crash here: the per-keypoint coverage counts used COCO's 17 names for 14 joints.
"""

import json
from dataclasses import replace
from pathlib import Path

import pytest
from published_formats import write_crowdpose_root  # noqa: I001  (tests/ is on sys.path through conftest.py)

from harness.core.errors import ConfigError
from harness.core.occlusion import OcclusionSettings
from harness.core.task import OcclusionPlan
from tasks.pose.keypoints import COCO_LAYOUT, CROWDPOSE_LAYOUT, MPII_LAYOUT
from tasks.pose.occluded_val import build_occluded_split
from tasks.pose.task import PoseSettings, PoseTask

PLAN = OcclusionPlan(train=None, val=OcclusionSettings(clean_fraction=0.0), val_seed=0, max_patches=60)


def _crowdpose_root(coco_root: Path, tmp_path: Path) -> Path:
    """The COCO fixture in CrowdPose's published schema (no area, no segmentation), train and test."""
    return write_crowdpose_root(coco_root, tmp_path / "crowdpose", [0.1, 0.5, 0.9, 0.3], ("trainval", "test"))


def _manifest(ann_file: Path) -> dict:
    folder = ann_file.parent.parent
    return json.loads((folder / "manifest.json").read_text())


@pytest.mark.parametrize("layout", ["crowdpose", "mpii"])
def test_layouts_without_masks_build_their_occluded_split(layout, coco_root, mpii_root, tmp_path):
    patches = {"patch_root": str(coco_root), "patch_split": "val2017"}
    if layout == "crowdpose":
        settings = PoseSettings(
            dataset="crowdpose", root=str(_crowdpose_root(coco_root, tmp_path)), **patches
        )
        spec = CROWDPOSE_LAYOUT
    else:
        boxes = str(mpii_root / "annot" / "head_boxes.json")
        settings = PoseSettings(dataset="mpii", root=str(mpii_root), head_boxes=boxes, **patches)
        spec = MPII_LAYOUT
    task = PoseTask(settings, cache_dir=tmp_path / "cache")
    _, splits = task.datasets(seed=0, occlusion=PLAN)
    manifest = _manifest(splits["occluded_val"].ann_file)
    assert sorted(manifest["covered_per_keypoint"]) == sorted(spec.keypoints)  # json keys are sorted
    assert sum(manifest["covered_per_keypoint"].values()) == manifest["covered_keypoints"] > 0
    # The severity ladder builds on the same layout: no patch at 0, the most coverage at 4.
    covered = {}
    for level in (0, 4):
        _, splits = task.datasets(seed=0, occlusion=replace(PLAN, val_severity=level))
        covered[level] = _manifest(splits["occluded_val"].ann_file)["covered_keypoints"]
    assert covered[0] == 0 and covered[4] > manifest["covered_keypoints"], (covered, manifest)


@pytest.mark.parametrize("layout", ["coco", "ochuman"])
def test_coco_format_layouts_build_their_occluded_split(layout, coco_root, tmp_path):
    source = coco_root / "annotations" / "person_keypoints_val2017.json"
    if layout == "ochuman":  # OCHuman ships COCO-format json under its own name
        ann = tmp_path / "ochuman" / "ochuman_coco_format_val_range_0.00_1.00.json"
        ann.parent.mkdir()
        ann.write_text(source.read_text())
    else:
        ann = source
    task = PoseTask(PoseSettings(dataset="coco", root=str(coco_root), train_split="val2017"), tmp_path / "c")
    library = task.patch_library(source, coco_root / "val2017", 60, 0)
    out, _ = build_occluded_split(
        ann, coco_root / "val2017", tmp_path / "built", library=library, settings=PLAN.val,
        anchors=COCO_LAYOUT.anchors, seed=0, keypoint_names=COCO_LAYOUT.keypoints,
    )  # fmt: skip
    manifest = _manifest(out)
    assert sorted(manifest["covered_per_keypoint"]) == sorted(COCO_LAYOUT.keypoints)
    assert manifest["persons"] > 0 and manifest["covered_keypoints"] > 0


def test_a_prebuilt_occluded_root_and_a_severity_level_do_not_mix(coco_root, tmp_path):
    settings = PoseSettings(
        dataset="coco", root=str(coco_root), train_split="val2017", occluded_root=str(tmp_path)
    )
    with pytest.raises(ConfigError, match="occlusion.val_severity"):
        PoseTask(settings, tmp_path / "c").datasets(seed=0, occlusion=replace(PLAN, val_severity=3))
