"""A pose run on real-format data (the COCO fixture as train and val): no numpy RuntimeWarning reaches the
terminal, and the closing line does not call it a short embedded-data run."""

import json
import warnings

import numpy as np
import pytest
from pycocotools.coco import COCO
from typer.testing import CliRunner

from harness.cli import app
from harness.core.portable import resolve_path
from tasks.pose.evaluation import keypoint_similarity_split
from tasks.pose.keypoints import COCO_LAYOUT

FAST = [
    "data.dataset=coco",
    "data.input_size=[96,64]",
    "model.backbone=hrnet_w18_small",
    "model.pretrained=null",
    "train.batch_size=4",
    "train.eval_batch_size=8",
    "train.num_workers=0",
    "train.max_steps=2",
    "occlusion.max_patches=50",
]


def test_a_person_without_labelled_keypoints_gives_no_warning():
    """Built occluded splits flag every person, also one with no labelled keypoint (COCO has such)."""
    coco = COCO()
    coco.dataset = {
        "images": [{"id": 1, "width": 100, "height": 100}],
        "annotations": [
            {"id": 1, "image_id": 1, "keypoints": [0] * 51, "occluded_keypoints": [0] * 17, "area": 900.0,
             "bbox": [10, 10, 30, 30], "iscrowd": 0, "num_keypoints": 0, "category_id": 1},
            {"id": 2, "image_id": 1, "keypoints": [20, 20, 2] * 17, "occluded_keypoints": [1] + [0] * 16,
             "area": 900.0, "bbox": [10, 10, 30, 30], "iscrowd": 0, "num_keypoints": 17, "category_id": 1},
        ],
        "categories": [{"id": 1, "name": "person"}],
    }  # fmt: skip
    coco.createIndex()
    prediction = {"image_id": 1, "ann_id": 2, "keypoints": [20, 20, 1] * 17, "score": 1.0}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        split = keypoint_similarity_split(coco, [prediction], COCO_LAYOUT.sigmas)
    assert split == {
        "kOKS_visible": 1.0,
        "kOKS_occluded": 1.0,
    }  # exact predictions; person 1 contributes nothing


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_real_format_run_is_quiet_and_not_called_embedded(coco_root, tmp_path):
    root = coco_root
    (root / "annotations" / "person_keypoints_train2017.json").write_text(
        (root / "annotations" / "person_keypoints_val2017.json").read_text()
    )
    (root / "train2017").symlink_to(root / "val2017")
    sets = [
        *FAST,
        f"data.root={root}",
        f"output.work_dir={tmp_path / 'w'}",
        f"output.results_dir={tmp_path / 'r'}",
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        result = CliRunner().invoke(
            app, ["run", "--task", "pose", "--method", "clean", *[x for s in sets for x in ("--set", s)]]
        )
    assert result.exit_code == 0, result.output
    assert "RuntimeWarning" not in result.output
    assert "embedded-data" not in result.output and "Records written to" in result.output
    records = [json.loads(p.read_text()) for p in (tmp_path / "r" / "runs").glob("*.json")]
    assert {r["dataset"] for r in records} == {"coco"} and all(
        np.isfinite(r["metrics"]["AP"]) for r in records
    )
    assert all(resolve_path(r["predictions"]["file"], {"work": tmp_path / "w"}).is_file() for r in records)


def test_published_crowdpose_trains_and_evaluates(coco_root, tmp_path):
    """CrowdPose's json as published has no `area`: training ran and evaluation died in COCOeval before."""
    from published_formats import write_crowdpose_root

    root = write_crowdpose_root(coco_root, tmp_path / "crowdpose", [0.1, 0.5, 0.9, 0.3], ("trainval", "test"))
    sets = [
        *FAST,
        "data.dataset=crowdpose",
        f"data.root={root}",
        f"data.patch_root={coco_root}",  # CrowdPose has no person masks to cut patches from
        "data.patch_split=val2017",
        f"output.work_dir={tmp_path / 'w'}",
        f"output.results_dir={tmp_path / 'r'}",
    ]
    result = CliRunner().invoke(
        app, ["run", "--task", "pose", "--method", "clean", *[x for s in sets for x in ("--set", s)]]
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(p.read_text()) for p in (tmp_path / "r" / "runs").glob("*.json")]
    assert {r["dataset"] for r in records} == {"crowdpose"} and len(records) == 2
    for record in records:
        for name in ("AP", "AP50", "AP75", "AP_easy", "AP_medium", "AP_hard"):
            value = record["metrics"][name]
            assert isinstance(value, float) and 0.0 <= value <= 1.0, (name, value)
