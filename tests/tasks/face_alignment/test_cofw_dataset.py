"""The real COFW fixture (mmpose's COCO-style json), crop geometry, flip pairs and bad input."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.core.errors import DataError
from harness.core.occlusion import OcclusionSettings
from harness.core.task import OcclusionPlan
from tasks.common import heatmap
from tasks.common.heatmap import flip_order
from tasks.face_alignment.dataset import Augmentation, FaceLandmarks, face_records, read_json
from tasks.face_alignment.landmarks import COFW, W300, WFLW
from tasks.face_alignment.task import FaceAlignmentSettings, FaceAlignmentTask

REPO = Path(__file__).resolve().parents[3]
FIXTURES = Path(os.environ.get("HARNESS_FIXTURES", REPO.parent / "shared" / "fixtures"))

COFW_DIR = FIXTURES / "cofw"
COFW_JSON = COFW_DIR / "test_cofw.json"


@pytest.fixture
def cofw() -> FaceLandmarks:
    if not COFW_DIR.is_dir():
        pytest.fail(f"real-format fixtures missing at {COFW_DIR}")
    return FaceLandmarks(COFW_JSON, COFW_DIR, layout=COFW, input_size=(64, 64))


def test_loads_the_real_cofw_fixture_with_hand_checked_values(cofw):
    assert [(r.image_id, r.ann_id) for r in cofw.records] == [(1766, 1766), (1805, 1805)]
    first, second = cofw.records
    assert first.image_path == COFW_DIR / "001766.jpg"
    np.testing.assert_allclose(first.box, [38.0, 102.0, 105.0, 180.0])
    np.testing.assert_allclose(first.keypoints[0], [46.562534549474826, 120.07575548185008, 2.0])
    np.testing.assert_allclose(first.keypoints[28], [94.99537037037038, 271.120531601253, 2.0])
    # COFW's visibility: 1 = occluded. Face 1766 has its mouth covered, face 1805 its right side.
    assert np.flatnonzero(first.occluded).tolist() == [22, 23, 24, 25, 26, 27]
    assert np.flatnonzero(second.occluded).tolist() == [0, 2, 4, 5, 8, 12, 13, 16, 22]
    # The pupils (16, 17) of both faces are 55 px apart: the COFW normaliser.
    for record in cofw.records:
        assert np.linalg.norm(record.keypoints[16, :2] - record.keypoints[17, :2]) == pytest.approx(55.0)


def test_sample_targets_decode_back_to_the_annotated_landmarks(cofw):
    sample = cofw[0]
    assert sample["image"].shape == (3, 64, 64) and sample["target"].shape == (29, 16, 16)
    assert sample["target_weight"].tolist() == [1.0] * 29  # occluded COFW points are still supervised
    coords, maxvals = heatmap.decode_heatmaps(sample["target"][None], "dark")
    assert (maxvals > 0.6).all()
    points = heatmap.heatmap_to_input(coords[0].numpy().astype(np.float64), 4)
    record = cofw.records[0]
    # Crop geometry: the square crop is the box's longer side (180 px) x 1.25 around the box centre.
    center, size, rotation, flip = cofw.crop_geometry(0)
    np.testing.assert_allclose(center, [90.5, 192.0])
    np.testing.assert_allclose(size, [225.0, 225.0])
    matrix = heatmap.crop_affine(center, size, rotation, (64, 64))
    back = heatmap.apply_affine(points, heatmap.invert_affine(matrix))
    # Sub-pixel decoding: within 0.1 heatmap px, i.e. 0.1 * 4 * 225 / 64 = 1.4 image px.
    assert np.abs(back - record.keypoints[:, :2]).max() < 1.4


def test_decoding_is_sub_pixel_on_exact_gaussians():
    points = np.array([[3.3, 7.8], [10.0, 2.0], [7.61, 11.27]])
    heatmaps, weights = heatmap.encode_heatmaps(points, np.ones(3), (16, 16), sigma=1.5)
    coords, _ = heatmap.decode_heatmaps(torch.from_numpy(heatmaps)[None], "dark")
    assert weights.tolist() == [1, 1, 1]
    assert np.abs(coords[0].numpy() - points).max() < 0.05


def test_flip_pairs_mirror_the_frontal_fixture_face(cofw):
    """On a near-frontal face each flip pair (a, b) has a on the image left of b, at about the same height."""
    landmarks = cofw.records[0].keypoints[:, :2]
    face_height = np.ptp(landmarks[:, 1])
    for a, b in COFW.flip_pairs:
        assert landmarks[a, 0] < landmarks[b, 0], (a, b)
        assert abs(landmarks[a, 1] - landmarks[b, 1]) < 0.05 * face_height, (a, b)


@pytest.mark.parametrize(
    ("layout", "centre"),
    [
        (COFW, [20, 21, 24, 25, 26, 27, 28]),
        (W300, [8, 27, 28, 29, 30, 33, 51, 57, 62, 66]),
        (WFLW, [16, 51, 52, 53, 54, 57, 79, 85, 90, 94]),
    ],
)
def test_flip_pairs_are_an_involution_with_the_midline_fixed(layout, centre):
    order = flip_order(layout.num_landmarks, layout.flip_pairs)
    assert [order[i] for i in order] == list(range(layout.num_landmarks))
    assert [i for i in range(layout.num_landmarks) if order[i] == i] == centre
    a, b = layout.norm_points
    assert order[a] == b  # the NME normaliser is a left/right pair


def test_horizontal_flip_swaps_left_and_right_landmarks(cofw):
    """A flipped sample is the mirrored image, and its left-pupil map sits where the mirrored right one is."""
    plain = cofw[0]
    cofw.augmentation = Augmentation(scale_factor=0, rotation_factor=0, shift_factor=0, flip=True)
    flipped = None
    for epoch in range(20):
        cofw.set_epoch(epoch)
        sample = cofw[0]
        if not sample["image"].equal(plain["image"]):
            flipped = sample
            break
    assert flipped is not None, "no flip in 20 epochs at p = 0.5"
    assert torch.allclose(flipped["image"], plain["image"].flip(-1), atol=1e-5)
    coords, _ = heatmap.decode_heatmaps(flipped["target"][None], "dark")
    plain_coords, _ = heatmap.decode_heatmaps(plain["target"][None], "dark")
    mirrored = plain_coords[0].clone()
    mirrored[:, 0] = 15 - mirrored[:, 0]  # x -> (w - 1) - x on a 16-wide heatmap
    order = flip_order(29, COFW.flip_pairs)
    assert torch.allclose(coords[0], mirrored[order], atol=0.05)
    assert not torch.allclose(coords[0], mirrored, atol=0.5)  # without the swap it would not match


def test_center_scale_annotations_crop_a_square_of_scale_times_200():
    data = read_json(COFW_JSON)
    ann = data["annotations"][0]
    del ann["bbox"]
    ann["center"], ann["scale"] = [90.0, 190.0], 0.9
    records, _ = face_records(data, COFW_JSON, COFW_DIR, COFW)
    np.testing.assert_allclose(records[0].box, [0.0, 100.0, 180.0, 180.0])


def _write_cofw_copy(tmp_path, mutate=None):
    data = json.loads(COFW_JSON.read_text())
    if mutate:
        mutate(data)
    ann_file = tmp_path / "bad.json"
    ann_file.write_text(json.dumps(data))
    return ann_file


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (
            lambda d: d["annotations"][1].update(keypoints=d["annotations"][1]["keypoints"][:51]),
            "annotation 1805 field 'keypoints' has 17 landmarks, expected 29 for cofw",
        ),
        (lambda d: d["annotations"][0].pop("bbox"), "annotation 1766 has neither a 'bbox'"),
        (lambda d: d["annotations"][0].update(bbox=[1, 2]), "annotation 1766 field 'bbox' is [1, 2]"),
        (lambda d: d["annotations"][0].update(image_id=7), "annotation 1766 field 'image_id' 7 names no"),
        (lambda d: d.pop("annotations"), "lacks the list field 'annotations'"),
    ],
)
def test_bad_annotations_are_one_line_errors_naming_file_and_field(tmp_path, mutate, fragment):
    ann_file = _write_cofw_copy(tmp_path, mutate)
    with pytest.raises(DataError) as err:
        FaceLandmarks(ann_file, COFW_DIR, layout=COFW)
    message = str(err.value)
    assert fragment in message and str(ann_file) in message and "\n" not in message


def test_a_300w_layout_refuses_cofw_files(tmp_path):
    with pytest.raises(DataError, match="expected 68 for 300w"):
        FaceLandmarks(COFW_JSON, COFW_DIR, layout=W300)


@pytest.fixture
def cofw_root(tmp_path):
    """A COFW root as mmpose lays it out (annotations/cofw_{train,test}.json, images/), from the fixture."""
    (tmp_path / "annotations").mkdir()
    shutil.copytree(COFW_DIR, tmp_path / "images", ignore=shutil.ignore_patterns("*.json"))
    for split in ("train", "test"):
        shutil.copy(COFW_JSON, tmp_path / "annotations" / f"cofw_{split}.json")
    return tmp_path


def test_cofw_task_builds_splits_and_scores_perfect_and_shifted_predictions(cofw_root, tmp_path):
    task = FaceAlignmentTask(
        FaceAlignmentSettings(dataset="cofw", root=str(cofw_root), input_size=(64, 64)),
        cache_dir=tmp_path / "cache",
    )
    plan = OcclusionPlan(
        train=OcclusionSettings(clean_fraction=0.0),
        val=OcclusionSettings(clean_fraction=0.0, size_range=(0.4, 0.6)),
        max_patches=20,
    )
    train, splits = task.datasets(seed=0, occlusion=plan)
    assert len(train) == 2 and set(splits) == {"clean_val", "occluded_val"}
    assert "twin" in train[0] and task.dataset_name == "cofw"
    occluded = splits["occluded_val"]
    assert sum(r.occluded.sum() for r in occluded.records) > sum(
        r.occluded.sum() for r in splits["clean_val"].records
    )

    def predictions(dataset, shift_visible, shift_occluded):
        out = []
        for r in dataset.records:
            points = r.keypoints.copy()
            points[:, 0] += np.where(r.occluded, shift_occluded, shift_visible)
            out.append({"image_id": r.image_id, "ann_id": r.ann_id, "keypoints": points.reshape(-1).tolist()})
        return out

    clean = splits["clean_val"]
    perfect = task.evaluate(predictions(clean, 0.0, 0.0), clean)
    assert perfect["NME"] == 0 and perfect["FR@0.1"] == 0 and perfect["AUC@0.1"] == 1
    # Inter-pupil distance is 55 px on both faces: 1 px off everywhere is NME 1/55.
    shifted = task.evaluate(predictions(clean, 1.0, 2.0), clean)
    assert shifted["NME_visible"] == pytest.approx(1 / 55)
    assert shifted["NME_occluded"] == pytest.approx(2 / 55)
    assert shifted["NME"] == pytest.approx(((23 * 1 + 6 * 2) / 29 / 55 + (20 * 1 + 9 * 2) / 29 / 55) / 2)
    outer = FaceAlignmentTask(
        FaceAlignmentSettings(dataset="cofw", root=str(cofw_root), normalization="outer_eyes"),
        cache_dir=tmp_path / "cache",
    )
    assert outer.norm_points == (8, 9)
