"""What each factor of validity study v2 contributed: D-Slope's ablation arms minus the default D-Slope,
paired over the seeds both ran, from the records alone (two-sided paired t-test).

    python benchmarks/validity_ablation.py results/validity/pose
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from scipy import stats

METRICS = ("AP", "kOKS_occluded")


def arm_of(record: dict) -> str:
    """The arm of a D-Slope record in configs/sweeps/ablation_pose_factors.yaml (or the default)."""
    settings = (record["config"].get("method_args") or {}).get(record["method"]) or {}
    if record["config"]["model"].get("pretrained") is None:
        return "from scratch"
    if settings.get("independent_init"):
        return "independent init"
    if settings.get("feature_reduction") == "sum":
        return "branch sum"
    return "default"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    args = parser.parse_args()
    values: dict[tuple, dict[int, float]] = {}
    for path in sorted((args.results / "runs").glob("*.json")):
        r = json.loads(path.read_text())
        if r.get("status") != "ok" or r.get("severity") is not None or r.get("evaluation"):
            continue
        if r.get("method_role") != "method" or not r.get("evaluated"):
            continue
        for metric in METRICS:
            if r["metrics"].get(metric) is not None:
                values.setdefault((arm_of(r), r["split"], metric), {})[r["seed"]] = r["metrics"][metric]
    print("| arm | split | metric | arm | default | arm − default (paired) | seeds | p |")
    print("|---|---|---|---:|---:|---:|---|---:|")
    for (arm, split, metric), own in sorted(values.items()):
        base = values.get(("default", split, metric), {})
        seeds = sorted(set(own) & set(base))
        if arm == "default" or len(seeds) < 2:
            continue
        diffs = [own[s] - base[s] for s in seeds]
        p = stats.ttest_rel([own[s] for s in seeds], [base[s] for s in seeds]).pvalue
        print(
            f"| {arm} | {split} | {metric} | {statistics.mean(own[s] for s in seeds):.3f} | "
            f"{statistics.mean(base[s] for s in seeds):.3f} | {statistics.mean(diffs):+.4f} ± "
            f"{statistics.stdev(diffs):.4f} | {','.join(map(str, seeds))} | {p:.3f} |"
        )


if __name__ == "__main__":
    main()
