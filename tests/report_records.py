"""One pose result record as the harness writes it, for report tests that build their records by hand."""

from __future__ import annotations

from typing import Any


def pose_record(method: str, seed: int, value: float, **config: Any) -> dict:
    """An ok occluded-val record of `method`'s evaluated network with AP `value`; `config` sections (e.g.
    `pretrain={"seed": 1000}`, `train={"max_steps": 600}`, `model={"backbone": ...}`) are merged in, and
    `model.backbone` / `training.steps` follow them."""
    backbone = config.get("model", {}).get("backbone", "hrnet_w18_small")
    steps = config.get("train", {}).get("max_steps", 150)
    checkpoint = config.get("pretrain", {}).get("seed")
    run_id = f"pose_{method}_{backbone.replace(':', '-')}_s{seed}_p{checkpoint}_{steps}"
    return {
        "run_id": run_id,
        "task": "pose",
        "method": method,
        "method_role": "method" if method == "dslope" else "baseline",
        "backbone": backbone,
        "dataset": "synthetic-coco",
        "split": "occluded_val",
        "split_role": "occluded",
        "network": "enet" if method == "dslope" else "net",
        "evaluated": True,
        "status": "ok",
        "metrics": {"AP": value},
        "higher_is_better": {"AP": True},
        "primary_metric": "AP",
        "seed": seed,
        "config": {"task": "pose", "method": method, "seed": seed, **config},
        "data": {},
        "training": {"steps": steps},
        "curves": [],
        "samples": [],
        "_file": f"{run_id}.json",  # as harness.report's loader adds it
    }
