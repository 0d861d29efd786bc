"""Paths in records that survive a move to another folder or machine.

A record never holds an absolute path of the machine that wrote it: a path under one of the roots a run
knows (its results dir, work dir, data root or the harness cache) is stored as `{role}/relative/path`, and
read back against wherever that root is now. A path under none of them keeps only its file name, as
`{elsewhere}/name`. Run ids, not run dirs, identify the runs a record depends on.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from harness.core.task import default_cache_dir as cache_root

ELSEWHERE = "elsewhere"


def record_roots(config: dict[str, Any], results_dir: Path | str) -> dict[str, Path]:
    """The roots a record's paths are made relative to, from its config and where it is written."""
    output = config.get("output") or {}
    data = config.get("data") or {}
    roots = {"results": results_dir, "work": output.get("work_dir"), "data": data.get("root")}
    roots["cache"] = cache_root()
    return {role: Path(p).expanduser().resolve() for role, p in roots.items() if p}


def portable(value: Any, roots: dict[str, Path]) -> Any:
    """`value` (a record tree) with every absolute path string rewritten relative to its root."""
    if isinstance(value, dict):
        return {k: portable(v, roots) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [portable(v, roots) for v in value]
    if isinstance(value, str) and os.path.isabs(value) and not re.search(r"\s|: ", value):
        return portable_path(value, roots)
    if isinstance(value, str) and "/" in value:
        return _portable_text(value, roots)
    return value


def _portable_text(text: str, roots: dict[str, Path]) -> str:
    """Free text (an error reason) with each root's absolute path replaced by its `{role}`."""
    for role, root in sorted(roots.items(), key=lambda item: -len(str(item[1]))):
        text = re.sub(re.escape(str(root)) + r"(?=/|\b|$)", f"{{{role}}}", text)
    return text


def portable_path(path: str | Path, roots: dict[str, Path]) -> str:
    """`{role}/relative` for the most specific root that holds `path`, else `{elsewhere}/<file name>`."""
    path = Path(os.path.normpath(path))
    for role, root in sorted(roots.items(), key=lambda item: -len(item[1].parts)):
        if path == root or root in path.parents:
            relative = path.relative_to(root).as_posix()
            return f"{{{role}}}" if relative == "." else f"{{{role}}}/{relative}"
    return f"{{{ELSEWHERE}}}/{path.name}"


def resolve_path(text: str, roots: dict[str, Path]) -> Path | None:
    """A stored path read back against today's roots (None: its root is unknown here or it was elsewhere)."""
    if not text.startswith("{"):
        return Path(text)
    role, _, relative = text[1:].partition("}")
    root = roots.get(role)
    if root is None:
        return None
    return root / relative.lstrip("/") if relative else root
