"""Records anyone can follow: bitwise-identical under the same thread count, the same pretraining checkpoint
under any thread count, no machine path, readable after a move, and an exact commit."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from record_strings import strings_in
from tiny_pose import TINY_POSE
from typer.testing import CliRunner

from harness.cli import app
from harness.core.errors import ConfigError
from harness.core.portable import portable, portable_path, resolve_path
from harness.core.results import source_state

HARNESS = Path(sys.executable).with_name("harness")
REPO = Path(__file__).resolve().parents[2]
# Fields that say when and how fast, not what: they differ between two otherwise identical runs.
TIMING = {"run_id", "started_at", "ended_at", "train_seconds", "steps_per_second"}


def _run_in_process(tmp: Path, name: str, threads: int) -> Path:
    """One tiny clean run in its own process with `threads` intra-op threads and its own cache."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HARNESS_CACHE": str(tmp / f"cache_{name}")}
    out = tmp / name
    sets = [*TINY_POSE, "pretrain.steps=6", f"output.work_dir={out / 'work'}",
            f"output.results_dir={out / 'results'}"]  # fmt: skip
    command = [str(HARNESS), "run", "--task", "pose", "--method", "clean"]
    for item in sets:
        command += ["--set", item]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return out


def _without_timing(value):
    if isinstance(value, dict):
        return {k: _without_timing(v) for k, v in value.items() if k not in TIMING}
    if isinstance(value, list):
        return [_without_timing(v) for v in value]
    if isinstance(value, str) and "_s0_" in value:  # a run id inside a path
        return value.split("_s0_")[0]
    return value


def _records(out: Path) -> dict[str, dict]:
    return {
        p.name.split("__", 1)[1]: json.loads(p.read_text())
        for p in sorted((out / "results" / "runs").glob("*.json"))
    }


def test_same_threads_same_records_and_any_threads_same_checkpoint(tmp_path):
    first, second = _run_in_process(tmp_path, "a", 1), _run_in_process(tmp_path, "b", 1)
    two = _run_in_process(tmp_path, "c", 2)
    a, b, c = _records(first), _records(second), _records(two)
    assert a.keys() == b.keys() == {"net__clean_val.json", "net__occluded_val.json"}
    assert _without_timing(a) == _without_timing(b)  # bitwise: every metric, curve and prediction digest
    for record in a.values():
        assert record["compute"]["threads"] == 1 and record["compute"]["cpu_capability"]
        assert record["data"]["pretrained"]["threads"] == 1
    checkpoint = {r["data"]["pretrained"]["sha256"] for r in (*a.values(), *c.values())}
    assert len(checkpoint) == 1  # the pretraining stage is pinned to one thread
    assert {r["compute"]["threads"] for r in c.values()} == {2}
    # No record holds a path of this machine: every path is relative to a named root.
    for record in (*a.values(), *c.values()):
        for text in strings_in(record):
            assert str(tmp_path) not in text and not text.startswith("/"), text


def test_paths_are_stored_relative_to_their_most_specific_root(tmp_path):
    roots = {"results": tmp_path / "res", "work": tmp_path / "work", "cache": tmp_path / "cache"}
    record = {
        "predictions": {"file": str(tmp_path / "work" / "run1" / "predictions" / "net.json")},
        "samples": [{"image": str(tmp_path / "cache" / "pose" / "val" / "1.png")}],
        "config": {"output": {"results_dir": str(tmp_path / "res"), "work_dir": str(tmp_path / "work")}},
        "reason": f"{tmp_path / 'cache' / 'x.json'}: not json",
        "other": "/opt/elsewhere/weights.pth",
        "label": "AP_occluded",
    }
    stored = portable(record, roots)
    assert stored["predictions"]["file"] == "{work}/run1/predictions/net.json"
    assert stored["samples"][0]["image"] == "{cache}/pose/val/1.png"
    assert stored["config"]["output"] == {"results_dir": "{results}", "work_dir": "{work}"}
    assert stored["reason"] == "{cache}/x.json: not json"
    assert stored["other"] == "{elsewhere}/weights.pth" and stored["label"] == "AP_occluded"
    moved = {"work": tmp_path / "moved"}
    assert (
        resolve_path(stored["predictions"]["file"], moved) == tmp_path / "moved" / "run1/predictions/net.json"
    )
    assert resolve_path("{cache}/a.png", moved) is None  # its root is not known here
    nested = {"work": tmp_path / "w", "results": tmp_path / "w" / "results"}
    assert portable_path(tmp_path / "w" / "results" / "runs" / "r.json", nested) == "{results}/runs/r.json"


def test_moved_results_and_work_dirs_still_report_eval_and_teach(tmp_path, tiny_pose_overrides):
    runner = CliRunner()
    args = ["run", "--task", "pose", "--method", "distill"]
    for item in tiny_pose_overrides:
        args += ["--set", item]
    result = runner.invoke(app, args)  # trains the clean teacher first, then the student
    assert result.exit_code == 0, result.output
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.move(tmp_path / "results", moved / "results")
    shutil.move(tmp_path / "work", moved / "work")
    student = next((moved / "work").glob("pose_distill_*"))
    teacher_id = next((moved / "work").glob("pose_clean_*")).name
    records = [json.loads(p.read_text()) for p in (moved / "results" / "runs").glob("pose_distill_*")]
    assert {r["config"]["method_args"]["distill"]["teacher"] for r in records} == {teacher_id}
    # eval of the moved student: its config still names the teacher by id, found beside it.
    result = runner.invoke(
        app,
        ["eval", str(student), "--set", f"output.results_dir={moved / 'results'}", "--split", "clean_val"],
    )
    assert result.exit_code == 0, result.output
    # the moved student resumes training from its own folder, with the teacher found beside it
    from harness.evaluate.trained_run import run_config
    from harness.models.factory import build_method, build_task

    cfg = run_config(student, "test")
    method = build_method(cfg, build_task(cfg))
    assert method.settings.teacher == str(moved / "work" / teacher_id)
    report = runner.invoke(app, ["report", "--results", str(moved / "results")])
    assert report.exit_code == 0, report.output
    tables = (moved / "results" / "tables").rglob("*")
    for path in [p for p in tables if p.is_file()]:
        assert str(tmp_path) not in path.read_text(errors="replace"), path


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True
    ).stdout


def test_exact_commit_dirty_flag_and_the_sweep_refusal(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    study = repo / "study.yaml"
    study.write_text((REPO / "configs" / "sweeps" / "quick_pose.yaml").read_text())
    _git(repo, "add", "study.yaml")
    _git(repo, "commit", "-qm", "study")
    head = _git(repo, "rev-parse", "HEAD").strip()
    clean = source_state(repo)
    assert (clean.commit, clean.dirty, clean.diff_sha256) == (head, False, None)
    study.write_text(study.read_text() + "\n# edited\n")
    dirty = source_state(repo)
    assert dirty.commit == head and dirty.dirty is True and len(dirty.diff_sha256) == 64
    study.write_text(study.read_text() + "# again\n")
    assert source_state(repo).diff_sha256 != dirty.diff_sha256  # the digest follows the difference

    import harness.cluster.sweep as sweep

    monkeypatch.setattr(sweep, "source_state", lambda: source_state(repo))
    with pytest.raises(ConfigError, match=r"tracked files differ from commit .*--allow-dirty"):
        sweep.refuse_dirty_study(study)
    untracked = repo / "scratch.yaml"
    untracked.write_text("x: 1\n")
    sweep.refuse_dirty_study(untracked)  # a scratch sweep file is not a committed study
