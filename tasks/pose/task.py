"""Human pose as a task: COCO / MPII / CrowdPose / OCHuman / built C-COCO, C-MPII and embedded synthetic data.

The dataset decides the keypoint layout (17, 16 or 14 joints) and the metric (OKS AP or PCKh); the
engine learns both from this task only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.core.cache import file_digest, images_digest
from harness.core.errors import ConfigError, DataError
from harness.core.external import ExternalModel, ModelSpec
from harness.core.occlusion import PatchLibrary
from harness.core.registry import TASKS
from harness.core.task import OcclusionPlan, Task
from tasks.common.heatmap_model import HeatmapHead, joints_mse, keypoint_rows, predict_keypoints, showcase
from tasks.pose.benchmark import SEVERITY_LEVELS, severity_settings
from tasks.pose.dataset import (
    Augmentation,
    CocoKeypoints,
    Detections,
    MpiiKeypoints,
    TopDownKeypoints,
    TwinSource,
)
from tasks.pose.keypoints import COCO_BODY_PARTS
from tasks.pose.occluded_val import build_occluded_split
from tasks.pose.patches import cut_body_part_patches
from tasks.pose.pckh import load_head_boxes
from tasks.pose.settings import (  # noqa: F401  (re-exported: the task's public names)
    CROWD_METRICS,
    DEFAULT_SPLITS,
    LAYOUTS,
    OKS_METRICS,
    SPECS,
    PoseSettings,
    metrics_of,
    split_files,
)


@TASKS.register("pose")
class PoseTask(Task):
    """Top-down human pose: heatmap head, JointsMSE loss, flip test, OKS AP or PCKh by dataset.

    Example:
        >>> task = PoseTask(PoseSettings(synthetic_train_images=16))
        >>> train, splits = task.datasets(seed=0, occlusion=plan)  # doctest: +SKIP
    """

    Settings = PoseSettings
    metrics = OKS_METRICS
    primary_metric = "AP"
    severity_levels = tuple(SEVERITY_LEVELS)  # the C-COCO builder's ladder
    external_kinds = ("mmpose",)  # `harness eval --model mmpose:<config>` (tasks/pose/external_mmpose.py)

    def __init__(self, settings: PoseSettings, cache_dir: Path | None = None):
        if cache_dir is None and settings.cache_dir:
            cache_dir = Path(settings.cache_dir)
        super().__init__(settings, cache_dir)
        self.spec = SPECS[settings.dataset]
        self.num_keypoints = self.spec.num_keypoints
        for i, extra in enumerate(settings.extra_val):
            if SPECS[extra.dataset] != self.spec:
                raise ConfigError(
                    f"data.extra_val[{i}].dataset: {extra.dataset} has {SPECS[extra.dataset].num_keypoints} "
                    f"keypoints, the model predicts {self.num_keypoints} (data.dataset {settings.dataset})"
                )
        self.metrics = tuple(
            dict.fromkeys(
                m
                for name in (settings.dataset, *(e.dataset for e in settings.extra_val))
                for m in metrics_of(name)
            )
        )
        self.primary_metric = self.metrics[0].name
        self._provenance: dict[str, Any] = {}
        self._warnings: list[str] = []

    @classmethod
    def unused_data_keys(cls, settings: PoseSettings) -> dict[str, str]:
        if settings.dataset != "synthetic":
            return {}
        why = "the embedded synthetic data is generated, it reads no dataset folder (set data.dataset)"
        keys = ("root", "train_split", "val_split", "head_boxes")
        return {f"data.{k}": why for k in keys if getattr(settings, k) is not None}

    @property
    def dataset_name(self) -> str:
        return "synthetic-coco" if self.settings.dataset == "synthetic" else self.settings.dataset

    @property
    def input_size(self) -> tuple[int, int]:
        return tuple(self.settings.input_size)

    def _root(self, root: str | None, key: str) -> Path:
        if not root:
            raise DataError(
                f"{key}: a dataset root folder is required when data.dataset is '{self.settings.dataset}'"
            )
        path = Path(root).expanduser()
        if not path.is_dir():
            raise DataError(f"{key}: folder not found: {path}")
        return path

    def _source_files(self) -> tuple[tuple[Path, Path], tuple[Path, Path]]:
        s = self.settings
        if s.dataset == "synthetic":
            from tasks.pose.synthetic import ensure_synthetic_coco

            root = self.cache_dir / "pose"
            size = tuple(s.synthetic_image_size)
            train = ensure_synthetic_coco(
                root, split="train", num_images=s.synthetic_train_images, seed=s.data_seed, image_size=size
            )
            val = ensure_synthetic_coco(
                root, split="val", num_images=s.synthetic_val_images, seed=s.data_seed, image_size=size
            )
            return train, val
        root = self._root(s.root, "data.root")
        train_split, val_split = DEFAULT_SPLITS[s.dataset]
        return (
            split_files(s.dataset, root, s.train_split or train_split),
            split_files(s.dataset, root, s.val_split or val_split),
        )

    def patch_library(self, ann_file: Path, image_dir: Path, max_patches: int, seed: int) -> PatchLibrary:
        """Body-part patches cut from COCO-format person masks, cached next to the other generated data."""
        cache = self.cache_dir / "patches" / f"{file_digest(ann_file)[:12]}_n{max_patches}_s{seed}.npz"
        if cache.is_file():
            return PatchLibrary.load(cache)
        library = cut_body_part_patches(
            ann_file, image_dir, parts=COCO_BODY_PARTS, max_patches=max_patches, seed=seed
        )
        if len(library) == 0:
            raise DataError(
                f"{ann_file}: no body-part patch could be cut (persons need segmentation + keypoints)"
            )
        library.save(cache)
        return library

    def _patch_source(self, train_ann: Path, train_images: Path) -> tuple[Path, Path]:
        s = self.settings
        if s.patch_root:
            return split_files("coco", self._root(s.patch_root, "data.patch_root"), s.patch_split)
        if s.dataset in ("mpii", "crowdpose"):
            raise DataError(
                f"data.patch_root: {s.dataset} has no person masks to cut patches from; "
                "give a COCO root (its train person masks are used)"
            )
        return train_ann, train_images

    def _head_boxes(self, root: str | None, given: str | None, ann_file: Path, key: str) -> np.ndarray:
        from tasks.pose.dataset import read_mpii

        path = Path(given).expanduser() if given else (Path(root).expanduser() / "annot" / "gt_valid.mat")
        if not path.is_file():
            raise DataError(
                f"{key}: PCKh needs MPII head boxes; {path} not found (give gt_valid.mat or a json list)"
            )
        return load_head_boxes(path, len(read_mpii(ann_file)))

    def _split(self, dataset: str, ann: Path, images: Path, head_boxes=None, **common) -> TopDownKeypoints:
        s = self.settings
        if dataset == "mpii":
            if s.detections:
                raise ConfigError("data.detections: person detections apply to COCO-format splits, not MPII")
            return MpiiKeypoints(ann, images, head_boxes=head_boxes, max_persons=s.max_val_persons, **common)
        detections = None
        if s.detections:
            detections = Detections(Path(s.detections).expanduser(), s.det_score_threshold)
        return CocoKeypoints(
            ann,
            images,
            detections=detections,
            oks_nms_threshold=s.oks_nms_threshold,
            max_persons=s.max_val_persons,
            **common,
        )

    def datasets(self, *, seed: int, occlusion: OcclusionPlan):
        s = self.settings
        (train_ann, train_images), (val_ann, val_images) = self._source_files()
        fmt = "mpii" if s.dataset == "mpii" else "coco"
        common = {"input_size": tuple(s.input_size), "sigma": s.sigma, "spec": self.spec}
        head_boxes = None
        if fmt == "mpii":
            head_boxes = self._head_boxes(s.root, s.head_boxes, val_ann, "data.head_boxes")
        patch_ann, patch_images = self._patch_source(train_ann, train_images)
        if not patch_ann.is_file():
            raise DataError(
                f"data.patch_root: person keypoints json {patch_ann} not found (patches are cut from it)"
            )
        library = self.patch_library(patch_ann, patch_images, occlusion.max_patches, occlusion.val_seed)
        twins = None
        if occlusion.train is not None:
            twins = TwinSource(library, occlusion.train, self.spec.anchors)
        augmentation = Augmentation(
            scale_factor=s.scale_factor, rotation_factor=s.rotation_factor, flip=s.flip
        )
        reader = MpiiKeypoints if fmt == "mpii" else CocoKeypoints
        train = reader(
            train_ann, train_images, augmentation=augmentation, twins=twins, seed=seed,
            max_persons=s.max_train_persons, **common,
        )  # fmt: skip
        occ_ann, occ_images = self._occluded_source(fmt, val_ann, val_images, library, occlusion)
        splits = {
            self.clean_split: self._split(fmt, val_ann, val_images, head_boxes, **common),
            self.occluded_split: self._split(fmt, occ_ann, occ_images, head_boxes, **common),
            **self._extra_splits(common),
        }
        self._provenance = self._data_provenance(
            train, splits, (train_ann, train_images), (val_ann, val_images), (occ_ann, occ_images), library
        )
        self._warnings = [
            f"{data.ann_file}: skipped {data.skipped_boxes} person annotation(s) with a zero or negative "
            "box size"
            for data in (train, splits[self.clean_split])
            if getattr(data, "skipped_boxes", 0)
        ]
        return train, splits

    def _occluded_source(
        self, fmt: str, val_ann: Path, val_images: Path, library: PatchLibrary, occlusion: OcclusionPlan
    ) -> tuple[Path, Path]:
        """(annotations, images) of the occluded val: a built C-COCO / C-MPII folder, or the frozen split
        generated from the clean val (at a severity level when asked), cached per seed."""
        s = self.settings
        if s.occluded_root and occlusion.val_severity is not None:
            raise ConfigError(
                "occlusion.val_severity: data.occluded_root is an occluded split built already; "
                "leave one of them unset"
            )
        if s.occluded_root:
            root = self._root(s.occluded_root, "data.occluded_root")
            occ_ann, occ_images = split_files(fmt, root, s.val_split or DEFAULT_SPLITS[s.dataset][1])
            if not occ_ann.is_file():
                raise DataError(
                    f"data.occluded_root: {occ_ann} not found (build it with `harness benchmark build`)"
                )
            return occ_ann, occ_images
        return build_occluded_split(
            val_ann,
            val_images,
            self.cache_dir / "pose" / "occluded_val",
            library=library,
            settings=occlusion.val
            if occlusion.val_severity is None
            else severity_settings(occlusion.val_severity),
            anchors=self.spec.anchors,
            seed=occlusion.val_seed,
            layout=fmt,
            keypoint_names=self.spec.keypoints,
        )

    def _extra_splits(self, common: dict) -> dict[str, TopDownKeypoints]:
        """`data.extra_val`: more eval splits in the model's keypoint layout (e.g. OCHuman val)."""
        splits = {}
        for i, extra in enumerate(self.settings.extra_val):
            ann, images = split_files(
                extra.dataset, self._root(extra.root, f"data.extra_val[{i}].root"), extra.split
            )
            boxes = None
            if extra.dataset == "mpii":
                boxes = self._head_boxes(extra.root, extra.head_boxes, ann, f"data.extra_val[{i}].head_boxes")
            kind = "mpii" if extra.dataset == "mpii" else "coco"
            splits[extra.name] = self._split(kind, ann, images, boxes, **common)
        return splits

    def _data_provenance(self, train, splits, train_files, val_files, occluded_files, library) -> dict:
        """What every record says about its data: files and digests, box source, layout, counts."""
        s = self.settings
        (train_ann, train_images), (val_ann, val_images), (occ_ann, occ_images) = (
            train_files, val_files, occluded_files,
        )  # fmt: skip
        fmt = "mpii" if s.dataset == "mpii" else "coco"
        provenance = {
            "train_annotations": str(train_ann),
            "train_annotations_sha256": file_digest(train_ann),
            "val_annotations_sha256": file_digest(val_ann),
            "occluded_val_annotations": str(occ_ann),
            "occluded_val_annotations_sha256": file_digest(occ_ann),
            "patch_library_sha256": library.digest(),
            "box_source": splits[self.clean_split].box_source,
            "keypoint_layout": self.spec.name,
            "skeleton": [list(pair) for pair in self.spec.skeleton],
            "train_persons": len(train),
            "skipped_boxes": getattr(train, "skipped_boxes", 0),
            **{
                f"{name}_annotations": str(data.ann_file)
                for name, data in splits.items()
                if name not in (self.clean_split, self.occluded_split)
            },
        }
        if s.dataset == "synthetic" or not s.occluded_root:  # generated here, so cheap to hash
            provenance["occluded_val_images_sha256"] = (
                images_digest(occ_ann, occ_images) if fmt == "coco" else None
            )
        if s.dataset == "synthetic":
            provenance["train_images_sha256"] = images_digest(train_ann, train_images)
            provenance["val_images_sha256"] = images_digest(val_ann, val_images)
        return provenance

    def pretraining_set(self, *, seed: int, images: int) -> TopDownKeypoints:
        """Clean, augmented crops of `images` synthetic people drawn for the `pretrain` split (own RNG stream:
        no image in common with train or val)."""
        s = self.settings
        if s.dataset != "synthetic":
            self._root(s.root, "data.root")  # a missing dataset is the first thing to fix
            raise ConfigError(
                "model.pretrained: embedded: only the embedded synthetic data has a pretraining split; for "
                f"{s.dataset} give a local (ImageNet) checkpoint path"
            )
        from tasks.pose.synthetic import ensure_synthetic_coco

        ann, image_dir = ensure_synthetic_coco(
            self.cache_dir / "pose", split="pretrain", num_images=images, seed=s.data_seed,
            image_size=tuple(s.synthetic_image_size),
        )  # fmt: skip
        augmentation = Augmentation(
            scale_factor=s.scale_factor, rotation_factor=s.rotation_factor, flip=s.flip
        )
        return CocoKeypoints(
            ann, image_dir, augmentation=augmentation, seed=seed, input_size=tuple(s.input_size),
            sigma=s.sigma, spec=self.spec,
        )  # fmt: skip

    def data_warnings(self) -> list[str]:
        return list(self._warnings)

    def provenance(self) -> dict[str, Any]:
        return dict(self._provenance)

    def head(self, in_channels: int, in_stride: int) -> nn.Module:
        return HeatmapHead(in_channels, in_stride, self.num_keypoints)

    def loss(self, outputs: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        return joints_mse(outputs.float(), batch["target"], batch["target_weight"])

    def predict(self, model: nn.Module, batch: dict[str, Any]) -> list[dict[str, Any]]:
        s = self.settings
        points, maxvals = predict_keypoints(
            model, batch, flip_pairs=self.spec.flip_pairs, input_size=tuple(s.input_size),
            flip_test=s.flip_test, decoder=s.decoder,
        )  # fmt: skip
        meta = batch["meta"]
        predictions = []
        for i, keypoints in enumerate(keypoint_rows(points, maxvals)):
            # Pose score = box score x mean confidence of the confident joints (rescoring of detected boxes).
            confident = maxvals[i][maxvals[i] > 0.2]
            score = float(meta["score"][i]) * (float(confident.mean()) if confident.size else 0.0)
            predictions.append(
                {
                    "image_id": int(meta["image_id"][i]),
                    "ann_id": int(meta["ann_id"][i]),
                    "category_id": 1,
                    "keypoints": keypoints,
                    "score": round(score, 6),
                    "box": [round(float(v), 2) for v in meta["box"][i].tolist()],
                }
            )
        return predictions

    prediction_format = "json"

    def write_predictions(
        self, predictions: list[dict[str, Any]], dataset: TopDownKeypoints, path: Path
    ) -> str:
        from tasks.pose.predictions import write_pose_predictions

        return write_pose_predictions(predictions, dataset, path)

    def inference_dataset(self, images: list[Path], boxes: dict[Path, list[list[float]]]) -> TopDownKeypoints:
        from tasks.pose.inference import inference_dataset

        s = self.settings
        return inference_dataset(images, boxes, spec=self.spec, input_size=s.input_size, sigma=s.sigma)

    def draw_prediction(self, image: np.ndarray, prediction: dict[str, Any]) -> np.ndarray:
        from tasks.pose.inference import draw_pose

        return draw_pose(image, prediction, self.spec)

    def external_model(self, spec: ModelSpec, checkpoint: Path | None) -> ExternalModel:
        if spec.kind != "mmpose":
            return super().external_model(spec, checkpoint)
        from tasks.pose.external_mmpose import MMPoseTopDown

        return MMPoseTopDown(spec, checkpoint, self.spec)

    def showcase(
        self, predictions: list[dict[str, Any]], dataset: TopDownKeypoints, count: int = 8
    ) -> list[dict]:
        """Predictions of the first `count` persons (a fixed set) with image path, box and ground truth."""
        return showcase(predictions, dataset.records, count)

    def evaluate(self, predictions: list[dict[str, Any]], dataset: TopDownKeypoints) -> dict[str, float]:
        stats = dataset.evaluate(predictions)
        names = [m.name for m in metrics_of("mpii" if isinstance(dataset, MpiiKeypoints) else "coco")]
        names += [m.name for m in CROWD_METRICS if m.name in stats]
        return {name: stats.get(name) for name in names}
