"""`harness predict` for pose: person crops of arbitrary images, and the predicted skeleton drawn on them.

No annotation file: each image gets one sample per given person box (COCO detections json, `bbox` +
`score`) or, without boxes, the whole image as one box. The samples go through the very crop, flip test
and back-projection of evaluation (`PoseTask.predict`), so what is drawn is what a benchmark scores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from harness.core.io import read_image
from tasks.pose.dataset import PersonRecord, TopDownKeypoints
from tasks.pose.keypoints import KeypointSpec

# BGR colours: left limbs, right limbs, the rest (the convention of most pose visualisers).
_LEFT, _RIGHT, _MIDDLE = (255, 128, 0), (0, 128, 255), (0, 220, 0)


def inference_records(
    images: list[Path], boxes: dict[Path, list[list[float]]], num_keypoints: int
) -> list[PersonRecord]:
    """One record per (image, box); an image without boxes is one box over the whole image."""
    records = []
    for image_index, path in enumerate(images):
        given = boxes.get(path) or []
        if not given:
            height, width = read_image(path).shape[:2]
            given = [[0.0, 0.0, float(width), float(height), 1.0]]
        for box in given:
            records.append(
                PersonRecord(
                    Path(path), image_index, len(records), np.asarray(box[:4], float),
                    np.zeros((num_keypoints, 3)), float(box[4]) if len(box) > 4 else 1.0,
                )
            )  # fmt: skip
    return records


def inference_dataset(
    images: list[Path], boxes: dict[Path, list[list[float]]], *, spec: KeypointSpec, input_size, sigma: float
) -> TopDownKeypoints:
    records = inference_records(images, boxes, spec.num_keypoints)
    source = Path(images[0]).parent if images else Path(".")
    return TopDownKeypoints(records, source, spec=spec, input_size=tuple(input_size), sigma=sigma)


def draw_pose(image: np.ndarray, prediction: dict[str, Any], spec: KeypointSpec) -> np.ndarray:
    """Limbs and joints of one prediction ([x, y, score] * K) and its box, drawn in place. With
    `prediction["ground_truth"]` the list is an annotation ([x, y, v] * K) and unlabelled joints (v = 0) are
    left out."""
    joints = np.asarray(prediction["keypoints"], float).reshape(-1, 3)
    shown = joints[:, 2] > 0 if prediction.get("ground_truth") else np.ones(len(joints), bool)
    scale = max(1, round(max(image.shape[:2]) / 300))
    x, y, w, h = (int(round(v)) for v in prediction.get("box", [0, 0, 0, 0]))
    if w > 0 and h > 0:
        cv2.rectangle(image, (x, y), (x + w, y + h), (200, 200, 200), scale)
    names = spec.keypoints
    for a, b in spec.skeleton:
        if not (shown[a] and shown[b]):
            continue
        colour = _colour(names[a]) if _colour(names[a]) == _colour(names[b]) else _MIDDLE
        pa, pb = joints[a, :2].round().astype(int), joints[b, :2].round().astype(int)
        cv2.line(image, tuple(int(v) for v in pa), tuple(int(v) for v in pb), colour, scale, cv2.LINE_AA)
    for name, (px, py, _), visible in zip(names, joints, shown, strict=True):
        if not visible:
            continue
        cv2.circle(image, (int(round(px)), int(round(py))), 2 * scale, _colour(name), -1, cv2.LINE_AA)
    return image


def _colour(name: str) -> tuple[int, int, int]:
    return _LEFT if name.startswith("left") else _RIGHT if name.startswith("right") else _MIDDLE
