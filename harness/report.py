"""`harness report`: the paper's tables and figures, regenerated from result records alone.

Reads only `<results>/runs/*.json` (one record per run, network and eval split) and writes
`<out>/tables/` (Markdown, LaTeX, CSV) and `<out>/figures/` (PNG and PDF). Nothing here knows a task: metric
names, their order and their direction (`higher_is_better`) come from the records, so a new task's records
get a table of their own without a line changing here.

Conventions, chosen so a reader can trust every number:
- Only `status == "ok"` records enter tables and figures; failed runs are listed with their reason.
- A cell is the mean ± sample standard deviation (n − 1) over the runs of a row, with the run count:
  `0.583 ± 0.012 (n=3)`; a single run shows its value and `(n=1)`, no ± (a spread of one run is not zero, it
  is unknown). An empty cell is "–", never a number.
- Runs pool into one row only when their resolved configs differ in nothing but the seed (and where outputs
  go / the device); otherwise the row gets a `config` column naming the keys that set it apart.
- Best per column is bold, in the direction the records declare; a metric without a declared direction (or
  with conflicting ones) is not ranked. Networks a method trains but does not evaluate (D-Slope's GNet) are
  shown as reference rows, "dslope (gnet)", and are not ranked.
- Every table lists the run ids it used; outputs are byte-identical across reruns on the same records.

Example:
    >>> summary = generate_report(Path("results"), formats=("md", "csv"), filters=parse_filters(["seed=0"]))
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.errors import ConfigError, DataError
from harness.verdict import paired_verdicts

FORMATS = ("md", "tex", "csv")
FILTER_FIELDS = (
    "run_id",
    "task",
    "method",
    "backbone",
    "dataset",
    "split",
    "network",
    "seed",
    "status",
    "config_hash",
    "commit",
)
DASH = "–"
REAL_OCCLUSION_DATASETS = ("ochuman", "crowdpose")
# Config keys that never change a number, so runs differing only in them pool as seeds of one row.
_NOT_A_VARIANT = ("seed", "device", "output")
_BASELINE_METHOD = "clean"
_DSLOPE_METHOD = "dslope"
_QUALITATIVE_ROWS = 6
# Without these, matplotlib stamps the date and its version into every file and reruns differ.
_PNG_METADATA = {"Software": None}
_PDF_METADATA = {"Creator": None, "Producer": None, "CreationDate": None}
_RC = {"svg.hashsalt": "dslope-harness", "font.size": 8}


@dataclass(frozen=True)
class Filter:
    """`key=value` on a record field (`method=dslope`) or a dotted path (`config.model.backbone=x`)."""

    key: str
    value: str


@dataclass
class ReportSummary:
    """What a report run read and wrote, for the CLI to print."""

    results_dir: Path
    records: int = 0  # records found, before filters
    selected: int = 0  # records left after filters
    failed: list[dict[str, Any]] = field(default_factory=list)
    tables: list[Path] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    markdown: list[str] = field(default_factory=list)  # the tables, for the terminal
    verdicts: list[str] = field(default_factory=list)  # D-Slope minus each baseline, paired over seeds


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
        """3 decimals, or 4 when every value of the column is below 0.1 (NME-like fractions)."""
        values = [abs(mean) for (_, c), (mean, _, _) in self.cells.items() if c == column and mean]
        return 4 if values and max(values) < 0.1 else 3


# ---------------------------------------------------------------------------------------------- records


def load_records(results_dir: Path) -> list[dict[str, Any]]:
    """Every record under `results_dir/runs/`, sorted by file name; each gains `_file` (its file name).

    Raises:
        DataError: a record file is not valid JSON or not a JSON object.
    """
    records = []
    for path in sorted(Path(results_dir, "runs").glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise DataError(f"unreadable result record {path}: {err}") from None
        if not isinstance(record, dict):
            raise DataError(f"result record {path} must hold a JSON object, got {type(record).__name__}")
        record["_file"] = path.name
        records.append(record)
    return records


def parse_filters(texts: Iterable[str]) -> list[Filter]:
    """`key=value` strings to filters; the key must be a record field or a dotted path into one.

    Raises:
        ConfigError: no `=`, or an unknown key.
    """
    filters = []
    for text in texts:
        key, sep, value = text.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"filter '{text}' must be key=value, e.g. method=dslope")
        if key not in FILTER_FIELDS and "." not in key:
            raise ConfigError(
                f"unknown filter key '{key}'; expected one of {', '.join(FILTER_FIELDS)} "
                "or a dotted config key such as config.model.backbone"
            )
        filters.append(Filter(key, value.strip()))
    return filters


def apply_filters(records: list[dict[str, Any]], filters: list[Filter]) -> list[dict[str, Any]]:
    """The records that match every filter (filters AND together).

    Raises:
        ConfigError: a dotted key that no record has (a typo would otherwise silently select nothing).
    """
    for f in filters:
        if "." in f.key and not any(_lookup(r, f.key) is not _MISSING for r in records):
            raise ConfigError(f"unknown filter key '{f.key}': no result record has it")
    return [r for r in records if all(_matches(_lookup(r, f.key), f.value) for f in filters)]


_MISSING = object()


def _lookup(record: dict[str, Any], dotted: str) -> Any:
    value: Any = record
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _matches(value: Any, text: str) -> bool:
    """Compare as the user typed it: `seed=0` matches 0, `...feature_loss=false` matches False."""
    if value is _MISSING:
        return False
    if isinstance(value, bool) or value is None:
        return _text(value) == text.lower()
    if isinstance(value, (int, float)):
        try:
            return float(text) == float(value)
        except ValueError:
            return False
    return _text(value) == text


def _text(value: Any) -> str:
    """A config value as YAML would write it (true/false/null), for labels and comparisons."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


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


