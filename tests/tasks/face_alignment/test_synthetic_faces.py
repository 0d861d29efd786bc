"""Embedded synthetic faces: deterministic per seed, COFW's json format, landmarks on their features."""

import hashlib
import json

import numpy as np
import pytest

from tasks.common.heatmap import flip_order
from tasks.face_alignment.dataset import FaceLandmarks
from tasks.face_alignment.landmarks import COFW
from tasks.face_alignment.synthetic import _template, draw_face_image, ensure_synthetic_faces


def _digest(folder) -> str:
    sha = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        sha.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    return sha.hexdigest()


def test_same_seed_gives_byte_identical_files_and_another_seed_does_not(tmp_path):
    first = ensure_synthetic_faces(tmp_path / "a", split="val", num_images=6, seed=0)
    again = ensure_synthetic_faces(tmp_path / "b", split="val", num_images=6, seed=0)
    other = ensure_synthetic_faces(tmp_path / "c", split="val", num_images=6, seed=1)
    train = ensure_synthetic_faces(tmp_path / "a", split="train", num_images=6, seed=0)
    assert first[0].read_bytes() == again[0].read_bytes()
    assert _digest(first[1]) == _digest(again[1])
    assert _digest(first[1]) != _digest(other[1])
    assert first[0].read_bytes() != train[0].read_bytes()  # each split draws from its own seed
    stamp = first[0].stat().st_mtime_ns
    assert ensure_synthetic_faces(tmp_path / "a", split="val", num_images=6, seed=0) == first
    assert first[0].stat().st_mtime_ns == stamp  # generated once, then reused


def test_written_in_cofw_format_and_read_by_the_real_loader(tmp_path):
    ann_file, image_dir = ensure_synthetic_faces(tmp_path, split="val", num_images=8, seed=0)
    data = json.loads(ann_file.read_text())
    assert ann_file.name == "cofw_val.json" and len(data["images"]) == len(data["annotations"]) == 8
    assert data["categories"][0]["name"] == "face" and len(data["categories"][0]["keypoints"]) == 29
    faces = FaceLandmarks(ann_file, image_dir, layout=COFW)
    for record in faces.records:
        assert (record.keypoints[:, 2] == 2).all() and not record.occluded.any()
        x, y, w, h = record.box
        inside = (record.keypoints[:, 0] >= x) & (record.keypoints[:, 0] <= x + w)
        inside &= (record.keypoints[:, 1] >= y) & (record.keypoints[:, 1] <= y + h)
        assert inside.all()  # the COFW-style box holds every landmark
        assert (record.keypoints[:, :2] >= 0).all() and (record.keypoints[:, :2] < 112).all()
    assert faces[0]["target"].shape == (29, 16, 16)


@pytest.mark.parametrize("seed", range(5))
def test_the_frontal_template_is_mirror_symmetric_under_the_cofw_flip_pairs(seed):
    """Before gaze and pose, landmark a mirrored across the midline lands on its flip partner."""
    points, depth, shape = _template(np.random.default_rng(seed))
    order = flip_order(29, COFW.flip_pairs)
    pupils = [16, 17]  # gaze moves both pupils the same way, so they are mirror images only up to it
    rest = [i for i in range(29) if i not in pupils]
    mirrored = points[order] * [-1, 1]
    np.testing.assert_allclose(mirrored[rest], points[rest], atol=1e-9)
    np.testing.assert_allclose(depth[order], depth)
    assert np.abs(mirrored[pupils] - points[pupils]).max() < 2 * 0.35 * shape["eye_w"] + 1e-9


def test_faces_vary_and_the_features_keep_their_order():
    """Across faces: pose and size vary; on every face the brows are above the eyes, the eyes above the
    nose, the nose above the mouth and the mouth above the chin (along the face's own vertical axis)."""
    sizes, yaws = [], []
    for seed in range(30):
        image, k, box = draw_face_image(np.random.default_rng(seed), 112, 112)
        assert image.shape == (112, 112, 3) and image.std() > 10
        down = k[28] - (k[16] + k[17]) / 2
        down /= np.linalg.norm(down)

        def level(indices, k=k, down=down):
            return float(np.mean(k[list(indices)] @ down))

        assert level([4, 6]) < level([16, 17]) < level([20]) < level([24]) < level([27]) < level([28])
        sizes.append(box[3])
        # Yaw moves the nose tip towards one eye: its offset from the eyes' midpoint, across the face.
        across = np.array([down[1], -down[0]])
        yaws.append(float((k[20] - (k[8] + k[9]) / 2) @ across / np.linalg.norm(k[8] - k[9])))
    assert np.ptp(sizes) > 15 and min(yaws) < -0.1 < 0.1 < max(yaws)
