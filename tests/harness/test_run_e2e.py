"""End to end on a tiny synthetic pose set: both methods train 2 steps, evaluate and write records."""

import json

import pytest
import torch

from harness.core.config import CONFIG_ROOT, load_config
from harness.core.errors import TrainingError
from harness.core.portable import resolve_path
from harness.core.results import load_results
from harness.core.task import default_cache_dir
from harness.run.experiment import run_experiment
from harness.train.callbacks import Checkpoint

POSE = CONFIG_ROOT / "pose/default.yaml"


@pytest.mark.parametrize("method", ["clean", "dslope"])
def test_two_step_run_writes_valid_records(method, tiny_pose_overrides, tmp_path):
    cfg = load_config(POSE, [*tiny_pose_overrides, f"method={method}"])
    outcome = run_experiment(cfg)
    assert outcome.steps == 2 and outcome.images == 8
    expected = {
        ("enet" if method == "dslope" else "net", "clean_val"),
        ("enet" if method == "dslope" else "net", "occluded_val"),
    }
    if method == "dslope":
        expected.add(("gnet", "clean_val"))
    assert {(r.network, r.split) for r in outcome.records} == expected
    # Records say which network is evaluated and what role split and method play (harness/core/roles.py).
    roles = {(r.network, r.split): (r.evaluated, r.split_role, r.method_role) for r in outcome.records}
    net, role = ("enet", "method") if method == "dslope" else ("net", "reference")
    assert roles[net, "clean_val"] == (True, "clean", role)
    assert roles[net, "occluded_val"] == (True, "occluded", role)
    if method == "dslope":
        assert roles["gnet", "clean_val"] == (False, "clean", "method")
    files = sorted((tmp_path / "results" / "runs").glob("*.json"))
    assert len(files) == len(expected)
    record = json.loads(files[0].read_text())
    for field in (
        "run_id",
        "task",
        "method",
        "backbone",
        "dataset",
        "split",
        "metrics",
        "seed",
        "config",
        "config_hash",
        "versions",
        "commit",
        "started_at",
        "ended_at",
        "status",
        "data",
    ):
        assert field in record
    assert record["status"] == "ok" and record["config_hash"] == cfg.hash()
    assert record["data"]["box_source"] == "ground_truth" and record["training"]["precision"] == "float32"
    assert record["curves"] and record["curves"][-1]["epoch"] == 1 and "train_loss" in record["curves"][-1]
    sample = record["samples"][0]
    assert len(sample["prediction"]) == len(sample["ground_truth"]) == 51
    assert record["samples"][0]["image"].startswith("{cache}/")  # no machine path in a record
    assert (
        resolve_path(sample["image"], {"cache": default_cache_dir()}).is_file()
        and len(record["samples"]) <= 8
    )
    assert set(record["metrics"]) == {
        "AP",
        "AP50",
        "AP75",
        "APM",
        "APL",
        "AR",
        "AP_visible",
        "AP_occluded",
        "kOKS_visible",
        "kOKS_occluded",
    }
    by_split = {r.split: r.metrics for r in outcome.records if r.network != "gnet"}
    # The frozen split records covered joints: both are numbers in [0, 1] (NaN or None fail here).
    assert 0.0 <= by_split["occluded_val"]["kOKS_visible"] <= 1.0
    assert 0.0 <= by_split["occluded_val"]["AP_occluded"] <= 1.0
    assert all(v is None or 0.0 <= v <= 1.0 for v in record["metrics"].values())
    run_dir = outcome.run_dir
    assert (run_dir / "config.yaml").is_file() and (run_dir / "config_hash").read_text().strip() == cfg.hash()
    assert (run_dir / "checkpoint.pt").is_file()
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["kind"] == "epoch" and "train_loss" in lines[-1]
    assert any(p.name.startswith("events.out.tfevents") for p in (run_dir / "tensorboard").iterdir())
    frame = load_results(tmp_path / "results")
    assert len(frame) == len(expected) and "metric.AP" in frame.columns


