"""COCO-style face landmark json (as mmpose distributes COFW, WFLW and 300W): one sample per face.

A file holds `images` (id, file_name) and `annotations` (id, image_id, keypoints [x, y, v] * K, and either a
`bbox` [x, y, w, h] or mmpose's `center` [x, y] + `scale`, where the face side is scale * 200 px). Visibility
follows the source: COFW writes 1 for an occluded and 2 for a visible landmark; 0 means unlabelled.

The occluded twin is made on the full image *before* the crop, and both images go through the same affine
warp, so they are pixel-aligned and share one set of (clean) targets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from harness.errors import DataError
from harness.io import read_image
from harness.occlusion import OcclusionSettings, PatchLibrary, occluded_twin
from tasks.face_alignment import codec
from tasks.face_alignment.landmarks import Layout, flip_order

cv2.setNumThreads(0)  # DataLoader workers provide the parallelism

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255


@dataclass(frozen=True)
class Augmentation:
    """Random scale / rotation / shift / flip of the face crop (HRNetV2's facial-landmark recipe)."""

    scale_factor: float = 0.25
    rotation_factor: float = 30.0
    rotation_prob: float = 0.6
    shift_factor: float = 0.05  # centre shift, as a fraction of the crop size
    flip: bool = True


@dataclass(frozen=True)
class TwinSource:
    """What the dataset needs to make occluded twins."""

    library: PatchLibrary
    settings: OcclusionSettings


@dataclass
class FaceRecord:
    image_path: Path
    image_id: int
    ann_id: int
    box: np.ndarray  # x, y, w, h (from `bbox`, or the square of `center` / `scale`)
    landmarks: np.ndarray  # (K, 3) x, y, v
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
        return codec.center_scale_to_box(center, float(scale.max()))
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
                landmarks=points,
                occluded=occluded & (points[:, 2] > 0),
                attributes={str(k): v for k, v in attributes.items()},
            )
        )
    return records, bad_boxes


def to_tensor(crop: np.ndarray) -> torch.Tensor:
    """BGR uint8 crop -> normalised RGB float tensor (3, h, w)."""
    rgb = crop[:, :, ::-1].astype(np.float32)
    return torch.from_numpy(((rgb - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1).copy())


class FaceLandmarks(Dataset):
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

    heatmap_stride = 4

    def __init__(
        self,
        ann_file: Path,
        image_dir: Path,
        *,
        layout: Layout,
        input_size: tuple[int, int] = (64, 64),
        sigma: float = 1.5,
        padding: float = codec.PADDING,
        augmentation: Augmentation | None = None,
        twins: TwinSource | None = None,
        seed: int = 0,
        max_faces: int | None = None,
        attribute: str | None = None,
    ):
        self.ann_file = Path(ann_file)
        self.image_dir = Path(image_dir)
        if not self.image_dir.is_dir():
            raise DataError(f"image folder not found: {self.image_dir}")
        self.layout = layout
        data = read_json(self.ann_file)
        self.records, self.skipped_boxes = face_records(data, self.ann_file, self.image_dir, layout)
        if attribute is not None:
            self.records = [r for r in self.records if r.attributes.get(attribute)]
        found = len(self.records)
        if max_faces is not None:
            self.records = self.records[:max_faces]
        if not self.records:
            why = (
                f"max_faces={max_faces} keeps none of {found} usable faces"
                if found
                else f"of {len(data['annotations'])} annotations, {self.skipped_boxes} have a zero or "
                "negative box size and the others no labelled landmark"
                + (f" or attribute '{attribute}'" if attribute else "")
            )
            raise DataError(f"{self.ann_file}: no face left after filtering ({why})")
        self.input_size = tuple(int(v) for v in input_size)
        self.heatmap_size = (
            self.input_size[0] // self.heatmap_stride,
            self.input_size[1] // self.heatmap_stride,
        )
        self.sigma = sigma
        self.padding = padding
        self.augmentation = augmentation
        self.twins = twins
        self.seed = seed
        self.epoch = 0
        self._flip = np.asarray(flip_order(layout.num_landmarks, layout.flip_pairs))

    def set_epoch(self, epoch: int) -> None:
        """Called by the trainer so augmentation differs per epoch yet stays reproducible."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def crop_geometry(self, index: int, rng: np.random.Generator | None = None):
        """(centre, size, rotation, flip) of sample `index`; random when augmenting with `rng`."""
        record = self.records[index]
        aspect = self.input_size[1] / self.input_size[0]
        center, size = codec.box_to_center_size(record.box, aspect, self.padding)
        rotation, flip = 0.0, False
        aug = self.augmentation
        if aug is not None and rng is not None:
            size = size * float(
                np.clip(rng.normal() * aug.scale_factor + 1, 1 - aug.scale_factor, 1 + aug.scale_factor)
            )
            center = center + rng.uniform(-aug.shift_factor, aug.shift_factor, 2) * size
            if rng.random() < aug.rotation_prob:
                rotation = float(
                    np.clip(
                        rng.normal() * aug.rotation_factor, -2 * aug.rotation_factor, 2 * aug.rotation_factor
                    )
                )
            flip = aug.flip and rng.random() < 0.5
        return center, size, rotation, flip

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        rng = np.random.default_rng((self.seed, self.epoch, index))
        image = read_image(record.image_path)
        twin = covered = None
        if self.twins is not None:
            twin, covered = occluded_twin(
                image,
                record.landmarks,
                record.box,
                self.twins.library,
                rng,
                anchors=self.layout.anchors,
                part_anchors=self.layout.part_anchors,
                settings=self.twins.settings,
            )
        center, size, rotation, flip = self.crop_geometry(index, rng)
        matrix = codec.crop_affine(center, size, rotation, self.input_size, flip=flip)
        out_h, out_w = self.input_size

        def warp(img: np.ndarray) -> np.ndarray:
            return cv2.warpAffine(img, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))

        points = codec.apply_affine(record.landmarks[:, :2], matrix)
        labelled = record.landmarks[:, 2] > 0
        order = self._flip if flip else np.arange(len(points))
        points, labelled = points[order], labelled[order]
        heatmaps, weights = codec.encode_heatmaps(
            codec.input_to_heatmap(points, self.heatmap_stride), labelled, self.heatmap_size, self.sigma
        )
        sample = {
            "image": to_tensor(warp(image)),
            "target": torch.from_numpy(heatmaps),
            "target_weight": torch.from_numpy(weights),
            "meta": {
                "index": index,
                "image_id": record.image_id,
                "ann_id": record.ann_id,
                "center": torch.from_numpy(center),
                "size": torch.from_numpy(size),
                "rotation": rotation,
            },
        }
        if twin is not None:
            sample["twin"] = to_tensor(warp(twin))
            sample["covered"] = torch.from_numpy(covered[order].copy())  # landmarks under a pasted patch
        return sample
