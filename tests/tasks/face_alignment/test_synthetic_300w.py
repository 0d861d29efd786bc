"""Embedded synthetic faces in 300W's 68-point layout: the COFW faces' own images, annotated with iBUG's
points on the drawn features, read by the real loader, scored by FAN and trained on end to end."""

import hashlib
import json
import math
import shutil

import numpy as np
import pytest
import torch
from face_alignment.models import FAN
from typer.testing import CliRunner

from harness.cli import app
from harness.core.config import CONFIG_ROOT, load_config
from harness.core.errors import ConfigError
from tasks.common.heatmap import flip_order
from tasks.face_alignment.dataset import FaceLandmarks
from tasks.face_alignment.landmarks import W300
from tasks.face_alignment.synthetic import _jaw, _template, ensure_synthetic_faces, ibug_landmarks

runner = CliRunner()
TINY = CONFIG_ROOT / "face_alignment" / "tiny.yaml"
SPLIT = {"split": "val", "num_images": 16, "seed": 0}
# sha256 of cofw_val.json for SPLIT as generated before the 300W variant existed: committed study records
# hash this data, so the COFW variant must not change (its images are checked against the 300W variant's).
COFW_VAL_JSON_SHA256 = "122ebc34534c49d36dc1656510b9d38fd85cafb14b07b50534fc2aa61695bc92"
# 300W index -> COFW index of the same point: brow ends and tops, nose tip, wings and bottom, eye corners,
# mouth corners, lip centres, chin.
SHARED = {17: 0, 19: 4, 21: 2, 22: 3, 24: 6, 26: 1, 30: 20, 31: 18, 33: 21, 35: 19, 36: 8, 39: 10, 42: 11,
          45: 9, 48: 22, 54: 23, 51: 24, 57: 27, 62: 25, 66: 26, 8: 28}  # fmt: skip
# The image-left member of every flip pair, from iBUG's definition (the subject's right side).
IBUG_LEFT = {*range(8), *range(17, 22), 31, 32, *range(36, 42), 48, 49, 50, 58, 59, 60, 61, 67}
# iBUG's runs of points that go from the image left to the right on a frontal face, and (upper, lower) pairs.
LEFT_TO_RIGHT = [range(17), range(17, 22), range(22, 27), range(31, 36), [36, 37, 38, 39], [41, 40],
                 [42, 43, 44, 45], [47, 46], range(48, 55), [59, 58, 57, 56, 55], range(60, 65),
                 [67, 66, 65]]  # fmt: skip
ABOVE = [(37, 41), (38, 40), (43, 47), (44, 46), (49, 59), (50, 58), (51, 57), (52, 56), (53, 55), (27, 28),
         (28, 29), (29, 30), (30, 33), (19, 37), (24, 44), (33, 51)]  # fmt: skip


def _keypoints(ann_file) -> np.ndarray:
    data = json.loads(ann_file.read_text())
    return np.stack([np.reshape(a["keypoints"], (-1, 3)) for a in data["annotations"]])


