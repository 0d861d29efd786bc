"""Face alignment outside training: the severity ladder, landmark prediction files, `harness predict`.

- Severity ladder: like pose's C-COCO ladder, more and larger occluders per face at each level (sizes
  relative to the face box); level 2 is the frozen occluded val's default, so its split is the very same.
- Prediction file: a landmarks json, `{"layout", "landmarks", "faces": [{image_id, ann_id, file_name,
  landmarks: [[x, y, score] * K]}]}` in source-image pixels, the points NME was computed from.
- `harness predict`: one face crop per given box (or the whole image), drawn with the layout's skeleton.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from harness.core.errors import ConfigError
from harness.core.io import atomic_write_text, read_image
from harness.core.occlusion import OcclusionSettings
from tasks.common.topdown import TopDownDataset
from tasks.face_alignment.dataset import FaceLandmarks, FaceRecord
from tasks.face_alignment.landmarks import Layout

# level: (occluders per face, size range relative to the face box)
SEVERITY_LEVELS: dict[int, tuple[tuple[int, int], tuple[float, float]]] = {
    0: ((0, 0), (0.25, 0.5)),
    1: ((1, 1), (0.2, 0.35)),
    2: ((1, 3), (0.25, 0.5)),  # the frozen occluded val's default
    3: ((2, 4), (0.3, 0.55)),
    4: ((3, 5), (0.35, 0.65)),
}


def severity_settings(level: int) -> OcclusionSettings:
    """Occlusion settings of a ladder level; every face is occluded (no clean fraction)."""
    if level not in SEVERITY_LEVELS:
        raise ConfigError(f"occlusion.val_severity: expected one of {sorted(SEVERITY_LEVELS)}, got {level}")
    patches, sizes = SEVERITY_LEVELS[level]
    return OcclusionSettings(clean_fraction=0.0, patches_per_person=patches, size_range=sizes)


def write_landmarks(predictions: list[dict[str, Any]], dataset: FaceLandmarks, path: Path) -> str:
    """Write the landmarks json of one split; return its format's name."""
    names = {r.ann_id: r.image_path.name for r in dataset.records}
    faces = [
        {
            "image_id": p["image_id"],
            "ann_id": p["ann_id"],
            "file_name": names.get(p["ann_id"]),
            "landmarks": np.asarray(p["keypoints"], float).reshape(-1, 3).round(3).tolist(),
        }
        for p in predictions
    ]
    layout = dataset.layout
    payload = {"layout": layout.name, "landmarks": layout.num_landmarks, "faces": faces}
    atomic_write_text(Path(path), json.dumps(payload, separators=(",", ":")) + "\n")
    return "landmarks_json"


class InferenceFaces(TopDownDataset):
    """Face crops around given boxes of arbitrary images (no annotation file), for `harness predict`."""

    def __init__(
        self, records: list[FaceRecord], *, layout: Layout, input_size, sigma: float, padding: float
    ):
        source = records[0].image_path.parent if records else Path(".")
        super().__init__(
            records, source, flip_pairs=layout.flip_pairs, input_size=input_size, sigma=sigma, padding=padding
        )
        self.layout, self.image_dir, self.skipped_boxes = layout, source, 0


def inference_dataset(
    images: list[Path], boxes: dict[Path, list[list[float]]], *, layout: Layout, input_size, sigma, padding
) -> InferenceFaces:
    records = []
    for image_index, path in enumerate(images):
        given = boxes.get(path) or []
        if not given:
            height, width = read_image(path).shape[:2]
            given = [[0.0, 0.0, float(width), float(height)]]
        for box in given:
            records.append(
                FaceRecord(
                    Path(path), image_index, len(records), np.asarray(box[:4], float),
                    np.zeros((layout.num_landmarks, 3)), np.zeros(layout.num_landmarks, bool), {},
                )
            )  # fmt: skip
    return InferenceFaces(records, layout=layout, input_size=input_size, sigma=sigma, padding=padding)


def draw_landmarks(image: np.ndarray, prediction: dict[str, Any], layout: Layout) -> np.ndarray:
    """The layout's skeleton and every landmark of one prediction, drawn in place. With
    `prediction["ground_truth"]` the list is an annotation ([x, y, v] * K): unlabelled points (v = 0) are left
    out."""
    values = np.asarray(prediction["keypoints"], float).reshape(-1, 3)
    points = values[:, :2]
    shown = values[:, 2] > 0 if prediction.get("ground_truth") else np.ones(len(values), bool)
    scale = max(1, round(max(image.shape[:2]) / 300))
    for a, b in layout.skeleton:
        if not (shown[a] and shown[b]):
            continue
        pa, pb = points[a].round().astype(int), points[b].round().astype(int)
        cv2.line(image, (int(pa[0]), int(pa[1])), (int(pb[0]), int(pb[1])), (0, 200, 0), scale, cv2.LINE_AA)
    for x, y in points[shown]:
        cv2.circle(image, (int(round(x)), int(round(y))), scale + 1, (0, 0, 255), -1, cv2.LINE_AA)
    return image
