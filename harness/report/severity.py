"""Metric vs. occlusion severity: the one result no peer offers, as a leaderboard and a figure.

Records scored on a severity level carry it in `severity` (`harness eval --severity`, or a run with
`occlusion.val_severity` set, e.g. a sweep axis). Per task and dataset, one row / line per model (method and
backbone, and config variant other than the level: trained runs and external models, `harness eval --model`,
alike), one column / point per level: the evaluated network's primary metric, mean ± std over seeds; then
the robustness summary (harness/report/robustness.py: mean occluded, relative robustness, mCE against the
reference row of `configs/report.yaml`). The figure draws the levels, the std as a band.

These records never enter the main tables (a level is not a split of its own there), and an evaluation that
re-scores a run on its own settings (`harness eval` without new data) is the same number as the training
record, so only the training record counts.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from harness.report.canvas import _new_figure, _save
from harness.report.interpret import _is_evaluated, _primary_metric
from harness.report.policy import ReportPolicy
from harness.report.records import _lookup
from harness.report.robustness import MCE, MEAN, RELATIVE, SUMMARY, summary_points
from harness.report.tables import Table, build_table

# Where a severity may sit in a record: the declared field first; older hand-made records used the others.
_SEVERITY_FIELDS = ("severity", "config.occlusion.severity", "data.occlusion_severity", "data.severity")


def severity_of(record: dict[str, Any]) -> float | None:
    """The occlusion severity a record was scored at; None when it has none."""
    for path in _SEVERITY_FIELDS:
        value = _lookup(record, path)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
    return None


def table_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records of the main tables: no severity records, no eval record repeating a training record."""
    trained = {(r.get("run_id"), r.get("network"), r.get("split"), r.get("config_hash")) for r in records}
    kept = []
    for r in records:
        source = (r.get("evaluation") or {}).get("source_run_id")
        if severity_of(r) is not None:
            continue
        if source and (source, r.get("network"), r.get("split"), r.get("config_hash")) in trained:
            continue
        kept.append(r)
    return kept


def severity_tables(
    records: list[dict[str, Any]], policy: ReportPolicy | None = None, notes: list[str] | None = None
) -> list[Table]:
    """One leaderboard per (task, dataset) with ≥ 2 levels: rows method/backbone, columns `severity <k>`,
    then the robustness summary (mCE when `policy` names a reference row the table has)."""
    references = (policy or ReportPolicy()).robustness.reference_specs()
    notes = notes if notes is not None else []
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        level = severity_of(r)
        metric = _primary_metric(r.get("metrics") or {}, r.get("primary_metric"))
        value = (r.get("metrics") or {}).get(metric) if metric else None
        if (
            r.get("status") != "ok"
            or level is None
            or not _is_evaluated(r)
            or not isinstance(value, float | int)
        ):
            continue
        config = {**(r.get("config") or {})}
        config["occlusion"] = {k: v for k, v in (config.get("occlusion") or {}).items()
                               if k not in ("val_severity", "severity")}  # fmt: skip
        point = {**r, "split": f"severity {_level_text(level)}", "split_role": None, "config": config}
        point["metrics"] = {metric: float(value)}
        groups.setdefault((str(r.get("task")), str(r.get("dataset"))), []).append(point)
    tables = []
    for (task, dataset), points in sorted(groups.items()):
        if len({p["split"] for p in points}) < 2:
            continue
        name = f"severity_{task}_{dataset}"
        title = f"{task} · {dataset}: {next(iter(points[0]['metrics']))} vs. occlusion severity"
        points = points + summary_points(points, references, name, notes)
        tables.append(_by_level(build_table(name, title, points, [], ["method", "backbone"])))
    return tables


def _level_text(level: float) -> str:
    return str(int(level)) if float(level).is_integer() else str(level)


def _column_order(column: tuple[str, str]) -> tuple[float, int]:
    split, metric = column
    if split == SUMMARY:
        return math.inf, (MEAN, RELATIVE, MCE).index(metric)
    return float(split.split(" ", 1)[1]), 0


def _by_level(table: Table) -> Table:
    """Columns in numeric level order (build_table orders them as strings: 10 before 2), the summary last."""
    order = sorted(range(len(table.columns)), key=lambda c: _column_order(table.columns[c]))
    position = {old: new for new, old in enumerate(order)}
    table.cells = {(r, position[c]): cell for (r, c), cell in table.cells.items()}
    table.columns = [table.columns[c] for c in order]
    return table


def figure_severity(tables: list[Table], out: Path, notes: list[str]) -> list[Path]:
    """Per severity table: one line per row over the levels, mean ± std over seeds as a band."""
    if not tables:
        notes.append("figure severity: the records carry fewer than 2 distinct occlusion severities, skipped")
        return []
    written = []
    for table in tables:
        fig = _new_figure(4.8, 3.2)
        ax = fig.add_subplot()
        at_level = [(c, split) for c, (split, _) in enumerate(table.columns) if split != SUMMARY]
        levels = [float(split.split(" ", 1)[1]) for _, split in at_level]
        for r, row in enumerate(table.rows):
            points = [(x, *table.cells[r, c]) for (c, _), x in zip(at_level, levels, strict=True)
                      if (r, c) in table.cells]  # fmt: skip
            xs = [p[0] for p in points]
            means = [p[1] for p in points]
            stds = [p[2] if p[3] > 1 and not math.isnan(p[2]) else 0.0 for p in points]
            label = " · ".join(v for v in row if v)
            (line,) = ax.plot(xs, means, marker="o", label=label)
            low = [m - s for m, s in zip(means, stds, strict=True)]
            high = [m + s for m, s in zip(means, stds, strict=True)]
            ax.fill_between(xs, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
        metric = table.columns[0][1]
        ax.set_xticks(levels, [_level_text(x) for x in levels])
        ax.set_xlabel("occlusion severity")
        ax.set_ylabel(metric)
        ax.set_title(
            table.title.replace(" vs. occlusion severity", "") + " (mean ± std over seeds)", fontsize=7
        )
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # outside: never over a line
        written += _save(fig, out / table.name)
    return written
