"""Aggregation: records to `Table`s, one row per key and config variant, cells mean ± std over seeds."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from harness.report.interpret import _declared_primary, _directions, _is_evaluated, _split_order, _variant
from harness.report.policy import ReportPolicy, table_families
from harness.report.records import _flatten, _lookup, _text


@dataclass
class Table:
    """One results table: rows keyed by `key_columns`, columns (split, metric), cells (mean, std, n)."""

    name: str
    title: str
    key_columns: list[str]
    rows: list[tuple[str, ...]]
    columns: list[tuple[str, str]]
    cells: dict[tuple[int, int], tuple[float, float, int]]
    directions: dict[str, bool | None]
    reference_rows: set[int]
    provenance: pd.DataFrame  # key columns + run_id, seed, network, split, file
    failed: list[dict[str, Any]]
    primary: str | None = None  # the primary metric the records declare (figures plot it)
    ablation: bool = False  # rows are settings of one method, not methods: no per-split bar figure
    split_roles: dict[str, str | None] = field(default_factory=dict)  # split -> clean / occluded / extra
    headline: Table | None = None  # the paper's few columns, shown first; this table is then the appendix
    column_labels: list[str] | None = None  # headers instead of "<split> <metric>"
    shared: str = ""  # "key value, ..." of key columns every row shares (left out of a headline's rows)

    def best(self) -> set[tuple[int, int]]:
        """Cells to bold: per column the best mean (ties all bold) of ranked rows, in the declared direction.

        A column with fewer than two ranked values has nothing to win, so nothing is bold there.
        """
        chosen = set()
        for c, (_, metric) in enumerate(self.columns):
            direction = self.directions.get(metric)
            decimals = self.decimals(c)
            ranked = {
                r: round(self.cells[r, c][0], decimals)
                for r in range(len(self.rows))
                if (r, c) in self.cells and r not in self.reference_rows
            }
            if direction is None or len(ranked) < 2:
                continue
            target = max(ranked.values()) if direction else min(ranked.values())
            chosen |= {(r, c) for r, value in ranked.items() if value == target}
        return chosen

    def decimals(self, column: int) -> int:
        """3 decimals, or 4 when every value of the column is below 0.1 (NME-like fractions) or a spread
        over seeds would print as 0.000 (it is small, not zero)."""
        values = [abs(mean) for (_, c), (mean, _, _) in self.cells.items() if c == column and mean]
        spreads = [std for (_, c), (_, std, n) in self.cells.items() if c == column and n > 1 and std > 0]
        return 4 if (values and max(values) < 0.1) or any(s < 0.0005 for s in spreads) else 3


def _row_key(record: dict[str, Any], key_columns: list[str]) -> tuple:
    values = []
    for column in key_columns:
        if column == "method" and not _is_evaluated(record):
            values.append(f"{record.get('method')} ({record.get('network')})")
        elif "." in column:
            values.append(_text(_lookup(record, column)))
        else:
            values.append(_text(record.get(column)))
    return tuple(values)


def build_table(
    name: str,
    title: str,
    ok: list[dict[str, Any]],
    failed: list[dict[str, Any]],
    key_columns: list[str],
) -> Table:
    """Aggregate ok records into one table: a row per key (and config variant), cells over seeds.

    Args:
        name: file stem of the table.
        title: caption.
        ok: the ok records that belong to the table (each contributes its metrics to one row).
        failed: the failed records that belong to it (listed, never aggregated).
        key_columns: record fields or dotted paths that identify a row. Records whose network is not the
            evaluated one (`evaluated: false`) are reference rows, not ranked.
    """
    long = []
    for r in ok:
        key = _row_key(r, key_columns)
        variant = json.dumps(_variant(r), sort_keys=True, default=str)
        for metric, value in (r.get("metrics") or {}).items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                long.append((key, variant, str(r.get("split")), metric, float(value), r))
    variants = _variant_labels({(key, variant) for key, variant, *_ in long})
    with_config = any(variants.values())
    columns_out = [*key_columns, "config"] if with_config else list(key_columns)
    row_of = {kv: (*kv[0], variants[kv]) if with_config else kv[0] for kv in variants}

    frame = pd.DataFrame(
        [(row_of[key, variant], split, metric, value) for key, variant, split, metric, value, _ in long],
        columns=["row", "split", "metric", "value"],
    )
    rows = sorted(set(row_of.values()))
    metrics = list(dict.fromkeys(m for *_, m, _, _ in long))
    roles = {str(r.get("split")): r.get("split_role") for *_, r in long}
    splits = sorted(roles, key=lambda s: _split_order(s, roles[s]))
    columns = [(s, m) for s in splits for m in metrics if ((frame.split == s) & (frame.metric == m)).any()]
    cells = {}
    if not frame.empty:
        stats = frame.groupby(["row", "split", "metric"])["value"].agg(["mean", "std", "count"])
        for (row, split, metric), (mean, std, count) in stats.iterrows():
            cells[rows.index(row), columns.index((split, metric))] = (float(mean), float(std), int(count))

    provenance = pd.DataFrame(
        sorted(
            {
                (
                    *row_of[key, variant],
                    r["run_id"],
                    _text(r.get("seed")),
                    _text(r.get("network")),
                    split,
                    r["_file"],
                )
                for key, variant, split, _, _, r in long
            }
        ),
        columns=[*columns_out, "run_id", "seed", "network", "split", "file"],
    )
    unranked = {row_of[key, variant] for key, variant, *_, r in long if not _is_evaluated(r)}
    reference = {i for i, row in enumerate(rows) if row in unranked}
    return Table(
        name=name,
        title=title,
        key_columns=columns_out,
        rows=rows,
        columns=columns,
        cells=cells,
        directions=_directions(ok),
        reference_rows=reference,
        provenance=provenance,
        failed=failed,
        primary=_declared_primary(ok),
        split_roles={s: roles[s] for s in splits},
    )


def _variant_labels(keys: set[tuple[tuple, str]]) -> dict[tuple[tuple, str], str]:
    """For rows whose runs differ in more than the seed, the config keys that set each apart, else ''.

    Within a row group (same dataset, method, backbone, network) a label names only the keys whose values
    differ between its variants, and of those only where the row leaves the group's majority value (the
    common arm reads plain, each ablation arm names its own change). A key present in some variants only
    and implied by another differing key (the six `pretrain.*` settings that exist only while
    `model.pretrained` is `embedded`) is left to that key. Keys are shortened to their shortest unambiguous
    dotted suffix (`pretrained=null`).
    """
    by_row: dict[tuple, list[str]] = {}
    for key, variant in sorted(keys):
        by_row.setdefault(key, []).append(variant)
    labels = {}
    for key, variants in by_row.items():
        configs = [json.loads(v) for v in variants]
        differing = sorted({k for c in configs for k in c if len({_value(d, k) for d in configs}) > 1})
        differing = [k for k in differing if not _implied(k, differing, configs)]
        short = _short_names(differing)
        for variant, config in zip(variants, configs, strict=True):
            parts = [
                f"{short[k]}={_value(config, k)}"
                for k in differing
                if _value(config, k) != _majority([_value(c, k) for c in configs])
            ]
            labels[key, variant] = ", ".join(parts)
    return labels


def _value(config: dict[str, Any], key: str) -> str:
    return _text(config.get(key)) if key in config else "(unset)"


def _majority(values: list[str]) -> str | None:
    """The value more variants share than any other; None on a tie (then every row names its value)."""
    counts = sorted(((values.count(v), v) for v in set(values)), reverse=True)
    return counts[0][1] if len(counts) == 1 or counts[0][0] > counts[1][0] else None


def _implied(key: str, differing: list[str], configs: list[dict[str, Any]]) -> bool:
    """Whether `key` is unset in some variants and its value follows from another differing key that every
    variant sets (a derived setting: it says nothing that key does not)."""
    if all(key in c for c in configs):
        return False
    for other in differing:
        if other == key or not all(other in c for c in configs):
            continue
        seen: dict[str, str] = {}
        if all(seen.setdefault(_value(c, other), _value(c, key)) == _value(c, key) for c in configs):
            return True
    return False


def _short_names(keys: list[str]) -> dict[str, str]:
    """Each dotted key's shortest suffix (by parts) that no other key in `keys` ends with."""
    short = {}
    for key in keys:
        parts = key.split(".")
        for size in range(1, len(parts) + 1):
            suffix = ".".join(parts[-size:])
            if not any(o != key and (o == suffix or o.endswith("." + suffix)) for o in keys):
                break
        short[key] = suffix
    return short


