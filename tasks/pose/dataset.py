"""Top-down COCO-format keypoint dataset: one sample per person box, clean crop + occluded twin.

The twin is made on the full image *before* the crop, and both images go through the same affine
warp, so they are pixel-aligned and share one set of (clean) targets.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from pycocotools.coco import COCO
from torch.utils.data import Dataset

from harness.errors import DataError
from harness.io import read_image
from harness.occlusion import OcclusionSettings, PatchLibrary, occluded_twin
from tasks.pose import codec
from tasks.pose.keypoints import COCO_FLIP_PAIRS

cv2.setNumThreads(0)  # DataLoader workers provide the parallelism

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255


@dataclass(frozen=True)
class Augmentation:
    """Random scale / rotation / flip of the crop (HRNet's recipe)."""

    scale_factor: float = 0.25
    rotation_factor: float = 30.0
    rotation_prob: float = 0.6
    flip: bool = True


@dataclass(frozen=True)
class TwinSource:
    """What the dataset needs to make occluded twins."""

    library: PatchLibrary
    settings: OcclusionSettings
    anchors: tuple[int, ...]


@dataclass
class PersonRecord:
    image_path: Path
    image_id: int
    ann_id: int
    box: np.ndarray  # x, y, w, h
    keypoints: np.ndarray  # (K, 3)
    score: float = 1.0


def load_coco(ann_file: Path) -> COCO:
    """Load a COCO json quietly, with one-line errors for a missing or malformed file."""
    ann_file = Path(ann_file)
    if not ann_file.is_file():
        raise DataError(f"annotation file not found: {ann_file}")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(str(ann_file))
    except ValueError as err:  # json.JSONDecodeError is a ValueError
        raise DataError(f"annotation file {ann_file} is not valid COCO json: {err}") from None
    except (KeyError, TypeError) as err:
        raise DataError(f"annotation file {ann_file} lacks the COCO field {err}") from None


def person_records(coco: COCO, ann_file: Path, image_dir: Path, num_keypoints: int) -> tuple[list, int]:
    """Non-crowd person annotations with labelled keypoints and a positive box.

    Returns:
        the records and the number of annotations skipped for a zero/negative box.
    """
    records, bad_boxes = [], 0
    for image_id in sorted(coco.getImgIds()):
        info = coco.imgs[image_id]
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=image_id, iscrowd=False)):
            keypoints = np.asarray(ann.get("keypoints", []), dtype=np.float64)
            if keypoints.size != num_keypoints * 3:
                raise DataError(
                    f"{ann_file}: annotation {ann.get('id')} has {keypoints.size // 3} keypoints, "
                    f"expected {num_keypoints}"
                )
            keypoints = keypoints.reshape(num_keypoints, 3)
            if not np.isfinite(keypoints).all():
                raise DataError(f"{ann_file}: annotation {ann.get('id')} has a non-finite keypoint value")
            if keypoints[:, 2].max() <= 0:
                continue
            box = np.asarray(ann.get("bbox", []), dtype=np.float64)
            if box.shape != (4,) or not np.isfinite(box).all():
                raise DataError(
                    f"{ann_file}: annotation {ann.get('id')} has bbox {ann.get('bbox')}, "
                    "expected [x, y, w, h]"
                )
            if box[2] <= 0 or box[3] <= 0:
                bad_boxes += 1
                continue
            records.append(
                PersonRecord(Path(image_dir) / info["file_name"], image_id, ann["id"], box, keypoints)
            )
    return records, bad_boxes


