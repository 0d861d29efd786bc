"""Face alignment outside training: landmarks prediction files, the severity ladder, `harness predict`."""

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from harness.cli import app
from harness.core.config import CONFIG_ROOT, load_config
from harness.models.factory import occlusion_plan
from harness.run.experiment import run_experiment
from tasks.face_alignment.task import FaceAlignmentSettings, FaceAlignmentTask

FIXTURES = Path(__file__).resolve().parents[3].parent / "shared" / "fixtures"
TINY = [
    "data.synthetic_train_images=12",
    "data.synthetic_val_images=4",
    "train.batch_size=4",
    "train.eval_batch_size=8",
    "train.num_workers=0",
    "train.max_steps=2",
    "occlusion.max_patches=20",
    "method=clean",
]
runner = CliRunner()


def test_landmark_files_severity_ladder_and_predict(tmp_path):
    overrides = [*TINY, f"output.work_dir={tmp_path / 'work'}", f"output.results_dir={tmp_path / 'results'}"]
    outcome = run_experiment(load_config(CONFIG_ROOT / "face_alignment/default.yaml", overrides))
    record = next(r for r in outcome.records if r.split == "clean_val")
    saved = json.loads(Path(record.predictions["file"]).read_text())
    assert record.predictions["format"] == "landmarks_json" and saved["layout"] == "cofw"
    # The file alone reproduces the recorded NME (its landmarks, scored against the split's ground truth).
    cfg = load_config(CONFIG_ROOT / "face_alignment/default.yaml", overrides)
    task = FaceAlignmentTask(FaceAlignmentSettings(**cfg.data))
    _, splits = task.datasets(seed=cfg.seed, occlusion=occlusion_plan(cfg, needs_twin=False))
    from_file = [
        {"ann_id": f["ann_id"], "image_id": f["image_id"], "keypoints": np.ravel(f["landmarks"]).tolist()}
        for f in saved["faces"]
    ]
    assert len(from_file) == 4 and all(len(f["landmarks"]) == 29 for f in saved["faces"])
    assert task.evaluate(from_file, splits["clean_val"]) == record.metrics

    result = runner.invoke(
        app, ["eval", str(outcome.run_dir), "--severity", "0,4", "--set", "train.num_workers=0"]
    )
    assert result.exit_code == 0, result.output
    ladder = {
        r["severity"]: r
        for r in (json.loads(p.read_text()) for p in (tmp_path / "results" / "runs").glob("*.eval-*"))
    }
    assert sorted(ladder) == [0, 4]
    assert ladder[0]["metrics"]["NME_occluded"] is None  # nothing covered at level 0
    assert 0.0 < ladder[4]["metrics"]["NME_occluded"] < 10.0  # a number (NaN and None fail here)

    out = tmp_path / "drawn"
    result = runner.invoke(app, ["predict", str(outcome.run_dir), str(FIXTURES / "cofw"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    listing = json.loads((out / "predictions.json").read_text())
    assert len(listing["images"]) == 2 and all(len(i["predictions"]) == 1 for i in listing["images"])
    assert len(listing["images"][0]["predictions"][0]["keypoints"]) == 29 * 3
    assert len(list(out.glob("*.png"))) == 2
