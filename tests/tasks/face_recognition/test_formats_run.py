"""End to end on tiny files in the real formats: RecordIO training set, a .bin suite (one set with matched
pairs only, as insightface's sample test set), IJB-C meta files, Partial FC, D-Slope; and the label list."""

import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.core.config import load_config
from harness.core.errors import DataError
from harness.models.factory import occlusion_plan
from harness.run.experiment import run_experiment
from tasks.face_recognition.data import write_bin
from tasks.face_recognition.recordio import IRHeader, RecordWriter, pack
from tasks.face_recognition.task import FaceRecognitionSettings, FaceRecognitionTask
from tests.tasks.face_recognition.test_ijb_and_partial_fc import _ijb_root


def _png(value: int) -> bytes:
    image = np.zeros((12, 12, 3), np.uint8)
    image[:, :, value % 3] = 30 + value * 7 % 200
    return cv2.imencode(".png", image)[1].tobytes()


def _rec(folder, identities=4, per_identity=3):
    """insightface layout: key 0 header [first identity key, end], image keys, one record per identity."""
    folder.mkdir(parents=True)
    first_identity = 1 + identities * per_identity
    with RecordWriter(folder / "train.rec") as writer:
        writer.write(0, pack(IRHeader(2, np.array([first_identity, first_identity + identities]), 0, 0), b""))
        for key in range(1, first_identity):
            writer.write(key, pack(IRHeader(0, float((key - 1) // per_identity), key, 0), _png(key)))
        for identity in range(identities):
            start = 1 + identity * per_identity
            writer.write(
                first_identity + identity,
                pack(IRHeader(2, np.array([start, start + per_identity]), 0, 0), b""),
            )
    (folder / "property").write_text(f"{identities},112,112")


def _bins(folder):
    folder.mkdir(parents=True, exist_ok=True)
    write_bin(folder / "setA.bin", [_png(i) for i in range(20)], [i % 2 == 0 for i in range(10)])
    write_bin(folder / "setB.bin", [_png(50 + i) for i in range(6)], [True, True, True])


@pytest.fixture(scope="module")
def suite_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("suite")
    _rec(tmp / "faces_emore")
    _bins(tmp / "faces_emore")
    ijb = _ijb_root(tmp)
    overrides = [
        "task=face_recognition", "method=dslope", "model.backbone=resnet18",
        "data.dataset=rec", f"data.train_root={tmp / 'faces_emore'}", "data.val_bins=[setA, setB]",
        f"data.ijb_root={ijb}", "data.sample_rate=0.5", "data.input_size=28", "data.embedding_size=16",
        "train.batch_size=4", "train.eval_batch_size=16", "train.num_workers=0", "train.epochs=1",
        "train.max_steps=2", f"output.work_dir={tmp}/work", f"output.results_dir={tmp}/results",
        f"data.cache_dir={tmp}/cache",
        # Named explicitly: the report's ablation table (work in progress elsewhere) reads this section.
        "method_args.dslope.output_loss=true",
    ]  # fmt: skip
    return run_experiment(load_config(None, overrides)), tmp


def test_rec_training_with_bin_suite_and_ijbc_records_every_split(suite_run):
    outcome, _ = suite_run
    assert outcome.steps == 2
    enet = {r.split: r for r in outcome.records if r.network == "enet"}
    assert set(enet) == {"setA", "setA_masked", "setB", "setB_masked", "ijbc"}
    assert {r.split for r in outcome.records if r.network == "gnet"} == {"setA"}
    for split in ("setA", "setA_masked"):
        assert set(enet[split].metrics) == {"accuracy", "accuracy_std", "tar_far_1e-3", "tar_far_1e-4"}
    for split in ("setB", "setB_masked"):  # matched pairs only: accuracy, and the record says why no TAR
        assert set(enet[split].metrics) == {"accuracy", "accuracy_std"}
        assert 0.0 <= enet[split].metrics["accuracy"] <= 1.0
    reason = enet["setB"].data["not_computed"]["setB"]["tar_far_1e-3"]
    assert reason == "no mismatched pairs among 3: the false accept rate is undefined"
    assert set(enet["ijbc"].metrics) == {f"tar_far_1e-{k}" for k in range(1, 7)}
    assert all(0.0 <= v <= 1.0 for v in enet["ijbc"].metrics.values())
    assert enet["ijbc"].higher_is_better["tar_far_1e-6"] is True
    data = enet["setA"].data
    assert data["train_identities"] == 4 and data["train_images"] == 12
    assert [s["split"] for s in data["val_sets"]] == ["setA", "setB", "ijbc"]
    assert outcome.records[0].dataset == "faces_emore+setA+setB+ijbc"


def test_each_dslope_network_keeps_its_own_centres(suite_run):
    import torch

    outcome, _ = suite_run
    state = torch.load(outcome.run_dir / "checkpoint.pt", weights_only=True)["method"]
    assert state["enet.head.class_weight"].shape == (4, 16) == state["gnet.head.class_weight"].shape
    assert not torch.equal(state["enet.head.class_weight"], state["gnet.head.class_weight"])


def test_report_has_one_column_per_verification_set(suite_run):
    _, tmp = suite_run
    result = CliRunner().invoke(app, ["report", "--results", str(tmp / "results"), "--format", "md"])
    assert result.exit_code == 0, result.output
    tables = "\n".join(p.read_text() for p in (tmp / "results" / "tables").glob("*.md"))
    # The headline shows the clean and masked set (configs/report.yaml); the appendix every set and metric.
    headline = next(line for line in tables.splitlines() if "setA accuracy" in line)
    assert headline.split(" | ")[1:] == ["setA accuracy", "clean TAR@FAR=1e-3", "setA_masked accuracy",
                                         "masked TAR@FAR=1e-3 |"]  # fmt: skip
    header = next(line for line in tables.splitlines() if "setA accuracy" in line and "setB" in line)
    for column in ("setA accuracy", "setA_masked accuracy", "setB accuracy", "setB_masked accuracy",
                   "ijbc tar_far_1e-4"):  # fmt: skip
        assert column in header
    assert "setB tar_far_1e-3" not in header


def test_label_list_dataset_reads_images_labels_and_landmarks(tmp_path):
    (tmp_path / "train" / "images").mkdir(parents=True)
    lines = []
    for i in range(6):
        cv2.imwrite(
            str(tmp_path / "train" / "images" / f"{i}.png"), cv2.imdecode(np.frombuffer(_png(i), np.uint8), 1)
        )
        lines.append(f"images/{i}.png\t{i % 3}" + ("\t3 4 8 4 5.5 6 3.5 8.5 7.5 8.5" if i == 5 else ""))
    (tmp_path / "train" / "label.txt").write_text("\n".join(lines) + "\n")
    _bins(tmp_path / "train")
    settings = FaceRecognitionSettings(dataset="list", train_root=str(tmp_path / "train"), val_bins=["setA"],
                                       input_size=28, embedding_size=8)  # fmt: skip
    task = FaceRecognitionTask(settings, cache_dir=tmp_path / "cache")
    assert task.num_classes() == 3 and task.clean_split == "setA" and task.occluded_split == "setA_masked"
    cfg = load_config(None, ["task=face_recognition"])
    train, splits = task.datasets(seed=0, occlusion=occlusion_plan(cfg, False))
    assert set(splits) == {"setA", "setA_masked"} and len(train) == 6
    assert [int(train[i]["label"]) for i in range(6)] == [0, 1, 2, 0, 1, 2]
    assert train.images[5].landmarks is not None and train.images[0].landmarks is None
    assert json.loads(json.dumps(task.provenance()))["train_identities"] == 3


def test_missing_suite_files_and_training_folders_are_one_line(tmp_path):
    _bins(tmp_path / "bins")
    cfg = load_config(None, ["task=face_recognition"])
    settings = FaceRecognitionSettings(dataset="list", train_root=str(tmp_path / "none"),
                                       val_bins=["setA", "lfw"], val_root=str(tmp_path / "bins"))  # fmt: skip
    task = FaceRecognitionTask(settings, cache_dir=tmp_path / "cache")
    with pytest.raises(DataError, match=r"data.train_root: no label.txt in .*none"):
        task.datasets(seed=0, occlusion=occlusion_plan(cfg, False))
    with pytest.raises(DataError, match=r"data.val_bins: lfw.bin not found in .*bins"):
        task._val_sources(0)
    with pytest.raises(DataError, match=r"data.train_root: required when data.dataset is 'rec'"):
        FaceRecognitionTask(FaceRecognitionSettings(dataset="rec")).num_classes()