# ----------------------------------------------------------------------------------------------- tables


def _table_families(records: list[dict[str, Any]]) -> list[tuple[str, str, Callable[[dict], bool]]]:
    """(name, title, selector) of each table the records call for; other tasks get a table of their own."""

    def real(r: dict) -> bool:
        return str(r.get("dataset", "")).lower() in REAL_OCCLUSION_DATASETS

    families = [
        (
            "pose",
            "Pose estimation: clean vs. occluded val",
            lambda r: r.get("task") == "pose" and not real(r),
        ),
        ("real_occlusion", "Real occlusion (OCHuman, CrowdPose)", real),
        ("face_alignment", "Face alignment", lambda r: r.get("task") == "face_alignment" and not real(r)),
        (
            "face_recognition",
            "Face recognition",
            lambda r: r.get("task") == "face_recognition" and not real(r),
        ),
    ]
    named = {"pose", "face_alignment", "face_recognition"}
    for task in sorted({str(r.get("task")) for r in records} - named):
        families.append((task, f"Task {task}", lambda r, t=task: str(r.get("task")) == t and not real(r)))
    return families


def _is_evaluated(record: dict[str, Any], evaluated: set[tuple[str, str]]) -> bool:
    return (record["run_id"], str(record.get("network"))) in evaluated


def _row_key(record: dict[str, Any], key_columns: list[str], evaluated: set[tuple[str, str]]) -> tuple:
    values = []
    for column in key_columns:
        if column == "method" and not _is_evaluated(record, evaluated):
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
    evaluated: set[tuple[str, str]],
) -> Table:
    """Aggregate ok records into one table: a row per key (and config variant), cells over seeds.

    Args:
        name: file stem of the table.
        title: caption.
        ok: the ok records that belong to the table (each contributes its metrics to one row).
        failed: the failed records that belong to it (listed, never aggregated).
        key_columns: record fields or dotted paths that identify a row.
        evaluated: (run_id, network) pairs that are ranked (the others are reference rows).
    """
    long = []
    for r in ok:
        key = _row_key(r, key_columns, evaluated)
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
    splits = sorted({s for _, _, s, *_ in long}, key=_split_order)
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
    unranked = {row_of[key, variant] for key, variant, *_, r in long if not _is_evaluated(r, evaluated)}
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
    )


