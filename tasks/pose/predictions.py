"""Pose prediction files: COCO keypoint results, the format pycocotools and every leaderboard read.

The file holds exactly the list a split's AP was computed from: `image_id`, `category_id`, `keypoints`
([x, y, score] * K in image pixels), `score`; with detected boxes after the same OKS-NMS the metric applies.
`COCO(gt).loadRes(file)` + `COCOeval(iouType="keypoints")` with the layout's OKS sigmas gives the
recorded AP. MPII splits (scored by PCKh, which has no results format of its own) get the same list with
each person's `ann_id` (its index in the annotation list) and `image` name instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.core.io import atomic_write_text
from tasks.pose.dataset import CocoKeypoints, MpiiKeypoints, TopDownKeypoints

COCO_RESULT_FIELDS = ("image_id", "category_id", "keypoints", "score")


def scored_predictions(predictions: list[dict[str, Any]], dataset: TopDownKeypoints) -> list[dict[str, Any]]:
    """The predictions exactly as `dataset.evaluate` scores them (OKS-NMS first with detected boxes)."""
    if isinstance(dataset, CocoKeypoints) and dataset.detections is not None:
        from tasks.pose.evaluation import oks_nms

        return oks_nms(predictions, dataset.spec.sigmas, dataset.oks_nms_threshold)
    return predictions


def write_pose_predictions(predictions: list[dict[str, Any]], dataset: TopDownKeypoints, path: Path) -> str:
    """Write `path` (json); return the format's name ("coco_keypoint_results" or "mpii_keypoints")."""
    if isinstance(dataset, MpiiKeypoints):
        names = {r.ann_id: r.image_path.name for r in dataset.records}
        rows = [
            {"ann_id": p["ann_id"], "image": names.get(p["ann_id"]), "keypoints": p["keypoints"]}
            for p in predictions
        ]
        fmt = "mpii_keypoints"
    else:
        rows = [{k: p[k] for k in COCO_RESULT_FIELDS} for p in scored_predictions(predictions, dataset)]
        fmt = "coco_keypoint_results"
    atomic_write_text(Path(path), json.dumps(rows, separators=(",", ":")) + "\n")
    return fmt
