"""Sweeps on a local Ray instance: expansion, 4 tiny trials, a retried flaky trial, a failed one."""

import json
import os
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
    table = run_sweep(path)
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
    again = run_sweep(path, resume=True)
    assert list(again["status"]) == ["ok", "ok", "ok", "failed"]
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
