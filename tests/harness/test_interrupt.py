"""Kill and resume: SIGINT stops with a checkpoint and an `interrupted` record (exit 130); a run killed
mid-epoch (SIGKILL) or stopped mid-epoch resumes to exactly the metrics and weights of a run in one go."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from harness.core.config import CONFIG_ROOT, load_config
from harness.core.errors import RunInterrupted
from harness.run.experiment import run_experiment
from harness.train.callbacks import Callback

POSE = CONFIG_ROOT / "pose/default.yaml"
HARNESS = Path(sys.executable).with_name("harness")
# 12 persons in batches of 2: 6 steps per epoch, so "mid-epoch" has room on both sides.
SLOW = ["method=clean", "train.batch_size=2", "train.max_steps=null", "data.max_train_persons=12"]


def _weights(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoint.pt", weights_only=True)


def _assert_same_weights(a: dict, b: dict) -> None:
    assert a["method"].keys() == b["method"].keys()
    for key in a["method"]:
        assert torch.equal(a["method"][key], b["method"][key]), key
    assert a["state"]["step"] == b["state"]["step"] and a["state"]["images"] == b["state"]["images"]
    for name, opt in a["optimizers"].items():
        for index, slot in opt["state"].items():
            for k, v in slot.items():
                assert torch.equal(
                    torch.as_tensor(v), torch.as_tensor(b["optimizers"][name]["state"][index][k])
                )


def _records(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((results / "runs").glob("*.json"))]


def _lines(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


class StopAt(Callback):
    """What SIGINT does, at a chosen step: deterministic in-process interruption."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, trainer, logs):
        if trainer.state.step == self.step:
            trainer.request_stop()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The reference: the same config and seed, trained in one go."""
    base = tmp_path_factory.mktemp("reference")
    overrides = [*_tiny(base), *SLOW, "train.epochs=2"]
    outcome = run_experiment(load_config(POSE, overrides))
    return outcome, overrides


def _tiny(base: Path) -> list[str]:
    from tiny_pose import TINY_POSE

    return [*TINY_POSE, f"output.work_dir={base / 'work'}", f"output.results_dir={base / 'results'}"]


def test_stop_mid_epoch_then_resume_is_exact(uninterrupted, tmp_path):
    reference, _ = uninterrupted
    cfg = load_config(POSE, [*_tiny(tmp_path), *SLOW, "train.epochs=2"])
    with pytest.raises(RunInterrupted, match="SIGINT at step 8: stopped in epoch 2 of 2 after batch 2 of 6"):
        run_experiment(cfg, callbacks=[StopAt(8)])
    (run_dir,) = (tmp_path / "work").iterdir()
    state = _weights(run_dir)["state"]
    assert (state["step"], state["epoch"], state["epoch_step"]) == (8, 1, 2)  # a mid-epoch checkpoint
    (record,) = _records(tmp_path / "results")
    assert record["status"] == "interrupted" and "step 8" in record["reason"]

    resumed = run_experiment(None, resume_dir=run_dir)
    assert resumed.steps == reference.steps == 12
    assert [r.metrics for r in resumed.records] == [r.metrics for r in reference.records]
    _assert_same_weights(_weights(run_dir), _weights(reference.run_dir))
    assert [r["status"] for r in _records(tmp_path / "results")] == ["ok", "ok"]  # interrupted one dropped
    steps = [line["step"] for line in _lines(run_dir) if line["kind"] == "step"]
    assert steps == sorted(set(steps))  # no step logged twice
    ref_epochs = [e for e in _lines(reference.run_dir) if e["kind"] == "epoch"]
    assert [e for e in _lines(run_dir) if e["kind"] == "epoch"] == ref_epochs  # same epoch means


def _start(overrides: list[str]) -> subprocess.Popen:
    args = [str(HARNESS), "run", "--config", str(POSE), *[x for o in overrides for x in ("--set", o)]]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ)


def _wait_for(proc: subprocess.Popen, work: Path, done, timeout: float = 120) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0]
        for run_dir in work.glob("*") if work.is_dir() else []:
            if done(run_dir):
                return run_dir
        time.sleep(0.02)
    proc.kill()
    pytest.fail("the run never got there")


def test_sigkill_mid_epoch_then_resume_matches_the_uninterrupted_run(uninterrupted, tmp_path):
    reference, overrides = uninterrupted
    overrides = [*_tiny(tmp_path), *SLOW, "train.epochs=2", "train.log_every=1"]
    proc = _start(overrides)

    def in_second_epoch(run_dir):  # epoch 1 checkpointed and a step of epoch 2 trained
        return (run_dir / "checkpoint.pt").is_file() and any(
            line["kind"] == "step" and line["epoch"] == 1 for line in _lines(run_dir)
        )

    run_dir = _wait_for(proc, tmp_path / "work", in_second_epoch)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    killed_at = max(line["step"] for line in _lines(run_dir))
    assert _weights(run_dir)["state"]["step"] == 6 < killed_at < 12  # killed in the middle of epoch 2
    assert not (tmp_path / "results" / "runs").is_dir() or not _records(tmp_path / "results")

    resumed = run_experiment(None, resume_dir=run_dir)
    assert resumed.steps == reference.steps
    assert [r.metrics for r in resumed.records] == [r.metrics for r in reference.records]
    _assert_same_weights(_weights(run_dir), _weights(reference.run_dir))
    steps = [line["step"] for line in _lines(run_dir) if line["kind"] == "step"]
    assert steps == list(range(1, 13))  # the killed run's lines after the checkpoint were dropped


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_sigint_or_sigterm_checkpoints_records_interrupted_and_exits_128_plus_signal(signum, code, tmp_path):
    proc = _start([*_tiny(tmp_path), *SLOW, "train.epochs=50", "train.log_every=1"])
    run_dir = _wait_for(proc, tmp_path / "work", lambda d: any(x["kind"] == "step" for x in _lines(d)))
    proc.send_signal(signum)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == code, output
    assert "Traceback" not in output
    assert f"interrupted: {signum.name} at step" in output and f"--resume {run_dir}" in output
    state = _weights(run_dir)["state"]
    assert state["step"] >= 1 and state["epoch"] < 50
    (record,) = _records(tmp_path / "results")
    assert record["status"] == "interrupted" and f"step {state['step']}" in record["reason"]