def headline_table(table: Table, columns: list[Any]) -> Table | None:
    """The few columns a paper shows (policy `headline`: split role or name + metric), rows as in `table`.

    Key columns every row shares (one dataset, one backbone) move to `shared`, so a row reads "method ·
    network" plus what sets it apart. None when no headline column has a value.
    """
    chosen, labels = [], []
    for spec in columns:
        matches = [
            c
            for c, (split, metric) in enumerate(table.columns)
            if metric == spec.metric
            and spec.split in (split, table.split_roles.get(split))
            and c not in chosen
            and any((r, c) in table.cells for r in range(len(table.rows)))
        ]
        for c in matches:  # a role several splits play (a verification suite): each split its own column
            split = table.columns[c][0]
            label = spec.label if spec.label and len(matches) == 1 else None
            chosen.append(c)
            labels.append(label or f"{split.removesuffix('_val')} {spec.label or spec.metric}")
    if not chosen:
        return None
    filled = [r for r in range(len(table.rows)) if any((r, c) in table.cells for c in chosen)]
    rows = sorted(filled, key=lambda r: r in table.reference_rows)  # reference rows last
    key_columns, values, shared = compact_rows(table, rows)
    cells = {
        (i, j): table.cells[r, c]
        for i, r in enumerate(rows)
        for j, c in enumerate(chosen)
        if (r, c) in table.cells
    }
    return replace(
        table,
        key_columns=key_columns,
        rows=values,
        columns=[table.columns[c] for c in chosen],
        cells=cells,
        reference_rows={i for i, r in enumerate(rows) if r in table.reference_rows},
        headline=None,
        column_labels=labels,
        shared=shared,
    )


