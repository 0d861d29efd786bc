"""Where the spread comes from: between draws of a random factor (e.g. starting checkpoints) vs. between run
seeds within one draw, for each method's primary metric and for each paired difference.

A verdict's ± pools both; a replicator who starts from another checkpoint sees the first, one who reruns the
same checkpoint sees only the second. Written only when the records hold at least two draws of a factor.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from harness.report.verdict import Verdict

HEADER = (
    "| what | split | metric | mean | sd between draws | sd within a draw | draws | seeds per draw |\n"
    "|---|---|---:|---:|---:|---:|---:|---:|"
)


def components(cells: list[tuple], values: list[float]) -> tuple[float, float, float, int, float] | None:
    """(mean, sd of the per-draw means, pooled sd across seeds within a draw, draws, seeds per draw); None
    with fewer than two draws. A draw is a cell minus its seed."""
    draws: dict[tuple, list[float]] = {}
    for cell, value in zip(cells, values, strict=True):
        draws.setdefault(tuple(cell[1:]), []).append(value)
    if len(draws) < 2:
        return None
    means = [float(np.mean(v)) for v in draws.values()]
    within = [float(np.var(v, ddof=1)) for v in draws.values() if len(v) > 1]
    pooled = float(np.sqrt(np.mean(within))) if within else float("nan")
    per_draw = float(np.mean([len(v) for v in draws.values()]))
    return float(np.mean(values)), float(np.std(means, ddof=1)), pooled, len(draws), per_draw


def spread_lines(
    records: list[dict[str, Any]],
    verdicts: list[Verdict],
    is_evaluated: Callable[[dict[str, Any]], bool],
    cell: Callable[[dict[str, Any]], tuple],
    variant: Callable[[dict[str, Any]], dict[str, Any]],
) -> list[str]:
    """Markdown rows: each evaluated method's primary metric (per config variant), then each verdict's
    difference. Only groups with at least two draws of a random factor get a row."""
    groups: dict[tuple, tuple[list[tuple], list[float]]] = {}
    for r in records:
        metric = r.get("primary_metric")
        value = (r.get("metrics") or {}).get(metric)
        if r.get("status") != "ok" or not is_evaluated(r) or value is None or r.get("severity") is not None:
            continue
        what = (
            f"{r.get('task')}/{r.get('dataset')}/{r.get('backbone')} {r.get('method')} ({r.get('network')})"
        )
        setting = json.dumps(variant(r), sort_keys=True, default=str)
        cells, values = groups.setdefault((what, setting, str(r.get("split")), str(metric)), ([], []))
        cells.append(cell(r))
        values.append(float(value))
    parts = {key: components(*groups[key]) for key in sorted(groups)}
    settings: dict[str, set[str]] = {}
    for what, setting, _, _ in (key for key, value in parts.items() if value is not None):
        settings.setdefault(what, set()).add(setting)
    rows = [
        ((what + _setting_label(setting, settings[what]), split, metric), value)
        for (what, setting, split, metric), value in parts.items()
        if value is not None
    ]
    for v in verdicts:
        what = f"{v.task}/{v.dataset}/{v.backbone} {v.candidate} − {v.baseline}"
        rows.append(((what, v.split, v.metric), components(list(v.cells), list(v.differences))))
    return [
        f"| {what} | {split} | {metric} | {mean:+.4f} | {between:.4f} | {within:.4f} | {draws} | {seeds:g} |"
        for (what, split, metric), parts in rows
        if parts is not None
        for mean, between, within, draws, seeds in [parts]
    ]


def _setting_label(setting: str, all_settings: set[str]) -> str:
    """' [key=value, ...]' naming the config keys that set this variant apart, '' when it is the only one."""
    if len(all_settings) < 2:
        return ""
    trees = [json.loads(s) for s in sorted(all_settings)]
    mine = json.loads(setting)
    keys = sorted(
        {k for t in trees for k in t if len({json.dumps(u.get(k), default=str) for u in trees}) > 1}
    )
    return " [" + ", ".join(f"{k}={mine.get(k)}" for k in keys) + "]"


def write_spread(lines: list[str], factors: tuple[str, ...], out: Path) -> Path | None:
    """tables/spread.md, or None when no factor has two draws."""
    if not lines:
        return None
    path = out / "spread.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    intro = (
        f"Spread of each primary metric between draws of {'/'.join(factors)} (sd of the per-draw means over "
        "run seeds) and between run seeds within one draw (pooled sd). Differences are paired within each "
        "(seed, draw) cell.\n\n"
    )
    path.write_text(intro + HEADER + "\n" + "\n".join(lines) + "\n")
    return path
