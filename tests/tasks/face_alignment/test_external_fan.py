"""`harness eval --model face_alignment:2DFAN-<n>`: face-alignment's FAN on the 68-point 300W layout.

The reference is the package's own `FaceAlignment.get_landmarks_from_image` given the same face box; the
networks are random-init FANs saved as state dicts in a temp dir. The 300W root is made from the two COFW
fixture images with 68 landmarks laid on an ellipse in each face box (only the layout matters here).
"""

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from face_alignment.api import FaceAlignment, LandmarksType
from face_alignment.models import FAN
from typer.testing import CliRunner

from harness.cli import app
from harness.core.config import CONFIG_ROOT, load_config
from harness.core.external import ModelSpec
from harness.models.factory import build_task, occlusion_plan

runner = CliRunner()
FIXTURES = Path(__file__).resolve().parents[3].parent / "shared" / "fixtures" / "cofw"
TINY = CONFIG_ROOT / "face_alignment" / "tiny.yaml"


@pytest.fixture(scope="module")
def w300_root(tmp_path_factory) -> Path:
    """<root>/annotations/face_landmarks_300w_{train,valid}.json + <root>/images/ (the COFW fixture faces)."""
    root = tmp_path_factory.mktemp("w300")
    (root / "annotations").mkdir()
    (root / "images").mkdir()
    cofw = json.loads((FIXTURES / "test_cofw.json").read_text())
    annotations = []
    for ann in cofw["annotations"]:
        x, y, w, h = ann["bbox"]
        angle = np.linspace(0, 2 * np.pi, 68, endpoint=False)
        points = np.stack([x + w / 2 + 0.4 * w * np.cos(angle), y + h / 2 + 0.4 * h * np.sin(angle)], 1)
        keypoints = np.concatenate([points, np.ones((68, 1))], 1).reshape(-1).tolist()
        annotations.append({**ann, "keypoints": keypoints, "num_keypoints": 68})
    data = {**cofw, "annotations": annotations}
    for split in ("train", "valid"):
        (root / "annotations" / f"face_landmarks_300w_{split}.json").write_text(json.dumps(data))
    for image in cofw["images"]:
        shutil.copy(FIXTURES / image["file_name"], root / "images" / image["file_name"])
    return root


def fan_weights(modules: int, folder: Path) -> Path:
    torch.manual_seed(0)
    path = folder / f"2DFAN-{modules}.pth.tar"
    torch.save(FAN(modules).state_dict(), path)
    return path


def reference_fan(weights: Path, modules: int) -> FaceAlignment:
    """The package's FaceAlignment with these weights and no detector (boxes are given), built without its
    constructor, which downloads the published weights and a detector."""
    fa = FaceAlignment.__new__(FaceAlignment)
    net = FAN(modules)
    net.load_state_dict(torch.load(weights, weights_only=True))
    fa.face_alignment_net, fa.device, fa.dtype = net.eval(), "cpu", torch.float32
    fa.flip_input, fa.max_batch_size, fa.landmarks_type = True, 8, LandmarksType.TWO_D
    fa.face_detector = SimpleNamespace(reference_scale=195)  # S3FD's, FaceAlignment's default detector
    return fa


def test_landmarks_equal_get_landmarks_from_image(w300_root, tmp_path):
    cfg = load_config(TINY, ["data.dataset=300w", f"data.root={w300_root}"])
    task = build_task(cfg)
    _, splits = task.datasets(seed=0, occlusion=occlusion_plan(cfg, needs_twin=False))
    weights = fan_weights(2, tmp_path)  # two stacked hourglasses (the last one's maps count): 2DFAN-4's
    model = task.external_model(ModelSpec("face_alignment", "2DFAN-2"), weights)  # logic at half the cost
    reference = reference_fan(weights, 2)
    dataset = splits[task.occluded_split]
    ours = model.predict_split(dataset, device=torch.device("cpu"), batch_size=2, progress=lambda n: 0)
    assert len(ours) == 2
    for record, prediction in zip(dataset.records, ours, strict=True):
        x, y, w, h = record.box
        (points,), (scores,), _ = reference.get_landmarks_from_image(
            str(record.image_path), detected_faces=[[x, y, x + w, y + h]], return_landmark_score=True
        )
        rows = np.asarray(prediction["keypoints"]).reshape(68, 3)
        assert np.abs(rows[:, :2] - points).max() <= 0.01
        assert np.allclose(rows[:, 2], scores, atol=1e-3)


def test_eval_scores_300w_and_refuses_other_layouts_in_one_line(w300_root, tmp_path):
    weights = fan_weights(1, tmp_path)
    results, work = tmp_path / "results", tmp_path / "work"
    outputs = ["--set", f"output.results_dir={results}", "--set", f"output.work_dir={work}"]
    base = ["eval", "--model", "face_alignment:2DFAN-1", "--checkpoint", str(weights), "--config", str(TINY)]
    result = runner.invoke(
        app, [*base, "--set", "data.dataset=300w", "--set", f"data.root={w300_root}", *outputs]
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(p.read_text()) for p in (results / "runs").glob("*.json")]
    assert sorted(r["split"] for r in records) == ["clean_val", "occluded_val"]
    for r in records:
        assert r["backbone"] == "face_alignment:2DFAN-1" and r["dataset"] == "300w"
        assert r["metrics"]["NME"] > 0 and r["evaluation"]["checkpoint"] == "2DFAN-1.pth.tar"
    shutil.rmtree(results)
    result = runner.invoke(app, [*base, *outputs])  # the embedded faces: COFW's 29 points
    assert result.exit_code == 2 and result.output.count("error") == 1
    assert "predicts the 68 points of 300W, the splits have the 29 of cofw" in result.output
    assert not results.exists() or not list(results.rglob("*.json"))


@pytest.mark.parametrize(
    ("target", "weights", "fragment"),
    [
        ("3DFAN-4", 4, "a 3D model (with a depth network); only 2D FANs are scored"),
        ("FAN4", 4, "not a face-alignment variant; expected 2DFAN-4"),
        ("2DFAN-4", 1, "does not fit face_alignment:2DFAN-4"),
        ("2DFAN-4", None, "--checkpoint (a local FAN state dict) is required"),
    ],
)
def test_fan_specs_that_cannot_be_scored(target, weights, fragment, w300_root, tmp_path):
    checkpoint = ["--checkpoint", str(fan_weights(weights, tmp_path))] if weights else []
    args = ["eval", "--model", f"face_alignment:{target}", *checkpoint, "--config", str(TINY),
            "--set", "data.dataset=300w", "--set", f"data.root={w300_root}",
            "--set", f"output.results_dir={tmp_path / 'results'}"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and fragment in result.output and result.output.count("error") == 1
