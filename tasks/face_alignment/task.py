"""Face alignment as a task: COFW / WFLW / 300W (mmpose's COCO-style json) or embedded synthetic faces,
a landmark heatmap head, NME / FR@0.1 / AUC@0.1 and NME on visible vs. occluded landmarks."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, model_serializer
from torch import nn

from harness.core.cache import images_digest
from harness.core.errors import ConfigError, DataError
from harness.core.external import ExternalModel, ModelSpec
from harness.core.occlusion import PatchLibrary
from harness.core.registry import TASKS
from harness.core.task import Metric, OcclusionPlan, Task
from tasks.common.heatmap import Decoder
from tasks.common.heatmap_model import HeatmapHead, joints_mse, keypoint_rows, predict_keypoints, showcase
from tasks.face_alignment import backbones  # noqa: F401  (registers hrnetv2_* and fan*)
from tasks.face_alignment.dataset import Augmentation, FaceLandmarks, TwinSource
from tasks.face_alignment.landmarks import LAYOUTS, Layout
from tasks.face_alignment.metrics import landmark_metrics
from tasks.face_alignment.occluded_val import build_occluded_split
from tasks.face_alignment.occluders import face_patch_library
from tasks.face_alignment.outputs import SEVERITY_LEVELS, severity_settings
from tasks.face_alignment.published import annotation_digest

# mmpose's file names under <root>/annotations/: (train, clean val, {extra split: file}).
_WFLW_SUBSETS = ("largepose", "expression", "illumination", "makeup", "occlusion", "blur")
SOURCE_FILES: dict[str, tuple[str, str, dict[str, str]]] = {
    "cofw": ("cofw_train.json", "cofw_test.json", {}),
    "wflw": (
        "face_landmarks_wflw_train.json",
        "face_landmarks_wflw_test.json",
        {f"wflw_{name}": f"face_landmarks_wflw_test_{name}.json" for name in _WFLW_SUBSETS},
    ),
    "300w": (
        "face_landmarks_300w_train.json",
        "face_landmarks_300w_valid.json",  # "full" = common + challenge
        {
            "300w_common": "face_landmarks_300w_valid_common.json",
            "300w_challenge": "face_landmarks_300w_valid_challenge.json",
            "300w_test": "face_landmarks_300w_test.json",
        },
    ),
}
# The files as their authors publish them, directly under <root>: read when mmpose's json is not there.
PUBLISHED_FILES: dict[str, tuple[str, str]] = {"cofw": ("COFW_train_color.mat", "COFW_test_color.mat")}


class FaceAlignmentSettings(BaseModel):
    """The `data:` section of a face alignment config."""

    model_config = ConfigDict(extra="forbid")

    dataset: Literal["synthetic", "cofw", "wflw", "300w"] = "synthetic"
    # holds annotations/<mmpose json files> and the image folder; for COFW, or Caltech's COFW_*_color.mat
    root: str | None = None
    image_dir: str = "images"  # relative to root (a COFW .mat holds its images: not used for it)
    # Relative to root; default annotations/<mmpose's train file>, else COFW's COFW_train_color.mat. Also the
    # published formats: a WFLW list_98pt_rect_attr_*.txt, a folder of 300W .pts files (published.py) or a
    # COFW .mat (cofw_mat.py).
    train_file: str | None = None
    val_file: str | None = None  # the clean val split; default 300W full / COFW test / WFLW test
    extra_splits: bool = True  # also score 300W common/challenge/test and WFLW's subsets when present
    normalization: Literal["dataset", "pupils", "outer_eyes"] = "dataset"  # NME's distance
    # The embedded data is a fixed benchmark: drawn from this seed, not the run seed (which varies
    # initialisation, augmentation and order), so every method and seed scores on the same faces.
    data_seed: int = 0
    # The embedded faces' landmarks: COFW's 29 or 300W's (iBUG's) 68, laid on the same images; 300w is what
    # `--model face_alignment:2DFAN-<n>` scores. Only with dataset: synthetic (a real dataset has its own).
    synthetic_layout: Literal["cofw", "300w"] = "cofw"
    synthetic_train_images: int = 2000
    synthetic_val_images: int = 200
    synthetic_image_size: tuple[int, int] = (112, 112)
    input_size: tuple[int, int] = (64, 64)  # (h, w); HRNet needs multiples of 32, FAN of 64
    sigma: float = 1.5
    padding: float = 1.25
    scale_factor: float = 0.25
    rotation_factor: float = 30.0
    shift_factor: float = 0.05
    flip: bool = True
    flip_test: bool = True
    # heatmap -> coordinates: DARK's Taylor step (at 64-px crops the argmax alone is a tenth of the
    # inter-pupil distance off), or HRNet's "argmax_quarter"
    decoder: Decoder = "dark"
    max_train_faces: int | None = None
    max_val_faces: int | None = None
    cache_dir: str | None = None

    @model_serializer(mode="wrap")
    def _default_layout_unwritten(self, handler) -> dict[str, Any]:
        """COFW's layout is left out of the written config, so configs and hashes stay as before the key."""
        data = handler(self)
        if self.synthetic_layout == "cofw":
            data.pop("synthetic_layout", None)
        return data


