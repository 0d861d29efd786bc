"""COCO-style face landmark json (as mmpose distributes COFW, WFLW and 300W): one sample per face.

A file holds `images` (id, file_name) and `annotations` (id, image_id, keypoints [x, y, v] * K, and either a
`bbox` [x, y, w, h] or mmpose's `center` [x, y] + `scale`, where the face side is scale * 200 px). Visibility
follows the source: COFW writes 1 for an occluded and 2 for a visible landmark; 0 means unlabelled.

The crop, twin and heatmap pipeline is `tasks.common.topdown`; this module reads the json into `FaceRecord`s.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.core.errors import DataError
from tasks.common.heatmap import PADDING
from tasks.common.topdown import Augmentation, Instance, TopDownDataset, TwinSource  # noqa: F401 (re-export)
from tasks.face_alignment.landmarks import Layout

PIXEL_STD = 200.0  # mmpose / HRNet store a face's `scale` in units of 200 pixels


def center_scale_to_box(center, scale: float) -> np.ndarray:
    """mmpose's `center` + `scale` (side = scale * 200 px, a square) -> box [x, y, w, h]."""
    side = float(scale) * PIXEL_STD
    cx, cy = (float(v) for v in center)
    return np.array([cx - side / 2, cy - side / 2, side, side], dtype=np.float64)


@dataclass
class FaceRecord(Instance):
    """A face: box (from `bbox`, or the square of `center` / `scale`), landmarks as `keypoints` (K, 3)."""

    occluded: np.ndarray  # (K,) bool: marked occluded by the source, or covered by a pasted patch
    attributes: dict[str, int]


def read_json(ann_file: Path) -> dict:
    """A face landmark json as a dict, with one-line errors for a missing, malformed or fieldless file."""
    ann_file = Path(ann_file)
    if not ann_file.is_file():
        raise DataError(f"annotation file not found: {ann_file}")
    try:
        data = json.loads(ann_file.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"annotation file {ann_file} is not valid json: {err}") from None
    if not isinstance(data, dict):
        raise DataError(f"annotation file {ann_file}: expected a json object, got {type(data).__name__}")
    for field in ("images", "annotations"):
        if not isinstance(data.get(field), list):
            raise DataError(f"annotation file {ann_file} lacks the list field '{field}'")
    return data


def _face_box(ann: dict, ann_file: Path) -> np.ndarray:
    where = f"{ann_file}: annotation {ann.get('id')}"
    if "center" in ann and "scale" in ann:  # mmpose's 300W / WFLW files
        center = np.asarray(ann["center"], dtype=np.float64).reshape(-1)
        scale = np.asarray(ann["scale"], dtype=np.float64).reshape(-1)
        if center.shape != (2,) or scale.size not in (1, 2) or not np.isfinite([*center, *scale]).all():
            raise DataError(
                f"{where} field 'center'/'scale' is {ann['center']}/{ann['scale']}, expected [x, y] / number"
            )
        return center_scale_to_box(center, float(scale.max()))
    if "bbox" not in ann:
        raise DataError(f"{where} has neither a 'bbox' [x, y, w, h] nor 'center' + 'scale'")
    box = np.asarray(ann["bbox"], dtype=np.float64).reshape(-1)
    if box.shape != (4,) or not np.isfinite(box).all():
        raise DataError(f"{where} field 'bbox' is {ann['bbox']}, expected [x, y, w, h]")
    return box