def _variant_labels(keys: set[tuple[tuple, str]]) -> dict[tuple[tuple, str], str]:
    """For rows whose runs differ in more than the seed, the config keys that set each apart, else ''."""
    by_row: dict[tuple, list[str]] = {}
    for key, variant in sorted(keys):
        by_row.setdefault(key, []).append(variant)
    labels = {}
    for key, variants in by_row.items():
        configs = [json.loads(v) for v in variants]
        differing = sorted({k for c in configs for k in c if len({_text(d.get(k)) for d in configs}) > 1})
        for variant, config in zip(variants, configs, strict=True):
            labels[key, variant] = ", ".join(f"{k}={_text(config.get(k))}" for k in differing)
    return labels


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


def build_tables(
    records: list[dict[str, Any]], evaluated: set[tuple[str, str]], notes: list[str]
) -> list[Table]:
    """Every table the (filtered) records call for; a family without records is skipped with a note."""
    ok = [r for r in records if r.get("status") == "ok"]
    failed = [r for r in records if r.get("status") != "ok"]
    tables = []
    keys = ["dataset", "method", "backbone", "network"]
    for name, title, selects in _table_families(records):
        mine_ok, mine_failed = [r for r in ok if selects(r)], [r for r in failed if selects(r)]
        if mine_ok or mine_failed:
            tables.append(build_table(name, title, mine_ok, mine_failed, keys, evaluated))
        elif name in ("real_occlusion", "face_alignment", "face_recognition"):
            notes.append(f"table {name}: no records, skipped")
    ablation = _ablation_table(ok, failed, evaluated)
    if ablation is None:
        notes.append("table ablation: the D-Slope runs do not differ in method_args.dslope, skipped")
    else:
        tables.append(ablation)
    return tables


def _ablation_table(
    ok: list[dict[str, Any]], failed: list[dict[str, Any]], evaluated: set[tuple[str, str]]
) -> Table | None:
    """D-Slope's evaluated network, one row per setting of the `method_args.dslope` switches that vary."""
    runs = [r for r in ok if r.get("method") == _DSLOPE_METHOD and _is_evaluated(r, evaluated)]
    switches = sorted(
        {
            key
            for r in runs
            for key in _flatten(_lookup(r, "config.method_args.dslope") or {}, "config.method_args.dslope.")
        }
    )
    varying = [k for k in switches if len({_text(_lookup(r, k)) for r in runs}) > 1]
    if not varying:
        return None
    mine_failed = [r for r in failed if r.get("method") == _DSLOPE_METHOD]
    table = build_table(
        "ablation",
        "Ablation: D-Slope switches (evaluated network)",
        runs,
        mine_failed,
        ["dataset", "backbone", "network", *varying],
        evaluated,
    )
    short = {k: k.removeprefix("config.method_args.dslope.") for k in varying}
    table.key_columns = [short.get(c, c) for c in table.key_columns]
    table.provenance = table.provenance.rename(columns=short)
    return table


# ---------------------------------------------------------------------------------------------- writers


def _cell_text(table: Table, r: int, c: int) -> str | None:
    if (r, c) not in table.cells:
        return None
    mean, std, n = table.cells[r, c]
    d = table.decimals(c)
    return f"{mean:.{d}f} ± {std:.{d}f} (n={n})" if n > 1 else f"{mean:.{d}f} (n=1)"


def _legend(table: Table) -> str:
    unranked = sorted(m for m, d in table.directions.items() if d is None)
    text = (
        "Cells: mean ± sample std over runs (seeds), with the run count; one run shows its value alone. "
        f"Best per column in bold, in each metric's declared direction. {DASH} = no record."
    )
    if table.reference_rows:
        text += " Rows 'method (network)' are networks trained alongside but not evaluated: not ranked."
    if unranked:
        text += f" Not ranked (no declared direction): {', '.join(unranked)}."
    return text


