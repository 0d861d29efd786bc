"""Metric vs. fine-tuning steps: the budget axis, as a table and a figure, from the records alone.

A budget study runs the same config at several step budgets (`train.max_steps` as a sweep axis): each point is
an ordinary record, and its `training.steps` says where it is. Per (task, dataset, split role), one row per
model (method, backbone, network and config variant other than the budget), one column per step count: the
primary metric, mean ± std over seeds (and random-factor draws). Written only where a row's records hold at
least two step counts; in the main tables the budgets stay rows of their own.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from harness.report.canvas import _new_figure, _save
from harness.report.interpret import _is_evaluated, _primary_metric
from harness.report.tables import Table, build_table

# The config keys that set a run's budget: they are the axis here, not a variant.
BUDGET_KEYS = (("train", "max_steps"), ("train", "epochs"))
_ROLES = ("clean", "occluded")


def steps_of(record: dict[str, Any]) -> int | None:
    """The optimizer steps a record's network was trained for (`training.steps`)."""
    steps = (record.get("training") or {}).get("steps")
    return steps if isinstance(steps, int) and not isinstance(steps, bool) else None


def budget_tables(records: list[dict[str, Any]]) -> list[Table]:
    """One table per (task, dataset, split role) whose records hold ≥ 2 step counts."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in records:
        metric = _primary_metric(r.get("metrics") or {}, r.get("primary_metric"))
        value = (r.get("metrics") or {}).get(metric) if metric else None
        steps = steps_of(r)
        role = r.get("split_role")
        if (
            r.get("status") != "ok"
            or not _is_evaluated(r)
            or r.get("severity") is not None
            or r.get("evaluation")
            or steps is None
            or role not in _ROLES
            or not isinstance(value, int | float)
        ):
            continue
        config = {section: dict(values) if isinstance(values, dict) else values
                  for section, values in (r.get("config") or {}).items()}  # fmt: skip
        for section, key in BUDGET_KEYS:
            (config.get(section) or {}).pop(key, None)
        point = {**r, "split": f"{steps} steps", "config": config, "metrics": {metric: float(value)}}
        groups.setdefault((str(r.get("task")), str(r.get("dataset")), str(role)), []).append(point)
    tables = []
    for (task, dataset, role), points in sorted(groups.items()):
        if len({p["split"] for p in points}) < 2:
            continue
        metric = next(iter(points[0]["metrics"]))
        title = f"{task} · {dataset}: {role} {metric} vs. fine-tuning steps"
        table = build_table(
            f"budget_{task}_{dataset}_{role}", title, points, [], ["method", "backbone", "network"]
        )
        tables.append(_by_steps(table))
    return tables


def _by_steps(table: Table) -> Table:
    """Columns in numeric step order (build_table orders them as strings: 1200 before 150)."""
    order = sorted(range(len(table.columns)), key=lambda c: int(table.columns[c][0].split()[0]))
    position = {old: new for new, old in enumerate(order)}
    table.cells = {(r, position[c]): cell for (r, c), cell in table.cells.items()}
    table.columns = [table.columns[c] for c in order]
    return table


def figure_budget(tables: list[Table], out: Path) -> list[Path]:
    """Per budget table: one line per row over the step counts, mean ± std as a band."""
    written = []
    for table in tables:
        fig = _new_figure(4.8, 3.2)
        ax = fig.add_subplot()
        steps = [int(split.split()[0]) for split, _ in table.columns]
        for r, row in enumerate(table.rows):
            points = [(x, *table.cells[r, c]) for c, x in enumerate(steps) if (r, c) in table.cells]
            xs, means = [p[0] for p in points], [p[1] for p in points]
            stds = [p[2] if p[3] > 1 and not math.isnan(p[2]) else 0.0 for p in points]
            (line,) = ax.plot(xs, means, marker="o", label=" · ".join(v for v in row if v))
            low = [m - s for m, s in zip(means, stds, strict=True)]
            high = [m + s for m, s in zip(means, stds, strict=True)]
            ax.fill_between(xs, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
        ax.set_xscale("log")
        ax.set_xticks(steps, [str(s) for s in steps])
        ax.set_xlabel("fine-tuning steps")
        ax.set_ylabel(table.columns[0][1])
        ax.set_title(table.title.replace(" vs. fine-tuning steps", "") + " (mean ± std)", fontsize=7)
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        written += _save(fig, out / table.name)
    return written