def face_records(data: dict, ann_file: Path, image_dir: Path, layout: Layout) -> tuple[list[FaceRecord], int]:
    """Every face of a json with at least one labelled landmark and a positive box.

    Returns:
        the records (sorted by image id, then annotation id) and the number skipped for a zero-size box.

    Raises:
        DataError: naming the file, the annotation and the field: a wrong landmark count for the dataset,
            non-finite values, an unknown image id, a missing or malformed box.
    """
    images = {}
    for info in data["images"]:
        if not isinstance(info, dict) or "id" not in info or "file_name" not in info:
            raise DataError(f"{ann_file}: an entry of 'images' lacks 'id' or 'file_name': {info}")
        images[info["id"]] = info
    records, bad_boxes = [], 0
    annotations = sorted(data["annotations"], key=lambda a: (a.get("image_id", 0), a.get("id", 0)))
    for ann in annotations:
        where = f"{ann_file}: annotation {ann.get('id')}"
        if ann.get("image_id") not in images:
            raise DataError(f"{where} field 'image_id' {ann.get('image_id')} names no entry of 'images'")
        points = np.asarray(ann.get("keypoints", []), dtype=np.float64).reshape(-1)
        if points.size != layout.num_landmarks * 3:
            raise DataError(
                f"{where} field 'keypoints' has {points.size / 3:g} landmarks, expected "
                f"{layout.num_landmarks} for {layout.name}"
            )
        points = points.reshape(layout.num_landmarks, 3)
        if not np.isfinite(points).all():
            raise DataError(f"{where} field 'keypoints' has a non-finite value")
        if points[:, 2].max() <= 0:
            continue
        box = _face_box(ann, ann_file)
        if box[2] <= 0 or box[3] <= 0:
            bad_boxes += 1
            continue
        occluded = np.zeros(layout.num_landmarks, dtype=bool)
        if layout.visibility_marks_occlusion:
            occluded |= points[:, 2] == 1
        if "occluded_keypoints" in ann:  # the frozen occluded split: landmarks under a pasted patch
            covered = np.asarray(ann["occluded_keypoints"], dtype=bool).reshape(-1)
            if covered.shape != (layout.num_landmarks,):
                raise DataError(
                    f"{where} field 'occluded_keypoints' has {covered.size} flags, "
                    f"expected {layout.num_landmarks}"
                )
            occluded |= covered
        attributes = ann.get("attributes") if isinstance(ann.get("attributes"), dict) else {}
        info = images[ann["image_id"]]
        records.append(
            FaceRecord(
                image_path=Path(image_dir) / info["file_name"],
                image_id=int(ann["image_id"]),
                ann_id=int(ann.get("id", len(records))),
                box=box,
                keypoints=points,
                occluded=occluded & (points[:, 2] > 0),
                attributes={str(k): v for k, v in attributes.items()},
            )
        )
    return records, bad_boxes


class FaceLandmarks(TopDownDataset):
    """Face crops with landmark heatmaps from a COCO-style face landmark json.

    Args:
        ann_file: the json (see the module docstring).
        image_dir: folder holding every image's `file_name`.
        layout: the dataset's landmark layout (point count, flip pairs).
        input_size: (h, w) of the network input.
        sigma: heatmap Gaussian sigma in heatmap pixels.
        padding: crop size = box size * padding (1.25 as in HRNetV2 and mmpose).
        augmentation: random scale / rotation / shift / flip, or None for evaluation.
        twins: occluded-twin source, or None for no `twin` in the samples.
        seed: base seed; sample i in epoch e draws from rng(seed, e, i), independent of workers.
        max_faces: keep only the first N faces (quick runs).
        attribute: keep only faces whose `attributes[attribute]` is truthy (WFLW subsets given in-line).

    Example:
        >>> data = FaceLandmarks(Path("cofw/test_cofw.json"), Path("cofw"), layout=COFW)  # doctest: +SKIP
        >>> data[0]["target"].shape
        torch.Size([29, 16, 16])
    """

    def __init__(
        self,
        ann_file: Path,
        image_dir: Path,
        *,
        layout: Layout,
        input_size: tuple[int, int] = (64, 64),
        sigma: float = 1.5,
        padding: float = PADDING,
        augmentation: Augmentation | None = None,
        twins: TwinSource | None = None,
        seed: int = 0,
        max_faces: int | None = None,
        attribute: str | None = None,
    ):
        self.image_dir = Path(image_dir)
        if not self.image_dir.is_dir():
            raise DataError(f"image folder not found: {self.image_dir}")
        self.layout = layout
        from tasks.face_alignment.published import read_annotations

        data = read_annotations(Path(ann_file), self.image_dir)
        records, self.skipped_boxes = face_records(data, Path(ann_file), self.image_dir, layout)
        if attribute is not None:
            records = [r for r in records if r.attributes.get(attribute)]
        found = len(records)
        if max_faces is not None:
            records = records[:max_faces]
        if not records:
            why = (
                f"max_faces={max_faces} keeps none of {found} usable faces"
                if found
                else f"of {len(data['annotations'])} annotations, {self.skipped_boxes} have a zero or "
                "negative box size and the others no labelled landmark"
                + (f" or attribute '{attribute}'" if attribute else "")
            )
            raise DataError(f"{Path(ann_file)}: no face left after filtering ({why})")
        super().__init__(
            records, ann_file, flip_pairs=layout.flip_pairs, input_size=input_size, sigma=sigma,
            padding=padding, augmentation=augmentation, twins=twins, seed=seed,
        )  # fmt: skip
