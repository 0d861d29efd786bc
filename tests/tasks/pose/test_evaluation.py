"""OKS AP through the project's own evaluate path, checked against hand-computed values."""

import numpy as np
import pytest
import torch

from tasks.pose.dataset import CocoKeypoints
from tasks.pose.evaluation import oks_ap
from tasks.pose.keypoints import COCO_OKS_SIGMAS
from tasks.pose.task import PoseSettings, PoseTask


def gt_predictions(dataset, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    predictions = []
    for record in dataset.records:
        kps = record.keypoints.copy()
        kps[:, :2] += rng.normal(0, noise, kps[:, :2].shape) if noise else 0
        kps[:, 2] = 1.0
        predictions.append(
            {
                "image_id": record.image_id,
                "category_id": 1,
                "keypoints": kps.reshape(-1).tolist(),
                "score": 1.0,
            }
        )
    return predictions


@pytest.fixture
def task_and_val(coco_fixture):
    ann_file, image_dir = coco_fixture
    return PoseTask(PoseSettings(input_size=(128, 96))), CocoKeypoints(
        ann_file, image_dir, input_size=(128, 96)
    )


def test_ground_truth_fed_back_scores_one(task_and_val):
    task, val = task_and_val
    metrics = task.evaluate(gt_predictions(val), val)
    assert metrics["AP"] == pytest.approx(1.0)
    assert metrics["AP50"] == pytest.approx(1.0) and metrics["AR"] == pytest.approx(1.0)


def test_noise_lowers_ap(task_and_val):
    task, val = task_and_val
    assert task.evaluate(gt_predictions(val, noise=8.0), val)["AP"] < 0.9


def test_single_person_ap_matches_hand_computed_oks(task_and_val):
    """Shift every keypoint of the one person in image 785 by d pixels: OKS = mean exp(-d²/(2 s² k²))."""
    _, val = task_and_val
    record = next(r for r in val.records if r.image_id == 785)
    area = val.coco.anns[record.ann_id]["area"]
    kappa = 2 * COCO_OKS_SIGMAS
    d = 12.0
    oks = np.mean(np.exp(-(d**2) / (2 * area * kappa**2)))
    kps = record.keypoints.copy()
    kps[:, 0] += d
    kps[:, 2] = 1
    pred = [{"image_id": 785, "category_id": 1, "keypoints": kps.reshape(-1).tolist(), "score": 1.0}]
    thresholds = np.linspace(0.5, 0.95, 10)
    expected_ap = float(np.mean(oks >= thresholds))
    assert 0.0 < expected_ap < 1.0  # the shift must land between thresholds for the test to mean something
    metrics = oks_ap(val.coco, pred, [785], COCO_OKS_SIGMAS)
    assert metrics["AP"] == pytest.approx(expected_ap, abs=1e-6)


def test_decode_and_back_projection_of_perfect_heatmaps(task_and_val):
    """An oracle model that outputs the target heatmaps: decode + back-projection must recover the pose."""
    task, val = task_and_val
    task.settings.flip_test = False
    samples = [val[i] for i in range(len(val))]
    batch = torch.utils.data.default_collate(samples)
    predictions = task.predict(lambda _images: batch["target"], batch)
    assert task.evaluate(predictions, val)["AP"] > 0.9


def test_flip_test_of_a_mirror_consistent_oracle_keeps_the_pose(task_and_val):
    task, val = task_and_val
    samples = [val[i] for i in range(len(val))]
    batch = torch.utils.data.default_collate(samples)
    from tasks.common.heatmap import flip_heatmaps
    from tasks.pose.keypoints import COCO_FLIP_PAIRS

    def oracle(images):
        same = torch.equal(images, batch["image"])
        return batch["target"] if same else flip_heatmaps(batch["target"], COCO_FLIP_PAIRS)

    task.settings.flip_test = True
    assert task.evaluate(task.predict(oracle, batch), val)["AP"] > 0.9


def test_no_predictions_scores_zero(task_and_val):
    task, val = task_and_val
    assert task.evaluate([], val)["AP"] == 0.0


def test_undefined_area_ranges_are_none_not_minus_one(task_and_val):
    """COCOeval reports -1 for an area range without ground truth; records must not carry it as a score."""
    _, val = task_and_val
    record = next(r for r in val.records if r.image_id == 785)  # one large person (area > 96²)
    kps = record.keypoints.copy()
    kps[:, 2] = 1
    pred = [{"image_id": 785, "category_id": 1, "keypoints": kps.reshape(-1).tolist(), "score": 1.0}]
    metrics = oks_ap(val.coco, pred, [785], COCO_OKS_SIGMAS)
    assert metrics["APM"] is None and metrics["APL"] == pytest.approx(1.0)


def test_keypoint_similarity_split_by_hand():
    """One person, joints 7 and 8 covered; only joint 7 is off by 10 px (area 1000, sigma 0.072)."""
    from pycocotools.coco import COCO

    from tasks.pose.evaluation import keypoint_similarity_split

    gt = np.stack([np.arange(17) * 3.0 + 10, np.full(17, 20.0), np.full(17, 2.0)], axis=1)
    covered = [0] * 17
    covered[7] = covered[8] = 1
    coco = COCO()
    coco.dataset = {
        "images": [{"id": 1, "width": 100, "height": 100}],
        "annotations": [
            {
                "id": 5,
                "image_id": 1,
                "category_id": 1,
                "area": 1000.0,
                "iscrowd": 0,
                "bbox": [0, 0, 60, 40],
                "keypoints": gt.reshape(-1).tolist(),
                "num_keypoints": 17,
                "occluded_keypoints": covered,
            }
        ],
        "categories": [{"id": 1, "name": "person"}],
    }
    coco.createIndex()
    pred = gt.copy()
    pred[7, 0] += 10.0
    result = keypoint_similarity_split(
        coco, [{"image_id": 1, "ann_id": 5, "keypoints": pred.reshape(-1).tolist()}], COCO_OKS_SIGMAS
    )
    assert result["kOKS_visible"] == pytest.approx(1.0)
    assert result["kOKS_occluded"] == pytest.approx((np.exp(-100 / 41.472) + 1) / 2, abs=1e-4)
    assert result["kOKS_occluded"] == pytest.approx(0.54485, abs=1e-4)
