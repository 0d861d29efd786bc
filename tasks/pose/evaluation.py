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
