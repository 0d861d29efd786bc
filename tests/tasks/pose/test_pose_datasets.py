"""MPII (PCKh), CrowdPose (crowd-index AP), OCHuman, detection boxes, visible/occluded metric splits."""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path

import numpy as np
import pytest
from published_formats import (  # noqa: I001  (tests/ is on sys.path through conftest.py)
    CROWDPOSE_ANNOTATION_KEYS,
    CROWDPOSE_IMAGE_KEYS,
    write_crowdpose_root,
)
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from harness.core.errors import ConfigError, DataError
from harness.core.occlusion import OcclusionSettings
from harness.core.task import OcclusionPlan
from tasks.pose.dataset import CocoKeypoints, Detections, MpiiKeypoints
from tasks.pose.evaluation import keypoint_similarity_split, oks_nms
from tasks.pose.keypoints import COCO_OKS_SIGMAS, CROWDPOSE_LAYOUT, MPII_LAYOUT
from tasks.pose.pckh import load_head_boxes, pckh_table
from tasks.pose.task import PoseSettings, PoseTask

PLAN = OcclusionPlan(train=None, val=OcclusionSettings(clean_fraction=0.0), max_patches=40)


def gt_predictions(dataset, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for record in dataset.records:
        kps = record.keypoints.copy()
        if noise:
            kps[:, :2] += rng.normal(0, noise, kps[:, :2].shape)
        kps[:, 2] = 1.0
        out.append(
            {"image_id": record.image_id, "ann_id": record.ann_id, "category_id": 1, "score": 1.0,
             "keypoints": kps.reshape(-1).tolist()}
        )  # fmt: skip
    return out


# --- PCKh -------------------------------------------------------------------------------------------


def test_pckh_matches_a_hand_computation():
    """Two persons, head boxes 10x10 -> head size 0.6 * sqrt(200) = 8.485; PCKh@0.5 radius 4.243."""
    gt = np.zeros((2, 16, 2))
    pred = gt.copy()
    pred[0, 9] = [4.0, 0.0]  # head top, within 4.243
    pred[1, 9] = [5.0, 0.0]  # head top, outside
    pred[0, 10] = [0.0, 0.5]  # right wrist, within 0.1 * 8.485 = 0.85 too
    pred[1, 15] = [3.0, 3.0]  # left wrist, 4.243 -> exactly on the radius (counts, <=)
    pred[0, 6] = [50.0, 0.0]  # pelvis: not scored
    annotated = np.ones((2, 16), bool)
    annotated[1, 0] = False  # right ankle of person 2 not labelled
    boxes = np.array([[[0, 0], [10, 10]], [[5, 5], [15, 15]]], float)
    covered = np.zeros((2, 16), bool)
    covered[:, [9, 15]] = True
    table = pckh_table(pred, gt, annotated, boxes, covered)
    scored = 2 * 14 - 1  # pelvis and thorax out, one unlabelled ankle
    assert table["PCKh"] == pytest.approx(100 * (scored - 1) / scored)
    assert table["PCKh_Head"] == pytest.approx(50.0)
    assert table["PCKh_Wrist"] == pytest.approx(100.0)
    assert table["PCKh_Ankle"] == pytest.approx(100.0)
    # At 0.1: head tops (4, 5 px), the left wrist (4.24) miss; the right wrist (0.5) hits.
    assert table["PCKh@0.1"] == pytest.approx(100 * (scored - 3) / scored)
    assert table["PCKh_occluded"] == pytest.approx(100 * 3 / 4)
    assert table["PCKh_visible"] == pytest.approx(100.0)
    # Visible and occluded add up to the whole: hits and counts.
    n_occ, n_vis = 4, scored - 4
    whole = (table["PCKh_visible"] * n_vis + table["PCKh_occluded"] * n_occ) / scored
    assert whole == pytest.approx(table["PCKh"])


def test_head_boxes_from_mat_file(tmp_path):
    from scipy.io import savemat

    boxes = np.array([[[1, 2], [11, 12]], [[0, 0], [3, 4]], [[5, 5], [6, 6]]], float)
    names = np.empty((1, 16), dtype=object)
    names[0, :] = [np.array([n]) for n in MPII_LAYOUT.keypoints]
    savemat(  # every field of gt_valid.mat as HRNet distributes it
        tmp_path / "gt_valid.mat",
        {"dataset_joints": names, "jnt_missing": np.zeros((16, 3)), "pos_gt_src": np.ones((16, 2, 3)),
         "headboxes_src": np.transpose(boxes, (1, 2, 0))},
    )  # fmt: skip
    np.testing.assert_array_equal(load_head_boxes(tmp_path / "gt_valid.mat", 3), boxes)
    with pytest.raises(DataError, match="3 head boxes for 4 annotated persons"):
        load_head_boxes(tmp_path / "gt_valid.mat", 4)
    savemat(tmp_path / "other.mat", {"something": np.zeros(3)})
    with pytest.raises(DataError, match="no field 'headboxes_src'"):
        load_head_boxes(tmp_path / "other.mat", 3)


# --- MPII -------------------------------------------------------------------------------------------


def test_mpii_fixture_loads_with_center_scale_boxes(mpii_root):
    ann = mpii_root / "annot" / "valid.json"
    entries = json.loads(ann.read_text())
    dataset = MpiiKeypoints(ann, mpii_root / "images", input_size=(256, 256))
    assert len(dataset) == 5 and dataset.spec is MPII_LAYOUT
    first = entries[0]
    side = first["scale"] * 200
    # HRNet's json is MATLAB's 1-based grid: centre and joints move by -1, as HRNet's loader moves them.
    cx, cy = first["center"][0] - 1, first["center"][1] + 15 * first["scale"] - 1
    np.testing.assert_allclose(dataset.records[0].box, [cx - side / 2, cy - side / 2, side, side])
    labelled = np.asarray(first["joints_vis"]) > 0
    np.testing.assert_allclose(
        dataset.records[0].keypoints[labelled, :2], np.asarray(first["joints"], float)[labelled] - 1
    )
    sample = dataset[0]
    assert sample["image"].shape == (3, 256, 256) and sample["target"].shape == (16, 64, 64)
    assert float(sample["target_weight"].sum()) == sum(first["joints_vis"])


def test_mpii_task_scores_ground_truth_at_100_pckh(mpii_root, coco_root):
    settings = PoseSettings(
        dataset="mpii",
        root=str(mpii_root),
        head_boxes=str(mpii_root / "annot" / "head_boxes.json"),
        patch_root=str(coco_root),
        patch_split="val2017",
        input_size=(64, 64),
    )
    task = PoseTask(settings, cache_dir=mpii_root.parent / "cache")
    assert task.primary_metric == "PCKh" and task.num_keypoints == 16
    train, splits = task.datasets(seed=0, occlusion=PLAN)
    metrics = task.evaluate(gt_predictions(splits["clean_val"]), splits["clean_val"])
    assert metrics["PCKh"] == pytest.approx(100.0) and metrics["PCKh@0.1"] == pytest.approx(100.0)
    assert metrics["PCKh_visible"] is None  # raw MPII says nothing about occlusion
    occluded = task.evaluate(gt_predictions(splits["occluded_val"], noise=40.0), splits["occluded_val"])
    assert 0.0 <= occluded["PCKh_occluded"] < 100.0 and occluded["PCKh"] < 100.0


def test_mpii_without_head_boxes_is_one_line_error(mpii_root, coco_root):
    settings = PoseSettings(
        dataset="mpii", root=str(mpii_root), patch_root=str(coco_root), patch_split="val2017"
    )
    task = PoseTask(settings, cache_dir=mpii_root.parent / "cache")
    with pytest.raises(
        DataError, match=r"data.head_boxes: PCKh needs MPII head boxes; .*gt_valid.mat not found"
    ):
        task.datasets(seed=0, occlusion=PLAN)


def test_mpii_wrong_joint_count_names_entry_and_field(tmp_path):
    entries = json.loads(
        (Path(__file__).parents[3].parent / "shared/fixtures/mpii/test_mpii.json").read_text()
    )
    entries[2]["joints"] = entries[2]["joints"][:14]
    bad = tmp_path / "valid.json"
    bad.write_text(json.dumps(entries))
    (tmp_path / "images").mkdir()
    with pytest.raises(DataError, match=r"valid.json: entry 2 field 'joints' has 14 joints, expected 16"):
        MpiiKeypoints(bad, tmp_path / "images")


# --- CrowdPose and OCHuman ----------------------------------------------------------------------------


# crowdIndex per fixture image: 0.15 and 0.8 sit on the two edges of the toolkit's buckets (easy < 0.2,
# hard >= 0.8), where the paper's "0.1" or an inclusive 0.8 would file them elsewhere.
CROWD_INDICES = (0.15, 0.5, 0.8, 0.3)


def crowdpose_root(coco_root: Path, tmp_path: Path) -> Path:
    """The COCO fixture in CrowdPose's published schema (no area, no segmentation)."""
    return write_crowdpose_root(coco_root, tmp_path / "crowdpose", list(CROWD_INDICES))


def pycocotools_ap(ann_file: Path, predictions, image_ids, sigmas) -> float:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann_file))
        dt = gt.loadRes(copy.deepcopy(predictions))
        ev = COCOeval(gt, dt, "keypoints")
        ev.params.kpt_oks_sigmas = sigmas
        ev.params.imgIds = image_ids
        ev.evaluate(), ev.accumulate(), ev.summarize()
    return float(ev.stats[0])


