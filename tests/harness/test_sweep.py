"""Sweeps on a local Ray instance: expansion, 4 tiny trials, a retried flaky trial, a failed one."""

import json
import os
import shutil
import sys
import time

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.cluster.sweep import expand, load_sweep, run_sweep
from harness.core.config import CONFIG_ROOT

PLUGIN = '''
import os
from pathlib import Path

from baselines.clean import Clean
from harness.core.registry import METHODS


@METHODS.register("flaky")
class Flaky(Clean):
    """Crashes on its first attempt (a marker file remembers it), then trains normally."""

    role = "baseline"  # never one of `harness run`'s default methods in other tests

    def training_step(self, batch):
        marker = Path(os.environ["FLAKY_MARKER"])
        if not marker.exists():
            marker.write_text("crashed once")
            raise RuntimeError("flaky trial crashes on its first attempt")
        return super().training_step(batch)


@METHODS.register("broken")
class Broken(Clean):
    role = "baseline"  # never one of `harness run`'s default methods in other tests

    def training_step(self, batch):
        raise RuntimeError("broken on purpose")
'''


def write_sweep(tmp_path, tiny, methods, seeds=(0,)):
    sets = [*tiny, "train.num_workers=0"]
    text = {
        "base": str(CONFIG_ROOT / "pose/default.yaml"),
        "set": sets,
        "grid": {"method": list(methods), "seed": list(seeds)},
        "resources": {"cpus_per_trial": 1, "gpus_per_trial": 0},
        "max_failures": 1,
        "storage": str(tmp_path / "tune"),
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(json.dumps(text))  # JSON is YAML
    return path


def test_dry_run_expands_the_grid(tmp_path, tiny_pose_overrides):
    path = write_sweep(tmp_path, tiny_pose_overrides, ["clean", "dslope"], seeds=(0, 1, 2))
    spec, base = load_sweep(path)
    trials = expand(spec)
    assert len(trials) == 6 and trials[0][-2:] == ['method="clean"', "seed=0"]
    result = CliRunner().invoke(app, ["sweep", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "6 trials (dry run" in result.output and 'method="dslope" seed=2' in result.output
    assert not (tmp_path / "tune").exists()


def test_unknown_sweep_key_is_rejected(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("base: x.yaml\ngird: {}\n")
    result = CliRunner().invoke(app, ["sweep", str(path), "--dry-run"])
    assert result.exit_code == 2 and "unknown config key 'gird'" in result.output


@pytest.fixture
def local_ray(tmp_path, monkeypatch):
    """A 2-CPU Ray instance with its files in a short temp dir; trials import the test plugin."""
    import ray

    (tmp_path / "sweep_plugin.py").write_text(PLUGIN)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("HARNESS_PLUGINS", "sweep_plugin")
    monkeypatch.setenv("FLAKY_MARKER", str(tmp_path / "flaky_marker"))
    monkeypatch.syspath_prepend(str(tmp_path))
    import harness.core.registry

    if "flaky" not in harness.core.registry.METHODS:
        __import__("sweep_plugin")
    ray_tmp = f"/tmp/ray{os.getpid()}"
    ray.init(
        num_cpus=2, include_dashboard=False, _temp_dir=ray_tmp, log_to_driver=False, configure_logging=False
    )
    yield
    ray.shutdown()
    sys.modules.pop("sweep_plugin", None)


def test_four_trial_sweep_with_retry_and_failure(
    tmp_path, tiny_pose_overrides, local_ray, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    path = write_sweep(tmp_path, tiny_pose_overrides, ["clean", "dslope", "flaky", "broken"])
    started = time.perf_counter()
    outcome = run_sweep(path)
    table = outcome.table
    wall = time.perf_counter() - started
    assert list(table["status"]) == ["ok", "ok", "ok", "failed"]
    assert (tmp_path / "flaky_marker").exists()  # the flaky trial did crash once, and was retried
    records = [json.loads(p.read_text()) for p in (tmp_path / "results" / "runs").glob("*.json")]
    ok = [r for r in records if r["status"] == "ok"]
    failed = [r for r in records if r["status"] == "failed"]
    assert {r["method"] for r in ok} == {"clean", "dslope", "flaky"}
    assert len(failed) == 1 and failed[0]["method"] == "broken" and "broken on purpose" in failed[0]["reason"]
    # --resume re-runs nothing that finished: the same records, the failed one replaced in place.
    before = sorted(p.name for p in (tmp_path / "results" / "runs").glob("*.json"))
    again = run_sweep(path, resume=True).table
    assert list(again["status"]) == ["ok", "ok", "ok", "failed"]
    assert sorted(p.name for p in (tmp_path / "results" / "runs").glob("*.json")) == before
    assert outcome.records_dir == tmp_path / "results" / "runs"
    assert outcome.tune_dir == str(tmp_path / "tune" / "sweep") and (tmp_path / "tune" / "sweep").is_dir()
    # Another machine or a later session: no Tune state, only the records. Trials with ok records are skipped.
    shutil.rmtree(tmp_path / "tune")
    from_records = run_sweep(path, resume=True).table
    assert list(from_records["status"]) == ["ok (records found)"] * 3 + ["failed"]
    assert list(from_records["run_id"][:3]) == list(table["run_id"][:3])
    assert sorted(p.name for p in (tmp_path / "results" / "runs").glob("*.json")) == before

    from datetime import datetime

    runs = {r["run_id"]: r for r in ok}
    trial_seconds = sum(
        (datetime.fromisoformat(r["ended_at"]) - datetime.fromisoformat(r["started_at"])).total_seconds()
        for r in runs.values()
    )
    with capsys.disabled():
        print(f"\n4-trial sweep: wall {wall:.1f} s, sum of the ok trials' run times {trial_seconds:.0f} s")


def test_paper_grid_covers_c_coco_c_mpii_ochuman_and_every_trial_validates():
    from harness.core.config import load_config

    spec, base = load_sweep(CONFIG_ROOT / "sweeps" / "paper_pose.yaml")
    trials = expand(spec)
    assert len(trials) == 3 * 3 * 4 * 3
    configs = [load_config(base, overrides) for overrides in trials]
    benchmarks = {
        (c.data["dataset"], c.data["occluded_root"], tuple(e["name"] for e in c.data["extra_val"]))
        for c in configs
    }
    assert benchmarks == {
        ("coco", "/data/c-coco", ()),
        ("mpii", "/data/c-mpii", ()),
        ("coco", None, ("ochuman_val", "ochuman_test")),
    }
    mpii = next(c for c in configs if c.data["dataset"] == "mpii")
    assert mpii.data["input_size"] == [256, 256] and mpii.data["train_split"] == "train"
    assert {c.method for c in configs} == {"clean", "occ_aug", "distill", "dslope"}


def test_arms_cross_the_grid_one_factor_each():
    from harness.cluster.sweep import SweepSpec, expand

    spec = SweepSpec(
        base="x.yaml",
        set=["method=dslope"],
        arms=[["model.pretrained=null"], ["method_args.dslope.independent_init=true"]],
        grid={"seed": [0, 1]},
    )
    assert expand(spec) == [
        ["method=dslope", "model.pretrained=null", "seed=0"],
        ["method=dslope", "model.pretrained=null", "seed=1"],
        ["method=dslope", "method_args.dslope.independent_init=true", "seed=0"],
        ["method=dslope", "method_args.dslope.independent_init=true", "seed=1"],
    ]


def test_set_applies_to_every_trial_after_the_yaml_set(tmp_path, tiny_pose_overrides):
    from harness.core.config import load_config

    path = write_sweep(tmp_path, tiny_pose_overrides, ["clean", "dslope"], seeds=(0, 1))
    outcome = run_sweep(path, overrides=["train.max_steps=7", "optim.lr=0.0005"], dry_run=True)
    spec, base = load_sweep(path)
    assert list(outcome.table["overrides"]) == [
        'method="clean" seed=0', 'method="clean" seed=1', 'method="dslope" seed=0', 'method="dslope" seed=1',
    ]  # labels: only what the grid varies  # fmt: skip
    result = CliRunner().invoke(
        app, ["sweep", str(path), "--set", "train.max_steps=7", "--set", "optim.lr=0.0005", "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert "4 trials (dry run" in result.output
    # The trials the driver would start, exactly: YAML set, then --set, then the grid.
    from harness.cluster.sweep import with_cli_overrides

    trials = with_cli_overrides(base, expand(spec), len(spec.set), ["train.max_steps=7"])
    assert all(t[len(spec.set)] == "train.max_steps=7" for t in trials)
    configs = [load_config(base, t) for t in trials]
    assert {c.train.max_steps for c in configs} == {
        7
    }  # the YAML's max_steps=2 is replaced, as run --set does
    assert [(c.method, c.seed) for c in configs] == [("clean", 0), ("clean", 1), ("dslope", 0), ("dslope", 1)]


def test_set_of_a_key_the_grid_varies_is_one_line_exit_2(tmp_path, tiny_pose_overrides):
    path = write_sweep(tmp_path, tiny_pose_overrides, ["clean"], seeds=(0, 1))
    result = CliRunner().invoke(app, ["sweep", str(path), "--set", "seed=5", "--dry-run"])
    assert result.exit_code == 2 and "--set seed=5" in result.output and "grid or an arm" in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = CliRunner().invoke(app, ["sweep", str(path), "--set", "train.max_steps", "--dry-run"])
    assert result.exit_code == 2 and "expects key=value" in result.output
    result = CliRunner().invoke(app, ["sweep", str(path), "--set", "train.max_stepz=3", "--dry-run"])
    assert result.exit_code == 2 and "unknown config key 'train.max_stepz'" in result.output


def test_set_into_a_mapping_axis_only_when_the_axis_leaves_that_key_alone():
    from harness.cluster.sweep import SweepSpec, with_cli_overrides

    base = CONFIG_ROOT / "pose" / "default.yaml"
    spec = SweepSpec(base="x", grid={"data": [{"dataset": "coco", "root": "/a"}, {"dataset": "mpii"}]})
    trials = with_cli_overrides(base, expand(spec), 0, ["data.max_val_persons=3"])
    assert [t[0] for t in trials] == ["data.max_val_persons=3"] * 2
    from harness.core.errors import ConfigError

    with pytest.raises(ConfigError, match="trial 0"):
        with_cli_overrides(base, expand(spec), 0, ["data.root=/b"])


def test_default_tune_storage_is_beside_the_results(tmp_path, tiny_pose_overrides, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_sweep(tmp_path, tiny_pose_overrides, ["clean"])
    text = json.loads(path.read_text())
    text.pop("storage")
    path.write_text(json.dumps(text))
    outcome = run_sweep(
        path, overrides=[f"output.results_dir={tmp_path / 'shared' / 'results'}"], dry_run=True
    )
    assert outcome.tune_dir == str(tmp_path / "shared" / "sweeps" / "sweep")
    assert outcome.records_dir == tmp_path / "shared" / "results" / "runs"
    outcome = run_sweep(
        path, overrides=["output.results_dir=out/results"], dry_run=True
    )  # relative: from cwd
    assert outcome.tune_dir == str(tmp_path / "out" / "sweeps" / "sweep")
    assert run_sweep(path, storage="elsewhere", dry_run=True).tune_dir == str(
        tmp_path / "elsewhere" / "sweep"
    )
    result = CliRunner().invoke(app, ["sweep", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert f"Tune state to {tmp_path / 'sweeps' / 'sweep'}" in result.output.replace("\n", "")


def test_under_a_ray_job_nothing_lands_in_its_temporary_working_dir(
    tmp_path, tiny_pose_overrides, monkeypatch
):
    """`ray job submit --working-dir .` runs the driver inside Ray's session folder, which the cluster
    deletes: a relative results dir or storage would put records and Tune state there."""
    job_dir = tmp_path / "session_1" / "runtime_resources" / "working_dir_files" / "_ray_pkg_abc"
    job_dir.mkdir(parents=True)
    monkeypatch.chdir(job_dir)
    monkeypatch.setenv(
        "RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps({"runtime_env": {"working_dir": "gcs://x.zip"}})
    )
    path = write_sweep(tmp_path, tiny_pose_overrides[:-1], ["clean"])  # results_dir left at "results"
    text = json.loads(path.read_text())
    text.pop("storage")
    path.write_text(json.dumps(text))
    result = CliRunner().invoke(app, ["sweep", str(path), "--dry-run"])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "output.results_dir" in result.output and "temporary working dir" in result.output
    shared = tmp_path / "shared"
    outcome = run_sweep(path, overrides=[f"output.results_dir={shared / 'results'}"], dry_run=True)
    assert outcome.tune_dir == str(shared / "sweeps" / "sweep")  # absolute, beside the records
    with pytest.raises(Exception, match="storage: .* temporary working dir"):
        run_sweep(path, overrides=[f"output.results_dir={shared / 'results'}"], storage="tune", dry_run=True)


def test_resume_with_other_set_values_is_refused_before_ray_starts(tmp_path, tiny_pose_overrides):
    from harness.cluster.sweep import TRIALS_FILE
    from harness.core.errors import ConfigError

    path = write_sweep(tmp_path, tiny_pose_overrides, ["clean"])
    started = run_sweep(path, overrides=["train.max_steps=3"], dry_run=True)
    from harness.cluster.sweep import _write_trials, absolute_outputs, with_cli_overrides

    spec, base = load_sweep(path)
    trials = [absolute_outputs(t, __import__("pathlib").Path.cwd()) for t in
              with_cli_overrides(base, expand(spec), len(spec.set), ["train.max_steps=3"])]  # fmt: skip
    _write_trials(started.tune_dir, trials)
    assert (tmp_path / "tune" / "sweep" / TRIALS_FILE).is_file()
    with pytest.raises(ConfigError, match="--resume: the sweep at .* other trial overrides"):
        run_sweep(path, overrides=["train.max_steps=4"], resume=True)
