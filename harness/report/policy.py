"""The paper's table policy, read from a YAML file (default `configs/report.yaml`): which tables the records
are grouped into, what the ablation table is called and which row the robustness summary's mCE divides by.

Nothing here names a task, dataset or method: those names live in the YAML. Which method is under study,
which network is evaluated and which split is clean or occluded come from the records (harness/core/roles.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from harness.core.config import CONFIG_ROOT
from harness.core.errors import ConfigError
from harness.report.records import _MISSING, _lookup, _text

DEFAULT_POLICY = CONFIG_ROOT / "report.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HeadlineColumn(_Strict):
    """One column of a table's headline: `metric` on the split whose `split_role` (clean, occluded) or
    name is `split`; `label` is its header (default "<split> <metric>")."""

    split: str
    metric: str
    label: str | None = None


class TableSpec(_Strict):
    """One table: the records matching every `where` key and none of the `unless` keys.

    `headline` names the few columns a paper's table shows; the table then leads with them and keeps every
    metric in an appendix (and in its CSV). Columns without a value in any row are left out.
    """

    name: str
    title: str
    where: dict[str, list[str]] = {}
    unless: dict[str, list[str]] = {}
    headline: list[HeadlineColumn] = []

    def selects(self, record: dict[str, Any]) -> bool:
        def matches(key: str, values: list[str]) -> bool:
            value = _lookup(record, key)
            return value is not _MISSING and _text(value).lower() in {str(v).lower() for v in values}

        return all(matches(k, v) for k, v in self.where.items()) and not any(
            matches(k, v) for k, v in self.unless.items()
        )


class AblationSpec(_Strict):
    name: str = "ablation"
    title: str = "Ablation: {method} switches (evaluated network)"


class RobustnessSpec(_Strict):
    """The severity leaderboard's summary: `references` are where-specs of the row mCE divides by, tried in
    order; the first matching exactly one row of a table is its reference."""

    references: list[dict[str, list[str]]] = []

    def reference_specs(self) -> list[TableSpec]:
        return [TableSpec(name="reference", title="mCE reference", where=where) for where in self.references]


class ReportPolicy(_Strict):
    tables: list[TableSpec] = []
    ablation: AblationSpec = AblationSpec()
    robustness: RobustnessSpec = RobustnessSpec()


def load_policy(path: Path | None = None) -> ReportPolicy:
    """The report policy in `path` (default `configs/report.yaml`); empty when the default file is absent.

    Raises:
        ConfigError: the file cannot be read, is not YAML, or has an unknown key or a wrong type.
    """
    if path is None and not DEFAULT_POLICY.is_file():
        return ReportPolicy()
    path = Path(path or DEFAULT_POLICY)
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"report policy {path}: {' '.join(str(err).split())}") from None
    try:
        return ReportPolicy.model_validate(tree)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"report policy {path}: {where}: {first['msg']}") from None


def table_families(records: list[dict[str, Any]], policy: ReportPolicy) -> list[TableSpec]:
    """Each table's spec: the policy's, then one per task for the records none takes (no headline)."""
    families = list(policy.tables)

    def untaken(r: dict) -> bool:
        return not any(t.selects(r) for t in policy.tables)

    for task in sorted({str(r.get("task")) for r in records if untaken(r)}):
        families.append(_TaskTable(name=task, title=f"Task {task}", where={"task": [task]}, untaken=untaken))
    return families


class _TaskTable(TableSpec):
    """The table of a task no policy table takes: its records that no listed table selects."""

    untaken: Callable[[dict], bool]

    def selects(self, record: dict[str, Any]) -> bool:
        return str(record.get("task")) == self.where["task"][0] and self.untaken(record)
