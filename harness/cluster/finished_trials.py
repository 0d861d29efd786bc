"""Which trials of a sweep already have their records, so a sweep continued on another machine or in a later
session (`harness sweep --resume` without Tune's state, e.g. from records committed to git) runs the rest.

A trial is finished when an ok training record in the results dir has the trial's config hash. A method's
prerequisite pointer (distillation's teacher run id) is left out of both sides: it names a run of the session
that made it, not a setting.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.core.config import RunConfig, validate
from harness.core.errors import ConfigError
from harness.core.registry import METHODS


def settings_hash(cfg: RunConfig) -> str:
    """The config hash with the method's settings filled in and its prerequisite pointer left out."""
    method_cls = METHODS.get(cfg.method)
    args = dict(cfg.method_args.get(cfg.method, {}))
    if method_cls.prerequisite:
        args[method_cls.prerequisite[1]] = None
    settings = method_cls.Settings(**args).model_dump()
    return cfg.model_copy(update={"method_args": {**cfg.method_args, cfg.method: settings}}, deep=True).hash()


def recorded_hashes(results_dir: Path) -> dict[str, str]:
    """settings_hash -> run id of every ok training record (not eval records) under results_dir/runs/."""
    found: dict[str, str] = {}
    for path in sorted(Path(results_dir, "runs").glob("*.json")):
        try:
            record: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if record.get("status") != "ok" or record.get("evaluation") or record.get("severity") is not None:
            continue
        try:
            cfg = validate(record.get("config") or {}, RunConfig)
        except ConfigError:  # a record of an older config schema: never a match
            continue
        found.setdefault(settings_hash(cfg), str(record.get("run_id")))
    return found


def finished_trials(configs: list[RunConfig], results_dir: Path) -> dict[int, str]:
    """Trial index -> the run id whose records already answer it."""
    done = recorded_hashes(results_dir)
    return {i: done[h] for i, cfg in enumerate(configs) if (h := settings_hash(cfg)) in done}
