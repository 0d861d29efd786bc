"""What each factor of the authors'-code D-Slope contributes: the ablation arms minus the default D-Slope,
paired over the run seeds both ran on one pretraining checkpoint, from the records alone (two-sided paired
t-test). The from-scratch arm has no checkpoint (its records carry no `pretrain` section): it pairs with the
default runs of the chosen checkpoint by run seed.

    python benchmarks/validity_ablation.py results/validity/v3/pose results/validity/v3/pose_ablation \
        --checkpoint 1000
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


def checkpoint_of(record: dict):
    """The pretraining seed the run started from; None for a run from scratch."""
    return (record["config"].get("pretrain") or {}).get("seed")


def ablation_values(records: list[dict], checkpoint: int | None = None) -> dict[tuple, dict[int, float]]:
    """(arm, split, metric) -> {run seed: value} of D-Slope's evaluated network on its training run's splits,
    for the runs from `checkpoint` (and from scratch).

    Raises:
        SystemExit: runs from several checkpoints and no `checkpoint` chosen (their seeds would collide), or
            no run from the chosen one.
    """
    runs = [
        r for r in records
        if r.get("status") == "ok" and r.get("severity") is None and not r.get("evaluation")
        and r.get("method") == "dslope" and r.get("evaluated")
    ]  # fmt: skip
    found = {checkpoint_of(r) for r in runs} - {None}
    if checkpoint is None and len(found) > 1:
        raise SystemExit(
            f"runs from several pretraining checkpoints {sorted(found)}: choose one with --checkpoint"
        )
    if checkpoint is not None and checkpoint not in found:
        raise SystemExit(
            f"no D-Slope run from pretraining checkpoint {checkpoint}; the records have {sorted(found)}"
        )
    values: dict[tuple, dict[int, float]] = {}
    for r in runs:
        if checkpoint is not None and checkpoint_of(r) not in (checkpoint, None):
            continue
        for metric in METRICS:
            if r["metrics"].get(metric) is not None:
                values.setdefault((arm_of(r), r["split"], metric), {})[r["seed"]] = r["metrics"][metric]
    return values


def paired_rows(values: dict[tuple, dict[int, float]]) -> list[dict]:
    """Each arm minus the default on the run seeds both have (≥ 2: a t-test needs them)."""
    rows = []
    for (arm, split, metric), own in sorted(values.items()):
        base = values.get(("default", split, metric), {})
        seeds = sorted(set(own) & set(base))
        if arm == "default" or len(seeds) < 2:
            continue
        diffs = [own[s] - base[s] for s in seeds]
        rows.append({
            "arm": arm, "split": split, "metric": metric, "seeds": seeds,
            "arm_mean": statistics.mean(own[s] for s in seeds),
            "default_mean": statistics.mean(base[s] for s in seeds),
            "diff_mean": statistics.mean(diffs), "diff_std": statistics.stdev(diffs),
            "p": float(stats.ttest_rel([own[s] for s in seeds], [base[s] for s in seeds]).pvalue),
        })  # fmt: skip
    return rows


def to_markdown(rows: list[dict]) -> str:
    lines = [
        "| arm | split | metric | arm | default | arm − default (paired) | seeds | p |",
        "|---|---|---|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        seeds = ",".join(map(str, r["seeds"]))
        lines.append(
            f"| {r['arm']} | {r['split']} | {r['metric']} | {r['arm_mean']:.3f} | {r['default_mean']:.3f} | "
            f"{r['diff_mean']:+.4f} ± {r['diff_std']:.4f} | {seeds} | {r['p']:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, nargs="+", help="results folders (their runs/*.json)")
    parser.add_argument("--checkpoint", type=int, help="pretraining seed (pretrain.seed) of the runs to pair")
    parser.add_argument("--filter", action="append", default=[], help="key=value, as `harness report`'s")
    args = parser.parse_args()
    records = apply_filters(load_records(list(args.results)), parse_filters(args.filter))
    print(to_markdown(paired_rows(ablation_values(records, args.checkpoint))))


if __name__ == "__main__":
    main()