def noisy_predictions(dataset, seed: int) -> list[dict]:
    """Ground truth plus per-person noise of different sizes and scores: OKS spread over the thresholds."""
    rng = np.random.default_rng(seed)
    out = []
    for record in dataset.records:
        kps = record.keypoints.copy()
        kps[:, :2] += rng.normal(0, rng.uniform(0.5, 12.0), kps[:, :2].shape)
        kps[:, 2] = rng.uniform(0.3, 1.0, len(kps))
        out.append({"image_id": record.image_id, "category_id": 1, "keypoints": kps.reshape(-1).tolist(),
                    "score": float(rng.uniform(0.2, 1.0))})  # fmt: skip
    return out


def test_published_crowdpose_json_loads_as_published(coco_root, tmp_path):
    ann = crowdpose_root(coco_root, tmp_path) / "json" / "crowdpose_test.json"
    raw = json.loads(ann.read_text())
    assert {k for a in raw["annotations"] for k in a} == set(
        CROWDPOSE_ANNOTATION_KEYS
    )  # no area, as published
    assert {k for i in raw["images"] for k in i} == set(CROWDPOSE_IMAGE_KEYS)
    dataset = CocoKeypoints(ann, ann.parent.parent / "images", spec=CROWDPOSE_LAYOUT)
    assert dataset.records[0].keypoints.shape == (14, 3)
    for ann_id, gt in dataset.coco.anns.items():  # OKS scale: CrowdPose's 0.53 x box area
        assert gt["area"] == pytest.approx(0.53 * gt["bbox"][2] * gt["bbox"][3]), ann_id


