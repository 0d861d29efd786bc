"""One record per cell: a run repeated on the same settings and draw is set aside, not pooled as another seed.

A cell is what a record measures: the variant (its config minus what never changes a number), the draw
(run seed and random factors), the network and the split. Two ok records of one cell arise when a sweep is run
again into the same results folder, or when a resumed trial retrains a prerequisite (distillation's clean
teacher) whose own trial already wrote its records. Pooled, the repeat would pass for an extra seed (n and
the std wrong); in a paired verdict one of them would silently win. The first made (`started_at`, then file
name) is the one reported, as it would have been had the repeat never run; the others are listed in
`tables/repeats.csv`.
"""

from __future__ import annotations

from typing import Any

from harness.report.interpret import _cell, _variant


def cell_key(record: dict[str, Any]) -> tuple:
    """What a record measures: task, dataset, backbone, network, split, variant and draw."""
    fields = ("task", "dataset", "backbone", "network", "split")
    variant = repr(sorted(_variant(record).items()))
    return (*(str(record.get(f)) for f in fields), variant, repr(_cell(record)))


def first_per_cell(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[tuple[dict, dict]]]:
    """The records with each ok cell's first-made record only (order kept), and (repeat, kept) pairs for
    the ok records set aside. Records that are not ok are all kept: they count nowhere but failed_runs.csv."""
    keys = {id(r): cell_key(r) for r in records if r.get("status") == "ok"}
    first: dict[tuple, dict[str, Any]] = {}
    for r in sorted(records, key=lambda r: (str(r.get("started_at") or ""), r.get("_file", ""))):
        if id(r) in keys:
            first.setdefault(keys[id(r)], r)
    kept, repeats = [], []
    for r in records:
        reported = first[keys[id(r)]] if id(r) in keys else r
        if reported is r:
            kept.append(r)
        else:
            repeats.append((r, reported))
    return kept, repeats
