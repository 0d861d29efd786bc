"""Records -> tables, verdicts (verdict.py: the method minus each baseline, paired over seeds), figures
and the report text. May import core only: it reads result records, never a run.

`harness report`: the paper's tables and figures, regenerated from result records alone.

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

One concern per module: `records` (loading, filter language), `interpret` (evaluated network, variants, metric
direction and primary), `policy` (which tables and comparisons the paper asks for), `tables` (aggregation),
`writers` (Markdown, LaTeX, CSV), `figures` and `generate` (orchestration). This module re-exports the public
names, so `from harness.report import generate_report` keeps working.

Example:
    >>> summary = generate_report(Path("results"), formats=("md", "csv"), filters=parse_filters(["seed=0"]))
"""

from harness.report.figures import (
    figure_curves,
    figure_qualitative,
    figure_severity,
    figure_split_bars,
    write_figures,
)
from harness.report.generate import FORMATS, ReportSummary, generate_report, parse_formats, read_sources
from harness.report.interpret import _declared_primary, _primary_metric
from harness.report.policy import ReportPolicy, load_policy
from harness.report.records import FILTER_FIELDS, Filter, apply_filters, load_records, parse_filters
from harness.report.tables import Table, build_table, build_tables
from harness.report.writers import to_csv, to_latex, to_markdown, write_tables

__all__ = [
    "FILTER_FIELDS",
    "FORMATS",
    "Filter",
    "ReportPolicy",
    "ReportSummary",
    "Table",
    "_declared_primary",
    "_primary_metric",
    "apply_filters",
    "build_table",
    "build_tables",
    "load_policy",
    "figure_curves",
    "figure_qualitative",
    "figure_severity",
    "figure_split_bars",
    "generate_report",
    "load_records",
    "parse_filters",
    "read_sources",
    "parse_formats",
    "to_csv",
    "to_latex",
    "to_markdown",
    "write_figures",
    "write_tables",
]