def to_tensor(crop: np.ndarray) -> torch.Tensor:
    """BGR uint8 crop -> normalised RGB float tensor (3, h, w)."""
    rgb = crop[:, :, ::-1].astype(np.float32)
    return torch.from_numpy(((rgb - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1).copy())


class CocoKeypoints(Dataset):
    """Person crops from a COCO-format keypoint json.

    Args:
        ann_file: COCO json (images, annotations with keypoints and bbox, categories).
        image_dir: folder holding the `file_name` of every image.
        input_size: (h, w) of the network input.
        sigma: heatmap Gaussian sigma in heatmap pixels.
        num_keypoints: keypoints per person (17 for COCO).
        flip_pairs: left/right index pairs.
        augmentation: random scale/rotation/flip, or None for evaluation.
        twins: occluded-twin source, or None for no `twin` in the samples.
        seed: base seed; sample i in epoch e draws from rng(seed, e, i), independent of workers.
        max_persons: keep only the first N persons (quick runs).
    """

    heatmap_stride = 4

    def __init__(
        self,
        ann_file: Path,
        image_dir: Path,
        *,
        input_size: tuple[int, int] = (128, 96),
        sigma: float = 2.0,
        num_keypoints: int = 17,
        flip_pairs=COCO_FLIP_PAIRS,
        augmentation: Augmentation | None = None,
        twins: TwinSource | None = None,
        seed: int = 0,
        max_persons: int | None = None,
    ):
        self.ann_file = Path(ann_file)
        self.image_dir = Path(image_dir)
        if not self.image_dir.is_dir():
            raise DataError(f"image folder not found: {self.image_dir}")
        self.coco = load_coco(self.ann_file)
        self.records, self.skipped_boxes = person_records(self.coco, self.ann_file, image_dir, num_keypoints)
        found = len(self.records)
        if max_persons is not None:
            self.records = self.records[:max_persons]
        if not self.records:
            total = len(self.coco.getAnnIds(iscrowd=False))
            if found:
                why = f"max_persons={max_persons} keeps none of {found} usable persons"
            else:
                why = (
                    f"of {total} non-crowd annotations, {self.skipped_boxes} have a zero or negative box "
                    "size and the others no labelled keypoint"
                )
            raise DataError(f"{self.ann_file}: no person left after filtering ({why})")
        self.input_size = tuple(input_size)
        self.heatmap_size = (
            self.input_size[0] // self.heatmap_stride,
            self.input_size[1] // self.heatmap_stride,
        )
        self.sigma = sigma
        self.flip_pairs = tuple(flip_pairs)
        self.augmentation = augmentation
        self.twins = twins
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by the trainer so augmentation differs per epoch yet stays reproducible."""
        self.epoch = epoch

    @property
    def image_ids(self) -> list[int]:
        return sorted({r.image_id for r in self.records})

    def __len__(self) -> int:
        return len(self.records)

    def _flip_order(self) -> np.ndarray:
        order = np.arange(len(self.records[0].keypoints))
        for a, b in self.flip_pairs:
            order[a], order[b] = b, a
        return order

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        rng = np.random.default_rng((self.seed, self.epoch, index))
        image = read_image(record.image_path)
        keypoints = record.keypoints.copy()
        twin = None
        if self.twins is not None:
            twin, covered = occluded_twin(
                image,
                keypoints,
                record.box,
                self.twins.library,
                rng,
                anchors=self.twins.anchors,
                settings=self.twins.settings,
            )
        aspect = self.input_size[1] / self.input_size[0]
        center, size = codec.box_to_center_scale(record.box, aspect)
        rotation, flip = 0.0, False
        if self.augmentation is not None:
            aug = self.augmentation
            size = size * float(
                np.clip(rng.normal() * aug.scale_factor + 1, 1 - aug.scale_factor, 1 + aug.scale_factor)
            )
            if rng.random() < aug.rotation_prob:
                rotation = float(
                    np.clip(
                        rng.normal() * aug.rotation_factor, -2 * aug.rotation_factor, 2 * aug.rotation_factor
                    )
                )
            flip = aug.flip and rng.random() < 0.5
        matrix = codec.crop_affine(center, size, rotation, self.input_size, flip=flip)
        out_h, out_w = self.input_size

        def warp(img: np.ndarray) -> np.ndarray:
            return cv2.warpAffine(img, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))

        joints = codec.apply_affine(keypoints[:, :2], matrix)
        visible = keypoints[:, 2] > 0
        if flip:
            order = self._flip_order()
            joints, visible = joints[order], visible[order]
        heatmaps, weights = codec.encode_heatmaps(
            codec.input_to_heatmap(joints, self.heatmap_stride), visible, self.heatmap_size, self.sigma
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
                "score": record.score,
            },
        }
        if twin is not None:
            sample["twin"] = to_tensor(warp(twin))
            order = self._flip_order() if flip else slice(None)
            sample["covered"] = torch.from_numpy(covered[order].copy())  # joints under a pasted patch
        return sample