def to_markdown(table: Table) -> str:
    """The table, its provenance appendix and its failed runs as Markdown (written by hand: no tabulate)."""
    best = table.best()

    def escape(text: str) -> str:
        return text.replace("|", "\\|")

    header = [*table.key_columns, *(f"{split} {metric}" for split, metric in table.columns)]
    lines = [f"## {table.title}", "", _legend(table), ""]
    lines += ["| " + " | ".join(map(escape, header)) + " |", "|" + "---|" * len(table.key_columns)]
    lines[-1] += "---:|" * len(table.columns)
    for r, row in enumerate(table.rows):
        cells = []
        for c in range(len(table.columns)):
            text = _cell_text(table, r, c)
            cells.append(DASH if text is None else f"**{text}**" if (r, c) in best else text)
        lines.append("| " + " | ".join([*map(escape, row), *cells]) + " |")
    lines += ["", "### Provenance (run ids per row)", ""]
    for row, runs in _runs_per_row(table):
        lines.append(f"- {' · '.join(v for v in row if v)}: {', '.join(runs)}")
    if table.failed:
        lines += ["", "### Failed runs", ""]
        lines += [f"- {_failed_line(r)}" for r in table.failed]
    return "\n".join(lines) + "\n"


def _runs_per_row(table: Table) -> list[tuple[tuple, list[str]]]:
    """Each row with the runs (and seeds) its cells were computed from, for the provenance appendix."""
    k = len(table.key_columns)
    runs: dict[tuple, dict[str, str]] = {row: {} for row in table.rows}
    for entry in table.provenance.itertuples(index=False):
        runs[tuple(entry[:k])][entry.run_id] = entry.seed
    return [
        (row, [f"{run} (seed {seed})" for run, seed in sorted(runs[row].items(), key=lambda x: (x[1], x[0]))])
        for row in table.rows
    ]


def _failed_line(record: dict[str, Any]) -> str:
    what = " · ".join(_text(record.get(k)) for k in ("task", "dataset", "method", "backbone"))
    reason = " ".join(str(record.get("reason") or "no reason recorded").split())
    return f"{record.get('run_id')} ({what}, seed {_text(record.get('seed'))}): {reason}"


_TEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "–": "--",
}


def _tex(text: str) -> str:
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in text)


def to_latex(table: Table) -> str:
    """A booktabs `table` with split headers spanning their metrics; provenance and failures as comments."""
    best = table.best()
    k = len(table.key_columns)
    spec = "l" * k + "r" * len(table.columns)
    lines = [
        "% Generated by `harness report` from result records; needs \\usepackage{booktabs}.",
        f"% {' '.join(_legend(table).split())}",
        "\\begin{table}[t]",
        "\\centering",
        f"\\caption{{{_tex(table.title)}}}",
        f"\\label{{tab:{_tex(table.name)}}}",
        f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule",
    ]
    groups = list(dict.fromkeys(split for split, _ in table.columns))
    spans = [(g, sum(1 for s, _ in table.columns if s == g)) for g in groups]
    head = [""] * k + [f"\\multicolumn{{{n}}}{{c}}{{{_tex(g)}}}" for g, n in spans]
    lines.append(" & ".join(head) + " \\\\")
    start = k + 1
    rules = []
    for _, n in spans:
        rules.append(f"\\cmidrule(lr){{{start}-{start + n - 1}}}")
        start += n
    lines.append("".join(rules))
    lines.append(" & ".join([*map(_tex, table.key_columns), *(_tex(m) for _, m in table.columns)]) + " \\\\")
    lines.append("\\midrule")
    for r, row in enumerate(table.rows):
        cells = []
        for c in range(len(table.columns)):
            text = _cell_text(table, r, c)
            if text is None:
                cells.append("--")
                continue
            value, _, count = text.rpartition(" (")
            value = value.replace(" ± ", " $\\pm$ ")
            value = f"\\textbf{{{value}}}" if (r, c) in best else value
            cells.append(f"{value} ({_tex(count)}")
        lines.append(" & ".join([*map(_tex, row), *cells]) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}", "% Provenance (run ids per row):"]
    for row, runs in _runs_per_row(table):
        lines.append(f"%   {' / '.join(v for v in row if v)}: {', '.join(runs)}")
    if table.failed:
        lines.append("% Failed runs:")
        lines += [f"%   {_failed_line(r)}" for r in table.failed]
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> tuple[str, str]:
    """(table, provenance) as CSV text: full-precision mean, std and n per (split, metric) and row."""
    data = []
    for r, row in enumerate(table.rows):
        entry: dict[str, Any] = dict(zip(table.key_columns, row, strict=True))
        for c, (split, metric) in enumerate(table.columns):
            mean, std, n = table.cells.get((r, c), (math.nan, math.nan, 0))
            entry[f"{split}/{metric}/mean"] = mean
            entry[f"{split}/{metric}/std"] = std if n > 1 else math.nan
            entry[f"{split}/{metric}/n"] = n
        data.append(entry)
    frame = pd.DataFrame(data, columns=[*table.key_columns, *_csv_value_columns(table)])
    return _csv_text(frame), _csv_text(table.provenance)


