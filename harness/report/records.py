"""Result records in, a selection out: loading `runs/*.json` and the `key=value` filter language.

Also the small value helpers every other report module shares (`_lookup` of a dotted path, `_text` of a config
value as YAML writes it, `_flatten` of a config tree), so a label and a filter compare values the same way.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.errors import ConfigError, DataError
from harness.core.roles import complete_records

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


@dataclass(frozen=True)
class Filter:
    """`key=value` on a record field (`method=dslope`) or a dotted path (`config.model.backbone=x`)."""

    key: str
    value: str


def load_records(results_dir: Path | list[Path]) -> list[dict[str, Any]]:
    """Every record under `results_dir/runs/` (or each folder's, in the order given), sorted by file name;
    each gains `_file` (its file name).

    Records predating `evaluated`, `split_role` and `method_role` get them (harness/core/roles.py), from all
    records before any filter, so a filter `split=clean_val` cannot promote GNet to the evaluated network.

    Raises:
        DataError: a record file is not valid JSON or not a JSON object.
    """
    records = []
    folders = results_dir if isinstance(results_dir, list) else [results_dir]
    for path in [p for folder in folders for p in sorted(Path(folder, "runs").glob("*.json"))]:
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise DataError(f"unreadable result record {path}: {err}") from None
        if not isinstance(record, dict):
            raise DataError(f"result record {path} must hold a JSON object, got {type(record).__name__}")
        record["_file"] = path.name
        records.append(record)
    return complete_records(records)


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
