"""COCO keypoint metrics through pycocotools' own COCOeval (OKS AP), never a re-implementation."""

from __future__ import annotations

import contextlib
import copy
import io

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

OKS_STAT_NAMES = ("AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL")


def oks_ap(
    coco_gt: COCO, predictions: list[dict], image_ids: list[int], sigmas: np.ndarray
) -> dict[str, float | None]:
    """COCO-style keypoint AP/AR of `predictions` against `coco_gt` over `image_ids`.

    Args:
        coco_gt: ground truth (a pycocotools COCO object).
        predictions: COCO results: image_id, category_id, keypoints [x, y, score]*K, score.
        image_ids: the images evaluated (a subset of coco_gt when only some were predicted).
        sigmas: per-keypoint OKS sigmas of the dataset.

    Returns:
        AP, AP50, AP75, APM, APL, AR, AR50, AR75, ARM, ARL from COCOeval.stats; None where COCOeval says -1
        (undefined: no ground truth in that area range), so no made-up number reaches a table.
    """
    if not predictions:
        return {name: 0.0 for name in OKS_STAT_NAMES}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(copy.deepcopy(predictions))
        evaluator = COCOeval(coco_gt, coco_dt, iouType="keypoints")
        evaluator.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        evaluator.params.imgIds = sorted(image_ids)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {
        name: (float(value) if value >= 0 else None)
        for name, value in zip(OKS_STAT_NAMES, evaluator.stats, strict=True)
    }


def covered_flags(ann: dict) -> np.ndarray | None:
    """Which labelled keypoints of a ground-truth person are occluded, or None when the data does not say.

    A built benchmark (C-COCO, the frozen occluded val) stores `occluded_keypoints` (1 = under a pasted
    patch); otherwise COCO's own v=1 (labelled, not visible) marks occlusion when any keypoint uses it.
    """
    if "occluded_keypoints" in ann:
        return np.asarray(ann["occluded_keypoints"], dtype=bool)
    flags = np.asarray(ann.get("keypoints", []), dtype=np.float64).reshape(-1, 3)[:, 2]
    return flags == 1 if (flags == 2).any() or (flags == 1).any() else None


def split_dataset(coco_gt: COCO, keep: str) -> COCO:
    """A copy of the ground truth keeping only `keep` ("visible" or "occluded") keypoints labelled.

    The other keypoints get v=0 and `num_keypoints` is recounted, so COCOeval's OKS averages over the kept
    keypoints only and ignores persons with none of them: AP on visible vs. occluded keypoints.
    """
    data = copy.deepcopy(coco_gt.dataset)
    for ann in data["annotations"]:
        keypoints = np.asarray(ann.get("keypoints", []), dtype=np.float64).reshape(-1, 3)
        covered = covered_flags(ann)
        if covered is None:
            covered = np.zeros(len(keypoints), dtype=bool)
        drop = ~covered if keep == "occluded" else covered
        keypoints[drop] = 0.0
        ann["keypoints"] = keypoints.reshape(-1).tolist()
        ann["num_keypoints"] = int((keypoints[:, 2] > 0).sum())
    split = COCO()
    split.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        split.createIndex()
    return split


def has_covered_flags(coco_gt: COCO) -> bool:
    return any(covered_flags(ann) is not None for ann in coco_gt.anns.values())


def visible_occluded_ap(
    coco_gt: COCO, predictions: list[dict], image_ids: list[int], sigmas: np.ndarray
) -> dict[str, float | None]:
    """OKS AP over visible keypoints only and over occluded keypoints only (None without flags).

    A person with no keypoint of the kind is left out together with its prediction (the prediction with
    its ann_id, or with detected boxes the one of highest OKS), so it is neither a miss nor a false positive.
    """
    if not has_covered_flags(coco_gt):
        return {"AP_visible": None, "AP_occluded": None}
    owner = _prediction_owners(coco_gt, predictions, sigmas)
    result = {}
    for keep in ("visible", "occluded"):
        split = split_dataset(coco_gt, keep)
        chosen = [
            p
            for p, ann_id in zip(predictions, owner, strict=True)
            if ann_id is None or split.anns[ann_id]["num_keypoints"] > 0
        ]
        result[f"AP_{keep}"] = oks_ap(split, chosen, image_ids, sigmas)["AP"]
    return result