def _csv_value_columns(table: Table) -> list[str]:
    return [f"{s}/{m}/{part}" for s, m in table.columns for part in ("mean", "std", "n")]


def _csv_text(frame: pd.DataFrame) -> str:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue()


def failed_runs_csv(records: list[dict[str, Any]]) -> str:
    columns = ["run_id", "task", "dataset", "method", "backbone", "seed", "reason", "file"]
    rows = [[_text(r.get(c)) if c != "file" else r["_file"] for c in columns] for r in records]
    return _csv_text(pd.DataFrame(rows, columns=columns))


def write_tables(
    tables: list[Table], failed: list[dict[str, Any]], out: Path, formats: list[str]
) -> list[Path]:
    """Write every table in every format under `out` (created); returns the paths written, in order."""
    out.mkdir(parents=True, exist_ok=True)
    written = []

    def put(name: str, text: str) -> None:
        (out / name).write_bytes(text.encode())
        written.append(out / name)

    for table in tables:
        if "md" in formats:
            put(f"{table.name}.md", to_markdown(table))
        if "tex" in formats:
            put(f"{table.name}.tex", to_latex(table))
        if "csv" in formats:
            body, provenance = to_csv(table)
            put(f"{table.name}.csv", body)
            put(f"{table.name}_provenance.csv", provenance)
    if failed and "csv" in formats:
        put("failed_runs.csv", failed_runs_csv(failed))
    return written


# ---------------------------------------------------------------------------------------------- figures


def _new_figure(width: float, height: float):
    """A figure outside pyplot: the Agg canvas, no global state, no GUI backend picked up."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _save(fig, stem: Path) -> list[Path]:
    """PNG and PDF with the timestamp and version metadata removed, so reruns give identical bytes."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, pdf = stem.with_suffix(".png"), stem.with_suffix(".pdf")
    fig.savefig(png, dpi=150, metadata=_PNG_METADATA)
    fig.savefig(pdf, metadata=_PDF_METADATA)
    return [png, pdf]


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


def figure_split_bars(table: Table, out: Path) -> list[Path]:
    """Grouped bars of the primary metric: one group per row, one bar per split (clean vs. occluded)."""
    metric = _primary_metric(dict.fromkeys(m for _, m in table.columns), table.primary)
    columns = [c for c, (_, m) in enumerate(table.columns) if m == metric]
    rows = [r for r in range(len(table.rows)) if any((r, c) in table.cells for c in columns)]
    if not rows:
        return []
    fig = _new_figure(max(4.0, 1.1 * len(rows) + 1.5), 3.2)
    ax = fig.add_subplot()
    width = 0.8 / len(columns)
    for i, c in enumerate(columns):
        means = [table.cells.get((r, c), (math.nan, 0.0, 0))[0] for r in rows]
        stds = [table.cells[r, c][1] if table.cells.get((r, c), (0, 0, 0))[2] > 1 else 0.0 for r in rows]
        positions = [j + (i - (len(columns) - 1) / 2) * width for j in range(len(rows))]
        ax.bar(positions, means, width, yerr=stds, capsize=2, label=table.columns[c][0])
    labels = [
        "\n".join(v for v, k in zip(table.rows[r], table.key_columns, strict=True) if k != "dataset")
        for r in rows
    ]
    ax.set_xticks(range(len(rows)), labels)
    ax.set_ylabel(metric)
    ax.set_title(f"{table.name}: {metric} per split (mean ± std over seeds)")
    ax.legend()
    return _save(fig, out / f"{table.name}_splits")


