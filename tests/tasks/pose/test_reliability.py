"""Determinism of generated data (digests in the record) and the pose loader's handling of bad data."""

import json

import cv2
import numpy as np
import pytest

from harness.core.errors import DataError
from harness.core.io import read_image
from harness.core.occlusion import OcclusionSettings
from harness.core.task import OcclusionPlan
from tasks.pose.dataset import CocoKeypoints
from tasks.pose.synthetic import ensure_synthetic_coco
from tasks.pose.task import PoseSettings, PoseTask

DIGESTS = (
    "train_annotations_sha256",
    "train_images_sha256",
    "val_annotations_sha256",
    "val_images_sha256",
    "patch_library_sha256",
    "occluded_val_annotations_sha256",
    "occluded_val_images_sha256",
)


def _provenance(cache) -> dict:
    task = PoseTask(PoseSettings(synthetic_train_images=6, synthetic_val_images=3), cache_dir=cache)
    plan = OcclusionPlan(train=None, val=OcclusionSettings(clean_fraction=0.0), max_patches=30)
    task.datasets(seed=0, occlusion=plan)
    return task.provenance()


def test_generated_data_is_byte_identical_across_runs_and_hashed(tmp_path):
    first = _provenance(tmp_path / "a")
    second = _provenance(tmp_path / "b")  # generated again from scratch
    assert all(len(first[k]) == 64 for k in DIGESTS)
    assert {k: first[k] for k in DIGESTS} == {k: second[k] for k in DIGESTS}
    assert _provenance(tmp_path / "a") == first  # cached digests are the same digests
    image = next((tmp_path / "b" / "pose").rglob("train/000001.jpg"))
    image.write_bytes(image.read_bytes()[:-3] + b"\x00\xff\xd9")  # one pixel byte changed
    cached = next((tmp_path / "b" / "pose").rglob(".person_keypoints_train.images.sha256.json"))
    cached.unlink()
    assert _provenance(tmp_path / "b")["train_images_sha256"] != first["train_images_sha256"]


def test_a_truncated_jpeg_is_an_error_though_opencv_would_decode_it(tmp_path):
    image = tmp_path / "cut.jpg"
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    image.write_bytes(image.read_bytes()[: image.stat().st_size * 2 // 3])
    assert cv2.imread(str(image)) is not None  # what the check is for
    with pytest.raises(DataError, match=r"cut\.jpg is a truncated JPEG"):
        read_image(image)


def test_keypoints_outside_the_image_are_kept_with_zero_weight(tmp_path):
    ann_file, image_dir = ensure_synthetic_coco(tmp_path, split="val", num_images=2, seed=0)
    data = json.loads(ann_file.read_text())
    data["annotations"][0]["keypoints"][0:3] = [-900.0, 5000.0, 2]  # labelled, far outside
    ann_file.write_text(json.dumps(data))
    dataset = CocoKeypoints(ann_file, image_dir, input_size=(96, 64))
    assert dataset.records[0].ann_id == data["annotations"][0]["id"]
    sample = dataset[0]
    assert sample["target_weight"][0] == 0 and float(sample["target"][0].max()) == 0.0
    assert sample["target_weight"][1:].sum() > 0


def test_non_finite_keypoints_are_an_error(tmp_path):
    ann_file, image_dir = ensure_synthetic_coco(tmp_path, split="val", num_images=2, seed=0)
    text = ann_file.read_text()
    data = json.loads(text)
    data["annotations"][0]["keypoints"][0] = "NaN"
    ann_file.write_text(json.dumps(data).replace('"NaN"', "NaN"))
    with pytest.raises(DataError, match="annotation 1 has a non-finite keypoint value"):
        CocoKeypoints(ann_file, image_dir)
