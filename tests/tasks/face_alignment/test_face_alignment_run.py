"""`harness run --task face_alignment` end to end on tiny embedded data, and one-line errors on bad data."""

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.core.config import CONFIG_ROOT, load_config

REPO = Path(__file__).resolve().parents[3]
FIXTURES = Path(os.environ.get("HARNESS_FIXTURES", REPO.parent / "shared" / "fixtures"))

runner = CliRunner()

TINY = [
    "data.synthetic_train_images=12",
    "data.synthetic_val_images=4",
    "train.batch_size=4",
    "train.eval_batch_size=8",
    "train.num_workers=0",
    "train.max_steps=2",
    "occlusion.max_patches=20",
]


def _sets(tmp_path, extra=()):
    overrides = [*TINY, f"output.work_dir={tmp_path / 'work'}", f"output.results_dir={tmp_path / 'results'}"]
    return [x for o in (*overrides, *extra) for x in ("--set", o)]


def test_run_trains_clean_and_dslope_and_prints_the_nme_table(tmp_path):
    result = runner.invoke(
        app, ["run", "--task", "face_alignment", "--backbone", "hrnet_w18", *_sets(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "Comparison" in result.output and "NME" in result.output and "AUC@0.1" in result.output
    assert "clean: trained 2 steps on 8 images" in result.output
    assert "dslope: trained 2 steps on 8 images" in result.output
    records = [json.loads(p.read_text()) for p in (tmp_path / "results" / "runs").glob("*.json")]
    assert sorted((r["method"], r["network"], r["split"]) for r in records) == [
        ("clean", "net", "clean_val"),
        ("clean", "net", "occluded_val"),
        ("dslope", "enet", "clean_val"),
        ("dslope", "enet", "occluded_val"),
        ("dslope", "gnet", "clean_val"),
    ]
    for record in records:
        assert record["task"] == "face_alignment" and record["dataset"] == "synthetic-cofw"
        assert record["higher_is_better"] == {
            "NME": False,
            "FR@0.1": False,
            "AUC@0.1": True,
            "NME_visible": False,
            "NME_occluded": False,
        }
        assert 0 < record["metrics"]["NME"] and 0 <= record["metrics"]["AUC@0.1"] <= 1
        assert record["data"]["nme_normalization"] == [16, 17]  # inter-pupil on the COFW layout
        assert len(record["samples"]) == 4 and len(record["samples"][0]["prediction"]) == 29 * 3
    occluded = [r for r in records if r["split"] == "occluded_val"]
    assert occluded and all(0.0 < r["metrics"]["NME_occluded"] < 10.0 for r in occluded)  # a number, not NaN


def test_every_face_alignment_config_is_valid():
    names = sorted(p.name for p in (CONFIG_ROOT / "face_alignment").glob("*.yaml"))
    assert {"default.yaml", "cofw_hrnetv2_w18.yaml", "wflw_hrnetv2_w18.yaml", "300w_hrnetv2_w18.yaml"} <= set(
        names
    )
    for name in names:
        cfg = load_config(CONFIG_ROOT / "face_alignment" / name)
        assert cfg.task == "face_alignment"
        if name not in ("default.yaml", "tiny.yaml") and not name.startswith("quick"):
            assert cfg.data["dataset"] in ("cofw", "wflw", "300w") and cfg.device == "cuda"


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (
            lambda d: d["annotations"][0].update(keypoints=d["annotations"][0]["keypoints"][:-3]),
            "cofw_train.json: annotation 1766 field 'keypoints' has 28 landmarks, expected 29 for cofw",
        ),
        (lambda d: None, "data.train_file: annotation file not found"),
    ],
)
def test_bad_real_data_is_one_line_and_writes_nothing(tmp_path, mutate, fragment):
    root = tmp_path / "cofw"
    (root / "annotations").mkdir(parents=True)
    shutil.copytree(FIXTURES / "cofw", root / "images", ignore=shutil.ignore_patterns("*.json"))
    data = json.loads((FIXTURES / "cofw" / "test_cofw.json").read_text())
    mutate(data)
    (root / "annotations" / "cofw_test.json").write_text(json.dumps(data))
    if "not found" not in fragment:
        (root / "annotations" / "cofw_train.json").write_text(json.dumps(data))
    extra = ["data.dataset=cofw", f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}"]
    result = runner.invoke(
        app, ["run", "--task", "face_alignment", "--method", "clean", *_sets(tmp_path, extra)]
    )
    assert result.exit_code == 2, result.output
    assert fragment in result.output and "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) <= 2
    assert not list((tmp_path / "results").rglob("*.json"))