def _severity(record: dict[str, Any]) -> float | None:
    """The occlusion severity a record was scored at, wherever a task puts it; None when it has none."""
    for path in ("severity", "config.occlusion.severity", "data.occlusion_severity", "data.severity"):
        value = _lookup(record, path)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def figure_severity(
    records: list[dict[str, Any]], evaluated: set[tuple[str, str]], out: Path, notes: list[str]
) -> list[Path]:
    """Primary metric vs. occlusion severity, a line per method/backbone/split; needs ≥ 2 severities."""
    rows = []
    for r in records:
        severity = _severity(r)
        metric = _primary_metric(r.get("metrics") or {}, r.get("primary_metric"))
        if severity is None or metric is None or not _is_evaluated(r, evaluated):
            continue
        line = f"{r.get('method')} · {r.get('backbone')} · {r.get('split')}"
        rows.append((str(r.get("task")), str(r.get("dataset")), metric, line, severity, r["metrics"][metric]))
    frame = pd.DataFrame(rows, columns=["task", "dataset", "metric", "line", "severity", "value"])
    if frame.severity.nunique() < 2:
        notes.append("figure severity: the records carry fewer than 2 distinct occlusion severities, skipped")
        return []
    written = []
    for (task, dataset, metric), group in frame.groupby(["task", "dataset", "metric"], sort=True):
        if group.severity.nunique() < 2:
            continue
        fig = _new_figure(4.5, 3.2)
        ax = fig.add_subplot()
        for line, points in group.groupby("line", sort=True):
            stats = points.groupby("severity")["value"].agg(["mean", "std"]).fillna(0.0)
            ax.errorbar(stats.index, stats["mean"], yerr=stats["std"], marker="o", capsize=2, label=line)
        ax.set_xlabel("occlusion severity")
        ax.set_ylabel(metric)
        ax.set_title(f"{task} · {dataset}: {metric} vs. occlusion severity")
        ax.legend()
        written += _save(fig, out / f"severity_{task}_{dataset}")
    return written


def figure_curves(records: list[dict[str, Any]], out: Path) -> list[Path]:
    """Per run: training losses and validation metrics per epoch, from the record's `curves`."""
    written = []
    seen = set()
    for r in records:
        if r["run_id"] in seen or not r.get("curves"):
            continue
        seen.add(r["run_id"])
        curves = r["curves"]
        epochs = [c.get("epoch", i + 1) for i, c in enumerate(curves)]
        keys = list(dict.fromkeys(k for c in curves for k in c))
        losses = [k for k in keys if "loss" in k and not k.startswith("val_")]
        vals = [k for k in keys if k.startswith("val_")]
        panels = [(p, ks) for p, ks in (("loss", losses), ("validation", vals)) if ks]
        if not panels:
            continue
        fig = _new_figure(4.0 * len(panels), 3.0)
        for i, (label, names) in enumerate(panels):
            ax = fig.add_subplot(1, len(panels), i + 1)
            for name in names:
                points = [
                    (e, c[name]) for e, c in zip(epochs, curves, strict=True) if _is_number(c.get(name))
                ]
                if points:
                    ax.plot(*zip(*points, strict=True), marker="o", markersize=3, label=name)
            ax.set_xlabel("epoch")
            ax.set_ylabel(label)
            ax.legend()
        fig.suptitle(f"{r['run_id']} · {r.get('method')} · {r.get('backbone')} · seed {r.get('seed')}")
        written += _save(fig, out / "curves" / r["run_id"])
    return written


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _showcase_record(
    records: list[dict[str, Any]], method: str, evaluated: set[tuple[str, str]]
) -> dict[str, Any] | None:
    """The occluded-split record of `method`'s evaluated network with samples (lowest seed, then run id)."""
    candidates = [
        r
        for r in records
        if r.get("method") == method
        and "occluded" in str(r.get("split"))
        and r.get("samples")
        and _is_evaluated(r, evaluated)
    ]
    return min(candidates, key=lambda r: (str(r.get("seed")), r["run_id"], r["_file"]), default=None)


