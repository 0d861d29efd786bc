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


def keypoint_similarity_split(
    coco_gt: COCO, predictions: list[dict], sigmas: np.ndarray
) -> dict[str, float | None]:
    """Mean per-keypoint OKS term, separately for keypoints a patch covers and for the other labelled ones.

    On the frozen occluded split each annotation carries `occluded_keypoints` (1 = under a pasted patch).
    The per-keypoint term exp(-d² / (2 s² k²)) is the quantity OKS averages, so the two numbers show where
    a method gains: on hidden joints or on visible ones. Splits without the field give None for both.

    Returns:
        {"kOKS_visible": ..., "kOKS_occluded": ...}, each in [0, 1] or None when no such keypoint exists.
    """
    kappa_sq = (2 * np.asarray(sigmas, dtype=np.float64)) ** 2
    sums = {"kOKS_visible": [], "kOKS_occluded": []}
    for pred in predictions:
        ann = coco_gt.anns.get(pred.get("ann_id"))
        if ann is None or "occluded_keypoints" not in ann:
            continue
        gt = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
        dt = np.asarray(pred["keypoints"], dtype=np.float64).reshape(-1, 3)
        covered = np.asarray(ann["occluded_keypoints"], dtype=bool)
        labelled = gt[:, 2] > 0
        d_sq = ((gt[:, :2] - dt[:, :2]) ** 2).sum(axis=1)
        similarity = np.exp(-d_sq / (2 * max(float(ann["area"]), 1e-9) * kappa_sq))
        sums["kOKS_visible"] += similarity[labelled & ~covered].tolist()
        sums["kOKS_occluded"] += similarity[labelled & covered].tolist()
    return {name: (float(np.mean(values)) if values else None) for name, values in sums.items()}
