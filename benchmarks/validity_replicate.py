"""Does a replicate under another thread count fall inside the study's reported intervals? From the records
alone: for each method of the replicate, every cell (pretraining seed, run seed) it ran, its value beside
the study's value of the same cell, and the study's 95% prediction interval for one more cell
(mean ± t(0.975, n−1) · sd · sqrt(1 + 1/n) over the study's n cells); then the paired verdicts of the
replicate beside the study's on the same cells.

    python benchmarks/validity_replicate.py results/validity/v3/pose results/validity/v3/pose_threads2
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

from scipy import stats

SPLITS = ("clean_val", "occluded_val")


def cells(results: Path) -> dict[tuple, dict[tuple, float]]:
    """(method, split) -> {(pretrain seed, run seed): primary metric} of each evaluated network."""
    out: dict[tuple, dict[tuple, float]] = {}
    for path in sorted((results / "runs").glob("*.json")):
        r = json.loads(path.read_text())
        if r.get("status") != "ok" or not r.get("evaluated") or r.get("severity") is not None:
            continue
        if r.get("evaluation") or r.get("split") not in SPLITS:
            continue
        cell = ((r["config"].get("pretrain") or {}).get("seed"), r["seed"])
        out.setdefault((r["method"], r["split"]), {})[cell] = r["metrics"][r["primary_metric"]]
    return out


def threads_of(results: Path) -> set[int]:
    return {
        json.loads(p.read_text()).get("compute", {}).get("threads") for p in (results / "runs").glob("*.json")
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path)
    parser.add_argument("replicate", type=Path)
    args = parser.parse_args()
    study, replicate = cells(args.study), cells(args.replicate)
    print(f"threads: study {sorted(threads_of(args.study))}, replicate {sorted(threads_of(args.replicate))}")
    inside = total = 0
    for key in sorted(replicate):
        values = list(study.get(key, {}).values())
        if len(values) < 2:
            continue
        n, mean, sd = len(values), statistics.mean(values), statistics.stdev(values)
        half = stats.t.ppf(0.975, n - 1) * sd * math.sqrt(1 + 1 / n)
        print(f"{key[0]} {key[1]}: study {mean:.4f} ± {sd:.4f} over {n} cells, 95% PI [{mean - half:.4f}, "
              f"{mean + half:.4f}]")  # fmt: skip
        for cell, value in sorted(replicate[key].items(), key=repr):
            ok = abs(value - mean) <= half
            inside, total = inside + ok, total + 1
            same = study[key].get(cell)
            shift = f", same cell {same:.4f} (shift {value - same:+.4f})" if same is not None else ""
            print(f"  cell {cell}: replicate {value:.4f}{shift} {'inside' if ok else 'OUTSIDE'}")
    print(f"{inside} of {total} replicate values inside the study's 95% prediction intervals")
    methods = sorted({m for m, _ in replicate})
    pairs = [(a, b) for a in methods for b in methods if a < b]
    for split in SPLITS:
        for a, b in pairs:
            shared = sorted(set(replicate.get((a, split), {})) & set(replicate.get((b, split), {})), key=repr)
            for name, source in (("replicate", replicate), ("study, same cells", study)):
                print(paired_line(source, a, b, split, shared, name))


def paired_line(source: dict, a: str, b: str, split: str, shared: list, name: str) -> str:
    first, second = source.get((a, split), {}), source.get((b, split), {})
    diffs = [first[c] - second[c] for c in shared if c in first and c in second]
    if len(diffs) < 2:
        return f"{split} {a} − {b} ({name}): fewer than 2 cells"
    p = stats.ttest_1samp(diffs, 0.0).pvalue
    mean, sd = statistics.mean(diffs), statistics.stdev(diffs)
    return f"{split} {a} − {b} ({name}): {mean:+.4f} ± {sd:.4f} over {len(diffs)} cells, p={p:.3f}"


if __name__ == "__main__":
    main()
