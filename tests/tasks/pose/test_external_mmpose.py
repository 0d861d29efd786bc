"""`harness eval --model mmpose:<config>`: an mmpose top-down model scored as mmpose scores it.

References, both mmpose's own: `mmpose.apis.inference_topdown` on the same image and box (keypoints within
0.5 px), and `CocoMetric` on the harness's prediction file (the recorded AP). The models are random-init
networks of mmpose's configs saved as checkpoints in a temp dir: nothing is downloaded. Skipped where the
mmpose extra is not installed (CI installs it: `make setup-mmpose`).
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip(
    "mmpose", reason="the mmpose extra is not installed: `make setup-mmpose` (CI installs it)"
)

from typer.testing import CliRunner  # noqa: E402

from harness.cli import app  # noqa: E402
from harness.core.config import CONFIG_ROOT, load_config  # noqa: E402
from harness.core.external import ModelSpec  # noqa: E402
from harness.core.portable import resolve_path
from harness.core.task import default_cache_dir
from harness.models.factory import (
    build_task,  # noqa: E402
    occlusion_plan,  # noqa: E402
)
from harness.models.mmpose_imports import import_mmpose_apis, import_mmpose_models  # noqa: E402
from tasks.pose.external_mmpose import resolve_config  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*torch.cuda.amp.autocast:FutureWarning")
runner = CliRunner()
# The smallest heatmap model (LiteHRNet-18, MSRA heatmaps, heatmap flip test) and the smallest SimCC model
# (RTMPose-t, SimCC decoding), so both codec families are checked.
HEATMAP = "td-hm_litehrnet-18_8xb64-210e_coco-256x192"
SIMCC = "rtmpose-t_8xb256-420e_coco-256x192"
TINY = CONFIG_ROOT / "pose" / "tiny.yaml"


def random_checkpoint(name: str, folder: Path) -> Path:
    """A random-init model of mmpose's config `name`, saved as an mmengine-style checkpoint."""
    import_mmpose_models()
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpose.models.builder import build_pose_estimator

    config = Config.fromfile(str(resolve_config(name)))
    init_default_scope("mmpose")
    config.model.backbone.pop("init_cfg", None)
    torch.manual_seed(0)
    model = build_pose_estimator(config.model)
    path = folder / f"{name}.pth"
    torch.save({"state_dict": model.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def pose_data(tmp_path_factory):
    """The tiny embedded pose splits and their task (what `--config configs/pose/tiny.yaml` scores)."""
    cfg = load_config(TINY)
    task = build_task(cfg)
    _, splits = task.datasets(seed=0, occlusion=occlusion_plan(cfg, needs_twin=False))
    return task, splits


@pytest.mark.parametrize("name", [HEATMAP, SIMCC])
def test_keypoints_equal_mmpose_inference_topdown(name, pose_data, tmp_path):
    task, splits = pose_data
    checkpoint = random_checkpoint(name, tmp_path)
    model = task.external_model(ModelSpec("mmpose", name), checkpoint)
    dataset = splits[task.occluded_split]
    ours = model.predict_split(dataset, device=torch.device("cpu"), batch_size=3, progress=lambda n: None)
    apis = import_mmpose_apis()
    reference = apis.init_model(str(resolve_config(name)), str(checkpoint), device="cpu")
    assert len(ours) == len(dataset.records) >= 4
    for record, prediction in zip(dataset.records, ours, strict=True):
        (expected,) = apis.inference_topdown(
            reference, str(record.image_path), np.array([record.box]), "xywh"
        )
        points = np.asarray(prediction["keypoints"]).reshape(-1, 3)
        assert prediction["ann_id"] == record.ann_id and prediction["image_id"] == record.image_id
        assert np.abs(points[:, :2] - expected.pred_instances.keypoints[0]).max() <= 0.5
        assert np.allclose(points[:, 2], expected.pred_instances.keypoint_scores[0], atol=1e-3)
    spread = np.ptp(np.asarray([p["keypoints"] for p in ours]).reshape(len(ours), -1, 3)[..., 0])
    assert spread > 5  # not a degenerate model predicting one point


def _coco_metric_ap(predictions: list[dict], annotations: Path, meta: dict) -> float:
    """mmpose's CocoMetric (xtcocotools) on COCO keypoint results; no OKS-NMS, as for ground-truth boxes in
    the harness (one prediction per annotated person)."""
    from mmpose.evaluation.metrics import CocoMetric

    metric = CocoMetric(ann_file=str(annotations), nms_mode="none")
    metric.dataset_meta = meta
    samples = []
    for index, p in enumerate(predictions):
        rows = np.asarray(p["keypoints"], dtype=np.float64).reshape(-1, 3)
        samples.append({
            "id": index, "img_id": p["image_id"], "category_id": 1,
            "pred_instances": {"keypoints": rows[None, :, :2], "keypoint_scores": rows[None, :, 2]},
            "gt_instances": {"bbox_scores": np.ones(1)},
        })  # fmt: skip
    metric.process([], samples)
    return metric.evaluate(len(samples))["coco/AP"]


def test_eval_records_ap_equal_to_coco_metric_and_no_machine_path(pose_data, tmp_path):
    task, _ = pose_data
    checkpoint = random_checkpoint(HEATMAP, tmp_path)
    results, work = tmp_path / "results", tmp_path / "work"
    args = ["eval", "--model", f"mmpose:{HEATMAP}", "--checkpoint", str(checkpoint), "--config", str(TINY),
            "--set", f"output.results_dir={results}", "--set", f"output.work_dir={work}"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    records = [json.loads(p.read_text()) for p in sorted((results / "runs").glob("*.json"))]
    assert sorted(r["split"] for r in records) == ["clean_val", "occluded_val"]
    model = task.external_model(ModelSpec("mmpose", HEATMAP), checkpoint)
    for record in records:
        assert record["method"] == "external" and record["backbone"] == f"mmpose:{HEATMAP}"
        ev = record["evaluation"]
        assert ev["model"] == f"mmpose:{HEATMAP}" and ev["checkpoint"] == checkpoint.name
        assert ev["checkpoint_sha256"] == record["config"]["model"]["weights_sha256"]
        assert ev["flip_test"] is True and ev["codec"] == "MSRAHeatmap" and ev["input_size"] == [192, 256]
        prediction_file = work / record["predictions"]["file"]
        key = "occluded_val_annotations" if record["split"] == "occluded_val" else None
        stored = record["data"][key] if key else None
        annotations = (
            resolve_path(stored, {"cache": default_cache_dir()}) if key else _clean_annotations(task)
        )
        written = json.loads(prediction_file.read_text())
        assert record["metrics"]["AP"] == pytest.approx(_coco_metric_ap(written, annotations, model.meta))
        for text in (json.dumps(ev), json.dumps(record["config"]), record["predictions"]["file"]):
            assert str(tmp_path) not in text  # spec, weights, outputs: no machine path


def _clean_annotations(task) -> Path:
    (_, _), (val_ann, _) = task._source_files()
    return val_ann


def test_harness_ap_equals_coco_metric_where_the_poses_score(pose_data, tmp_path):
    """A random model scores AP 0 on both sides; so the same comparison on the model's predictions moved
    to the ground truth plus noise of growing size per person (the model's confidences kept), where the
    AP is far from 0 and the ranking by score matters."""
    task, splits = pose_data
    checkpoint = random_checkpoint(HEATMAP, tmp_path)
    model = task.external_model(ModelSpec("mmpose", HEATMAP), checkpoint)
    dataset = splits[task.clean_split]
    predictions = model.predict_split(dataset, device=torch.device("cpu"), batch_size=4, progress=lambda n: 0)
    rng = np.random.default_rng(0)
    for index, (record, p) in enumerate(zip(dataset.records, predictions, strict=True)):
        rows = np.asarray(p["keypoints"]).reshape(-1, 3)
        rows[:, :2] = record.keypoints[:, :2] + rng.normal(0, 1.5 * index, (len(rows), 2))
        p["keypoints"] = [round(float(v), 3) for v in rows.reshape(-1)]
    ours = task.evaluate(predictions, dataset)["AP"]
    written = tmp_path / "moved.json"
    task.write_predictions(predictions, dataset, written)
    assert 0.2 < ours < 1.0
    assert ours == pytest.approx(_coco_metric_ap(json.loads(written.read_text()), _clean_annotations(task),
                                                 model.meta))  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "weights", "fragment"),
    [
        ("mmpose:dekr_hrnet-w32_8xb10-140e_coco-512x512", None, "a BottomupPoseEstimator (bottom-up, 3D"),
        ("mmpose:image-pose-lift_tcn_8xb64-200e_h36m", None, "a PoseLifter (bottom-up, 3D or another kind)"),
        ("mmpose:td-hm_litehrnet-18_8xb64-210e_mpii-256x256", None, "predicts the 16 keypoints of mpii, the "
         "splits have the 17 of coco (a layout the model does not predict)"),
        (f"mmpose:{HEATMAP}", SIMCC, "does not fit the model of mmpose:td-hm_litehrnet-18"),
        (f"mmpose:{HEATMAP}", "corrupt", "is corrupt or unsafe"),
        ("mmpose:td-hm_litehrnet-18_coco", None, "no such config in mmpose's configs (did you mean"),
        ("mmpose:/no/such/config.py", None, "no config file at /no/such/config.py"),
    ],
)  # fmt: skip
def test_models_that_cannot_be_scored_fail_in_one_line(spec, weights, fragment, tmp_path):
    if weights == "corrupt":
        checkpoint = tmp_path / "corrupt.pth"
        checkpoint.write_bytes(b"not a checkpoint")
    else:
        checkpoint = random_checkpoint(weights or HEATMAP, tmp_path)
    results, work = tmp_path / "results", tmp_path / "w"
    args = ["eval", "--model", spec, "--checkpoint", str(checkpoint), "--config", str(TINY),
            "--set", f"output.results_dir={results}", "--set", f"output.work_dir={work}"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert fragment in result.output and result.output.count("error") == 1, result.output
    assert not list(results.rglob("*.json"))


def test_an_mmpose_spec_needs_its_checkpoint(tmp_path):
    result = runner.invoke(app, ["eval", "--model", f"mmpose:{HEATMAP}", "--task", "pose"])
    assert result.exit_code == 2 and "--checkpoint (a local .pth of the model) is required" in result.output
