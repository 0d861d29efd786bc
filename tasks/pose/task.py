"""Human pose as a task: COCO-format data (real or embedded synthetic), heatmap head, OKS AP."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from harness.errors import DataError
from harness.occlusion import PatchLibrary
from harness.registry import TASKS
from harness.task import Metric, OcclusionPlan, Task
from tasks.pose import codec
from tasks.pose.dataset import Augmentation, CocoKeypoints, TwinSource
from tasks.pose.evaluation import keypoint_similarity_split, oks_ap
from tasks.pose.head import HeatmapHead
from tasks.pose.keypoints import (
    COCO_BODY_PARTS,
    COCO_FLIP_PAIRS,
    COCO_OCCLUSION_ANCHORS,
    COCO_OKS_SIGMAS,
    COCO_SKELETON,
)
from tasks.pose.occluded_val import build_occluded_split, file_digest, images_digest


class PoseSettings(BaseModel):
    """The `data:` section of a pose config."""

    model_config = ConfigDict(extra="forbid")

    dataset: Literal["synthetic", "coco"] = "synthetic"
    root: str | None = None  # COCO root holding annotations/ and <split>/ image folders
    train_split: str = "train2017"
    val_split: str = "val2017"
    synthetic_train_images: int = 1500
    synthetic_val_images: int = 150
    synthetic_image_size: tuple[int, int] = (192, 160)
    input_size: tuple[int, int] = (128, 96)  # (h, w)
    sigma: float = 2.0
    scale_factor: float = 0.25
    rotation_factor: float = 30.0
    flip: bool = True
    flip_test: bool = True
    max_train_persons: int | None = None
    max_val_persons: int | None = None
    cache_dir: str | None = None


def _joints_mse(outputs: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """HRNet's JointsMSELoss: 0.5 * mean squared error of weighted heatmaps."""
    w = weight[:, :, None, None]
    return 0.5 * torch.mean((outputs * w - target * w) ** 2)


