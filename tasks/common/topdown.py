"""The top-down crop dataset: one sample per annotated instance (a person, a face), clean crop + twin.

The occluded twin is made on the full image *before* the crop, and both images go through the same affine
warp, so they are pixel-aligned and share one set of (clean) targets. A task's reader turns its annotation
format into `Instance`s (or a subclass) and hands them to `TopDownDataset`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from harness.core.errors import DataError
from harness.core.io import read_image
from harness.core.occlusion import OcclusionSettings, PatchLibrary, occluded_twin
from tasks.common import heatmap

cv2.setNumThreads(0)  # DataLoader workers provide the parallelism

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255


@dataclass(frozen=True)
class Augmentation:
    """Random scale / rotation / centre shift / flip of the crop (HRNet's recipe; HRNetV2's faces add the
    shift). The rng is drawn in that order, and the shift only when `shift_factor` > 0."""

    scale_factor: float = 0.25
    rotation_factor: float = 30.0
    rotation_prob: float = 0.6
    shift_factor: float = 0.0  # centre shift, as a fraction of the crop size
    flip: bool = True


@dataclass(frozen=True)
class TwinSource:
    """What the dataset needs to make occluded twins: patches, how many and how large, and where (the
    keypoints a patch is anchored on; optionally anchors per patch kind)."""

    library: PatchLibrary
    settings: OcclusionSettings
    anchors: tuple[int, ...]
    part_anchors: Mapping[str, Sequence[int]] | None = None


@dataclass
class Instance:
    """One annotated instance of an image: its box and its keypoints (K, 3) as x, y, v (v > 0: labelled)."""

    image_path: Path
    image_id: int
    ann_id: int
    box: np.ndarray  # x, y, w, h
    keypoints: np.ndarray  # (K, 3)


def to_tensor(crop: np.ndarray) -> torch.Tensor:
    """BGR uint8 crop -> ImageNet-normalised RGB float tensor (3, h, w)."""
    rgb = crop[:, :, ::-1].astype(np.float32)
    return torch.from_numpy(((rgb - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1).copy())


class TopDownDataset(Dataset):
    """Crops around instance boxes, with heatmap targets and (optionally) the occluded twin.

    Args:
        records: the instances (already filtered; at least one).
        source: the annotation file, for messages.
        flip_pairs: left/right keypoint pairs, swapped when a crop is flipped.
        input_size: (h, w) of the network input.
        sigma: heatmap Gaussian sigma in heatmap pixels.
        padding: crop size = box size * padding.
        augmentation: random scale/rotation/shift/flip, or None for evaluation.
        twins: occluded-twin source, or None for no `twin` in the samples.
        seed: base seed; sample i in epoch e draws from rng(seed, e, i), independent of workers.
        image_field: the annotation field naming an image, for error messages.
    """

    heatmap_stride = 4

    def __init__(
        self,
        records: Sequence[Instance],
        source: Path,
        *,
        flip_pairs,
        input_size: tuple[int, int],
        sigma: float,
        padding: float = heatmap.PADDING,
        augmentation: Augmentation | None = None,
        twins: TwinSource | None = None,
        seed: int = 0,
        image_field: str = "file_name",
    ):
        self.ann_file = Path(source)
        self.records = list(records)
        missing = sorted({r.image_path for r in self.records if not r.image_path.is_file()})
        if missing:
            raise DataError(
                f"{self.ann_file}: image {missing[0].name} (field {image_field}) not found in "
                f"{missing[0].parent} ({len(missing)} image(s) missing)"
            )
        self.input_size = tuple(int(v) for v in input_size)
        self.heatmap_size = (
            self.input_size[0] // self.heatmap_stride,
            self.input_size[1] // self.heatmap_stride,
        )
        self.sigma = sigma
        self.padding = padding
        self.flip_pairs = tuple(tuple(pair) for pair in flip_pairs)
        self.augmentation = augmentation
        self.twins = twins
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by the trainer so augmentation differs per epoch yet stays reproducible."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def crop_geometry(self, index: int, rng: np.random.Generator | None = None):
        """(centre, size, rotation, flip) of sample `index`; random when augmenting with `rng`."""
        record = self.records[index]
        aspect = self.input_size[1] / self.input_size[0]
        center, size = heatmap.box_to_center_size(record.box, aspect, self.padding)
        rotation, flip = 0.0, False
        aug = self.augmentation
        if aug is not None and rng is not None:
            size = size * float(
                np.clip(rng.normal() * aug.scale_factor + 1, 1 - aug.scale_factor, 1 + aug.scale_factor)
            )
            if aug.shift_factor > 0:
                center = center + rng.uniform(-aug.shift_factor, aug.shift_factor, 2) * size
            if rng.random() < aug.rotation_prob:
                rotation = float(
                    np.clip(
                        rng.normal() * aug.rotation_factor, -2 * aug.rotation_factor, 2 * aug.rotation_factor
                    )
                )
            flip = aug.flip and rng.random() < 0.5
        return center, size, rotation, flip

    def instance_meta(self, record: Instance) -> dict[str, Any]:
        """Fields of a record that prediction needs besides the crop (a subclass adds e.g. a box score)."""
        return {}

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        rng = np.random.default_rng((self.seed, self.epoch, index))
        image = read_image(record.image_path)
        twin = covered = None
        if self.twins is not None:
            twin, covered = occluded_twin(
                image,
                record.keypoints,
                record.box,
                self.twins.library,
                rng,
                anchors=self.twins.anchors,
                part_anchors=self.twins.part_anchors,
                settings=self.twins.settings,
            )
        center, size, rotation, flip = self.crop_geometry(index, rng)
        matrix = heatmap.crop_affine(center, size, rotation, self.input_size, flip=flip)
        out_h, out_w = self.input_size

        def warp(img: np.ndarray) -> np.ndarray:
            return cv2.warpAffine(img, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))

        points = heatmap.apply_affine(record.keypoints[:, :2], matrix)
        labelled = record.keypoints[:, 2] > 0
        order = heatmap.flip_order(len(points), self.flip_pairs) if flip else list(range(len(points)))
        points, labelled = points[order], labelled[order]
        heatmaps, weights = heatmap.encode_heatmaps(
            heatmap.input_to_heatmap(points, self.heatmap_stride), labelled, self.heatmap_size, self.sigma
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
                **self.instance_meta(record),
            },
        }
        if twin is not None:
            sample["twin"] = to_tensor(warp(twin))
            sample["covered"] = torch.from_numpy(covered[order].copy())  # keypoints under a pasted patch
        return sample