def _chosen_file(root: Path, configured: str | None, default: str, published: str | None, key: str) -> Path:
    """The configured file, else mmpose's default, else the published file when only that one is there."""
    path = root / (configured or default)
    if configured is None and not path.exists() and published and (root / published).is_file():
        return root / published
    if not path.exists():
        also = f" (nor the published {root / published})" if configured is None and published else ""
        raise DataError(f"{key}: annotation file not found: {path}{also}")
    return path


@TASKS.register("face_alignment")
class FaceAlignmentTask(Task):
    """Face landmark localisation with heatmaps.

    Example:
        >>> task = FaceAlignmentTask(FaceAlignmentSettings(synthetic_train_images=16))
        >>> train, splits = task.datasets(seed=0, occlusion=plan)  # doctest: +SKIP
    """

    Settings = FaceAlignmentSettings
    metrics = (
        Metric("NME", higher_is_better=False),
        Metric("FR@0.1", higher_is_better=False),
        Metric("AUC@0.1", higher_is_better=True),
        Metric("NME_visible", higher_is_better=False),
        Metric("NME_occluded", higher_is_better=False),
    )
    primary_metric = "NME"
    severity_levels = tuple(SEVERITY_LEVELS)
    external_kinds = ("face_alignment",)  # `--model face_alignment:2DFAN-4` (external_fan.py)

    def __init__(self, settings: FaceAlignmentSettings, cache_dir: Path | None = None):
        if cache_dir is None and settings.cache_dir:
            cache_dir = Path(settings.cache_dir)
        super().__init__(settings, cache_dir)
        synthetic = settings.dataset == "synthetic"
        self.layout: Layout = LAYOUTS[settings.synthetic_layout if synthetic else settings.dataset]
        self.norm_points = self._norm_points()
        self._provenance: dict[str, Any] = {}
        self._warnings: list[str] = []

    def _norm_points(self) -> tuple[int, int]:
        mode, layout = self.settings.normalization, self.layout
        if mode == "dataset":
            return layout.norm_points
        if mode == "outer_eyes":
            return layout.outer_eyes
        if layout.pupils is None:
            raise ConfigError(f"data.normalization: {layout.name} has no pupil landmarks; use outer_eyes")
        return layout.pupils

    @classmethod
    def unused_data_keys(cls, settings: FaceAlignmentSettings) -> dict[str, str]:
        if settings.dataset != "synthetic":
            if "synthetic_layout" not in settings.model_fields_set:
                return {}
            why = (
                "it picks the landmarks of the embedded synthetic faces (data.dataset: synthetic); "
                f"{settings.dataset} comes in its own layout"
            )
            return {"data.synthetic_layout": why}
        why = "the embedded synthetic faces are generated, they read no dataset folder (set data.dataset)"
        return {
            f"data.{k}": why for k in ("root", "train_file", "val_file") if getattr(settings, k) is not None
        }

    @property
    def dataset_name(self) -> str:
        s = self.settings
        return f"synthetic-{s.synthetic_layout}" if s.dataset == "synthetic" else s.dataset

    @property
    def input_size(self) -> tuple[int, int]:
        return tuple(self.settings.input_size)

    @property
    def cache_root(self) -> Path:
        return self.cache_dir / "face_alignment"

    def source_files(self) -> tuple[tuple[Path, Path], tuple[Path, Path], dict[str, Path]]:
        """((train json, images), (clean val json, images), {extra split: json}) for the configured data."""
        s = self.settings
        if s.dataset == "synthetic":
            from tasks.face_alignment.synthetic import ensure_synthetic_faces

            common = {"seed": s.data_seed, "image_size": tuple(s.synthetic_image_size), "layout": self.layout}
            root = self.cache_root
            train = ensure_synthetic_faces(root, split="train", num_images=s.synthetic_train_images, **common)
            val = ensure_synthetic_faces(root, split="val", num_images=s.synthetic_val_images, **common)
            return train, val, {}
        if not s.root:
            raise DataError(f"data.root: a {s.dataset} folder is required when data.dataset is '{s.dataset}'")
        root = Path(s.root).expanduser()
        if not root.is_dir():
            raise DataError(f"data.root: {s.dataset} folder not found: {root}")
        images = root / s.image_dir
        train_name, val_name, extra = SOURCE_FILES[s.dataset]
        published = PUBLISHED_FILES.get(s.dataset, (None, None))
        train = _chosen_file(root, s.train_file, f"annotations/{train_name}", published[0], "data.train_file")
        val = _chosen_file(root, s.val_file, f"annotations/{val_name}", published[1], "data.val_file")
        extras = {}
        if s.extra_splits:
            extras = {name: root / "annotations" / f for name, f in extra.items()}
            extras = {name: path for name, path in extras.items() if path.is_file() and path != val}
        return (train, images), (val, images), extras

    def pretraining_set(self, *, seed: int, images: int) -> FaceLandmarks:
        """Clean, augmented crops of `images` synthetic faces drawn for the `pretrain` split (own RNG stream:
        no face in common with train or val)."""
        s = self.settings
        if s.dataset != "synthetic":
            raise ConfigError(
                "model.pretrained: embedded: only the embedded synthetic faces have a pretraining split; for "
                f"{s.dataset} give a local (ImageNet) checkpoint path"
            )
        from tasks.face_alignment.synthetic import ensure_synthetic_faces

        ann, image_dir = ensure_synthetic_faces(
            self.cache_root, split="pretrain", num_images=images, seed=s.data_seed,
            image_size=tuple(s.synthetic_image_size), layout=self.layout,
        )  # fmt: skip
        augmentation = Augmentation(
            scale_factor=s.scale_factor, rotation_factor=s.rotation_factor, shift_factor=s.shift_factor,
            flip=s.flip,
        )  # fmt: skip
        return FaceLandmarks(
            ann, image_dir, layout=self.layout, input_size=tuple(s.input_size), sigma=s.sigma,
            padding=s.padding, augmentation=augmentation, seed=seed,
        )  # fmt: skip

    def patch_library(self, max_patches: int, seed: int) -> PatchLibrary:
        """Hands, objects, sunglasses and masks (cached next to the other generated data)."""
        return face_patch_library(max_patches, seed, self.cache_root / "patches")

    def readable(self, ann_file: Path, images: Path) -> tuple[Path, Path]:
        """(json, images) to read: a COFW .mat is extracted once into the cache, other files read as is."""
        if Path(ann_file).suffix != ".mat":
            return ann_file, images
        from tasks.face_alignment.cofw_mat import extract_cofw_mat

        return extract_cofw_mat(ann_file, self.cache_root / "cofw_mat")

    def datasets(self, *, seed: int, occlusion: OcclusionPlan):
        s = self.settings
        (train_src, train_images), (val_src, val_images), extra = self.source_files()
        train_ann, train_images = self.readable(train_src, train_images)
        val_ann, val_images = self.readable(val_src, val_images)
        library = self.patch_library(occlusion.max_patches, occlusion.val_seed)
        common = {
            "layout": self.layout,
            "input_size": tuple(s.input_size),
            "sigma": s.sigma,
            "padding": s.padding,
        }
        twins = None
        if occlusion.train is not None:
            twins = TwinSource(library, occlusion.train, self.layout.anchors, self.layout.part_anchors)
        augmentation = Augmentation(
            scale_factor=s.scale_factor,
            rotation_factor=s.rotation_factor,
            shift_factor=s.shift_factor,
            flip=s.flip,
        )
        train = FaceLandmarks(
            train_ann,
            train_images,
            augmentation=augmentation,
            twins=twins,
            seed=seed,
            max_faces=s.max_train_faces,
            **common,
        )
        clean = FaceLandmarks(val_ann, val_images, max_faces=s.max_val_faces, **common)
        occ_ann, occ_images = build_occluded_split(
            val_ann,
            val_images,
            self.cache_root / "occluded_val",
            library=library,
            settings=occlusion.val
            if occlusion.val_severity is None
            else severity_settings(occlusion.val_severity),
            layout=self.layout,
            seed=occlusion.val_seed,
        )
        splits = {
            self.clean_split: clean,
            self.occluded_split: FaceLandmarks(occ_ann, occ_images, max_faces=s.max_val_faces, **common),
        }
        for name, ann in extra.items():
            splits[name] = FaceLandmarks(ann, val_images, max_faces=s.max_val_faces, **common)
        if s.extra_splits:  # attribute flags written in-line (WFLW converted with its attribute columns)
            for attribute in sorted({a for r in clean.records for a, v in r.attributes.items() if v}):
                splits.setdefault(
                    f"{self.layout.name}_{attribute}",
                    FaceLandmarks(val_ann, val_images, attribute=attribute, **common),
                )
        self._provenance = {
            "layout": self.layout.name,
            "landmarks": self.layout.num_landmarks,
            "nme_normalization": list(self.norm_points),
            "train_annotations": str(train_src),
            "train_annotations_sha256": annotation_digest(train_src),
            "val_annotations_sha256": annotation_digest(val_src),
            "occluded_val_annotations_sha256": annotation_digest(occ_ann),
            "occluded_val_images_sha256": images_digest(occ_ann, occ_images),
            "patch_library_sha256": library.digest(),
            "patch_parts": library.part_counts(),
            "box_source": "ground_truth",
            "skeleton": [list(pair) for pair in self.layout.skeleton],
            "train_faces": len(train),
            "skipped_boxes": train.skipped_boxes,
            "extra_splits": sorted(set(splits) - {self.clean_split, self.occluded_split}),
        }
        if s.dataset == "synthetic":  # generated here, so cheap to hash
            self._provenance["train_images_sha256"] = images_digest(train_ann, train_images)
            self._provenance["val_images_sha256"] = images_digest(val_ann, val_images)
        self._warnings = [
            f"{data.ann_file}: skipped {data.skipped_boxes} face annotation(s) with a zero or negative "
            "box size"
            for data in (train, clean)
            if data.skipped_boxes
        ]
        return train, splits

    def data_warnings(self) -> list[str]:
        return list(self._warnings)

    def provenance(self) -> dict[str, Any]:
        return dict(self._provenance)

    def head(self, in_channels: int, in_stride: int) -> nn.Module:
        # HRNetV2's facial-landmark head: 1x1 conv + BN + ReLU before the output, 128-wide deconvolutions.
        return HeatmapHead(
            in_channels, in_stride, self.layout.num_landmarks, deconv_channels=128, refine=True
        )

    def loss(self, outputs: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        return joints_mse(outputs.float(), batch["target"], batch["target_weight"])

    def predict(self, model: nn.Module, batch: dict[str, Any]) -> list[dict[str, Any]]:
        s = self.settings
        points, maxvals = predict_keypoints(
            model, batch, flip_pairs=self.layout.flip_pairs, input_size=tuple(s.input_size),
            flip_test=s.flip_test, decoder=s.decoder,
        )  # fmt: skip
        meta = batch["meta"]
        return [
            {"image_id": int(meta["image_id"][i]), "ann_id": int(meta["ann_id"][i]), "keypoints": keypoints}
            for i, keypoints in enumerate(keypoint_rows(points, maxvals))
        ]

    def evaluate(self, predictions: list[dict[str, Any]], dataset: FaceLandmarks) -> dict[str, float]:
        by_ann = {p["ann_id"]: p for p in predictions}
        records = [r for r in dataset.records if r.ann_id in by_ann]
        if not records:
            return {m.name: None for m in self.metrics}
        gt = np.stack([r.keypoints[:, :2] for r in records])
        pred = np.stack([np.asarray(by_ann[r.ann_id]["keypoints"]).reshape(-1, 3)[:, :2] for r in records])
        a, b = self.norm_points
        norm = np.linalg.norm(gt[:, a] - gt[:, b], axis=1)
        labelled = np.stack([r.keypoints[:, 2] > 0 for r in records])
        degenerate = [
            r.ann_id
            for r, d, ok in zip(records, norm, labelled, strict=True)
            if d <= 0 or not ok[[a, b]].all()
        ]
        if degenerate:
            raise DataError(
                f"{dataset.ann_file}: annotation {degenerate[0]} has no usable NME distance between "
                f"landmarks {a} and {b} (unlabelled or coincident)"
            )
        occluded = np.stack([r.occluded for r in records])
        stats = landmark_metrics(pred, gt, labelled, occluded, norm, threshold=0.1)
        return {m.name: stats[m.name] for m in self.metrics}

    def external_model(self, spec: ModelSpec, checkpoint: Path | None) -> ExternalModel:
        if spec.kind != "face_alignment":
            return super().external_model(spec, checkpoint)
        from tasks.face_alignment.external_fan import FaceAlignmentFAN

        return FaceAlignmentFAN(spec, checkpoint, layout=self.layout, flip_test=self.settings.flip_test)

    def write_predictions(self, predictions: list[dict[str, Any]], dataset: FaceLandmarks, path: Path) -> str:
        from tasks.face_alignment.outputs import write_landmarks

        return write_landmarks(predictions, dataset, path)

    def inference_dataset(self, images: list[Path], boxes: dict[Path, list[list[float]]]) -> FaceLandmarks:
        from tasks.face_alignment.outputs import inference_dataset

        s = self.settings
        return inference_dataset(
            images, boxes, layout=self.layout, input_size=s.input_size, sigma=s.sigma, padding=s.padding
        )

    def draw_prediction(self, image: np.ndarray, prediction: dict[str, Any]) -> np.ndarray:
        from tasks.face_alignment.outputs import draw_landmarks

        return draw_landmarks(image, prediction, self.layout)

    def showcase(
        self, predictions: list[dict[str, Any]], dataset: FaceLandmarks, count: int = 8
    ) -> list[dict]:
        """Predictions of the first `count` faces (a fixed set) with image path, box and ground truth."""
        return showcase(predictions, dataset.records, count)
