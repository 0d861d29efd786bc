"""`harness eval --model onnx:<file>`: an insightface-style recognition model on the verification splits.

The reference is insightface's own `ArcFaceONNX.get_feat` on the same aligned crops; the model a random-init
ResNet-18 exported to ONNX in a temp dir (nothing downloaded).
"""

import csv
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torchvision
from insightface.model_zoo.arcface_onnx import ArcFaceONNX
from typer.testing import CliRunner

from harness.cli import app
from harness.core.config import CONFIG_ROOT, load_config
from harness.core.external import ModelSpec
from harness.models.factory import build_task, occlusion_plan
from tasks.face_recognition.verification import pair_scores, verification_metrics

runner = CliRunner()
TINY = CONFIG_ROOT / "face_recognition" / "tiny.yaml"
EMBEDDING = 32  # the tiny config's data.embedding_size


def export_resnet(path: Path, side: int = 112, mxnet_names: bool = False) -> Path:
    """A random-init ResNet-18 with a 32-value embedding, exported as insightface's models are (NCHW input,
    dynamic batch). `mxnet_names` renames its first nodes Sub / Mul, as old mxnet graphs are named."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=EMBEDDING).eval()
    torch.onnx.export(
        model, (torch.zeros(1, 3, side, side),), str(path), dynamo=False, input_names=["data"],
        output_names=["fc1"], dynamic_axes={"data": {0: "batch"}, "fc1": {0: "batch"}},
    )  # fmt: skip
    if mxnet_names:
        graph = onnx.load(str(path))
        graph.graph.node[0].name, graph.graph.node[1].name = "Sub_0", "Mul_1"
        onnx.save(graph, str(path))
    return path


@pytest.fixture(scope="module")
def verification(tmp_path_factory):
    """The tiny embedded face-recognition task and its clean and masked pair splits."""
    cfg = load_config(TINY)
    task = build_task(cfg)
    _, splits = task.datasets(seed=0, occlusion=occlusion_plan(cfg, needs_twin=False))
    return task, splits


@pytest.mark.parametrize("mxnet_names", [False, True])
def test_embeddings_equal_insightface_get_feat(mxnet_names, verification, tmp_path):
    task, splits = verification
    path = export_resnet(tmp_path / "r18.onnx", mxnet_names=mxnet_names)
    model = task.external_model(ModelSpec("onnx", str(path)), None)
    reference = ArcFaceONNX(model_file=str(path))
    assert (model.mean, model.std) == (reference.input_mean, reference.input_std)
    dataset = splits[task.occluded_split]
    crops = [dataset.aligned(i) for i in range(len(dataset))]
    assert crops[0].shape == (112, 112, 3)
    expected = reference.get_feat(crops)
    np.testing.assert_allclose(model.embed(crops), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    predictions = model.predict_split(dataset, device=torch.device("cpu"), batch_size=5, progress=lambda n: 0)
    flipped = reference.get_feat([c[:, ::-1] for c in crops])  # data.flip_test: image + mirrored image
    got = np.stack([p["embedding"] for p in sorted(predictions, key=lambda p: p["index"])])
    np.testing.assert_allclose(got, expected + flipped, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_eval_records_the_verification_of_get_feat_embeddings(verification, tmp_path):
    task, splits = verification
    path = export_resnet(tmp_path / "r18.onnx")
    results, work = tmp_path / "results", tmp_path / "work"
    args = ["eval", "--model", f"onnx:{path}", "--config", str(TINY), "--set", "data.flip_test=false",
            "--set", f"output.results_dir={results}", "--set", f"output.work_dir={work}"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    records = {r["split"]: r for r in (json.loads(p.read_text()) for p in (results / "runs").glob("*.json"))}
    assert set(records) == {"clean_val", "masked_val"}
    reference = ArcFaceONNX(model_file=str(path))
    for split, record in records.items():
        dataset = splits[split]
        embeddings = reference.get_feat([dataset.aligned(i) for i in range(len(dataset))])
        expected = verification_metrics(pair_scores(embeddings, dataset.pairs), dataset.same)
        assert record["metrics"]["accuracy"] == pytest.approx(expected["accuracy"])
        assert record["backbone"] == "onnx:r18.onnx" and record["evaluation"]["checkpoint"] == "r18.onnx"
        assert record["evaluation"]["flip_test"] is False and record["evaluation"]["input_normalisation"] == [
            127.5, 127.5]  # fmt: skip
        with open(work / record["predictions"]["file"]) as handle:
            assert len(list(csv.DictReader(handle))) == len(dataset.pairs)
        assert str(tmp_path) not in json.dumps(record["evaluation"]) + json.dumps(record["config"])


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        ("side96", "input ['batch', 3, 96, 96], expected [N, 3, 112, 112]"),
        ("checkpoint", "r18.onnx holds its own weights; give no checkpoint"),
        ("corrupt", "not an ONNX model onnxruntime can run"),
        ("missing", "no file at"),
        ("size", "expected one embedding of data.embedding_size=64 values"),
    ],
)
def test_models_that_cannot_be_scored_fail_in_one_line(case, fragment, tmp_path):
    path = tmp_path / "r18.onnx"
    if case == "side96":
        export_resnet(path, side=96)
    elif case == "corrupt":
        path.write_bytes(b"not onnx")
    elif case != "missing":
        export_resnet(path)
    extra = {"checkpoint": ["--checkpoint", str(path)], "size": ["--set", "data.embedding_size=64"]}
    results = tmp_path / "results"
    args = ["eval", "--model", f"onnx:{path}", "--config", str(TINY), *extra.get(case, []),
            "--set", f"output.results_dir={results}"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert fragment in result.output and result.output.count("error") == 1, result.output
    assert not list(results.rglob("*.json"))
