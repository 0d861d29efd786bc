"""The leaderboard build's bookkeeping: which pose runs it scores; a resumed build skips finished rows."""

import json
import sys
from pathlib import Path

import pytest

import benchmarks.embedded_leaderboard as board


def _record(folder: Path, run_id: str, **fields) -> None:
    record = {"run_id": run_id, "task": "pose", "seed": 0, "severity": None, "evaluated": True,
              "split_role": "clean", "status": "ok", "training": {"steps": 150},
              "config": {"pretrain": {"seed": 1000}}}  # fmt: skip
    for key, value in fields.items():
        record[key] = value
    (folder / "runs").mkdir(parents=True, exist_ok=True)
    (folder / "runs" / f"{run_id}__{len(list((folder / 'runs').iterdir()))}.json").write_text(
        json.dumps(record)
    )


@pytest.fixture
def study(tmp_path, monkeypatch):
    monkeypatch.setattr(board, "ROOT", tmp_path)
    monkeypatch.setattr(board, "POSE_STUDIES", (("results/study", "work_dirs/study"),))
    return tmp_path / "results" / "study"


def test_pose_runs_are_the_evaluated_networks_on_the_chosen_checkpoint_at_the_default_budget(study):
    _record(study, "kept")
    _record(study, "kept", split_role="occluded")  # the same run's other split: counted once
    _record(study, "gnet", evaluated=False)
    _record(study, "other_checkpoint", config={"pretrain": {"seed": 1001}})
    _record(study, "longer", training={"steps": 1200})
    _record(study, "crashed", status="failed")
    assert [p.relative_to(board.ROOT).as_posix() for p in board.pose_runs()] == ["work_dirs/study/kept"]
    _record(study, "seed_one", seed=1)
    assert [p.name for p in board.pose_runs([1])] == ["seed_one"]


def test_a_run_counts_as_scored_only_with_severity_records(tmp_path):
    _record(tmp_path, "run_a.eval-1234")  # an eval without the ladder
    _record(tmp_path, "run_b.eval-5678", severity=2)
    assert not board.scored(tmp_path, "run_a")
    assert board.scored(tmp_path, "run_b")
    assert not board.scored(tmp_path, "run")  # a prefix of another id is not that run


def test_a_resumed_build_runs_only_what_is_missing(study, tmp_path, monkeypatch):
    results = tmp_path / "board"
    _record(study, "pose_done")
    _record(study, "pose_todo")
    _record(results, "pose_done.eval-1", severity=1)
    _record(results, "mmpose-" + board.MMPOSE_CONFIG + ".eval-2", severity=1)
    calls = []
    monkeypatch.setattr(board, "harness", lambda *args: calls.append(args))
    monkeypatch.setattr(board, "random_models", lambda folder: {"mmpose": Path("m.pth")})
    monkeypatch.setattr(sys, "argv", ["embedded_leaderboard.py", "--results", str(results), "--part", "pose"])
    board.main()
    assert [call[:2] for call in calls] == [
        ("eval", str(tmp_path / "work_dirs/study/pose_todo")),
        ("report", "--results"),
    ]
