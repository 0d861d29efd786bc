"""`harness sweep --local`: trials as local processes (no Ray), prerequisites first, failures recorded,
--resume from records, SIGTERM stops every trial with its interrupted record."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.cluster.local_sweep import default_concurrency, prerequisite_trials
from harness.cluster.sweep import expand, load_sweep, run_sweep
from harness.core.config import CONFIG_ROOT, load_config

REPO = Path(__file__).resolve().parents[2]
PLUGIN = """
from baselines.clean import Clean
from harness.core.registry import METHODS


@METHODS.register("broken")
class Broken(Clean):
    role = "baseline"  # never one of `harness run`'s default methods in other tests

    def training_step(self, batch):
        raise RuntimeError("broken on purpose")
"""


def write_sweep(tmp_path, tiny, methods, seeds=(0,), extra=()):
    text = {
        "base": str(CONFIG_ROOT / "pose/default.yaml"),
        "set": [*tiny, *extra],
        "grid": {"method": list(methods), "seed": list(seeds)},
        "resources": {"cpus_per_trial": 1, "gpus_per_trial": 0},
        "storage": str(tmp_path / "state"),
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(json.dumps(text))
    return path


def configs_of(path):
    spec, base = load_sweep(path)
    return [load_config(base, trial) for trial in expand(spec)]


def test_a_trial_waits_for_the_trial_whose_run_it_needs(tmp_path, tiny_pose_overrides):
    path = write_sweep(tmp_path, tiny_pose_overrides, ["distill", "clean", "dslope"], seeds=(0, 1))
    # grid order: distill s0, distill s1, clean s0, clean s1, dslope s0, dslope s1
    assert prerequisite_trials(configs_of(path)) == {0: 2, 1: 3}
    other = write_sweep(tmp_path, tiny_pose_overrides, ["distill", "dslope"])
    assert prerequisite_trials(configs_of(other)) == {}  # no clean trial: distillation trains its teacher


def test_default_concurrency_counts_cpus_and_gpus(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert default_concurrency(1, 0, []) == 16
    assert default_concurrency(4, 0, []) == 4
    assert default_concurrency(1, 0.25, ["0"]) == 4  # four trials share the one GPU
    assert default_concurrency(1, 1, ["0", "1"]) == 2


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """The `broken` method: in the trials through HARNESS_PLUGINS, in this process in a registry copy that is
    put back afterwards (other tests list the registered methods)."""
    from harness.core.registry import METHODS, TASKS

    METHODS.names(), TASKS.names()  # everything else registered first, into the registry kept afterwards
    monkeypatch.setattr(METHODS, "_items", dict(METHODS._items))
    (tmp_path / "local_sweep_plugin.py").write_text(PLUGIN)
    paths = [str(tmp_path), str(REPO), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, paths)))
    monkeypatch.setenv("HARNESS_PLUGINS", "local_sweep_plugin")
    monkeypatch.syspath_prepend(str(tmp_path))
    if "broken" not in METHODS:  # another test's plugin may have registered its own
        sys.modules.pop("local_sweep_plugin", None)
        __import__("local_sweep_plugin")
    yield
    sys.modules.pop("local_sweep_plugin", None)


def test_local_sweep_runs_prerequisites_first_records_failures_and_resumes(
    tmp_path, tiny_pose_overrides, plugin, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    path = write_sweep(tmp_path, tiny_pose_overrides, ["distill", "clean", "broken"])
    table = run_sweep(path, local=True, max_concurrent=2).table
    assert list(table["status"]) == ["ok", "ok", "failed"], table.to_string()
    runs = tmp_path / "results" / "runs"
    records = [json.loads(p.read_text()) for p in runs.glob("*.json")]
    clean_id = table["run_id"][1]
    students = [r for r in records if r["method"] == "distill" and r["status"] == "ok"]
    assert students and {r["config"]["method_args"]["distill"]["teacher"] for r in students} == {clean_id}
    assert len(list((tmp_path / "work").glob("pose_clean_*"))) == 1  # the teacher was the clean trial's run
    failed = [r for r in records if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["method"] == "broken" and "broken on purpose" in failed[0]["reason"]
    assert "broken on purpose" in (tmp_path / "state" / "sweep" / "local" / "trial_002.log").read_text()
    clean = {r["split"]: r["metrics"]["AP"] for r in records if r["run_id"] == clean_id}
    assert table.loc[1, "net/clean_val/AP"] == clean["clean_val"]  # read from the trial's own records
    assert table.loc[1, "net/occluded_val/AP"] == clean["occluded_val"]
    # --resume: the finished trials are found by their records, the failed one runs (and fails) again.
    before = sorted(p.name for p in runs.glob("*.json"))
    again = run_sweep(path, local=True, resume=True).table
    assert list(again["status"]) == ["ok (records found)"] * 2 + ["failed"]
    assert list(again["run_id"][:2]) == list(table["run_id"][:2])
    assert sorted(p.name for p in runs.glob("*.json")) == before


def test_sigterm_stops_the_running_trials_with_their_interrupted_records(
    tmp_path, tiny_pose_overrides, plugin
):
    long = ["train.max_steps=100000", "train.epochs=100000", "train.eval_every=100000"]
    path = write_sweep(tmp_path, tiny_pose_overrides, ["clean", "occ_aug"], extra=long)
    command = [sys.executable, "-m", "harness.cli", "sweep", str(path), "--local", "--max-concurrent", "2"]
    driver = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    logs = [tmp_path / "state" / "sweep" / "local" / f"trial_{i:03d}.log" for i in (0, 1)]
    try:
        deadline = time.monotonic() + 200
        while len(list((tmp_path / "work").glob("pose_*/config.yaml"))) < 2:  # both runs have started
            assert driver.poll() is None and time.monotonic() < deadline, driver.stdout.read().decode()
            time.sleep(1)
        time.sleep(10)  # and are training
        driver.send_signal(signal.SIGTERM)
        output = driver.communicate(timeout=120)[0].decode()
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 130, output
    assert "sweep interrupted" in output and "--resume" in output
    records = [json.loads(p.read_text()) for p in (tmp_path / "results" / "runs").glob("*.json")]
    assert sorted(r["method"] for r in records if r["status"] == "interrupted") == ["clean", "occ_aug"]
    assert all("interrupted" in log.read_text() for log in logs)


def test_gpus_per_trial_without_a_visible_gpu_is_one_line(tmp_path, tiny_pose_overrides, monkeypatch):
    from typer.testing import CliRunner

    from harness.cli import app

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.chdir(tmp_path)
    path = write_sweep(tmp_path, tiny_pose_overrides, ["clean"])
    result = CliRunner().invoke(app, ["sweep", str(path), "--local", "--gpus-per-trial", "0.5"])
    assert result.exit_code == 2, result.output
    assert "--local with 0.5 GPUs per trial, but no GPU is visible" in result.output
    assert not (tmp_path / "results").exists() and not (tmp_path / "work").exists()  # refused before any work
