"""Synthetic identities in the real formats, deterministic; occluded twins and the frozen masked split."""

import hashlib

import numpy as np

from harness.core.occlusion import OcclusionSettings
from harness.core.task import OcclusionPlan
from tasks.face_recognition.data import align, pairs_over_folder, read_identity_folder, read_pairs
from tasks.face_recognition.occluders import FaceOccluder, mask_textures
from tasks.face_recognition.synthetic import ensure_synthetic_faces
from tasks.face_recognition.task import FaceRecognitionSettings, FaceRecognitionTask

SMALL = {"train_identities": 5, "train_images": 3, "val_identities": 4, "val_images": 3, "pairs_per_fold": 2}


def digest_tree(folder):
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    a = ensure_synthetic_faces(tmp_path / "a", seed=1, **SMALL)[0].parent
    b = ensure_synthetic_faces(tmp_path / "b", seed=1, **SMALL)[0].parent
    c = ensure_synthetic_faces(tmp_path / "c", seed=2, **SMALL)[0].parent
    assert digest_tree(a) == digest_tree(b)
    assert digest_tree(a).keys() == digest_tree(c).keys() and digest_tree(a) != digest_tree(c)
    assert not [p for p in a.parent.iterdir() if p.name.startswith(".")]  # no temp folder left


def test_written_in_the_real_formats_with_balanced_pairs(tmp_path):
    train_root, val_root, pairs_file = ensure_synthetic_faces(tmp_path, seed=0, **SMALL)
    images, labels, names = read_identity_folder(train_root)
    assert len(names) == 5 and len(images) == 15 and np.bincount(labels).tolist() == [3] * 5
    assert all(i.landmarks is not None for i in images)  # landmarks.txt: aligned with norm_crop
    pairs = read_pairs(pairs_file)
    assert len(pairs) == 40 and sum(p.same for p in pairs) == 20
    val_images, index, same = pairs_over_folder(pairs_file, val_root)
    assert not set(names) & {p.parent.name for p in (i.path for i in val_images)}  # unseen identities
    assert (same == [p.same for p in pairs]).all()
    # A drawn identity's landmarks land near the template after alignment (a sane face geometry).
    aligned, points = align(images[0].load(), images[0].landmarks)
    assert aligned.shape == (112, 112, 3) and np.abs(points[:2] - [[38.3, 51.7], [73.5, 51.5]]).max() < 8


def test_occluder_uses_insightface_masks_and_keeps_the_twin_aligned():
    assert len(mask_textures()) == 4
    rng = np.random.default_rng(0)
    face = rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)
    points = np.array([[38.3, 51.7], [73.5, 51.5], [56.0, 71.7], [41.5, 92.4], [70.7, 92.2]])
    always = FaceOccluder(OcclusionSettings(clean_fraction=0.0, patches_per_person=(1, 1)), ("mask",))
    twin = always(face, points, np.random.default_rng(1))
    changed = (twin != face).any(axis=2)
    assert twin.shape == face.shape and changed[80:100, 45:65].mean() > 0.9  # mouth covered
    assert changed[:30].mean() < 0.01  # forehead untouched: pasted, not shifted
    never = FaceOccluder(OcclusionSettings(clean_fraction=1.0), ("hand",))
    assert np.array_equal(never(face, points, np.random.default_rng(1)), face)
    glasses = FaceOccluder(OcclusionSettings(clean_fraction=0.0, patches_per_person=(1, 1)), ("sunglasses",))
    changed = (glasses(face, points, np.random.default_rng(2)) != face).any(axis=2)
    assert changed[48:55, 35:42].all() and changed[95:].mean() < 0.01  # eyes covered, chin not


def test_masked_split_is_frozen_and_occludes_only_the_second_image(tmp_path, tiny_faces):
    settings = FaceRecognitionSettings(
        synthetic_train_identities=5, synthetic_train_images=3, synthetic_val_identities=4,
        synthetic_val_images=3, synthetic_pairs_per_fold=2, input_size=56,
    )  # fmt: skip
    plan = OcclusionPlan(train=OcclusionSettings(), val=OcclusionSettings(clean_fraction=0.0), val_seed=3)
    task = FaceRecognitionTask(settings, cache_dir=tmp_path)
    train, splits = task.datasets(seed=0, occlusion=plan)
    clean, masked = splits["clean_val"], splits["masked_val"]
    assert len(clean.pairs) == len(masked.pairs) == 40 and (clean.same == masked.same).all()
    folder = masked.images[masked.pairs[0, 1]].path.parent
    before = digest_tree(folder)
    for (a, b), (ma, mb) in zip(clean.pairs, masked.pairs, strict=True):
        assert np.array_equal(masked.aligned(ma), clean.aligned(a))  # first image clean
        assert (masked.aligned(mb) != clean.aligned(b)).any(axis=2).mean() > 0.1  # second one masked
    _, again = FaceRecognitionTask(settings, cache_dir=tmp_path).datasets(seed=0, occlusion=plan)
    assert (
        digest_tree(folder) == before
        and again["masked_val"].images[again["masked_val"].pairs[0, 1]].path.parent == folder
    )
    sample = train[0]
    assert sample["image"].shape == sample["twin"].shape == (3, 56, 56) and sample["label"].item() == 0
    assert -1.0 <= float(sample["image"].min()) and float(sample["image"].max()) <= 1.0
