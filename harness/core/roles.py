"""What a result record stands for, beyond its names: whether its network is the evaluated one, which role its
split plays and which role its method plays in the comparison.

`harness run` writes these three fields into every record (`evaluated`, `split_role`, `method_role`), so the
report, the verdicts and the sweep summary read them instead of knowing task, split or method names. Records
written before the fields existed get them here, in this one place (`complete_records`), derived the way the
report used to guess them.

Method roles (`Method.role`): "method" is the method under study (its ablations are tabulated and it is
compared against the others), "baseline" a method it is compared against, "reference" the plain model every
method is compared against (it also fills the qualitative figure's baseline column).
"""

from __future__ import annotations

from typing import Any

SPLIT_ROLES = ("clean", "occluded", "extra")
# "external": a model this harness did not train (`harness eval --model`), ranked with the others in the
# leaderboard but never part of a paired verdict.
METHOD_ROLES = ("method", "baseline", "reference", "external")


def split_role(split: str | None, clean_split: str, occluded_split: str) -> str | None:
    """`clean`, `occluded` or `extra` for a task's eval split; None for a record without a split (failed).

    Example:
        >>> split_role("occluded_val", "clean_val", "occluded_val")
        'occluded'
    """
    if split is None:
        return None
    return "clean" if split == clean_split else "occluded" if split == occluded_split else "extra"


def complete_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fill `evaluated`, `split_role` and `method_role` (in place) where a record lacks them (absent or null).

    Derivations for old records, as the report made them before the fields existed:
    - evaluated: per run, the networks scored on the most splits (the evaluated network is scored on every
      split, the others on the clean split only). Call this on all records before filtering, so a filter
      `split=clean_val` cannot promote GNet.
    - split_role: from the split's name prefix (`clean*`, `occluded*`, else extra).
    - method_role: the registered method's `role`; None for a method no longer registered.

    Returns:
        the same list, for chaining.
    """
    legacy_evaluated = _evaluated_by_split_count([r for r in records if r.get("evaluated") is None])
    for r in records:
        if r.get("evaluated") is None:
            r["evaluated"] = (r.get("run_id"), str(r.get("network"))) in legacy_evaluated
        if r.get("split_role") is None:
            r["split_role"] = _split_role_from_name(r.get("split"))
        if r.get("method_role") is None:
            r["method_role"] = _registered_role(r.get("method"))
        if r.get("prerequisite_key") is None:  # also eval records, which carry the field empty
            r["prerequisite_key"] = _registered_prerequisite_key(r.get("method"))
    return records


def _evaluated_by_split_count(records: list[dict[str, Any]]) -> set[tuple[Any, str]]:
    splits: dict[Any, dict[str, set]] = {}
    for r in records:
        if r.get("status") == "ok":
            by_network = splits.setdefault(r.get("run_id"), {})
            by_network.setdefault(str(r.get("network")), set()).add(r.get("split"))
    chosen = set()
    for run_id, by_network in splits.items():
        most = max(len(s) for s in by_network.values())
        chosen |= {(run_id, n) for n, s in by_network.items() if len(s) == most}
    return chosen


def _split_role_from_name(split: Any) -> str | None:
    if split is None:
        return None
    lowered = str(split).lower()
    return next((role for role in ("clean", "occluded") if lowered.startswith(role)), "extra")


def _registered_prerequisite_key(method: Any) -> str | None:
    """`method_args.<method>.<field>` of a registered method's prerequisite (a per-seed run pointer)."""
    from harness.core.registry import METHODS

    if method not in METHODS.names():
        return None
    prerequisite = getattr(METHODS.get(method), "prerequisite", None)
    return f"method_args.{method}.{prerequisite[1]}" if prerequisite else None


def _registered_role(method: Any) -> str | None:
    """Looked up only for old records: importing the registry loads every plugin."""
    from harness.core.registry import METHODS

    name = str(method)
    return getattr(METHODS.get(name), "role", None) if name in METHODS else None
