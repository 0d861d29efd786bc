"""Pose prediction files are COCO keypoint results that pycocotools scores to exactly the recorded AP."""

import contextlib
import io
import json

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from tasks.pose.dataset import CocoKeypoints, Detections
from tasks.pose.predictions import write_pose_predictions


def _cocoeval_ap(ann_file, results_file) -> float:
    """What anyone would run on the file: pycocotools' defaults (COCO's OKS sigmas, every image)."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann_file))
        evaluator = COCOeval(gt, gt.loadRes(str(results_file)), iouType="keypoints")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return float(evaluator.stats[0])


def _noisy(keypoints: np.ndarray, rng, pixels: float) -> list[float]:
    points = keypoints.copy()
    points[:, :2] += rng.normal(0, pixels, (len(points), 2))
    points[:, 2] = rng.uniform(0.3, 1.0, len(points))
    return [round(float(v), 3) for v in points.reshape(-1)]


def test_ground_truth_box_predictions_rescore_to_the_recorded_ap(coco_fixture, tmp_path):
    ann_file, image_dir = coco_fixture
    data = CocoKeypoints(ann_file, image_dir)
    rng = np.random.default_rng(0)
    predictions = [
        {"image_id": r.image_id, "ann_id": r.ann_id, "category_id": 1, "box": r.box.tolist(),
         "keypoints": _noisy(r.keypoints, rng, pixels=6.0), "score": round(float(rng.uniform(0.5, 1)), 6)}
        for r in data.records
    ]  # fmt: skip
    recorded = data.evaluate(predictions)["AP"]
    assert 0.05 < recorded < 0.95  # a non-trivial AP, so equality means something
    path = tmp_path / "net__clean_val.json"
    assert write_pose_predictions(predictions, data, path) == "coco_keypoint_results"
    rows = json.loads(path.read_text())
    assert len(rows) == len(predictions) and set(rows[0]) == {"image_id", "category_id", "keypoints", "score"}
    assert _cocoeval_ap(ann_file, path) == recorded


def test_detected_box_predictions_are_written_after_the_same_oks_nms(coco_fixture, tmp_path):
    ann_file, image_dir = coco_fixture
    detections = Detections(image_dir / "test_coco_det_AP_H_56.json", score_threshold=0.3)
    data = CocoKeypoints(ann_file, image_dir, detections=detections)
    truth = CocoKeypoints(ann_file, image_dir)
    rng = np.random.default_rng(1)
    predictions = []
    for record in data.records:  # each detection predicts the ground-truth person its box overlaps most
        people = [r for r in truth.records if r.image_id == record.image_id]
        overlap = [_iou(record.box, r.box) for r in people]
        best = people[int(np.argmax(overlap))]
        predictions.append(
            {"image_id": record.image_id, "ann_id": record.ann_id, "category_id": 1,
             "box": record.box.tolist(), "keypoints": _noisy(best.keypoints, rng, pixels=4.0),
             "score": round(record.score, 6)}
        )  # fmt: skip
    recorded = data.evaluate(predictions)["AP"]
    path = tmp_path / "net__clean_val.json"
    write_pose_predictions(predictions, data, path)
    assert len(json.loads(path.read_text())) < len(predictions)  # duplicates were suppressed, as scored
    assert 0.05 < recorded and _cocoeval_ap(ann_file, path) == recorded


def _iou(a, b) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)
