"""Top-down keypoint datasets (COCO json, MPII list): one sample per person box, clean crop + twin.

The crop, twin and heatmap pipeline is `tasks.common.topdown`; this module reads the two annotation formats
into `PersonRecord`s and scores predictions (OKS AP via pycocotools, PCKh).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pycocotools.coco import COCO

from harness.core.errors import DataError
from tasks.common.topdown import Augmentation, Instance, TopDownDataset, TwinSource  # noqa: F401 (re-export)
from tasks.pose.keypoints import COCO_LAYOUT, KeypointSpec


@dataclass
class PersonRecord(Instance):
    """A person: box, keypoints (K, 3) and the box's score (1 for ground-truth boxes, a detector's else)."""

    score: float = 1.0


# CrowdPose's toolkit (and xtcocotools with `use_area=False`, which mmpose uses for it) scales OKS by this
# share of the box area: CrowdPose's annotations carry no segmentation `area`.
BOX_AREA_SHARE = 0.53


def load_coco(ann_file: Path, *, box_area: bool = False) -> COCO:
    """Load a COCO-format keypoint json quietly, with one-line errors and the fields real files omit derived.

    Published files differ in what they carry: CrowdPose has no `area`, other conversions may lack
    `iscrowd` or `num_keypoints`. Those are filled in as the official toolkits read them (see
    `derive_optional_fields`), so evaluation never stops on a KeyError after training.

    Args:
        ann_file: the json.
        box_area: score OKS against 0.53 x box area even where `area` is given (CrowdPose's rule).
    """
    ann_file = Path(ann_file)
    if not ann_file.is_file():
        raise DataError(f"annotation file not found: {ann_file}")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(str(ann_file))
    except ValueError as err:  # json.JSONDecodeError is a ValueError
        raise DataError(f"annotation file {ann_file} is not valid COCO json: {err}") from None
    except (KeyError, TypeError) as err:
        raise DataError(f"annotation file {ann_file} lacks the COCO field {err}") from None
    derive_optional_fields(coco, ann_file, box_area=box_area)
    return coco


def derive_optional_fields(coco: COCO, ann_file: Path, *, box_area: bool = False) -> None:
    """Fill in what published keypoint files may omit; a missing required field is one line.

    - `area` (absent in CrowdPose): 0.53 x box width x height, CrowdPose's toolkit rule (and mmpose's when a
      file has no area); with `box_area` this replaces every area, as CrowdPose's evaluation does.
    - `iscrowd`: 0, as pycocotools' own `_prepare` reads a missing flag.
    - `num_keypoints`: the count of labelled keypoints (v > 0), COCO's definition.

    Raises:
        DataError: naming the file, the entry and the field: no `categories` (COCOeval reads the person
            category from it), an image without `file_name`, an annotation without `bbox` where the area
            must come from the box.
    """
    if not isinstance(coco.dataset.get("categories"), list) or not coco.dataset["categories"]:
        raise DataError(
            f"{ann_file}: no 'categories' list (expected the person category with its 'keypoints' names)"
        )
    for image_id, info in coco.imgs.items():
        if "file_name" not in info:
            raise DataError(f"{ann_file}: image {image_id} lacks the field 'file_name'")
    for ann in coco.anns.values():
        ann.setdefault("iscrowd", 0)
        if "num_keypoints" not in ann:
            flags = np.asarray(ann.get("keypoints", []), dtype=np.float64).reshape(-1, 3)[:, 2]
            ann["num_keypoints"] = int((flags > 0).sum())
        if box_area or "area" not in ann:
            box = ann.get("bbox")
            if not isinstance(box, list | tuple) or len(box) != 4:
                raise DataError(
                    f"{ann_file}: annotation {ann.get('id')} has no 'area' and bbox {box}, expected "
                    "[x, y, w, h] (the OKS scale is 0.53 x box area)"
                )
            ann["area"] = BOX_AREA_SHARE * float(box[2]) * float(box[3])


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
                    f"{ann_file}: annotation {ann.get('id')} field 'keypoints' has "
                    f"{keypoints.size // 3} keypoints, expected {num_keypoints}"
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


class TopDownKeypoints(TopDownDataset):
    """Person crops around boxes, with heatmap targets and (optionally) the occluded twin.

    Subclasses read one annotation format into `PersonRecord`s and score predictions (`evaluate`).

    Args:
        records: the persons (image path, ids, box, keypoints (K, 3)).
        source: the annotation file, for messages.
        spec: the keypoint layout (flip pairs, sigmas, anchors).
        input_size: (h, w) of the network input.
        sigma: heatmap Gaussian sigma in heatmap pixels.
        augmentation: random scale/rotation/flip, or None for evaluation.
        twins: occluded-twin source, or None for no `twin` in the samples.
        seed: base seed; sample i in epoch e draws from rng(seed, e, i), independent of workers.
        max_persons: keep only the first N persons (quick runs).
    """

    box_source = "ground_truth"
    image_field = "file_name"  # the annotation field naming an image, for error messages

    def __init__(
        self,
        records: list[PersonRecord],
        source: Path,
        *,
        spec: KeypointSpec = COCO_LAYOUT,
        input_size: tuple[int, int] = (128, 96),
        sigma: float = 2.0,
        augmentation: Augmentation | None = None,
        twins: TwinSource | None = None,
        seed: int = 0,
        max_persons: int | None = None,
        empty_reason: str = "",
    ):
        self.spec = spec
        found = len(records)
        records = records[:max_persons] if max_persons is not None else records
        if not records:
            why = f"max_persons={max_persons} keeps none of {found} usable persons" if found else empty_reason
            raise DataError(f"{Path(source)}: no person left after filtering ({why})")
        super().__init__(
            records, source, flip_pairs=spec.flip_pairs, input_size=input_size, sigma=sigma,
            augmentation=augmentation, twins=twins, seed=seed, image_field=self.image_field,
        )  # fmt: skip

    def instance_meta(self, record: PersonRecord) -> dict[str, Any]:
        """The box and its score: a pose's score is the box score times its joints' confidence."""
        return {"score": record.score, "box": torch.from_numpy(np.asarray(record.box, dtype=np.float64))}

    def evaluate(self, predictions: list[dict]) -> dict[str, float | None]:
        """Score predictions of this split; subclasses know their ground-truth format."""
        raise NotImplementedError


class CocoKeypoints(TopDownKeypoints):
    """Person crops from a COCO-format keypoint json (COCO, OCHuman, CrowdPose, built C-COCO, synthetic).

    Args:
        ann_file: COCO json (images, annotations with keypoints and bbox, categories).
        image_dir: folder holding the `file_name` of every image.
        detections: person detections to crop around instead of the ground-truth boxes (evaluation only).
        oks_nms_threshold: OKS-NMS threshold applied to predictions from detected boxes.
        **kwargs: see `TopDownKeypoints`.
    """

    def __init__(
        self,
        ann_file: Path,
        image_dir: Path,
        *,
        detections: Detections | None = None,
        oks_nms_threshold: float = 0.9,
        **kwargs,
    ):
        image_dir = Path(image_dir)
        if not image_dir.is_dir():
            raise DataError(f"image folder not found: {image_dir}")
        self.image_dir = image_dir
        spec = kwargs.get("spec", COCO_LAYOUT)
        self.coco = load_coco(ann_file, box_area=spec.oks_area == "box")
        records, self.skipped_boxes = person_records(self.coco, Path(ann_file), image_dir, spec.num_keypoints)
        self.detections = detections
        self.oks_nms_threshold = oks_nms_threshold
        if detections is not None:
            records = detections.records(self.coco, Path(ann_file), image_dir, spec.num_keypoints)
            self.box_source = f"detections:{detections.path.name}@score>={detections.score_threshold}"
        total = len(self.coco.getAnnIds(iscrowd=False))
        reason = (
            f"of {total} non-crowd annotations, {self.skipped_boxes} have a zero or negative box size "
            "and the others no labelled keypoint"
        )
        super().__init__(records, Path(ann_file), empty_reason=reason, **kwargs)

    @property
    def image_ids(self) -> list[int]:
        return sorted({r.image_id for r in self.records})

    def evaluate(self, predictions: list[dict]) -> dict[str, float | None]:
        """OKS AP/AR (pycocotools), AP and kOKS on visible vs. occluded keypoints, CrowdPose buckets."""
        from tasks.pose import evaluation

        sigmas = self.spec.sigmas
        if self.detections is not None:
            predictions = evaluation.oks_nms(predictions, sigmas, self.oks_nms_threshold)
        # With detections every annotated image counts (a person no detector found is a miss).
        image_ids = sorted(self.coco.getImgIds()) if self.detections is not None else self.image_ids
        stats = evaluation.oks_ap(self.coco, predictions, image_ids, sigmas)
        stats.update(evaluation.visible_occluded_ap(self.coco, predictions, image_ids, sigmas))
        stats.update(evaluation.keypoint_similarity_split(self.coco, predictions, sigmas))
        if any("crowdIndex" in self.coco.imgs[i] for i in image_ids):
            stats.update(evaluation.crowd_index_ap(self.coco, predictions, image_ids, sigmas))
        return stats


@dataclass(frozen=True)
class Detections:
    """Person detections (COCO results json: image_id, category_id, bbox, score) to crop around.

    Top-down pose is evaluated with a person detector's boxes in the standard protocol; a box below
    `score_threshold` is dropped, each kept box becomes one person to predict, and its score times the
    mean confidence of the confident keypoints becomes the pose score (rescoring).
    """

    path: Path
    score_threshold: float = 0.0

    def records(self, coco: COCO, ann_file: Path, image_dir: Path, num_keypoints: int) -> list[PersonRecord]:
        import json

        if not self.path.is_file():
            raise DataError(f"detection file not found: {self.path}")
        try:
            entries = json.loads(self.path.read_text())
        except ValueError as err:
            raise DataError(f"{self.path}: not valid json ({err})") from None
        if not isinstance(entries, list):
            raise DataError(f"{self.path}: expected a json list of detections (COCO results format)")
        records = []
        for index, det in enumerate(entries):
            try:
                image_id, box, score = det["image_id"], det["bbox"], float(det["score"])
            except (KeyError, TypeError, ValueError):
                raise DataError(
                    f"{self.path}: detection {index} lacks image_id, bbox or score (COCO results format)"
                ) from None
            if det.get("category_id", 1) != 1 or score < self.score_threshold:
                continue
            if image_id not in coco.imgs:
                raise DataError(
                    f"{self.path}: detection {index} has image_id {image_id}, not an image of {ann_file}"
                )
            box = np.asarray(box, dtype=np.float64)
            if box.shape != (4,) or box[2] <= 0 or box[3] <= 0:
                continue
            info = coco.imgs[image_id]
            records.append(
                PersonRecord(
                    Path(image_dir) / info["file_name"],
                    image_id,
                    -(index + 1),  # no ground-truth person: a unique negative id
                    box,
                    np.zeros((num_keypoints, 3)),
                    score,
                )
            )
        return sorted(records, key=lambda r: (r.image_id, -r.score))


class MpiiKeypoints(TopDownKeypoints):
    """Person crops from an MPII json list (image, center, scale, joints, joints_vis), scored by PCKh.

    The box is the square of side scale x 200 around the centre moved down by 15 x scale (MPII's centre
    sits high on the body), the convention of top-down MPII models. The json (HRNet's `annot/*.json`, made
    from MPII's MATLAB release) holds 1-based pixel coordinates: centre and joints are moved by -1 on
    reading, as HRNet's loader does, so targets, predictions and PCKh share the image's 0-based pixel grid.
    Persons may carry `occluded_joints` (16 flags, written by `harness benchmark build c-mpii`).

    Args:
        ann_file: the json list (e.g. annot/valid.json).
        image_dir: folder holding every `image`.
        head_boxes: (N, 2, 2) head boxes in list order, needed to score (None for training).
        **kwargs: see `TopDownKeypoints`.
    """

    image_field = "image"

    def __init__(self, ann_file: Path, image_dir: Path, *, head_boxes: np.ndarray | None = None, **kwargs):
        from tasks.pose.keypoints import MPII_LAYOUT

        kwargs.setdefault("spec", MPII_LAYOUT)
        image_dir = Path(image_dir)
        if not image_dir.is_dir():
            raise DataError(f"image folder not found: {image_dir}")
        self.image_dir = image_dir
        self.entries = read_mpii(Path(ann_file), kwargs["spec"].num_keypoints)
        self.head_boxes = head_boxes
        image_ids = {name: i for i, name in enumerate(dict.fromkeys(e["image"] for e in self.entries))}
        records = []
        for index, entry in enumerate(self.entries):
            center, scale = np.asarray(entry["center"], float), float(entry["scale"])
            side = scale * 200.0
            cx, cy = center[0] - 1.0, center[1] + 15.0 * scale - 1.0
            keypoints = np.concatenate(
                [zero_based_joints(entry), np.asarray(entry["joints_vis"], float)[:, None]], axis=1
            )
            keypoints[keypoints[:, 2] <= 0] = 0.0
            box = np.array([cx - side / 2, cy - side / 2, side, side])
            records.append(
                PersonRecord(image_dir / entry["image"], image_ids[entry["image"]], index, box, keypoints)
            )
        super().__init__(records, Path(ann_file), empty_reason="the list is empty", **kwargs)

    def evaluate(self, predictions: list[dict]) -> dict[str, float | None]:
        """PCKh@0.5 per joint group, mean, Mean@0.1, and on visible vs. occluded joints (with flags)."""
        from tasks.pose.pckh import pckh_table

        if self.head_boxes is None:
            raise DataError(f"{self.ann_file}: PCKh needs head boxes (set data.head_boxes to gt_valid.mat)")
        by_ann = {p["ann_id"]: p for p in predictions}
        chosen = [r.ann_id for r in self.records if r.ann_id in by_ann]
        entries = [self.entries[i] for i in chosen]
        predicted = np.stack(
            [np.asarray(by_ann[i]["keypoints"], float).reshape(-1, 3)[:, :2] for i in chosen]
        )
        has_flags = all("occluded_joints" in e for e in entries)
        return pckh_table(
            predicted,
            np.stack([zero_based_joints(e) for e in entries]),
            np.asarray([e["joints_vis"] for e in entries], float) > 0,
            self.head_boxes[chosen],
            np.asarray([e["occluded_joints"] for e in entries], bool) if has_flags else None,
        )


def zero_based_joints(entry: dict) -> np.ndarray:
    """(16, 2) joints of an MPII json entry on the 0-based pixel grid (the file is MATLAB's 1-based)."""
    return np.asarray(entry["joints"], dtype=np.float64) - 1.0


def read_mpii(ann_file: Path, num_keypoints: int = 16) -> list[dict]:
    """Read and check an MPII json list; one-line errors name the file, entry and field."""
    import json

    if not ann_file.is_file():
        raise DataError(f"annotation file not found: {ann_file}")
    try:
        entries = json.loads(ann_file.read_text())
    except ValueError as err:
        raise DataError(f"annotation file {ann_file} is not valid json: {err}") from None
    if not isinstance(entries, list):
        raise DataError(f"{ann_file}: expected the MPII json list of persons")
    for index, entry in enumerate(entries):
        for field in ("image", "center", "scale", "joints", "joints_vis"):
            if not isinstance(entry, dict) or field not in entry:
                raise DataError(
                    f"{ann_file}: entry {index} lacks the field '{field}' (expected HRNet's annotated MPII "
                    "list: image, center, scale, joints, joints_vis; its test.json has no joints to train "
                    "or score on)"
                )
        joints = np.asarray(entry["joints"], dtype=np.float64)
        if joints.shape != (num_keypoints, 2) or len(entry["joints_vis"]) != num_keypoints:
            raise DataError(
                f"{ann_file}: entry {index} field 'joints' has {len(entry['joints'])} joints, "
                f"expected {num_keypoints}"
            )
        if float(entry["scale"]) <= 0:
            raise DataError(f"{ann_file}: entry {index} field 'scale' is {entry['scale']}, expected > 0")
    return entries