@TASKS.register("pose")
class PoseTask(Task):
    """Top-down human pose on COCO-17 keypoints.

    Example:
        >>> task = PoseTask(PoseSettings(synthetic_train_images=16))
        >>> train, splits = task.datasets(seed=0, occlusion=plan)  # doctest: +SKIP
    """

    Settings = PoseSettings
    metrics = tuple(
        Metric(name) for name in ("AP", "AP50", "AP75", "APM", "APL", "AR", "kOKS_visible", "kOKS_occluded")
    )
    primary_metric = "AP"
    num_keypoints = 17

    def __init__(self, settings: PoseSettings, cache_dir: Path | None = None):
        if cache_dir is None and settings.cache_dir:
            cache_dir = Path(settings.cache_dir)
        super().__init__(settings, cache_dir)
        self._provenance: dict[str, Any] = {}
        self._warnings: list[str] = []

    @property
    def dataset_name(self) -> str:
        return "synthetic-coco" if self.settings.dataset == "synthetic" else "coco"

    @property
    def input_size(self) -> tuple[int, int]:
        return tuple(self.settings.input_size)

    def _source_files(self, seed: int) -> tuple[tuple[Path, Path], tuple[Path, Path]]:
        s = self.settings
        if s.dataset == "synthetic":
            from tasks.pose.synthetic import ensure_synthetic_coco

            root = self.cache_dir / "pose"
            size = tuple(s.synthetic_image_size)
            train = ensure_synthetic_coco(
                root, split="train", num_images=s.synthetic_train_images, seed=seed, image_size=size
            )
            val = ensure_synthetic_coco(
                root, split="val", num_images=s.synthetic_val_images, seed=seed, image_size=size
            )
            return train, val
        if not s.root:
            raise DataError("data.root: a COCO root folder is required when data.dataset is 'coco'")
        root = Path(s.root).expanduser()
        if not root.is_dir():
            raise DataError(f"data.root: COCO folder not found: {root}")

        def split(name: str) -> tuple[Path, Path]:
            return root / "annotations" / f"person_keypoints_{name}.json", root / name

        return split(s.train_split), split(s.val_split)

    def patch_library(self, ann_file: Path, image_dir: Path, max_patches: int, seed: int) -> PatchLibrary:
        """Body-part patches cut from the training persons, cached next to the other generated data."""
        cache = self.cache_dir / "patches" / f"{file_digest(ann_file)[:12]}_n{max_patches}_s{seed}.npz"
        if cache.is_file():
            return PatchLibrary.load(cache)
        library = PatchLibrary.from_coco(
            ann_file, image_dir, parts=COCO_BODY_PARTS, max_patches=max_patches, seed=seed
        )
        if len(library) == 0:
            raise DataError(
                f"{ann_file}: no body-part patch could be cut (persons need segmentation + keypoints)"
            )
        library.save(cache)
        return library

    def datasets(self, *, seed: int, occlusion: OcclusionPlan):
        s = self.settings
        (train_ann, train_images), (val_ann, val_images) = self._source_files(seed)
        library = self.patch_library(train_ann, train_images, occlusion.max_patches, occlusion.val_seed)
        common = {
            "input_size": tuple(s.input_size),
            "sigma": s.sigma,
            "num_keypoints": self.num_keypoints,
            "flip_pairs": COCO_FLIP_PAIRS,
        }
        twins = None
        if occlusion.train is not None:
            twins = TwinSource(library, occlusion.train, COCO_OCCLUSION_ANCHORS)
        augmentation = Augmentation(
            scale_factor=s.scale_factor, rotation_factor=s.rotation_factor, flip=s.flip
        )
        train = CocoKeypoints(
            train_ann,
            train_images,
            augmentation=augmentation,
            twins=twins,
            seed=seed,
            max_persons=s.max_train_persons,
            **common,
        )
        occ_ann, occ_images = build_occluded_split(
            val_ann,
            val_images,
            self.cache_dir / "pose" / "occluded_val",
            library=library,
            settings=occlusion.val,
            anchors=COCO_OCCLUSION_ANCHORS,
            seed=occlusion.val_seed,
        )
        splits = {
            self.clean_split: CocoKeypoints(val_ann, val_images, max_persons=s.max_val_persons, **common),
            self.occluded_split: CocoKeypoints(occ_ann, occ_images, max_persons=s.max_val_persons, **common),
        }
        self._provenance = {
            "train_annotations": str(train_ann),
            "train_annotations_sha256": file_digest(train_ann),
            "val_annotations_sha256": file_digest(val_ann),
            "occluded_val_annotations_sha256": file_digest(occ_ann),
            "patch_library_sha256": library.digest(),
            "occluded_val_images_sha256": images_digest(occ_ann, occ_images),
            "box_source": "ground_truth",
            "skeleton": [list(pair) for pair in COCO_SKELETON],
            "train_persons": len(train),
            "skipped_boxes": train.skipped_boxes,
        }
        if s.dataset == "synthetic":  # generated here, so cheap to hash; a COCO copy is hashed by its json
            self._provenance["train_images_sha256"] = images_digest(train_ann, train_images)
            self._provenance["val_images_sha256"] = images_digest(val_ann, val_images)
        self._warnings = [
            f"{data.ann_file}: skipped {data.skipped_boxes} person annotation(s) with a zero or negative "
            "box size"
            for data in (train, splits[self.clean_split])
            if data.skipped_boxes
        ]
        return train, splits

    def data_warnings(self) -> list[str]:
        return list(self._warnings)

    def provenance(self) -> dict[str, Any]:
        return dict(self._provenance)

    def head(self, in_channels: int, in_stride: int) -> nn.Module:
        return HeatmapHead(in_channels, in_stride, self.num_keypoints)

    def loss(self, outputs: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        return _joints_mse(outputs.float(), batch["target"], batch["target_weight"])

    def predict(self, model: nn.Module, batch: dict[str, Any]) -> list[dict[str, Any]]:
        images = batch["image"]
        heatmaps = model(images).float()
        if self.settings.flip_test:
            flipped = model(images.flip(-1)).float()
            heatmaps = 0.5 * (heatmaps + codec.flip_heatmaps(flipped, COCO_FLIP_PAIRS))
        coords, maxvals = codec.decode_heatmaps(heatmaps)
        coords = codec.heatmap_to_input(coords.cpu().numpy().astype(np.float64), HeatmapHead.out_stride)
        maxvals = maxvals.cpu().numpy()
        meta = batch["meta"]
        predictions = []
        for i in range(len(coords)):
            center = meta["center"][i].cpu().numpy()
            size = meta["size"][i].cpu().numpy()
            matrix = codec.crop_affine(
                center, size, float(meta["rotation"][i]), tuple(self.settings.input_size)
            )
            points = codec.apply_affine(coords[i], codec.invert_affine(matrix))
            confident = maxvals[i][maxvals[i] > 0.2]
            score = float(meta["score"][i]) * (float(confident.mean()) if confident.size else 0.0)
            keypoints = np.concatenate([points, maxvals[i][:, None]], axis=1)
            predictions.append(
                {
                    "image_id": int(meta["image_id"][i]),
                    "ann_id": int(meta["ann_id"][i]),
                    "category_id": 1,
                    "keypoints": [round(float(v), 3) for v in keypoints.reshape(-1)],
                    "score": round(score, 6),
                }
            )
        return predictions

    def showcase(
        self, predictions: list[dict[str, Any]], dataset: CocoKeypoints, count: int = 8
    ) -> list[dict]:
        """Predictions of the first `count` persons (a fixed set) with image path, box and ground truth."""
        by_ann = {p["ann_id"]: p for p in predictions}
        chosen = []
        for record in dataset.records:
            if record.ann_id in by_ann and len(chosen) < count:
                chosen.append(
                    {
                        "image": str(record.image_path.resolve()),
                        "image_id": record.image_id,
                        "ann_id": record.ann_id,
                        "box": [round(float(v), 2) for v in record.box],
                        "ground_truth": [round(float(v), 2) for v in record.keypoints.reshape(-1)],
                        "prediction": by_ann[record.ann_id]["keypoints"],
                    }
                )
        return chosen

    def evaluate(self, predictions: list[dict[str, Any]], dataset: CocoKeypoints) -> dict[str, float]:
        stats = oks_ap(dataset.coco, predictions, dataset.image_ids, COCO_OKS_SIGMAS)
        stats.update(keypoint_similarity_split(dataset.coco, predictions, COCO_OKS_SIGMAS))
        return {m.name: stats[m.name] for m in self.metrics}