def test_crowdpose_metrics_equal_xtcocotools_keypoints_crowd(coco_root, tmp_path):
    """AP / AP50 / AP75 / AR and AP easy / medium / hard against CrowdPose's own evaluation as mmpose runs it:
    xtcocotools `COCOeval(gt, dt, "keypoints_crowd", sigmas, use_area=False)` on the published json."""
    xtcoco = pytest.importorskip("xtcocotools.coco", reason="xtcocotools comes with the mmpose extra")
    xteval = pytest.importorskip("xtcocotools.cocoeval")
    root = crowdpose_root(coco_root, tmp_path)
    ann = root / "json" / "crowdpose_test.json"
    dataset = CocoKeypoints(ann, root / "images", spec=CROWDPOSE_LAYOUT)
    for seed in (0, 1, 2):
        predictions = noisy_predictions(dataset, seed)
        ours = dataset.evaluate(copy.deepcopy(predictions))
        with contextlib.redirect_stdout(io.StringIO()):
            gt = xtcoco.COCO(str(ann))
            evaluator = xteval.COCOeval(
                gt, gt.loadRes(copy.deepcopy(predictions)), "keypoints_crowd", CROWDPOSE_LAYOUT.sigmas,
                use_area=False,
            )  # fmt: skip
            evaluator.evaluate(), evaluator.accumulate(), evaluator.summarize()
        stats = evaluator.stats  # AP, AP50, AP75, AR, AR50, AR75, AP easy, medium, hard
        assert 0.05 < stats[0] < 0.95, stats  # neither trivial nor empty: the comparison means something
        for name, value in zip(("AP", "AP50", "AP75", "AR"), stats[[0, 1, 2, 3]], strict=True):
            assert ours[name] == pytest.approx(value, abs=1e-12), (seed, name)
        for name, value in zip(("AP_easy", "AP_medium", "AP_hard"), stats[6:9], strict=True):
            assert round(ours[name], 4) == value, (seed, name)  # the toolkit rounds these to 4 decimals


