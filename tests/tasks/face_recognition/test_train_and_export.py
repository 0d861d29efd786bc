"""Two D-Slope steps end to end on tiny synthetic faces, then the ONNX round trip through insightface."""

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from harness.cli import app
from harness.core.config import load_config
from harness.methods.dslope import DSlope
from harness.models.backbones import create_backbone
from harness.models.factory import occlusion_plan
from harness.models.task_model import TaskModel
from harness.run.experiment import run_experiment
from tasks.face_recognition.data import to_input
from tasks.face_recognition.task import FaceRecognitionSettings, FaceRecognitionTask


@pytest.fixture(scope="module")
def dslope_run(tmp_path_factory):
    from tests.tasks.face_recognition.conftest import TINY_FACES

    tmp = tmp_path_factory.mktemp("face-run")
    cfg = load_config(None, [*TINY_FACES, "method=dslope", f"output.work_dir={tmp}/work",
                             f"output.results_dir={tmp}/results"])  # fmt: skip
    return run_experiment(cfg)


def test_two_dslope_steps_train_the_margin_weights_and_score_both_splits(dslope_run):
    assert dslope_run.steps == 2 and dslope_run.images == 8
    by_split = {(r.network, r.split): r for r in dslope_run.records}
    assert set(by_split) == {("enet", "clean_val"), ("enet", "masked_val"), ("gnet", "clean_val")}
    for record in by_split.values():
        assert record.status == "ok" and 0.0 <= record.metrics["accuracy"] <= 1.0
        assert set(record.metrics) == {"accuracy", "accuracy_std", "tar_far_1e-3", "tar_far_1e-4"}
        assert record.higher_is_better["accuracy_std"] is False
    state = torch.load(dslope_run.run_dir / "checkpoint.pt", weights_only=True)["method"]
    # Each network's own optimizer moved its own class weights (Adam's first step moves every weight).
    for net in ("enet", "gnet"):
        weight = state[f"{net}.head.class_weight"]
        assert weight.shape == (6, 32) and (state[f"{net}.head.class_weight"].abs() > 0).all()
    assert not torch.equal(state["enet.head.class_weight"], state["gnet.head.class_weight"])


def test_dslope_imitates_the_normalised_embedding_not_the_logits():
    task = FaceRecognitionTask(
        FaceRecognitionSettings(synthetic_train_identities=3, input_size=56, embedding_size=8)
    )

    def build():
        backbone = create_backbone("resnet18")
        return TaskModel(backbone, task.head(backbone.out_channels, backbone.out_stride))

    torch.manual_seed(0)
    method = DSlope(build, task.loss)
    g = torch.Generator().manual_seed(0)
    batch = {"image": torch.randn(4, 3, 56, 56, generator=g), "twin": torch.randn(4, 3, 56, 56, generator=g),
             "label": torch.tensor([0, 1, 2, 0])}  # fmt: skip
    terms = method.training_step(batch)
    emb_g = torch.nn.functional.normalize(method.gnet(batch["image"])["embedding"])
    emb_e = torch.nn.functional.normalize(method.enet(batch["twin"])["embedding"])
    features = sum(
        torch.mean((a - b) ** 2) for a, b in zip(method.gnet.features, method.enet.features, strict=True)
    )
    expected = features + torch.mean((emb_g - emb_e) ** 2)
    assert terms["mimic_enet"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert len(method.gnet.features) == 4  # the four ResNet stages are imitated too
    assert len(list(method.optimizer_groups())) == 2
    assert any(p is method.enet.head.class_weight for p in method.optimizer_groups()["enet"])


def test_onnx_export_loads_in_insightface_and_matches_pytorch(dslope_run, tmp_path):
    from insightface.model_zoo import get_model

    out = tmp_path / "enet.onnx"
    result = CliRunner().invoke(app, ["export", str(dslope_run.run_dir), "--onnx", str(out)])
    assert result.exit_code == 0, result.output
    assert "network enet, input [1, 3, 112, 112], output [32]" in result.output
    model = get_model(str(out), providers=["CPUExecutionProvider"])
    assert type(model).__name__ == "ArcFaceONNX" and model.input_size == (112, 112)
    assert (model.input_mean, model.input_std) == (127.5, 127.5)

    cfg = load_config(dslope_run.run_dir / "config.yaml")
    task = FaceRecognitionTask(FaceRecognitionTask.Settings(**cfg.data))
    _, splits = task.datasets(seed=0, occlusion=occlusion_plan(cfg, True))
    crops = [splits["clean_val"].aligned(i) for i in range(6)]  # aligned 112x112 BGR, as insightface feeds
    onnx_embeddings = model.get_feat(crops)

    # PyTorch's embedding through the training pipeline: area resize to 56, normalise, ENet.
    state = torch.load(dslope_run.run_dir / "checkpoint.pt", weights_only=True)["method"]
    backbone = create_backbone("resnet18", input_size=task.input_size)
    enet = TaskModel(backbone, task.head(backbone.out_channels, backbone.out_stride))
    enet.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("enet.")})
    with torch.no_grad():
        torch_embeddings = enet.eval()(torch.stack([to_input(c, 56) for c in crops]))["embedding"].numpy()
    cosine = np.sum(onnx_embeddings * torch_embeddings, 1) / (
        np.linalg.norm(onnx_embeddings, axis=1) * np.linalg.norm(torch_embeddings, axis=1)
    )
    assert cosine.min() >= 0.999, cosine


def test_export_of_a_folder_that_is_no_run_is_one_line(tmp_path):
    result = CliRunner().invoke(app, ["export", str(tmp_path), "--onnx", str(tmp_path / "x.onnx")])
    assert result.exit_code == 2 and "is not a run dir (no config.yaml)" in result.output
    assert "Traceback" not in result.output
