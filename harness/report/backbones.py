"""Methods × backbones: the backbone axis as one table per policy table, from the records alone.

A backbone study runs the same methods on several backbone families. The main tables already hold a row per
(method, backbone); this table turns it so a reader compares methods within each backbone: one row per method
(its evaluated network), one column per (backbone, headline column of the occluded role) — the columns the
policy's headline shows for the occluded split (`configs/report.yaml`), so the engine names no metric. Bold
marks the best method of each column. Written only where a policy table's records span ≥ 2 backbones and
every (backbone, method) is one setting (otherwise the rows would pool different configs: skipped, with a
note).
"""

from __future__ import annotations

import json
from typing import Any

from harness.report.interpret import _is_evaluated, _variant
from harness.report.policy import ReportPolicy
from harness.report.tables import Table, build_table

_ROLE = "occluded"


def backbone_tables(records: list[dict[str, Any]], policy: ReportPolicy, notes: list[str]) -> list[Table]:
    """One `<table>_by_backbone` per policy table whose evaluated training records hold ≥ 2 backbones."""
    tables = []
    for spec in policy.tables:
        columns = [c for c in spec.headline if c.split == _ROLE]
        mine = [
            r
            for r in records
            if spec.selects(r) and r.get("status") == "ok" and _is_evaluated(r) and not r.get("evaluation")
        ]
        if not columns or len({r.get("backbone") for r in mine}) < 2:
            continue
        settings: dict[tuple, set[str]] = {}
        for r in mine:
            key = (r.get("backbone"), r.get("method"))
            settings.setdefault(key, set()).add(json.dumps(_variant(r), sort_keys=True, default=str))
        mixed = sorted(str(k) for k, v in settings.items() if len(v) > 1)
        if mixed:
            notes.append(f"table {spec.name}_by_backbone: {mixed[0]} holds several settings, skipped")
            continue
        points = [
            {**r, "split": str(r["backbone"]), "config": {}, "metrics": {_label(c): r["metrics"][c.metric]}}
            for r in mine
            if r.get("split_role") == _ROLE
            for c in columns
            if isinstance((r.get("metrics") or {}).get(c.metric), int | float)
        ]
        if points:
            datasets = sorted({str(p.get("dataset")) for p in points})
            one = len(datasets) == 1  # then the dataset goes to the title, not a column
            title = f"{spec.title}: methods × backbones ({_ROLE} split{', ' + datasets[0] if one else ''})"
            keys = ["method", "network"] if one else ["dataset", "method", "network"]
            table = build_table(f"{spec.name}_by_backbone", title, points, [], keys)
            filled = {metric for _, metric in table.columns}
            table.directions = {_label(c): _direction(mine, c.metric) for c in columns if _label(c) in filled}
            tables.append(table)
    return tables


def _label(column) -> str:
    return column.label or f"{_ROLE} {column.metric}"


def _direction(records: list[dict[str, Any]], metric: str) -> bool | None:
    """The metric's declared direction (higher is better?), None where records disagree or say nothing."""
    declared = {(r.get("higher_is_better") or {}).get(metric) for r in records} - {None}
    return declared.pop() if len(declared) == 1 else None
