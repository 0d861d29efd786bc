"""What records mean together: which runs are seeds of one variant, split order, each metric's declared
direction and the primary metric. Which network is evaluated and what role a split or method plays are fields
of the records themselves (harness/core/roles.py fills them in for older records).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from harness.report.records import _flatten

# Config keys that never change a number, so runs differing only in them pool as seeds of one row.
_NOT_A_VARIANT = ("seed", "device", "output")
# Draws of a random factor besides the run seed: the embedded pretraining seed picks the starting checkpoint.
# Runs differing in them pool like seeds; paired comparisons pair within each (seed, factor...) cell.
RANDOM_FACTORS = ("pretrain.seed",)


def _variant(record: dict[str, Any]) -> dict[str, Any]:
    """The flattened config minus what does not change a number: runs with equal variants pool as seeds."""
    flat = _flatten(record.get("config") or {})
    per_seed = record.get("prerequisite_key")  # e.g. the teacher run of the same seed: not a variant
    return {
        k: v
        for k, v in flat.items()
        if k.split(".")[0] not in _NOT_A_VARIANT and k != per_seed and k not in RANDOM_FACTORS
    }


def _cell(record: dict[str, Any]) -> tuple:
    """Which draw a run is: (seed, then each random factor's value); runs of two methods pair by it."""
    flat = _flatten(record.get("config") or {})
    return (int(record.get("seed", 0)), *(flat.get(k) for k in RANDOM_FACTORS))


def _split_order(split: str, role: str | None) -> tuple[int, str]:
    """Clean splits first, then occluded, then the rest (by the records' `split_role`): the paper's column
    order, without naming a task."""
    return {"clean": 0, "occluded": 1}.get(str(role), 2), split


def _is_evaluated(record: dict[str, Any]) -> bool:
    """Whether the record's network is the one its method evaluates (not trained alongside for reference)."""
    return bool(record.get("evaluated"))


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
    """The primary metric the records declare (their task's), else the first one (records predating the field
    list their metrics sorted, so a pose record's first is AP)."""
    names = list(metrics)
    if declared in names:
        return declared
    return names[0] if names else None


def _declared_primary(records: list[dict[str, Any]]) -> str | None:
    """The `primary_metric` the records agree on; None when none declares one or they differ."""
    declared = {r.get("primary_metric") for r in records} - {None}
    return next(iter(declared)) if len(declared) == 1 else None