def test_eval_every_logs_validation_curves(tiny_pose_overrides):
    overrides = [
        *tiny_pose_overrides,
        "method=clean",
        "train.epochs=3",
        "train.max_steps=null",
        "data.max_train_persons=4",
        "train.eval_every=1",
    ]
    outcome = run_experiment(load_config(POSE, overrides))
    epochs = [json.loads(x) for x in (outcome.run_dir / "metrics.jsonl").read_text().splitlines()]
    epochs = [e for e in epochs if e["kind"] == "epoch"]
    assert [("val_AP" in e) for e in epochs] == [True, True, False]  # the last epoch is scored by the run


def test_same_seed_same_metrics(tiny_pose_overrides):
    cfg = load_config(POSE, [*tiny_pose_overrides, "method=clean"])
    first = run_experiment(cfg).records
    second = run_experiment(cfg).records
    assert [r.metrics for r in first] == [r.metrics for r in second]


def test_resume_continues_from_the_checkpoint(tiny_pose_overrides, monkeypatch):
    overrides = [
        *tiny_pose_overrides,
        "method=dslope",
        "train.epochs=2",
        "train.max_steps=null",
        "data.max_train_persons=8",
    ]
    cfg = load_config(POSE, overrides)
    uninterrupted = run_experiment(cfg)

    original = Checkpoint.on_epoch_end

    def stop_after_first_epoch(self, trainer, logs):
        original(self, trainer, logs)
        if trainer.state.epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(Checkpoint, "on_epoch_end", stop_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg)
    monkeypatch.setattr(Checkpoint, "on_epoch_end", original)
    run_dir = sorted(p for p in uninterrupted.run_dir.parent.iterdir() if p != uninterrupted.run_dir)[-1]
    stopped = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert stopped["state"]["epoch"] == 1

    resumed = run_experiment(None, resume_dir=run_dir)
    assert resumed.steps == uninterrupted.steps == 4
    epochs = [
        json.loads(x)["epoch"]
        for x in (run_dir / "metrics.jsonl").read_text().splitlines()
        if json.loads(x)["kind"] == "epoch"
    ]
    assert epochs == [1, 2]  # epoch 1 was not trained again
    assert [r.metrics for r in resumed.records] == [r.metrics for r in uninterrupted.records]


def test_nan_loss_stops_with_a_failed_record(tiny_pose_overrides, tmp_path, monkeypatch):
    from tasks.pose.task import PoseTask

    monkeypatch.setattr(PoseTask, "loss", lambda self, outputs, batch: outputs.sum() * float("nan"))
    cfg = load_config(POSE, [*tiny_pose_overrides, "method=clean"])
    with pytest.raises(TrainingError, match="loss became nan at step 1"):
        run_experiment(cfg)
    records = [json.loads(p.read_text()) for p in (tmp_path / "results" / "runs").glob("*.json")]
    assert len(records) == 1
    assert records[0]["status"] == "failed" and "step 1" in records[0]["reason"]


def test_distill_reuses_a_finished_clean_run_of_the_same_config(tiny_pose_overrides, tmp_path):
    """A sweep's clean trial serves the distill trial of the same seed as teacher: no second clean run."""
    clean = run_experiment(
        load_config(CONFIG_ROOT / "pose/default.yaml", [*tiny_pose_overrides, "method=clean"])
    )
    distill = run_experiment(
        load_config(CONFIG_ROOT / "pose/default.yaml", [*tiny_pose_overrides, "method=distill"])
    )
    runs = sorted(p.name for p in (tmp_path / "work").iterdir())
    assert [name.split("_")[1] for name in runs] == ["clean", "distill"]  # the teacher was not trained again
    teacher = distill.records[0].config["method_args"]["distill"]["teacher"]
    assert teacher == clean.run_dir.name  # a run id: the same config (and hash) on any machine
    other_seed = load_config(
        CONFIG_ROOT / "pose/default.yaml", [*tiny_pose_overrides, "method=distill", "seed=1"]
    )
    from harness.run.experiment import finished_run

    assert finished_run(other_seed.model_copy(update={"method": "clean"})) is None  # another seed: no match
