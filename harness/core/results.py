"""Result records: one JSON file per (run, network, eval split) in results/runs/, written atomically.

`harness report` reads only these files, so every number in a table traces back to one record with
its config, config hash, data digests, package versions and commit.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from harness.core.io import atomic_write_json
from harness.core.portable import portable, record_roots
from harness.core.source_manifest import REPO_ROOT, manifest_state

SCHEMA_VERSION = 1
_PACKAGES = (
    "torch",
    "torchvision",
    "timm",
    "numpy",
    "opencv-python-headless",
    "pycocotools",
    "dslope-harness",
)


@dataclass
class ResultRecord:
    """What one evaluated network scored on one split, and everything needed to trust the number."""

    run_id: str
    task: str
    method: str
    backbone: str
    dataset: str
    split: str | None
    network: str | None
    status: str  # "ok", "failed" or "interrupted" (resumable: `harness run --resume`)
    metrics: dict[str, float] = field(default_factory=dict)
    higher_is_better: dict[str, bool] = field(default_factory=dict)
    primary_metric: str | None = None  # the task's headline metric (report figures, verdicts, sweep summary)
    # Whether `network` is the one the method evaluates and deploys (False: trained alongside for reference),
    # the role of `split` (clean / occluded / extra) and of `method` (`Method.role`); see
    # harness/core/roles.py.
    evaluated: bool | None = None
    split_role: str | None = None
    method_role: str | None = None
    seed: int = 0
    config: dict[str, Any] = field(default_factory=dict)
    config_hash: str = ""
    data: dict[str, Any] = field(default_factory=dict)  # provenance: digests, box source, counts
    training: dict[str, Any] = field(default_factory=dict)  # steps, images, wall time
    versions: dict[str, str] = field(default_factory=dict)
    commit: str = "unknown"  # the exact commit of the harness source
    # Whether the source differed from `commit` (tracked files) and the sha256 of that difference
    # (`git diff HEAD`): a dirty record can be traced, never mistaken for the commit's own.
    dirty: bool | None = None
    diff_sha256: str | None = None
    # Intra-op thread count and the CPU's vector unit (harness/core/reproducibility.py): CPU results are
    # bitwise comparable only between records where both match.
    compute: dict[str, Any] = field(default_factory=dict)
    started_at: str = ""
    ended_at: str = ""
    reason: str | None = None
    curves: list[dict[str, Any]] = field(default_factory=list)  # per-epoch logs (losses, val_<metric>)
    samples: list[dict[str, Any]] = field(default_factory=list)  # fixed showcase predictions of this split
    # The occlusion-severity level the split was built at (`occlusion.val_severity`, `harness eval
    # --severity`); None for splits built with the configured settings.
    severity: int | None = None
    # Set only by `harness eval`: source run id, checkpoint sha256, the eval config and its hash, box source.
    evaluation: dict[str, Any] | None = None
    predictions: dict[str, Any] | None = None  # the split's prediction file ({"file", "format", "sha256"})
    # The dotted config key that points at the run this one depended on (`Method.prerequisite`, e.g. a
    # distillation teacher's run dir): it differs per seed, so the report pools runs across it.
    prerequisite_key: str | None = None
    schema_version: int = SCHEMA_VERSION

    @property
    def filename(self) -> str:
        level = f"__severity{self.severity}" if self.severity is not None else ""
        return f"{self.run_id}__{self.network or 'run'}__{self.split or 'none'}{level}.json"


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


@dataclass(frozen=True)
class SourceState:
    """Which code made a result: the exact commit, and whether (and how) the tracked files differed."""

    commit: str
    dirty: bool | None
    diff_sha256: str | None

    def fields(self) -> dict[str, Any]:
        return {"commit": self.commit, "dirty": self.dirty, "diff_sha256": self.diff_sha256}


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.decode(errors="replace") if out.returncode == 0 else None


def source_state(cwd: Path | None = None) -> SourceState:
    """The harness source's commit and dirtiness: from git, else from the source manifest that
    `$HARNESS_SOURCE_MANIFEST` names (checked file by file: harness/core/source_manifest.py), else
    'unknown'."""
    cwd = cwd or REPO_ROOT
    rev = _git(["rev-parse", "HEAD"], cwd)
    if rev is None:
        vouched = manifest_state(cwd)
        return SourceState(*vouched) if vouched else SourceState("unknown", None, None)
    status = _git(["status", "--porcelain", "--untracked-files=no"], cwd) or ""
    if not status.strip():
        return SourceState(rev.strip(), False, None)
    diff = _git(["diff", "HEAD", "--binary"], cwd) or ""
    return SourceState(rev.strip(), True, hashlib.sha256(diff.encode()).hexdigest())


def git_commit(cwd: Path | None = None) -> str:
    """The exact commit of the harness source, or 'unknown' outside git (dirtiness: `source_state`)."""
    return source_state(cwd).commit


def write_record(record: ResultRecord, results_dir: Path) -> Path:
    """Write atomically into results_dir/runs/ and return the path."""
    path = Path(results_dir) / "runs" / record.filename
    atomic_write_json(path, portable(asdict(record), record_roots(record.config, results_dir)))
    return path


def write_records(records: list[ResultRecord], results_dir: Path) -> list[Path]:
    """Write a run's or an evaluation's records, once all of them are made (so bad input leaves none)."""
    return [write_record(record, results_dir) for record in records]


def drop_interrupted_record(results_dir: Path, run_id: str) -> None:
    """Remove a run's `interrupted` record once the resumed run has written its own records."""
    path = Path(results_dir) / "runs" / f"{run_id}__run__none.json"
    try:
        if json.loads(path.read_text()).get("status") == "interrupted":
            path.unlink()
    except (OSError, ValueError):
        pass


def load_results(results_dir: Path = Path("results")) -> pd.DataFrame:
    """All records under results_dir/runs/ as one row each; metrics become `metric.<name>` columns.

    Example:
        >>> df = load_results()
        >>> df[df.status == "ok"].groupby(["method", "split"])["metric.AP"].mean()  # doctest: +SKIP
    """
    rows = []
    for path in sorted(Path(results_dir, "runs").glob("*.json")):
        record = json.loads(path.read_text())
        row = {k: v for k, v in record.items() if k not in ("metrics", "config")}
        row.update({f"metric.{k}": v for k, v in record.get("metrics", {}).items()})
        row["config"] = record.get("config", {})
        row["path"] = str(path)
        rows.append(row)
    return pd.DataFrame(rows)
