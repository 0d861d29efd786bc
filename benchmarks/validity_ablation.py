"""What each factor of the authors'-code D-Slope contributes: the ablation arms minus the default D-Slope,
paired over the (pretraining seed, run seed) cells both ran, from the records alone (two-sided paired t-test).

    python benchmarks/validity_ablation.py results/validity/v3/pose results/validity/v3/pose_ablation \
        --filter config.pretrain.seed=1000
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from scipy import stats

from harness.report import apply_filters, load_records, parse_filters

METRICS = ("AP", "kOKS_occluded")


def arm_of(record: dict) -> str:
    """The arm of a D-Slope record in configs/sweeps/validity_v3_pose_ablation.yaml (or the default)."""
    settings = (record["config"].get("method_args") or {}).get(record["method"]) or {}
    if record["config"]["model"].get("pretrained") is None:
        return "from scratch"
    if settings.get("independent_init"):
        return "independent init"
    if settings.get("feature_reduction") == "sum":
        return "branch sum"
    return "default"


def cell_of(record: dict) -> tuple:
    return ((record["config"].get("pretrain") or {}).get("seed"), record["seed"])


def ablation_values(records: list[dict]) -> dict[tuple, dict[tuple, float]]:
    """(arm, split, metric) -> {cell: value} of D-Slope's evaluated network on its training run's splits."""
    values: dict[tuple, dict[tuple, float]] = {}
    for r in records:
        if r.get("status") != "ok" or r.get("severity") is not None or r.get("evaluation"):
            continue
        if r.get("method") != "dslope" or not r.get("evaluated"):
            continue
        for metric in METRICS:
            if r["metrics"].get(metric) is not None:
                values.setdefault((arm_of(r), r["split"], metric), {})[cell_of(r)] = r["metrics"][metric]
    return values


def paired_rows(values: dict[tuple, dict[tuple, float]]) -> list[dict]:
    """Each arm minus the default on the cells both have (≥ 2 cells: a t-test needs them)."""
    rows = []
    for (arm, split, metric), own in sorted(values.items()):
        base = values.get(("default", split, metric), {})
        cells = sorted(set(own) & set(base))
        if arm == "default" or len(cells) < 2:
            continue
        diffs = [own[c] - base[c] for c in cells]
        rows.append({
            "arm": arm, "split": split, "metric": metric, "cells": cells,
            "arm_mean": statistics.mean(own[c] for c in cells),
            "default_mean": statistics.mean(base[c] for c in cells),
            "diff_mean": statistics.mean(diffs), "diff_std": statistics.stdev(diffs),
            "p": float(stats.ttest_rel([own[c] for c in cells], [base[c] for c in cells]).pvalue),
        })  # fmt: skip
    return rows


def to_markdown(rows: list[dict]) -> str:
    lines = [
        "| arm | split | metric | arm | default | arm − default (paired) | cells (pretrain seed, seed) | p |",
        "|---|---|---|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        cells = " ".join(f"{p},{s}" for p, s in r["cells"])
        lines.append(
            f"| {r['arm']} | {r['split']} | {r['metric']} | {r['arm_mean']:.3f} | {r['default_mean']:.3f} | "
            f"{r['diff_mean']:+.4f} ± {r['diff_std']:.4f} | {cells} | {r['p']:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, nargs="+", help="results folders (their runs/*.json)")
    parser.add_argument("--filter", action="append", default=[], help="key=value, as `harness report`'s")
    args = parser.parse_args()
    records = apply_filters(load_records(list(args.results)), parse_filters(args.filter))
    print(to_markdown(paired_rows(ablation_values(records))))


if __name__ == "__main__":
    main()
