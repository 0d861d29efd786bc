"""The real COCO loader on the real-format fixtures (../shared/fixtures/coco)."""

import json

import numpy as np
import pytest
import torch

from harness.core.errors import DataError
from tasks.common import heatmap
from tasks.pose.dataset import Augmentation, CocoKeypoints


def test_loads_fixture_persons(coco_fixture):
    ann_file, image_dir = coco_fixture
    data = json.loads(ann_file.read_text())
    expected = [a for a in data["annotations"] if not a["iscrowd"] and a["num_keypoints"] > 0]
    dataset = CocoKeypoints(ann_file, image_dir, input_size=(128, 96))
    assert len(dataset) == len(expected) == 12
    assert dataset.image_ids == sorted(i["id"] for i in data["images"])
    sample = dataset[0]
    assert sample["image"].shape == (3, 128, 96)
    assert sample["target"].shape == (17, 32, 24)
    assert sample["target_weight"].shape == (17,)
    assert "twin" not in sample


def test_target_peaks_sit_on_projected_keypoints(coco_fixture):
    ann_file, image_dir = coco_fixture
    dataset = CocoKeypoints(ann_file, image_dir, input_size=(128, 96))
    record = dataset.records[0]
    sample = dataset[0]
    matrix = heatmap.crop_affine(
        sample["meta"]["center"].numpy(), sample["meta"]["size"].numpy(), 0.0, (128, 96)
    )
    expected = heatmap.input_to_heatmap(heatmap.apply_affine(record.keypoints[:, :2], matrix), 4)
    coords, _ = heatmap.decode_heatmaps(sample["target"][None])
    weights = sample["target_weight"].numpy() > 0
    assert weights.sum() == (record.keypoints[:, 2] > 0).sum()
    np.testing.assert_array_less(np.abs(coords[0].numpy() - expected)[weights], 0.51)


def test_augmented_samples_are_reproducible_per_epoch(coco_fixture):
    ann_file, image_dir = coco_fixture
    dataset = CocoKeypoints(ann_file, image_dir, input_size=(96, 64), augmentation=Augmentation(), seed=5)
    a, b = dataset[3], dataset[3]
    assert torch.equal(a["image"], b["image"])
    dataset.set_epoch(1)
    assert not torch.equal(a["image"], dataset[3]["image"]) or not torch.equal(
        a["target"], dataset[3]["target"]
    )


def test_wrong_keypoint_count_names_file_and_annotation(tmp_path, coco_fixture):
    ann_file, image_dir = coco_fixture
    data = json.loads(ann_file.read_text())
    data["annotations"][0]["keypoints"] = data["annotations"][0]["keypoints"][:-3]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(
        DataError,
        match=rf"bad.json: annotation {data['annotations'][0]['id']} field 'keypoints' has 16 keypoints, "
        "expected 17",
    ):
        CocoKeypoints(bad, image_dir)


def test_non_json_annotation_file(tmp_path, coco_fixture):
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="broken.json is not valid COCO json"):
        CocoKeypoints(bad, coco_fixture[1])


def test_missing_paths(tmp_path, coco_fixture):
    with pytest.raises(DataError, match="annotation file not found"):
        CocoKeypoints(tmp_path / "nope.json", coco_fixture[1])
    with pytest.raises(DataError, match="image folder not found"):
        CocoKeypoints(coco_fixture[0], tmp_path / "no_images")


def test_unreadable_image_is_named(tmp_path, coco_fixture):
    ann_file, image_dir = coco_fixture
    data = json.loads(ann_file.read_text())
    name = data["images"][0]["file_name"]
    (tmp_path / name).write_bytes(b"not a jpeg")
    for info in data["images"][1:]:
        (tmp_path / info["file_name"]).symlink_to(image_dir / info["file_name"])
    dataset = CocoKeypoints(ann_file, tmp_path)
    with pytest.raises(DataError, match=f"{name} is unreadable"):
        dataset[0]


def test_zero_size_boxes_are_skipped_and_counted(tmp_path, coco_fixture):
    ann_file, image_dir = coco_fixture
    data = json.loads(ann_file.read_text())
    data["annotations"][0]["bbox"] = [10, 10, 0, 20]
    path = tmp_path / "zero.json"
    path.write_text(json.dumps(data))
    dataset = CocoKeypoints(path, image_dir)
    assert (len(dataset), dataset.skipped_boxes) == (11, 1)
