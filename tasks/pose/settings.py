"""What a pose config can say (`data:` settings) and what each dataset brings: its files' layout under a
root, its default splits, its keypoint layout and its metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from harness.core.task import Metric
from tasks.common.heatmap import Decoder
from tasks.pose.keypoints import COCO_LAYOUT, CROWDPOSE_LAYOUT, MPII_LAYOUT, KeypointSpec
from tasks.pose.pckh import JOINT_GROUPS

Format = Literal["coco", "mpii", "crowdpose", "ochuman"]

# Where each format keeps a split's annotations and images, relative to its root (the official layouts).
LAYOUTS: dict[str, tuple[str, str]] = {
    "coco": ("annotations/person_keypoints_{split}.json", "{split}"),
    "mpii": ("annot/{split}.json", "images"),
    "crowdpose": ("json/crowdpose_{split}.json", "images"),
    "ochuman": ("ochuman_coco_format_{split}_range_0.00_1.00.json", "images"),
}
DEFAULT_SPLITS = {
    "coco": ("train2017", "val2017"),
    "mpii": ("train", "valid"),
    "crowdpose": ("trainval", "test"),
    "ochuman": (None, "val"),  # OCHuman has no training set: train on COCO, evaluate with extra_val
}
SPECS: dict[str, KeypointSpec] = {
    "synthetic": COCO_LAYOUT,
    "coco": COCO_LAYOUT,
    "ochuman": COCO_LAYOUT,
    "crowdpose": CROWDPOSE_LAYOUT,
    "mpii": MPII_LAYOUT,
}

OKS_METRICS = tuple(
    Metric(n)
    for n in (
        "AP",
        "AP50",
        "AP75",
        "APM",
        "APL",
        "AR",
        "AP_visible",
        "AP_occluded",
        "kOKS_visible",
        "kOKS_occluded",
    )
)
CROWD_METRICS = tuple(Metric(n) for n in ("AP_easy", "AP_medium", "AP_hard"))
PCKH_METRICS = tuple(
    Metric(n)
    for n in ("PCKh", "PCKh@0.1", *(f"PCKh_{g}" for g in JOINT_GROUPS), "PCKh_visible", "PCKh_occluded")
)


def metrics_of(dataset: str) -> tuple[Metric, ...]:
    if dataset == "mpii":
        return PCKH_METRICS
    return OKS_METRICS + (CROWD_METRICS if dataset == "crowdpose" else ())


def split_files(dataset: str, root: Path, split: str) -> tuple[Path, Path]:
    """(annotation file, image folder) of `split` under a dataset root in its official layout."""
    ann, images = LAYOUTS[dataset]
    return root / ann.format(split=split), root / images.format(split=split)


class ExtraSplit(BaseModel):
    """One more eval split, e.g. OCHuman val for a COCO-trained model (same keypoint layout)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    dataset: Format
    root: str
    split: str
    head_boxes: str | None = None


class PoseSettings(BaseModel):
    """The `data:` section of a pose config."""

    model_config = ConfigDict(extra="forbid")

    dataset: Literal["synthetic", "coco", "mpii", "crowdpose"] = "synthetic"
    root: str | None = None  # dataset root in its official layout (see LAYOUTS)
    train_split: str | None = None  # default per dataset: train2017 / train / trainval
    val_split: str | None = None  # default per dataset: val2017 / valid / test
    head_boxes: str | None = None  # MPII: gt_valid.mat (default <root>/annot/gt_valid.mat) or json
    occluded_root: str | None = (
        None  # a built C-COCO / C-MPII folder: the occluded split instead of a fresh one
    )
    patch_root: str | None = None  # COCO root whose train person masks give the patches (MPII, CrowdPose)
    patch_split: str = "train2017"
    detections: str | None = None  # person detections json (COCO results) for the val splits
    det_score_threshold: float = 0.0
    oks_nms_threshold: float = 0.9
    extra_val: list[ExtraSplit] = []
    # The embedded data is a fixed benchmark: drawn from this seed, not the run seed, so every method and
    # seed trains and scores on the same images (the run seed varies initialisation, augmentation, order).
    data_seed: int = 0
    synthetic_train_images: int = 1500
    synthetic_val_images: int = 150
    synthetic_image_size: tuple[int, int] = (192, 160)
    input_size: tuple[int, int] = (128, 96)  # (h, w)
    sigma: float = 2.0
    scale_factor: float = 0.25
    rotation_factor: float = 30.0
    flip: bool = True
    flip_test: bool = True
    decoder: Decoder = "argmax_quarter"  # heatmap -> coordinates: HRNet's argmax + quarter shift, or "dark"
    max_train_persons: int | None = None
    max_val_persons: int | None = None
    cache_dir: str | None = None