def _prediction_owners(coco_gt: COCO, predictions: list[dict], sigmas: np.ndarray) -> list[int | None]:
    """The ground-truth ann_id each prediction belongs to: its own ann_id, else the best-OKS person."""
    kappa_sq = (2 * np.asarray(sigmas, dtype=np.float64)) ** 2
    owners = []
    for pred in predictions:
        if pred.get("ann_id") in coco_gt.anns:
            owners.append(pred["ann_id"])
            continue
        dt = np.asarray(pred["keypoints"], np.float64).reshape(-1, 3)
        best, best_score = None, -1.0
        for ann in coco_gt.imgToAnns.get(pred["image_id"], []):
            gt = np.asarray(ann["keypoints"], np.float64).reshape(-1, 3)
            labelled = gt[:, 2] > 0
            if ann.get("iscrowd", 0) or not labelled.any():
                continue
            d_sq = ((gt[:, :2] - dt[:, :2]) ** 2).sum(axis=1)
            score = float(np.exp(-d_sq / (2 * max(float(ann["area"]), 1e-9) * kappa_sq))[labelled].mean())
            if score > best_score:
                best, best_score = ann["id"], score
        owners.append(best)
    return owners


# CrowdPose's crowd-index buckets as its toolkit computes them (crowdposetools `get_type_result(first=0.2,
# second=0.8)`, kept by xtcocotools' `keypoints_crowd`): easy < 0.2 <= medium < 0.8 <= hard. The paper's text
# says 0.1 for the first edge; the published numbers come from the code.
CROWD_EDGES = (0.2, 0.8)


def crowd_bucket(crowd_index: float) -> str:
    """ "easy", "medium" or "hard" for an image's `crowdIndex`."""
    first, second = CROWD_EDGES
    return "easy" if crowd_index < first else "medium" if crowd_index < second else "hard"


def crowd_index_ap(
    coco_gt: COCO, predictions: list[dict], image_ids: list[int], sigmas: np.ndarray
) -> dict[str, float | None]:
    """AP per CrowdPose crowd-index bucket: COCOeval restricted to the images of each bucket.

    None where a bucket has no image with a scored person (the toolkit prints -1 there).
    """
    buckets: dict[str, list[int]] = {"easy": [], "medium": [], "hard": []}
    for image_id in image_ids:
        if "crowdIndex" in coco_gt.imgs[image_id]:
            buckets[crowd_bucket(float(coco_gt.imgs[image_id]["crowdIndex"]))].append(image_id)
    result = {}
    for name, bucket in buckets.items():
        in_bucket = set(bucket)
        chosen = [p for p in predictions if p["image_id"] in in_bucket]
        result[f"AP_{name}"] = oks_ap(coco_gt, chosen, bucket, sigmas)["AP"] if bucket else None
    return result


def oks(reference: np.ndarray, others: np.ndarray, area: float, sigmas: np.ndarray) -> np.ndarray:
    """OKS of (K, 3) `reference` against each of (M, K, 3) `others` over all K keypoints (for OKS-NMS)."""
    kappa_sq = (2 * np.asarray(sigmas, dtype=np.float64)) ** 2
    d_sq = ((others[:, :, :2] - reference[None, :, :2]) ** 2).sum(axis=2)
    return np.exp(-d_sq / (2 * max(area, 1e-9) * kappa_sq)).mean(axis=1)