def figure_qualitative(
    records: list[dict[str, Any]], evaluated: set[tuple[str, str]], out: Path, notes: list[str]
) -> list[Path]:
    """The paper's grid: occluded val crops, columns ground truth | baseline | D-Slope ENet; per backbone."""
    written = []
    groups = sorted({(str(r.get("task")), str(r.get("dataset")), str(r.get("backbone"))) for r in records})
    for task, dataset, backbone in groups:
        mine = [
            r
            for r in records
            if (str(r.get("task")), str(r.get("dataset")), str(r.get("backbone")))
            == (
                task,
                dataset,
                backbone,
            )
        ]
        baseline = _showcase_record(mine, _BASELINE_METHOD, evaluated)
        dslope = _showcase_record(mine, _DSLOPE_METHOD, evaluated)
        if baseline is None or dslope is None:
            continue
        theirs = {s.get("ann_id"): s for s in dslope["samples"]}
        rows = [
            (s, theirs[s.get("ann_id")])
            for s in baseline["samples"]
            if s.get("ann_id") in theirs and Path(str(s.get("image"))).is_file()
        ][:_QUALITATIVE_ROWS]
        if not rows:
            notes.append(f"figure qualitative {task}/{dataset}/{backbone}: sample images missing, skipped")
            continue
        skeleton = (baseline.get("data") or {}).get("skeleton") or []
        written += _draw_grid(
            rows, skeleton, baseline, dslope, out / f"qualitative_{task}_{dataset}_{backbone}"
        )
    if not written and not any("figure qualitative" in n for n in notes):
        notes.append("figure qualitative: no occluded-split samples of both clean and dslope runs, skipped")
    return written


def _draw_grid(rows, skeleton, baseline, dslope, stem: Path) -> list[Path]:
    from matplotlib.image import imread

    titles = [
        "ground truth",
        f"{_BASELINE_METHOD}\n{baseline['run_id']}",
        f"{_DSLOPE_METHOD} {dslope.get('network')}\n{dslope['run_id']}",
    ]
    colours = ["tab:green", "tab:orange", "tab:blue"]
    fig = _new_figure(6.0, 2.2 * len(rows))
    axes = fig.subplots(len(rows), 3, squeeze=False)
    for i, (ours, theirs) in enumerate(rows):
        image = imread(ours["image"])
        x0, y0, x1, y1 = _crop(ours["box"], image.shape[1], image.shape[0])
        for j, keypoints in enumerate((ours["ground_truth"], ours["prediction"], theirs["prediction"])):
            ax = axes[i][j]
            ax.imshow(image[y0:y1, x0:x1], extent=(x0, x1, y1, y0), cmap="gray")
            _draw_skeleton(ax, keypoints, skeleton, colours[j], ground_truth=j == 0)
            ax.set_xlim(x0, x1)
            ax.set_ylim(y1, y0)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(titles[j], fontsize=4)
    return _save(fig, stem)


