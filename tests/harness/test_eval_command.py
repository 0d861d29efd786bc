"""`harness eval` and `harness predict` on a tiny trained pose run: records, provenance, severity ladder,
prediction files, and one-line errors that leave no record."""

import contextlib
import hashlib
import io
import json
import shutil
from pathlib import Path

import pytest
import yaml
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from tiny_pose import TINY_POSE
from typer.testing import CliRunner

from harness.cli import app
from harness.core.config import CONFIG_ROOT, load_config
from harness.core.portable import resolve_path
from harness.core.task import default_cache_dir
from harness.run.experiment import run_experiment

runner = CliRunner()
FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One clean run of 2 steps (shared by the tests here, which never modify it)."""
    root = tmp_path_factory.mktemp("eval")
    overrides = [*TINY_POSE, f"output.work_dir={root / 'work'}", f"output.results_dir={root / 'results'}"]
    outcome = run_experiment(load_config(CONFIG_ROOT / "pose/default.yaml", [*overrides, "method=clean"]))
    return outcome.run_dir, root / "results"


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "evaluations" not in p.parts
    }


def _records(results: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted((results / "runs").glob("*.json"))}


def _stored(text: str, run_dir: Path) -> Path:
    """A path as a record stores it (`{work}/...`, `{cache}/...`), resolved on this machine."""
    return resolve_path(text, {"work": run_dir.parent, "cache": default_cache_dir()})


def _eval(run_dir: Path, results: Path, *args: str):
    sets = ["--set", "train.num_workers=0", "--set", f"output.results_dir={results}"]
    return runner.invoke(app, ["eval", str(run_dir), *sets, *args])


def test_eval_rescores_the_run_without_touching_it(trained):
    run_dir, results = trained
    before_run, before_records = _digests(run_dir), _records(results)
    result = _eval(run_dir, results)
    assert result.exit_code == 0, result.output
    assert _digests(run_dir) == before_run  # config, checkpoint, logs, predictions: unchanged
    after = _records(results)
    assert {k: after[k] for k in before_records} == before_records
    new = [r for name, r in after.items() if name not in before_records]
    assert sorted(r["split"] for r in new) == ["clean_val", "occluded_val"]
    checkpoint = hashlib.sha256((run_dir / "checkpoint.pt").read_bytes()).hexdigest()
    training = {r["split"]: r for r in before_records.values()}
    for record in new:
        assert record["run_id"].startswith(f"{run_dir.name}.eval-") and record["run_id"] != run_dir.name
        ev = record["evaluation"]
        assert ev["source_run_id"] == run_dir.name and ev["checkpoint_sha256"] == checkpoint
        assert ev["eval_config_hash"] == record["config_hash"] == training[record["split"]]["config_hash"]
        assert ev["box_source"] == "ground_truth" and record["severity"] is None
        assert record["metrics"] == training[record["split"]]["metrics"]  # same weights, same data
        assert training[record["split"]].get("evaluation") is None  # training records carry none
        path = _stored(record["predictions"]["file"], run_dir)
        assert path.is_relative_to(run_dir / "evaluations")
        assert hashlib.sha256(path.read_bytes()).hexdigest() == record["predictions"]["sha256"]
        annotations = (
            record["data"]["occluded_val_annotations"] if record["split"] == "occluded_val" else None
        )
        if annotations:  # anyone can rescore the file with pycocotools' defaults
            with contextlib.redirect_stdout(io.StringIO()):
                gt = COCO(_stored(annotations, run_dir))
                ev = COCOeval(gt, gt.loadRes(str(path)), iouType="keypoints")
                ev.evaluate(), ev.accumulate(), ev.summarize()
            assert float(ev.stats[0]) == record["metrics"]["AP"]


def test_eval_severity_ladder_records_each_level(trained):
    run_dir, results = trained
    result = _eval(run_dir, results, "--severity", "0,2,4")
    assert result.exit_code == 0, result.output
    ladder = [r for r in _records(results).values() if r.get("severity") is not None]
    assert sorted(r["severity"] for r in ladder) == [0, 2, 4]
    assert {r["split"] for r in ladder} == {"occluded_val"}
    assert {r["config"]["occlusion"]["val_severity"] for r in ladder} == {0, 2, 4}
    by_level = {r["severity"]: r for r in ladder}
    built = {k: _stored(r["data"]["occluded_val_annotations"], run_dir) for k, r in by_level.items()}
    assert len(set(built.values())) == 3  # each level is its own cached split
    covered = {k: sum(sum(a.get("occluded_keypoints", [])) for a in json.load(open(p))["annotations"])
               for k, p in built.items()}  # fmt: skip
    assert covered[0] == 0 < covered[2] < covered[4]
    # Level 2 is the training default: the same split, byte-identical predictions.
    trained_file = Path(run_dir / "predictions" / "net__occluded_val.json")
    assert _stored(by_level[2]["predictions"]["file"], run_dir).read_bytes() == trained_file.read_bytes()


def test_eval_on_other_data_settings_is_a_new_variant(trained):
    run_dir, results = trained
    before = _records(results)
    result = _eval(run_dir, results, "--set", "data.max_val_persons=2", "--split", "clean_val")
    assert result.exit_code == 0, result.output
    (new,) = [r for name, r in _records(results).items() if name not in before]
    assert new["split"] == "clean_val" and new["config"]["data"]["max_val_persons"] == 2
    assert new["config_hash"] != new["evaluation"]["source_config_hash"]
    assert new["evaluation"]["overrides"][-1] == "data.max_val_persons=2"
    assert (
        len(json.loads(_stored(new["predictions"]["file"], run_dir).read_text())) == 2
    )  # two persons scored


def _bad_run(trained, tmp_path) -> Path:
    """A copy of the run whose config names another backbone than its checkpoint was trained with."""
    copy = tmp_path / "copy"
    shutil.copytree(trained[0], copy)
    config = yaml.safe_load((copy / "config.yaml").read_text())
    config["model"]["backbone"] = "resnet18"
    (copy / "config.yaml").write_text(yaml.safe_dump(config))
    return copy


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--network", "enet"], "--network: 'enet' is not a network of this clean run (net)"),
        (["--set", "model.backbone=resnet18"], "--set model.backbone: an evaluation cannot change"),
        (["--severity", "9"], "'occlusion.val_severity': 9 is not a level of the ladder"),
        (["--split", "no_such"], "--split: 'no_such' is not a split"),
        (["--set", "data.dataset=coco", "--set", "data.root=/no/such/coco"], "data.root: folder not found"),
        (["--set", "data.root=/some/dir"], "config key 'data.root' cannot apply"),
        (
            ["--config", str(CONFIG_ROOT / "face_alignment/default.yaml")],
            "is a face_alignment config, the run is a pose",
        ),
        ([], "NOT_A_RUN"),
        ([], "OTHER_BACKBONE"),
    ],
)
def test_bad_eval_input_is_one_line_exit_2_no_record(args, fragment, trained, tmp_path):
    run_dir, results = trained
    if fragment == "NOT_A_RUN":
        run_dir, fragment = tmp_path, f"eval: {tmp_path} is not a run dir (no config.yaml)"
    elif fragment == "OTHER_BACKBONE":
        run_dir, fragment = _bad_run(trained, tmp_path), "was trained with backbone 'hrnet_w18_small'"
    before = _records(results)
    result = _eval(run_dir, results, *args)
    assert result.exit_code == 2, result.output
    assert fragment in result.output and result.output.count("error") == 1
    assert _records(results) == before


def test_predict_draws_boxes_and_whole_images(trained, tmp_path):
    run_dir, _ = trained
    boxes = FIXTURES / "coco" / "test_coco_det_AP_H_56.json"
    out = tmp_path / "drawn"
    result = runner.invoke(
        app, ["predict", str(run_dir), str(FIXTURES / "coco"), "--boxes", str(boxes),
              "--score-threshold", "0.5", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    listing = json.loads((out / "predictions.json").read_text())
    expected = sum(1 for d in json.loads(boxes.read_text()) if d["score"] >= 0.5)
    assert sum(len(i["predictions"]) for i in listing["images"]) == expected
    assert sorted(p.name for p in out.glob("*.png")) == sorted(i["drawn"] for i in listing["images"])
    assert len(listing["images"][0]["predictions"][0]["keypoints"]) == 17 * 3
    single = FIXTURES / "coco" / "000000000785.jpg"
    result = runner.invoke(app, ["predict", str(run_dir), str(single), "--out", str(tmp_path / "one")])
    assert result.exit_code == 0, result.output
    (image,) = json.loads((tmp_path / "one" / "predictions.json").read_text())["images"]
    assert [p["box"] for p in image["predictions"]] == [[0.0, 0.0, 640.0, 425.0]]  # the whole image
    bad = runner.invoke(app, ["predict", str(run_dir), str(tmp_path / "none"), "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "no image or folder" in bad.output