def compact_rows(table: Table, rows: list[int]) -> tuple[list[str], list[tuple[str, ...]], str]:
    """Row keys as a paper prints them: key columns all `rows` share leave the rows (returned as "key
    value, ..."), method and network become one "method (network)" column, a reference network (trained
    alongside, not evaluated) reads "method (network), reference"."""
    columns = table.key_columns
    varying = [k for k in range(len(columns)) if len({table.rows[r][k] for r in rows}) > 1]
    shared = ", ".join(
        f"{columns[k]} {table.rows[rows[0]][k]}"
        for k in range(len(columns))
        if k not in varying and columns[k] not in ("method", "network", "config") and table.rows[rows[0]][k]
    )
    merge = "method" in columns and "network" in columns
    out_columns, values = [], [[] for _ in rows]
    for k, name in enumerate(columns):
        if merge and name == "network":
            continue
        if merge and name == "method":
            out_columns.append("method (network)")
            network = columns.index("network")
            for i, r in enumerate(rows):
                method, net = table.rows[r][k], table.rows[r][network]
                values[i].append(f"{method}, reference" if r in table.reference_rows else f"{method} ({net})")
        elif k in varying or (name == "config" and any(table.rows[r][k] for r in rows)):
            out_columns.append(name)
            for i, r in enumerate(rows):
                values[i].append(table.rows[r][k])
    return out_columns, [tuple(v) for v in values], shared


def build_tables(records: list[dict[str, Any]], policy: ReportPolicy, notes: list[str]) -> list[Table]:
    """Every table the (filtered) records call for; a policy table without records is skipped with a note."""
    ok = [r for r in records if r.get("status") == "ok"]
    failed = [r for r in records if r.get("status") != "ok"]
    tables = []
    keys = ["dataset", "method", "backbone", "network"]
    listed = {t.name for t in policy.tables}
    for spec in table_families(records, policy):
        mine_ok, mine_failed = [r for r in ok if spec.selects(r)], [r for r in failed if spec.selects(r)]
        if mine_ok or mine_failed:
            table = build_table(spec.name, spec.title, mine_ok, mine_failed, keys)
            table.headline = headline_table(table, spec.headline) if spec.headline else None
            tables.append(table)
        elif spec.name in listed:
            notes.append(f"table {spec.name}: no records, skipped")
    studied = sorted({str(r.get("method")) for r in ok if r.get("method_role") == "method"})
    if not studied:
        notes.append(f"table {policy.ablation.name}: no runs of a method with role 'method', skipped")
    for method in studied:
        name = policy.ablation.name if len(studied) == 1 else f"{policy.ablation.name}_{method}"
        title = policy.ablation.title.replace("{method}", method)
        ablation = _ablation_table(name, title, method, ok, failed)
        if ablation is None:
            notes.append(f"table {name}: the {method} runs do not differ in method_args.{method}, skipped")
        else:
            tables.append(ablation)
    return tables


def _ablation_table(
    name: str, title: str, method: str, ok: list[dict[str, Any]], failed: list[dict[str, Any]]
) -> Table | None:
    """`method`'s evaluated network, one row per setting of its `method_args.<method>` switches that vary."""
    prefix = f"config.method_args.{method}"
    runs = [r for r in ok if r.get("method") == method and _is_evaluated(r)]
    settings = [_lookup(r, prefix) for r in runs]  # a dict, or _MISSING for a method without args
    switches = sorted(
        {key for tree in settings if isinstance(tree, dict) for key in _flatten(tree, f"{prefix}.")}
    )
    varying = [k for k in switches if len({_text(_lookup(r, k)) for r in runs}) > 1]
    if not varying:
        return None
    mine_failed = [r for r in failed if r.get("method") == method]
    table = build_table(name, title, runs, mine_failed, ["dataset", "backbone", "network", *varying])
    short = {k: k.removeprefix(f"{prefix}.") for k in varying}
    table.key_columns = [short.get(c, c) for c in table.key_columns]
    table.provenance = table.provenance.rename(columns=short)
    table.ablation = True
    return table