def _crop(box: list[float], width: int, height: int, scale: float = 1.25) -> tuple[int, int, int, int]:
    """The person box enlarged by `scale` about its centre, clipped to the image, in integer pixels."""
    x, y, w, h = box
    cx, cy = x + w / 2, y + h / 2
    half_w, half_h = max(w, 1) * scale / 2, max(h, 1) * scale / 2
    x0, y0 = max(0, int(math.floor(cx - half_w))), max(0, int(math.floor(cy - half_h)))
    x1, y1 = min(width, int(math.ceil(cx + half_w))), min(height, int(math.ceil(cy + half_h)))
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def _draw_skeleton(ax, flat: list[float], skeleton: list[list[int]], colour: str, ground_truth: bool) -> None:
    """Joints and limbs from a flat [x, y, v|score] * K list; ground truth shows labelled joints (v > 0)."""
    joints = [flat[i : i + 3] for i in range(0, len(flat) - 2, 3)]
    shown = [not ground_truth or v > 0 for _, _, v in joints]
    for a, b in skeleton:
        if a < len(joints) and b < len(joints) and shown[a] and shown[b]:
            ax.plot([joints[a][0], joints[b][0]], [joints[a][1], joints[b][1]], color=colour, linewidth=1)
    xs = [x for (x, _, _), s in zip(joints, shown, strict=True) if s]
    ys = [y for (_, y, _), s in zip(joints, shown, strict=True) if s]
    ax.scatter(xs, ys, s=4, color=colour, zorder=3)


def write_figures(
    tables: list[Table],
    ok: list[dict[str, Any]],
    evaluated: set[tuple[str, str]],
    out: Path,
    notes: list[str],
) -> list[Path]:
    """Every figure the records allow; the ones they do not allow are skipped with a note."""
    import matplotlib

    with matplotlib.rc_context(_RC):
        written = []
        for table in tables:
            if table.name != "ablation":
                written += figure_split_bars(table, out)
        written += figure_severity(ok, evaluated, out, notes)
        written += figure_curves(ok, out)
        written += figure_qualitative(ok, evaluated, out, notes)
    return written


# ------------------------------------------------------------------------------------------- entry point


def parse_formats(text: str) -> list[str]:
    """`md,tex,csv` (any subset, comma separated) to a list.

    Raises:
        ConfigError: an unknown format.
    """
    formats = [f.strip().lower() for f in text.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ConfigError(
            f"unknown report format '{','.join(unknown) or text}'; expected a subset of md,tex,csv"
        )
    return formats


def generate_report(
    results_dir: Path,
    out_dir: Path | None = None,
    formats: Iterable[str] = FORMATS,
    filters: Iterable[Filter] = (),
) -> ReportSummary:
    """Regenerate every table and figure from `results_dir/runs/*.json` alone.

    Args:
        results_dir: the folder holding `runs/`.
        out_dir: where `tables/` and `figures/` go; default `results_dir`.
        formats: table formats, a subset of md, tex, csv.
        filters: records must match all of them.

    Returns:
        What was read and written; `records == 0` when there was nothing to report (nothing is written).

    Raises:
        ConfigError: an unknown format or filter key.
        DataError: an unreadable record.

    Example:
        >>> generate_report(Path("results"), filters=parse_filters(["method=dslope"]))  # doctest: +SKIP
    """
    results_dir = Path(results_dir)
    out_dir = Path(out_dir) if out_dir is not None else results_dir
    formats = [f for f in FORMATS if f in set(formats)]
    summary = ReportSummary(results_dir)
    records = load_records(results_dir)
    summary.records = len(records)
    if not records:
        return summary
    evaluated = evaluated_networks(records)
    records = apply_filters(records, list(filters))
    summary.selected = len(records)
    if not records:
        return summary
    summary.failed = [r for r in records if r.get("status") != "ok"]
    tables = build_tables(records, evaluated, summary.notes)
    summary.tables = write_tables(tables, summary.failed, out_dir / "tables", formats)
    summary.markdown = [to_markdown(t) for t in tables]
    verdicts = paired_verdicts(records, lambda r: _is_evaluated(r, evaluated), _variant)
    summary.verdicts = [v.text() for v in verdicts]
    if summary.verdicts:
        (out_dir / "tables" / "verdicts.md").write_text("".join(f"- {line}\n" for line in summary.verdicts))
        summary.tables.append(out_dir / "tables" / "verdicts.md")
    ok = [r for r in records if r.get("status") == "ok"]
    summary.figures = write_figures(tables, ok, evaluated, out_dir / "figures", summary.notes)
    return summary