def _hand_crowdpose(tmp_path: Path) -> Path:
    """Two images, one person each, boxes 100 x 200 (OKS scale s^2 = 0.53 * 20000 = 10600), no area."""
    people = [
        {"num_keypoints": 14, "iscrowd": 0,
         "keypoints": [v for j in range(14) for v in (10 + 5 * j, 20 + 10 * j, 2)],
         "image_id": image_id, "bbox": [0.0, 0.0, 100.0, 200.0], "category_id": 1, "id": image_id * 10}
        for image_id in (1, 2)
    ]  # fmt: skip
    images = [
        {"file_name": "a.jpg", "id": 1, "height": 240, "width": 120, "crowdIndex": 0.15},  # easy (< 0.2)
        {"file_name": "b.jpg", "id": 2, "height": 240, "width": 120, "crowdIndex": 0.8},  # hard (>= 0.8)
    ]
    ann = tmp_path / "hand.json"
    ann.write_text(json.dumps({"categories": [CROWDPOSE_LAYOUT.category()], "images": images,
                               "annotations": people}))  # fmt: skip
    return ann


def test_crowdpose_ap_by_hand(tmp_path):
    """Image 1: every joint off by d with d^2 = 2 s^2 k^2 ln(1 / 0.72), so each OKS term and the OKS are
    0.72: a match at thresholds 0.50-0.70 (5 of 10), AP 0.5. Image 2: exact, AP 1. Both: at the five low
    thresholds both match (AP 1); at the five high ones only image 2's pose (score 0.9, ranked first)
    matches, precision 1 up to recall 0.5: 51 of 101 recall points, AP 51/101. With COCO's own area rule
    (area = w * h, s^2 = 20000) image 1's OKS would be 0.72^0.53 = 0.84 and its AP 0.7."""
    from tasks.pose.dataset import load_coco
    from tasks.pose.evaluation import crowd_index_ap, oks_ap

    ann = _hand_crowdpose(tmp_path)
    coco = load_coco(ann, box_area=True)
    kappa_sq = (2 * CROWDPOSE_LAYOUT.sigmas) ** 2
    truth = np.asarray(coco.anns[10]["keypoints"], float).reshape(14, 3)
    shifted = truth.copy()
    shifted[:, 0] += np.sqrt(2 * 10600.0 * kappa_sq * np.log(1 / 0.72))
    shifted[:, 2] = truth[:, 2] = 1.0
    one = {"image_id": 1, "category_id": 1, "keypoints": shifted.reshape(-1).tolist(), "score": 0.8}
    two = {"image_id": 2, "category_id": 1, "keypoints": truth.reshape(-1).tolist(), "score": 0.9}
    assert oks_ap(coco, [one], [1], CROWDPOSE_LAYOUT.sigmas)["AP"] == pytest.approx(0.5)
    assert oks_ap(coco, [one, two], [1, 2], CROWDPOSE_LAYOUT.sigmas)["AP"] == pytest.approx(
        (5 * 1.0 + 5 * 51 / 101) / 10
    )
    buckets = crowd_index_ap(coco, [one, two], [1, 2], CROWDPOSE_LAYOUT.sigmas)
    assert buckets == {"AP_easy": pytest.approx(0.5), "AP_medium": None, "AP_hard": pytest.approx(1.0)}


