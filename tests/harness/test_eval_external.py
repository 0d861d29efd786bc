"""`harness eval --model SPEC`: the engine side of scoring models the harness did not train.

A stand-in adapter (the ground-truth keypoints as predictions, so AP is exactly 1) plugged into the pose task
checks what every library adapter gets from the engine: records like a trained run's (method `external`,
the spec, weights name and sha256, no machine path), prediction files, the severity ladder, all-or-nothing
writing, and the one-line errors. The library adapters have their own tests (tests/tasks/*/test_external_*).
"""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.core.config import CONFIG_ROOT
from harness.core.errors import DataError
from harness.core.external import ExternalModel, ModelSpec
from tasks.pose.task import PoseTask

runner = CliRunner()
TINY = CONFIG_ROOT / "pose" / "tiny.yaml"


class GroundTruthModel(ExternalModel):
    """Predicts each person's annotated keypoints with confidence 1: an AP of exactly 1."""

    def __init__(self, spec: ModelSpec, checkpoint: Path | None, fail_on: str | None = None):
        self.spec, self.checkpoint, self.fail_on = spec, checkpoint, fail_on

    def describe(self):
        return {"library": "ground truth"}

    def predict_split(self, dataset, *, device, batch_size, progress):
        if self.fail_on and self.fail_on in str(dataset.ann_file):
            raise DataError(f"stand-in model refuses {dataset.ann_file.name}")
        out = []
        for r in dataset.records:
            rows = np.concatenate([r.keypoints[:, :2], np.ones((len(r.keypoints), 1))], axis=1)
            out.append({"image_id": r.image_id, "ann_id": r.ann_id, "category_id": 1, "score": 1.0,
                        "keypoints": rows.reshape(-1).tolist(), "box": list(r.box)})  # fmt: skip
        progress(len(out))
        return out


@pytest.fixture
def ground_truth_kind(monkeypatch):
    """The pose task scores `truth:` specs with GroundTruthModel (`truth:fail` fails on occluded val)."""
    monkeypatch.setattr(PoseTask, "external_kinds", ("mmpose", "truth"))

    def external_model(self, spec, checkpoint):
        return GroundTruthModel(spec, checkpoint, fail_on="occluded" if spec.target == "fail" else None)

    monkeypatch.setattr(PoseTask, "external_model", external_model)


@pytest.fixture
def weights(tmp_path) -> Path:
    path = tmp_path / "models" / "weights.pth"
    path.parent.mkdir()
    path.write_bytes(b"any weights")
    return path


def _eval(tmp_path: Path, *args: str):
    outputs = [
        "--set",
        f"output.results_dir={tmp_path / 'results'}",
        "--set",
        f"output.work_dir={tmp_path / 'w'}",
    ]
    return runner.invoke(app, ["eval", *args, *outputs])


def _records(tmp_path: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((tmp_path / "results" / "runs").glob("*.json"))]


def test_external_records_are_ordinary_records_with_the_spec(ground_truth_kind, weights, tmp_path):
    result = _eval(tmp_path, "--model", "truth:any", "--checkpoint", str(weights), "--config", str(TINY))
    assert result.exit_code == 0, result.output
    records = _records(tmp_path)
    assert sorted(r["split"] for r in records) == ["clean_val", "occluded_val"]
    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    for r in records:
        assert r["metrics"]["AP"] == 1.0 and r["status"] == "ok" and r["evaluated"] is True
        assert (r["method"], r["backbone"], r["method_role"]) == ("external", "truth:any", "external")
        assert r["evaluation"]["model"] == "truth:any" and r["evaluation"]["library"] == "ground truth"
        assert r["evaluation"]["checkpoint"] == "weights.pth" and r["evaluation"]["checkpoint_sha256"] == sha
        assert r["config"]["method"] == "external" and "optim" not in r["config"]
        assert r["higher_is_better"]["AP"] is True and r["primary_metric"] == "AP"
        file = tmp_path / "w" / r["predictions"]["file"]
        assert hashlib.sha256(file.read_bytes()).hexdigest() == r["predictions"]["sha256"]
        for text in (json.dumps(r["evaluation"]), json.dumps(r["config"]), r["predictions"]["file"]):
            assert str(tmp_path) not in text


def test_external_severity_ladder(ground_truth_kind, weights, tmp_path):
    args = ["--model", "truth:any", "--checkpoint", str(weights), "--config", str(TINY), "--severity", "0,4"]
    result = _eval(tmp_path, *args)
    assert result.exit_code == 0, result.output
    records = _records(tmp_path)
    assert sorted(r["severity"] for r in records) == [0, 4] and {r["split"] for r in records} == {
        "occluded_val"
    }
    assert len({r["config_hash"] for r in records}) == 2


def test_a_model_failing_on_a_later_split_leaves_no_record(ground_truth_kind, weights, tmp_path):
    result = _eval(tmp_path, "--model", "truth:fail", "--checkpoint", str(weights), "--config", str(TINY))
    assert result.exit_code == 2 and "stand-in model refuses" in result.output
    assert not (tmp_path / "results" / "runs").exists() or not _records(tmp_path)


def test_run_spec_is_the_positional_run_dir(tmp_path):
    spec = ModelSpec.parse("run:work_dirs/x")
    assert (spec.kind, spec.target) == ("run", "work_dirs/x")
    result = _eval(tmp_path, "--model", f"run:{tmp_path}")
    assert result.exit_code == 2 and f"eval: {tmp_path} is not a run dir (no config.yaml)" in result.output


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--model", "mmpose"], "--model: 'mmpose' is not a model spec; expected KIND:TARGET"),
        (
            ["--model", "onnx:a.onnx", "--task", "pose"],
            "task pose scores no onnx: models (it scores run:, mmpose:)",
        ),
        (["--model", "mmpose:x"], "--task: required with an external --model"),
        (["--model", "mmpose:x", "--task", "poze"], "unknown task 'poze'"),
        (
            ["--model", "mmpose:x", "--task", "pose", "--network", "enet"],
            "--network: an external model has one",
        ),
        (["--model", "run:x", "--checkpoint", "w.pth"], "--checkpoint: a trained run brings its own"),
        (["some_run", "--model", "run:x"], "give a run dir or --model, not both"),
        ([], "give a run dir or --model KIND:TARGET"),
        (
            ["--model", "mmpose:x", "--task", "pose", "--set", "train.amp=true"],
            "--set train.amp: an external",
        ),
        (
            ["--model", "mmpose:x", "--task", "pose", "--checkpoint", "/no/such.pth"],
            "--checkpoint: no file at",
        ),
        (
            [
                "--model",
                "mmpose:x",
                "--task",
                "pose",
                "--config",
                str(CONFIG_ROOT / "face_alignment/tiny.yaml"),
            ],
            "is a face_alignment config, --task says pose",
        ),
    ],
)
def test_bad_spec_input_is_one_line_exit_2_no_record(args, fragment, tmp_path):
    result = _eval(tmp_path, *args)
    assert result.exit_code == 2, result.output
    assert fragment in result.output and result.output.count("error") == 1
    assert not (tmp_path / "results" / "runs").exists() or not _records(tmp_path)
