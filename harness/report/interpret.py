"""What a record means beyond its fields: which network is evaluated, which runs are seeds of one variant,
split order, each metric's declared direction and the primary metric.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from harness.report.records import _flatten

# Config keys that never change a number, so runs differing only in them pool as seeds of one row.
_NOT_A_VARIANT = ("seed", "device", "output")


def evaluated_networks(records: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """(run_id, network) pairs a method evaluates, as opposed to networks it only reports for reference.

    Records do not say which network is the deployed one, but the harness evaluates it on every split and the
    others on the clean split only, so per run the networks scored on the most splits are the evaluated ones.
    Call this on all records before filtering, so `split=clean_val` does not promote GNet.
    """
    splits: dict[str, dict[str, set]] = {}
    for r in records:
        if r.get("status") == "ok":
            splits.setdefault(r["run_id"], {}).setdefault(str(r.get("network")), set()).add(r.get("split"))
    chosen = set()
    for run_id, by_network in splits.items():
        most = max(len(s) for s in by_network.values())
        chosen |= {(run_id, n) for n, s in by_network.items() if len(s) == most}
    return chosen


def _variant(record: dict[str, Any]) -> dict[str, Any]:
    """The flattened config minus what does not change a number: runs with equal variants pool as seeds."""
    flat = _flatten(record.get("config") or {})
    return {k: v for k, v in flat.items() if k.split(".")[0] not in _NOT_A_VARIANT}


def _split_order(split: str) -> tuple[int, str]:
    """Clean splits first, then occluded, then the rest: the paper's column order, without naming a task."""
    lowered = split.lower()
    rank = 0 if lowered.startswith("clean") else 1 if lowered.startswith("occluded") else 2
    return rank, split


def _is_evaluated(record: dict[str, Any], evaluated: set[tuple[str, str]]) -> bool:
    return (record["run_id"], str(record.get("network"))) in evaluated


def _directions(records: list[dict[str, Any]]) -> dict[str, bool | None]:
    """Each metric's declared direction; None where no record declares one or records disagree."""
    seen: dict[str, set[bool]] = {}
    for r in records:
        for metric in r.get("metrics") or {}:
            declared = (r.get("higher_is_better") or {}).get(metric)
            seen.setdefault(metric, set())
            if isinstance(declared, bool):
                seen[metric].add(declared)
    return {m: next(iter(d)) if len(d) == 1 else None for m, d in seen.items()}


def _primary_metric(metrics: Iterable[str], declared: str | None = None) -> str | None:
    """The primary metric the records declare (their task's), else AP when present, else the first one."""
    names = list(metrics)
    if declared in names:
        return declared
    return "AP" if "AP" in names else (names[0] if names else None)


def _declared_primary(records: list[dict[str, Any]]) -> str | None:
    """The `primary_metric` the records agree on; None when none declares one or they differ."""
    declared = {r.get("primary_metric") for r in records} - {None}
    return next(iter(declared)) if len(declared) == 1 else None