def test_crowdpose_task_metrics_and_wrong_keypoint_count(coco_root, tmp_path):
    root = crowdpose_root(coco_root, tmp_path)
    task = PoseTask(
        PoseSettings(dataset="crowdpose", root=str(root), patch_root=str(coco_root), patch_split="val2017")
    )
    assert {"AP_easy", "AP_medium", "AP_hard"} <= {m.name for m in task.metrics}
    with pytest.raises(DataError, match=r"annotation \d+ field 'keypoints' has 14 keypoints, expected 17"):
        CocoKeypoints(root / "json" / "crowdpose_test.json", root / "images")


def test_ochuman_as_extra_split_of_a_coco_model(coco_root, tmp_path):
    ochuman = tmp_path / "ochuman"
    ochuman.mkdir()
    source = coco_root / "annotations" / "person_keypoints_val2017.json"
    (ochuman / "ochuman_coco_format_val_range_0.00_1.00.json").write_text(source.read_text())
    (ochuman / "images").symlink_to(coco_root / "val2017")
    settings = PoseSettings(
        dataset="coco",
        root=str(coco_root),
        train_split="val2017",
        extra_val=[{"name": "ochuman_val", "dataset": "ochuman", "root": str(ochuman), "split": "val"}],
    )
    task = PoseTask(settings, cache_dir=tmp_path / "cache")
    _, splits = task.datasets(seed=0, occlusion=PLAN)
    assert set(splits) == {"clean_val", "occluded_val", "ochuman_val"}
    metrics = task.evaluate(gt_predictions(splits["ochuman_val"]), splits["ochuman_val"])
    assert metrics["AP"] == pytest.approx(1.0)
    assert task.provenance()["ochuman_val_annotations"].endswith(
        "ochuman_coco_format_val_range_0.00_1.00.json"
    )
    crowd = {"name": "c", "dataset": "crowdpose", "root": str(ochuman), "split": "val"}
    with pytest.raises(ConfigError, match=r"data.extra_val\[0\].dataset: crowdpose has 14 keypoints"):
        PoseTask(PoseSettings(dataset="coco", extra_val=[crowd]))


# --- Detection boxes ------------------------------------------------------------------------------------


def test_detections_give_records_rescored_and_oks_nms(coco_fixture):
    ann_file, image_dir = coco_fixture
    det_file = image_dir / "test_coco_det_AP_H_56.json"
    detections = json.loads(det_file.read_text())
    dataset = CocoKeypoints(ann_file, image_dir, detections=Detections(det_file, 0.5))
    assert len(dataset) == sum(d["score"] >= 0.5 for d in detections)
    assert dataset.box_source == "detections:test_coco_det_AP_H_56.json@score>=0.5"
    assert dataset[0]["target_weight"].sum() == 0  # no ground truth behind a detected box
    # Predictions: each detection gets the keypoints of the ground-truth person its box overlaps most.
    gt = CocoKeypoints(ann_file, image_dir)
    predictions = []
    for record in dataset.records:
        same = [g for g in gt.records if g.image_id == record.image_id]
        best = max(same, key=lambda g: _iou(g.box, record.box))
        kps = best.keypoints.copy()
        kps[:, 2] = 1.0
        predictions.append(
            {"image_id": record.image_id, "ann_id": record.ann_id, "category_id": 1, "score": record.score,
             "keypoints": kps.reshape(-1).tolist(), "box": record.box.tolist()}
        )  # fmt: skip
    stats = dataset.evaluate(predictions)
    kept = oks_nms(predictions, COCO_OKS_SIGMAS, 0.9)
    assert len(kept) < len(predictions)  # duplicates of one person are suppressed
    assert stats["AP"] == pytest.approx(
        pycocotools_ap(ann_file, kept, sorted(gt.coco.getImgIds()), COCO_OKS_SIGMAS)
    )
    assert stats["AP"] > 0.9


