"""The robustness summary of the severity leaderboard: per model, what the occlusion ladder costs it.

Per row (method · backbone, config variant) and seed, from the primary metric at each level k:
- `mean occluded`: the mean over the occluded levels (k > 0; 1–4 on every task's ladder);
- `relative robustness`: mean occluded / clean (level 0) for a metric where higher is better, clean / mean
  occluded where lower is better (NME), so 1 means occlusion costs nothing and below 1 what it costs;
- `mCE` (Hendrycks & Dietterich's corruption error, over occlusion levels): Σ_k E(k) / Σ_k E_ref(k) over the
  occluded levels, with E = 1 − metric for a higher-is-better score in [0, 1] (AP, accuracy) and E = the
  metric itself for an error (NME); E_ref is the reference row's, averaged over its seeds. Below 1: more
  robust than the reference. The reference row is the first of `robustness.references` in
  `configs/report.yaml` that matches exactly one row of the table.
A seed contributes only where it has every level of the table, so no summary mixes different level sets. The
summaries are pseudo-records (split `summary`), so the table pools them over seeds like any cell.
"""

from __future__ import annotations

import json
import math
from typing import Any

from harness.report.interpret import _variant
from harness.report.policy import TableSpec

SUMMARY = "summary"
MEAN, RELATIVE, MCE = "mean occluded", "relative robustness", "mCE"


def _row_identity(point: dict[str, Any]) -> tuple[str, str, str]:
    return str(point.get("method")), str(point.get("backbone")), json.dumps(_variant(point), sort_keys=True)


def _levels(point: dict[str, Any]) -> float:
    return float(point["split"].split(" ", 1)[1])


def summary_points(
    points: list[dict[str, Any]], references: list[TableSpec], table: str, notes: list[str]
) -> list[dict[str, Any]]:
    """The summary pseudo-records of one severity table's points (one per row and complete seed).

    Args:
        points: the table's records, each with split `severity <k>` and one metric (the primary).
        references: where-specs of the mCE reference row, tried in order.
        table: the table's name, for notes.
        notes: where an ambiguous or missing reference is reported.
    """
    metric = next(iter(points[0]["metrics"]))
    higher = (points[0].get("higher_is_better") or {}).get(metric, True)
    levels = sorted({_levels(p) for p in points})
    occluded = [k for k in levels if k != 0]
    if 0 not in levels or not occluded:  # not a ladder from the clean level (e.g. older fractional levels)
        return []
    series: dict[tuple, dict[Any, dict[float, list[float]]]] = {}
    example: dict[tuple, dict[Any, dict[str, Any]]] = {}
    for p in points:
        row, seed = _row_identity(p), p.get("seed")
        series.setdefault(row, {}).setdefault(seed, {}).setdefault(_levels(p), []).append(
            p["metrics"][metric]
        )
        example.setdefault(row, {}).setdefault(seed, p)
    complete = {
        row: {seed: {k: sum(v) / len(v) for k, v in by_level.items()} for seed, by_level in seeds.items()
              if set(by_level) >= set(levels)}
        for row, seeds in series.items()
    }  # fmt: skip

    def error(value: float) -> float:
        return 1.0 - value if higher else value

    reference = _reference_errors(complete, points, references, occluded, error, table, notes)
    out = []
    for row, seeds in complete.items():
        for seed, values in seeds.items():
            mean = sum(values[k] for k in occluded) / len(occluded)
            clean = values[0]
            relative = (
                (mean / clean if clean else math.nan) if higher else (clean / mean if mean else math.nan)
            )
            metrics = {MEAN: mean, RELATIVE: relative}
            if reference:
                metrics[MCE] = sum(error(values[k]) for k in occluded) / reference
            directions = {MEAN: higher, RELATIVE: True, MCE: False}
            out.append(
                {**example[row][seed], "split": SUMMARY, "metrics": metrics, "higher_is_better": directions}
            )
    return out


def _reference_errors(complete, points, references, occluded, error, table, notes) -> float | None:
    """Σ_k E_ref(k) of the reference row (mean over its seeds); None, with a note, without one."""
    rows_of = {}
    for p in points:
        rows_of.setdefault(_row_identity(p), []).append(p)
    for spec in references:
        matching = [row for row, members in rows_of.items() if all(spec.selects(m) for m in members)]
        matching = [row for row in matching if complete.get(row)]
        if len(matching) == 1:
            seeds = complete[matching[0]].values()
            total = sum(sum(error(values[k]) for k in occluded) for values in seeds) / len(seeds)
            if total > 0:
                return total
    notes.append(
        f"{table}: no mCE (no robustness.references entry of configs/report.yaml matches exactly one row)"
    )
    return None
