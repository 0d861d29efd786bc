"""Orchestration of `harness report`: load, filter, aggregate, write tables, verdicts and figures."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.core.errors import ConfigError
from harness.report.backbones import backbone_tables
from harness.report.budget import budget_tables, figure_budget
from harness.report.figures import write_figures
from harness.report.interpret import RANDOM_FACTORS, _cell, _is_evaluated, _variant
from harness.report.policy import load_policy
from harness.report.records import Filter, apply_filters, load_records, parse_filters
from harness.report.repeats import first_per_cell
from harness.report.severity import severity_tables, table_records
from harness.report.spread import spread_lines, write_spread
from harness.report.tables import build_tables
from harness.report.verdict import paired_verdicts
from harness.report.writers import headline_markdown, write_tables

FORMATS = ("md", "tex", "csv")


@dataclass
class ReportSummary:
    """What a report run read and wrote, for the CLI to print."""

    results_dirs: list[Path]
    records: int = 0  # records found, before filters
    selected: int = 0  # records left after filters
    failed: list[dict[str, Any]] = field(default_factory=list)
    tables: list[Path] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    markdown: list[str] = field(default_factory=list)  # the tables, for the terminal
    verdicts: list[str] = field(default_factory=list)  # the studied method minus each baseline, over seeds


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
    results_dir: Path | Sequence[Path],
    out_dir: Path | None = None,
    formats: Iterable[str] = FORMATS,
    filters: Iterable[Filter] = (),
    policy: Path | None = None,
) -> ReportSummary:
    """Regenerate every table and figure from `results_dir/runs/*.json` alone.

    Args:
        results_dir: the folder holding `runs/`, or several (one study's axes committed apart): their records
            are reported together, and `tables/sources.json` says which folders (relative to `out_dir`) and
            filters made the tables, so they can be regenerated.
        out_dir: where `tables/` and `figures/` go; default `results_dir` (required with several).
        formats: table formats, a subset of md, tex, csv.
        filters: records must match all of them.
        policy: the table policy YAML (harness/report/policy.py); default `configs/report.yaml`.

    Returns:
        What was read and written; `records == 0` when there was nothing to report (nothing is written).

    Raises:
        ConfigError: an unknown format or filter key, a bad policy file, several folders without `out_dir`.
        DataError: an unreadable record.

    Example:
        >>> generate_report(Path("results"), filters=parse_filters(["method=dslope"]))  # doctest: +SKIP
    """
    sources = [Path(results_dir)] if isinstance(results_dir, str | Path) else [Path(p) for p in results_dir]
    if len(sources) > 1 and out_dir is None:
        raise ConfigError("--out: reporting several --results folders needs one folder for the tables")
    out_dir = Path(out_dir) if out_dir is not None else sources[0]
    formats = [f for f in FORMATS if f in set(formats)]
    filters = list(filters)
    summary = ReportSummary(sources)
    tables_policy = load_policy(policy)
    records = load_records(sources)
    summary.records = len(records)
    if not records:
        return summary
    records = apply_filters(records, filters)
    summary.selected = len(records)
    if not records:
        return summary
    summary.failed = [r for r in records if r.get("status") != "ok"]
    kept = table_records(records)  # no severity records, no eval repeating a training record
    kept, repeats = first_per_cell(kept)  # a cell measured twice counts once (report/repeats.py)
    if repeats:
        summary.notes.append(
            f"{len(repeats)} records repeat a cell already measured (same settings, seed and split): "
            "the first made is reported, the repeats are listed in tables/repeats.csv"
        )
    main = build_tables(kept, tables_policy, summary.notes)
    # metric vs. occlusion severity with the robustness summary (harness/report/severity.py)
    tables = main + severity_tables(records, tables_policy, summary.notes)
    budgets = budget_tables(kept)  # metric vs. fine-tuning steps (report/budget.py)
    tables += budgets
    tables += backbone_tables(kept, tables_policy, summary.notes)  # methods x backbones
    summary.tables = write_tables(tables, summary.failed, out_dir / "tables", formats, repeats)
    if len(sources) > 1:
        summary.tables.append(write_sources(sources, filters, out_dir))
    summary.markdown = [headline_markdown(t) for t in tables]
    verdicts = paired_verdicts(kept, _is_evaluated, _variant, _cell, RANDOM_FACTORS)
    summary.verdicts = [v.text() for v in verdicts]
    if summary.verdicts:
        (out_dir / "tables" / "verdicts.md").write_text("".join(f"- {line}\n" for line in summary.verdicts))
        summary.tables.append(out_dir / "tables" / "verdicts.md")
    spread = spread_lines(kept, verdicts, _is_evaluated, _cell, _variant)
    written = write_spread(spread, RANDOM_FACTORS, out_dir / "tables")
    if written is not None:
        summary.tables.append(written)
    ok = [r for r in records if r.get("status") == "ok"]
    summary.figures = write_figures(main, ok, out_dir / "figures", summary.notes)
    summary.figures += figure_budget(budgets, out_dir / "figures")
    return summary


def write_sources(sources: list[Path], filters: list[Filter], out_dir: Path) -> Path:
    """`tables/sources.json`: the record folders (relative to `out_dir`) and filters the tables came from."""
    path = out_dir / "tables" / "sources.json"
    folders = [Path(os.path.relpath(Path(s).resolve(), out_dir.resolve())).as_posix() for s in sources]
    content = {"results": folders, "filters": [f"{f.key}={f.value}" for f in filters]}
    path.write_text(json.dumps(content, indent=2) + "\n")
    return path


def read_sources(out_dir: Path) -> tuple[list[Path], list[Filter]] | None:
    """The folders and filters a multi-folder report was made from (None: a report of its own records)."""
    path = out_dir / "tables" / "sources.json"
    if not path.is_file():
        return None
    content = json.loads(path.read_text())
    return [out_dir / folder for folder in content["results"]], parse_filters(content["filters"])