def _iou(a, b) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def test_oks_nms_by_hand():
    pose = np.stack([np.arange(17) * 4.0, np.arange(17) * 2.0, np.ones(17)], axis=1)
    near, far = pose.copy(), pose.copy()
    near[:, 0] += 1.0  # OKS ~ 1 with the first: suppressed
    far[:, 0] += 200.0
    preds = [
        {"image_id": 1, "score": s, "keypoints": p.reshape(-1).tolist(), "box": [0, 0, 100, 100]}
        for s, p in ((0.9, pose), (0.8, near), (0.7, far))
    ]
    preds.append({**preds[1], "image_id": 2})  # other image: never suppressed by image 1
    assert [(p["image_id"], p["score"]) for p in oks_nms(preds, COCO_OKS_SIGMAS, 0.9)] == [
        (1, 0.9), (1, 0.7), (2, 0.8)
    ]  # fmt: skip


def test_detection_file_for_other_images_is_named(coco_fixture, tmp_path):
    ann_file, image_dir = coco_fixture
    bad = tmp_path / "dets.json"
    bad.write_text(json.dumps([{"image_id": 999, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9}]))
    with pytest.raises(
        DataError, match=r"dets.json: detection 0 has image_id 999, not an image of .*test_coco.json"
    ):
        CocoKeypoints(ann_file, image_dir, detections=Detections(bad))


# --- visible / occluded ----------------------------------------------------------------------------------


def test_coco_v1_counts_as_occluded_and_splits_add_up(coco_fixture, tmp_path):
    ann_file, image_dir = coco_fixture
    dataset = CocoKeypoints(ann_file, image_dir)
    predictions = gt_predictions(dataset, noise=5.0, seed=3)
    split = keypoint_similarity_split(dataset.coco, predictions, COCO_OKS_SIGMAS)
    # By hand: every labelled keypoint's OKS term, pooled; v=1 ones are "occluded".
    terms, occluded = [], []
    by_ann = {p["ann_id"]: p for p in predictions}
    for record in dataset.records:
        ann = dataset.coco.anns[record.ann_id]
        gt = np.asarray(ann["keypoints"], float).reshape(17, 3)
        dt = np.asarray(by_ann[record.ann_id]["keypoints"]).reshape(17, 3)
        labelled = gt[:, 2] > 0
        d_sq = ((gt[:, :2] - dt[:, :2]) ** 2).sum(1)
        term = np.exp(-d_sq / (2 * ann["area"] * (2 * COCO_OKS_SIGMAS) ** 2))
        terms += term[labelled].tolist()
        occluded += (gt[labelled, 2] == 1).tolist()
    terms, occluded = np.asarray(terms), np.asarray(occluded)
    assert occluded.sum() == 17  # the fixture's v=1 keypoints
    assert split["kOKS_occluded"] == pytest.approx(terms[occluded].mean())
    assert split["kOKS_visible"] == pytest.approx(terms[~occluded].mean())
    total = split["kOKS_occluded"] * occluded.sum() + split["kOKS_visible"] * (~occluded).sum()
    assert total == pytest.approx(terms.sum())
    stats = dataset.evaluate(gt_predictions(dataset))
    assert stats["AP_visible"] == pytest.approx(1.0) and stats["AP_occluded"] == pytest.approx(1.0)
    noisy = dataset.evaluate(predictions)
    # Reference: pycocotools on a ground-truth copy keeping only that kind of keypoint (v=1 = occluded),
    # persons without one of them left out together with their prediction.
    for kind, keep in (("visible", 2), ("occluded", 1)):
        data = json.loads(ann_file.read_text())
        for ann in data["annotations"]:
            k = np.asarray(ann["keypoints"], float).reshape(-1, 3)
            k[k[:, 2] != keep] = 0
            ann["keypoints"], ann["num_keypoints"] = k.reshape(-1).tolist(), int((k[:, 2] > 0).sum())
        kept = {a["id"] for a in data["annotations"] if a["num_keypoints"] > 0}
        reference = tmp_path / f"{kind}.json"
        reference.write_text(json.dumps(data))
        chosen = [p for p in predictions if p["ann_id"] in kept]
        expected = pycocotools_ap(reference, chosen, dataset.image_ids, COCO_OKS_SIGMAS)
        assert 0.0 < expected < 1.0 and noisy[f"AP_{kind}"] == pytest.approx(expected, abs=1e-12), kind


