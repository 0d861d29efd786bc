"""Occluded twins of faces: pixel-aligned with the clean crop, `covered` flags right, frozen split cached."""

import json

import cv2
import numpy as np
import pytest

from harness.core.occlusion import OcclusionSettings, Patch, PatchLibrary, occluded_twin
from tasks.common import heatmap
from tasks.common.heatmap import flip_order
from tasks.face_alignment.dataset import Augmentation, FaceLandmarks, TwinSource
from tasks.face_alignment.landmarks import COFW
from tasks.face_alignment.occluded_val import build_occluded_split
from tasks.face_alignment.occluders import face_patch_library, insightface_mask_images

BACKGROUND = (1, 254, 3)
PATCH = (200, 40, 90)


def disk_library(part: str = "hand", size: int = 41) -> PatchLibrary:
    yy, xx = np.mgrid[:size, :size]
    disk = (yy - size // 2) ** 2 + (xx - size // 2) ** 2 <= (size // 2) ** 2
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[disk] = (*PATCH, 255)
    return PatchLibrary([Patch(rgba=rgba, part=part)])


@pytest.fixture
def flat_face(tmp_path):
    """One face (a grid of 29 landmarks) on a constant image, in COFW's json format."""
    image = np.full((120, 100, 3), BACKGROUND, np.uint8)
    cv2.imwrite(str(tmp_path / "face.png"), image)
    xs, ys = np.meshgrid(np.linspace(25, 75, 6), np.linspace(25, 95, 5))
    points = np.stack([xs.ravel()[:29], ys.ravel()[:29], np.full(29, 2.0)], 1)
    data = {
        "images": [{"id": 1, "file_name": "face.png", "height": 120, "width": 100}],
        "annotations": [
            {"id": 1, "image_id": 1, "bbox": [20, 20, 60, 80], "keypoints": points.ravel().tolist()}
        ],
    }
    (tmp_path / "faces.json").write_text(json.dumps(data))
    return tmp_path / "faces.json", tmp_path


def test_twin_is_pixel_aligned_and_covered_flags_match_the_patch(flat_face):
    ann_file, image_dir = flat_face
    settings = OcclusionSettings(clean_fraction=0.0, patches_per_person=(2, 2), size_range=(0.3, 0.4))
    data = FaceLandmarks(
        ann_file,
        image_dir,
        layout=COFW,
        input_size=(64, 64),
        augmentation=Augmentation(rotation_prob=1.0, shift_factor=0.05, flip=True),
        twins=TwinSource(disk_library(), settings, COFW.anchors, COFW.part_anchors),
    )
    record = data.records[0]
    image = cv2.imread(str(image_dir / "face.png"))
    checked = flips = 0
    for epoch in range(12):
        data.set_epoch(epoch)
        sample = data[0]
        clean, twin = sample["image"].numpy(), sample["twin"].numpy()
        changed = np.abs(clean - twin).max(axis=0) > 1e-4
        # Outside the pasted disks the twin is the clean crop, pixel for pixel.
        assert changed.any() and not changed.all()
        # Landmarks (in crop pixels, flip order applied) are inside the disks exactly when flagged covered.
        # Replay the sample's draws (twin first, then the crop) to learn whether it was flipped.
        rng = np.random.default_rng((0, epoch, 0))
        occluded_twin(
            image,
            record.keypoints,
            record.box,
            data.twins.library,
            rng,
            anchors=COFW.anchors,
            part_anchors=COFW.part_anchors,
            settings=settings,
        )
        flips += data.crop_geometry(0, rng)[3]
        covered = sample["covered"].numpy()
        coords, _ = heatmap.decode_heatmaps(sample["target"][None], "dark")
        points = heatmap.heatmap_to_input(coords[0].numpy(), 4)
        inside = sample["target_weight"].numpy() > 0
        for k in np.flatnonzero(inside):
            x, y = np.round(points[k]).astype(int)
            window = changed[max(0, y - 1) : y + 2, max(0, x - 1) : x + 2]
            if window.all() or not window.any():  # away from a disk's rim, where rounding can differ
                assert covered[k] == window.all(), (epoch, k)
                checked += 1
        assert covered.any() or not changed.any()
    assert checked > 200 and 0 < flips < 12


def test_occluded_twin_of_the_default_library_covers_landmarks(tmp_path, flat_face):
    ann_file, image_dir = flat_face
    library = face_patch_library(40, seed=0, cache_dir=tmp_path / "patches")
    assert library.part_counts() == {"hand": 14, "object": 10, "sunglasses": 8, "mask": 8}
    again = face_patch_library(40, seed=0, cache_dir=tmp_path / "patches")
    assert again.digest() == library.digest() and len(list((tmp_path / "patches").glob("*.npz"))) == 1
    assert face_patch_library(40, seed=1).digest() != library.digest()
    assert len(insightface_mask_images()) == 4
    data = FaceLandmarks(
        ann_file,
        image_dir,
        layout=COFW,
        twins=TwinSource(
            library,
            OcclusionSettings(clean_fraction=0.0, size_range=(0.4, 0.7)),
            COFW.anchors,
            COFW.part_anchors,
        ),
    )
    covered = []
    for epoch in range(8):
        data.set_epoch(epoch)
        covered.append(data[0]["covered"].sum().item())
    assert max(covered) > 0


def test_sunglasses_land_on_the_eyes_and_masks_on_the_mouth(flat_face):
    """Part anchors: with one sunglasses patch, only landmarks near the inner eye corners get covered."""
    ann_file, image_dir = flat_face
    data = json.loads(ann_file.read_text())
    points = np.asarray(data["annotations"][0]["keypoints"], float).reshape(29, 3)
    settings = OcclusionSettings(
        clean_fraction=0.0, patches_per_person=(1, 1), size_range=(0.1, 0.1), max_rotation=0
    )
    image = cv2.imread(str(image_dir / "face.png"))
    for part, anchors in (("sunglasses", (10, 11)), ("mask", (21, 24, 25, 26))):
        hits = set()
        for seed in range(10):
            _, covered = occluded_twin(
                image,
                points,
                [20, 20, 60, 80],
                disk_library(part),
                np.random.default_rng(seed),
                anchors=COFW.anchors,
                part_anchors=COFW.part_anchors,
                settings=settings,
            )
            hits |= set(np.flatnonzero(covered).tolist())
        assert hits and hits <= set(anchors), (part, hits)


def test_frozen_occluded_split_is_built_once_and_marks_covered_landmarks(flat_face, tmp_path):
    ann_file, image_dir = flat_face
    library = disk_library()
    settings = OcclusionSettings(clean_fraction=0.0, size_range=(0.4, 0.5))
    args = {"library": library, "settings": settings, "layout": COFW, "seed": 3}
    occ_ann, occ_images = build_occluded_split(ann_file, image_dir, tmp_path / "occ", **args)
    stamp = occ_ann.stat().st_mtime_ns
    again, _ = build_occluded_split(ann_file, image_dir, tmp_path / "occ", **args)
    assert again == occ_ann and occ_ann.stat().st_mtime_ns == stamp  # cached, not rebuilt
    other, _ = build_occluded_split(ann_file, image_dir, tmp_path / "occ", **{**args, "seed": 4})
    assert other != occ_ann
    data = json.loads(occ_ann.read_text())
    flags = np.asarray(data["annotations"][0]["occluded_keypoints"], bool)
    image = cv2.imread(str(occ_images / data["images"][0]["file_name"]))
    points = np.asarray(data["annotations"][0]["keypoints"]).reshape(29, 3)
    rounded = np.floor(points[:, :2] + 0.5).astype(int)
    painted = np.array([tuple(image[y, x]) == PATCH for x, y in rounded])
    assert flags.any() and (flags == painted).all()
    # The loader reads them back as occluded landmarks; flipping keeps the flags with their landmarks.
    occluded = FaceLandmarks(occ_ann, occ_images, layout=COFW)
    assert (occluded.records[0].occluded == flags).all()
    assert sorted(flip_order(29, COFW.flip_pairs)) == list(range(29))
