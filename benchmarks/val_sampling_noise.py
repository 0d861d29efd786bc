"""How much of a seed-to-seed spread is just the val split's sampling noise? A bootstrap over val images.

Reads a split's annotations and one run's prediction file of it (COCO keypoint results, COCO layout),
resamples the images with replacement (`--rounds` times, images renumbered so repeats count twice) and scores
every resample with pycocotools' COCOeval as the records were scored (COCO's OKS sigmas). The std of those APs
is the sampling noise of the split at its size; compare it with the std over seeds in the report.

    python benchmarks/val_sampling_noise.py <annotations json> work_dirs/<run>/predictions/<net>__<split>.json
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def _ap(gt: dict, results: list[dict], sigmas: np.ndarray) -> float:
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        evaluator = COCOeval(coco, coco.loadRes(results), iouType="keypoints")
        evaluator.params.kpt_oks_sigmas = sigmas
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return float(evaluator.stats[0])


def bootstrap_ap(ann_file: Path, results_file: Path, rounds: int, seed: int = 0) -> tuple[float, list[float]]:
    """(AP of the split as recorded, APs of `rounds` image resamples)."""
    gt = json.loads(ann_file.read_text())
    results = json.loads(results_file.read_text())
    num_keypoints = len(gt["categories"][0]["keypoints"])
    sigmas = (
        np.asarray(
            [
                0.26,
                0.25,
                0.25,
                0.35,
                0.35,
                0.79,
                0.79,
                0.72,
                0.72,
                0.62,
                0.62,
                1.07,
                1.07,
                0.87,
                0.87,
                0.89,
                0.89,
            ]
        )[:num_keypoints]
        / 10.0
    )
    full = _ap(gt, results, sigmas)
    images = [im["id"] for im in gt["images"]]
    anns_of: dict[int, list[dict]] = {}
    for ann in gt["annotations"]:
        anns_of.setdefault(ann["image_id"], []).append(ann)
    results_of: dict[int, list[dict]] = {}
    for res in results:
        results_of.setdefault(res["image_id"], []).append(res)
    rng = np.random.default_rng(seed)
    aps = []
    for _ in range(rounds):
        new_gt = {"images": [], "annotations": [], "categories": gt["categories"]}
        new_results = []
        for new_id, old_id in enumerate(rng.choice(images, size=len(images), replace=True), start=1):
            new_gt["images"].append({"id": new_id})
            for ann in anns_of.get(int(old_id), []):
                new_gt["annotations"].append(
                    {**ann, "id": len(new_gt["annotations"]) + 1, "image_id": new_id}
                )
            new_results += [{**res, "image_id": new_id} for res in results_of.get(int(old_id), [])]
        aps.append(_ap(new_gt, new_results, sigmas))
    return full, aps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("annotations", type=Path, help="the split's COCO keypoint annotations json")
    parser.add_argument("predictions", type=Path, help="a run's prediction file of that split")
    parser.add_argument("--rounds", type=int, default=100)
    args = parser.parse_args()
    full, aps = bootstrap_ap(args.annotations, args.predictions, args.rounds)
    images = len(json.loads(args.annotations.read_text())["images"])
    print(
        f"{args.predictions}: AP {full:.4f}; bootstrap over {images} images, {args.rounds} rounds: "
        f"std {np.std(aps, ddof=1):.4f}"
    )


if __name__ == "__main__":
    main()