def _files(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    return ensure_synthetic_faces(root, **SPLIT), ensure_synthetic_faces(root, **SPLIT, layout=W300)


def test_cofw_json_unchanged_and_both_layouts_share_the_images(both):
    (cofw_ann, cofw_images), (w300_ann, w300_images) = both
    assert hashlib.sha256(cofw_ann.read_bytes()).hexdigest() == COFW_VAL_JSON_SHA256
    assert cofw_ann.parent.parent.name == "synthetic_v1_s0_n16_112x112"
    assert w300_ann.parent.parent != cofw_ann.parent.parent  # one cache folder per layout
    cofw_files, w300_files = _files(cofw_images), _files(w300_images)
    assert len(cofw_files) == 16 and cofw_files == w300_files


def test_written_in_300w_format_and_read_by_the_real_loader(both):
    _, (ann_file, image_dir) = both
    data = json.loads(ann_file.read_text())
    assert ann_file.name == "face_landmarks_300w_val.json" and len(data["annotations"]) == 16
    for ann in data["annotations"]:
        assert ann["num_keypoints"] == 68 and len(ann["keypoints"]) == 68 * 3 and len(ann["bbox"]) == 4
    faces = FaceLandmarks(ann_file, image_dir, layout=W300)
    assert len(faces.records) == 16 and faces[0]["target"].shape == (68, 16, 16)
    for record in faces.records:
        points = record.keypoints[:, :2]
        assert (record.keypoints[:, 2] == 2).all() and not record.occluded.any()
        x, y, w, h = record.box
        assert np.allclose(points.min(0), [x, y], atol=0.01)  # the tight box, as iBUG's bb_ground_truth
        assert np.allclose(points.max(0), [x + w, y + h], atol=0.02)
        # Features lie inside the image; the jaw follows the drawn head outline, which (like COFW's chin)
        # may run a few pixels past the border on a face placed near it.
        assert (points[17:] >= 0).all() and (points[17:] < 112).all()
        assert (points[:17] > -0.1 * 112).all() and (points[:17] < 1.1 * 112).all()


def test_same_arguments_give_identical_files(both, tmp_path):
    _, (ann_file, image_dir) = both
    again, again_images = ensure_synthetic_faces(tmp_path, **SPLIT, layout=W300)
    assert again.read_bytes() == ann_file.read_bytes()
    assert _files(again_images) == _files(image_dir)


def test_points_both_layouts_have_coincide(both):
    (cofw_ann, _), (w300_ann, _) = both
    cofw, w300 = _keypoints(cofw_ann), _keypoints(w300_ann)
    assert cofw.shape == (16, 29, 3) and w300.shape == (16, 68, 3)
    ours, theirs = list(SHARED), list(SHARED.values())
    np.testing.assert_allclose(w300[:, ours, :2], cofw[:, theirs, :2], atol=1.001e-3)  # json rounds to 1e-3
    inner_corners, mouth_corners = w300[:, [60, 64], :2], w300[:, [48, 54], :2]
    assert np.abs(inner_corners - mouth_corners).max() <= 1e-9  # where the drawn lips meet


@pytest.mark.parametrize("seed", range(5))
def test_the_frontal_face_follows_ibug_order_and_sides(seed):
    """With no yaw, pitch or roll: the 68 points mirror onto their flip partners, iBUG's left members are on
    the image left, each contour runs in iBUG's order, and the jaw goes from ear level down to the chin (the
    lowest jaw point) and up again."""
    k, _, shape = _template(np.random.default_rng(seed))  # the frontal face before placement
    points = ibug_landmarks(k, _jaw(shape, 0.0, 0.0))
    assert points.shape == (68, 2)
    mirrored = points[flip_order(68, W300.flip_pairs)] * [-1, 1]
    np.testing.assert_allclose(mirrored, points, atol=1e-9)
    for a, b in W300.flip_pairs:
        left, right = (a, b) if a in IBUG_LEFT else (b, a)
        assert right not in IBUG_LEFT and points[left, 0] < points[right, 0], (left, right)
    for run in LEFT_TO_RIGHT:
        assert (np.diff(points[list(run), 0]) > 0).all(), list(run)
    for upper, lower in ABOVE:
        assert points[upper, 1] < points[lower, 1], (upper, lower)
    jaw = points[:17]
    assert int(np.argmax(jaw[:, 1])) == 8
    assert (np.diff(jaw[:9, 1]) > 0).all() and (np.diff(jaw[8:, 1]) < 0).all()
    ear_level = shape["eye_y"] + 0.15
    assert abs(jaw[0, 1] - ear_level) < 1e-9 and abs(jaw[16, 1] - ear_level) < 1e-9


def test_placed_faces_keep_feature_order_along_their_own_axes(both):
    """On every (turned, rolled) face: brows above eyes above the nose tip above the lips above the chin, the
    eyes' points between their corners, and the jaw running across the face from one side to the other."""
    _, (ann_file, _) = both
    for points in _keypoints(ann_file)[:, :, :2]:
        across = points[45] - points[36]
        across /= np.linalg.norm(across)
        down = np.array([-across[1], across[0]])

        def level(indices, points=points, down=down):
            return float(np.mean(points[list(indices)] @ down))

        assert level(range(17, 27)) < level(range(36, 48)) < level([30]) < level(range(48, 60)) < level([8])
        assert (np.diff(points[:17] @ across) > 0).all()
        for corner_a, corner_b, lids in ((36, 39, [37, 38, 40, 41]), (42, 45, [43, 44, 46, 47])):
            t = (points[lids] - points[corner_a]) @ across
            assert (t > 0).all() and (t < (points[corner_b] - points[corner_a]) @ across).all()


def test_the_layout_is_a_synthetic_setting_only():
    cfg = load_config(TINY)
    assert "synthetic_layout" not in cfg.data  # the default is not written: configs and hashes as before
    assert load_config(TINY, ["data.synthetic_layout=cofw"]).hash() == cfg.hash()
    assert load_config(TINY, ["data.synthetic_layout=300w"]).data["synthetic_layout"] == "300w"
    with pytest.raises(ConfigError) as err:
        load_config(TINY, ["data.dataset=300w", "data.root=/nowhere", "data.synthetic_layout=300w"])
    message = str(err.value)
    assert message.startswith("config key 'data.synthetic_layout' cannot apply") and "\n" not in message


def _outputs(tmp_path) -> list[str]:
    sets = [f"output.results_dir={tmp_path / 'results'}", f"output.work_dir={tmp_path / 'work'}"]
    return [x for s in sets for x in ("--set", s)]


def _records(tmp_path) -> list[dict]:
    return [json.loads(p.read_text()) for p in (tmp_path / "results" / "runs").glob("*.json")]


def test_fan_scores_the_300w_variant_on_the_severity_ladder_and_is_refused_on_cofw(tmp_path):
    torch.manual_seed(0)
    weights = tmp_path / "2DFAN-1.pth.tar"
    torch.save(FAN(1).state_dict(), weights)
    small = ["--set", "data.synthetic_val_images=2", "--set", "data.flip_test=false"]  # CPU time
    base = ["eval", "--model", "face_alignment:2DFAN-1", "--checkpoint", str(weights),
            "--task", "face_alignment", "--config", str(TINY), *_outputs(tmp_path), *small]  # fmt: skip
    result = runner.invoke(app, [*base, "--set", "data.synthetic_layout=300w", "--severity", "0,4"])
    assert result.exit_code == 0, result.output
    records = {r["severity"]: r for r in _records(tmp_path)}
    assert sorted(records) == [0, 4] and {r["split"] for r in records.values()} == {"occluded_val"}
    for r in records.values():
        assert r["dataset"] == "synthetic-300w" and r["data"]["nme_normalization"] == [36, 45]
        assert math.isfinite(r["metrics"]["NME"]) and 0 < r["metrics"]["NME"] < 100
    assert records[0]["metrics"]["NME_occluded"] is None  # level 0: no patch
    assert math.isfinite(records[4]["metrics"]["NME_occluded"])  # W300's anchors place the patches on faces
    shutil.rmtree(tmp_path / "results")
    result = runner.invoke(app, base)
    assert result.exit_code == 2 and result.output.count("error") == 1
    assert "the splits have the 29 of cofw" in result.output and "data.synthetic_layout=300w" in result.output
    assert not (tmp_path / "results").exists() or not list((tmp_path / "results").rglob("*.json"))


def test_a_tiny_run_trains_and_scores_on_the_300w_variant(tmp_path):
    args = ["run", "--config", str(TINY), "--method", "clean", "--set", "data.synthetic_layout=300w"]
    result = runner.invoke(app, [*args, *_outputs(tmp_path)])
    assert result.exit_code == 0, result.output
    records = _records(tmp_path)
    assert sorted(r["split"] for r in records) == ["clean_val", "occluded_val"]
    for r in records:
        assert r["dataset"] == "synthetic-300w" and r["data"]["layout"] == "300w"
        assert r["data"]["landmarks"] == 68 and len(r["samples"][0]["prediction"]) == 68 * 3
        assert math.isfinite(r["metrics"]["NME"]) and 0 < r["metrics"]["NME"] < 100
        assert 0 <= r["metrics"]["AUC@0.1"] <= 1