def test_dslope_on_mpii_through_the_engine_records_pckh(mpii_root, coco_root, tmp_path):
    """Two D-Slope steps on the MPII fixture: records carry PCKh with its direction and the box source."""
    from harness.core.config import CONFIG_ROOT, load_config
    from harness.run.experiment import run_experiment

    overrides = [
        "method=dslope",
        "model.pretrained=null",  # real data: no embedded pretraining split
        "data.dataset=mpii",
        f"data.root={mpii_root}",
        f"data.head_boxes={mpii_root / 'annot' / 'head_boxes.json'}",
        f"data.patch_root={coco_root}",
        "data.patch_split=val2017",
        "data.input_size=[64,64]",
        "model.backbone=hrnet_w18_small",
        "train.batch_size=2",
        "train.max_steps=2",
        "train.num_workers=0",
        "occlusion.max_patches=40",
        f"output.work_dir={tmp_path / 'work'}",
        f"output.results_dir={tmp_path / 'results'}",
    ]
    cfg = load_config(CONFIG_ROOT / "pose" / "default.yaml", overrides)
    outcome = run_experiment(cfg)
    enet = {r.split: r for r in outcome.records if r.network == "enet"}
    assert set(enet) == {"clean_val", "occluded_val"}
    assert enet["clean_val"].dataset == "mpii" and "PCKh" in enet["clean_val"].metrics
    assert enet["clean_val"].higher_is_better["PCKh"] is True
    assert 0.0 <= enet["clean_val"].metrics["PCKh"] <= 100.0
    # The recorded PCKh_occluded is what its prediction file and the occluded json give (a number).
    from harness.models.factory import build_task, occlusion_plan

    occluded = enet["occluded_val"]
    predicted = json.loads((outcome.run_dir / "predictions" / "enet__occluded_val.json").read_text())
    _, splits = build_task(cfg).datasets(seed=cfg.seed, occlusion=occlusion_plan(cfg, True))  # cached
    entries = splits["occluded_val"].entries
    boxes = json.loads((mpii_root / "annot" / "head_boxes.json").read_text())
    rows = sorted(predicted, key=lambda p: p["ann_id"])
    reference = pckh_table(
        np.asarray([np.asarray(p["keypoints"]).reshape(16, 3)[:, :2] for p in rows]),
        np.asarray([entries[p["ann_id"]]["joints"] for p in rows], float) - 1,  # the json is 1-based
        np.asarray([entries[p["ann_id"]]["joints_vis"] for p in rows]) > 0,
        np.asarray([boxes[p["ann_id"]] for p in rows], float),
        np.asarray([entries[p["ann_id"]]["occluded_joints"] for p in rows], bool),
    )
    assert 0.0 <= reference["PCKh_occluded"] <= 100.0
    assert occluded.metrics["PCKh_occluded"] == pytest.approx(reference["PCKh_occluded"], abs=1e-9)
    assert enet["clean_val"].data["keypoint_layout"] == "mpii"


def test_images_missing_from_the_root_are_named(mpii_root, coco_root):
    (coco_root / "val2017" / "000000196141.jpg").unlink()
    with pytest.raises(DataError, match=r"image 000000196141.jpg \(field file_name\) not found in .*val2017"):
        CocoKeypoints(coco_root / "annotations" / "person_keypoints_val2017.json", coco_root / "val2017")
    (mpii_root / "images" / "005808361.jpg").unlink()
    with pytest.raises(DataError, match=r"image 005808361.jpg \(field image\) not found"):
        MpiiKeypoints(mpii_root / "annot" / "valid.json", mpii_root / "images")