def oks_nms(predictions: list[dict], sigmas: np.ndarray, threshold: float = 0.9) -> list[dict]:
    """Greedy non-maximum suppression of poses per image by OKS, as top-down pose methods do with detections.

    Within each image, the highest-scoring pose suppresses every other whose OKS to it exceeds `threshold`
    (OKS with the kept pose's box area). Returns the kept predictions, in input order.
    """
    keep: set[int] = set()
    by_image: dict[int, list[int]] = {}
    for index, pred in enumerate(predictions):
        by_image.setdefault(pred["image_id"], []).append(index)
    for indices in by_image.values():
        order = sorted(indices, key=lambda i: -predictions[i]["score"])
        poses = np.stack([np.asarray(predictions[i]["keypoints"], np.float64).reshape(-1, 3) for i in order])
        alive = np.ones(len(order), dtype=bool)
        for rank, index in enumerate(order):
            if not alive[rank]:
                continue
            keep.add(index)
            box = predictions[index].get("box")
            area = (
                float(box[2] * box[3])
                if box
                else float(np.ptp(poses[rank, :, 0]) * np.ptp(poses[rank, :, 1]))
            )
            rest = np.arange(rank + 1, len(order))
            if rest.size:
                alive[rest[oks(poses[rank], poses[rest], area, sigmas) > threshold]] = False
    return [pred for index, pred in enumerate(predictions) if index in keep]


def _best_match(ann: dict, candidates: list[dict], kappa_sq: np.ndarray) -> np.ndarray | None:
    """The prediction for ground-truth `ann`: the one with its ann_id, else the one of highest OKS."""
    gt = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
    same = [p for p in candidates if p.get("ann_id") == ann["id"]]
    pool = same or candidates
    labelled = gt[:, 2] > 0
    if not pool or not labelled.any():  # a person without labelled keypoints matches nothing (no 0/0 mean)
        return None
    poses = np.stack([np.asarray(p["keypoints"], np.float64).reshape(-1, 3) for p in pool])
    d_sq = ((poses[:, :, :2] - gt[None, :, :2]) ** 2).sum(axis=2)
    scores = np.exp(-d_sq / (2 * max(float(ann["area"]), 1e-9) * kappa_sq))[:, labelled].mean(axis=1)
    return poses[int(np.argmax(scores))]


def keypoint_similarity_split(
    coco_gt: COCO, predictions: list[dict], sigmas: np.ndarray
) -> dict[str, float | None]:
    """Mean per-keypoint OKS term, separately for occluded keypoints and for the other labelled ones.

    Occlusion flags come from `covered_flags` (a built benchmark's `occluded_keypoints`, else COCO v=1).
    The per-keypoint term exp(-d² / (2 s² k²)) is the quantity OKS averages, so the two numbers show where
    a method gains: on hidden joints or on visible ones. Each ground-truth person is scored against its
    own prediction (same ann_id, i.e. ground-truth boxes) or, with detected boxes, the best-matching one.
    Labelled keypoints are either visible or occluded, so the two sums add up to the sum over all.

    Returns:
        {"kOKS_visible": ..., "kOKS_occluded": ...}, each in [0, 1] or None when no such keypoint exists.
    """
    kappa_sq = (2 * np.asarray(sigmas, dtype=np.float64)) ** 2
    by_image: dict[int, list[dict]] = {}
    for pred in predictions:
        by_image.setdefault(pred["image_id"], []).append(pred)
    sums = {"kOKS_visible": [], "kOKS_occluded": []}
    for ann in coco_gt.anns.values():
        covered = covered_flags(ann)
        if covered is None or ann.get("iscrowd", 0):
            continue
        dt = _best_match(ann, by_image.get(ann["image_id"], []), kappa_sq)
        if dt is None:
            continue
        gt = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
        labelled = gt[:, 2] > 0
        d_sq = ((gt[:, :2] - dt[:, :2]) ** 2).sum(axis=1)
        similarity = np.exp(-d_sq / (2 * max(float(ann["area"]), 1e-9) * kappa_sq))
        sums["kOKS_visible"] += similarity[labelled & ~covered].tolist()
        sums["kOKS_occluded"] += similarity[labelled & covered].tolist()
    return {name: (float(np.mean(values)) if values else None) for name, values in sums.items()}
