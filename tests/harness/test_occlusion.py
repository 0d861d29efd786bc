"""Patch library (cut from real COCO person masks) and the seeded occluded twin."""

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from harness.core.errors import ConfigError, DataError
from harness.core.occlusion import OcclusionSettings, Patch, PatchLibrary, occluded_twin
from tasks.pose.keypoints import COCO_BODY_PARTS, COCO_OCCLUSION_ANCHORS
from tasks.pose.patches import cut_body_part_patches

REPO = Path(__file__).resolve().parents[2]
COCO = Path(os.environ.get("HARNESS_FIXTURES", REPO.parent / "shared" / "fixtures")) / "coco"
LIMBS = {name for name, indices in COCO_BODY_PARTS.items() if len(indices) == 2}

BACKGROUND = (1, 254, 3)  # a colour no patch below uses
PATCH_COLOUR = (200, 40, 90)


@pytest.fixture(scope="module")
def coco_library() -> PatchLibrary:
    if not COCO.is_dir():
        pytest.fail(f"real-format fixtures missing at {COCO}")
    return cut_body_part_patches(COCO / "test_coco.json", COCO, parts=COCO_BODY_PARTS)


def disk_library(size: int = 41) -> PatchLibrary:
    """One patch: an opaque disk of PATCH_COLOUR in a transparent (black) square."""
    yy, xx = np.mgrid[:size, :size]
    disk = (yy - size // 2) ** 2 + (xx - size // 2) ** 2 <= (size // 2) ** 2
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[disk] = (*PATCH_COLOUR, 255)
    return PatchLibrary([Patch(rgba=rgba, part="disk")])


def constant_image(height: int = 192, width: int = 160) -> np.ndarray:
    return np.full((height, width, 3), BACKGROUND, np.uint8)


# --- the library ---------------------------------------------------------------------------------------


def test_library_from_real_coco_has_limbs_and_heads(coco_library):
    parts = coco_library.part_counts()
    assert len(coco_library) > 20
    assert parts.get("head", 0) > 0 and LIMBS & set(parts)
    assert set(parts) <= set(COCO_BODY_PARTS)
    for patch in coco_library:
        alpha, colour = patch.rgba[..., 3], patch.rgba[..., :3]
        assert patch.rgba.dtype == np.uint8 and min(patch.rgba.shape[:2]) >= 8
        assert set(np.unique(alpha)) <= {0, 255} and (alpha > 0).sum() >= 64
        assert not colour[alpha == 0].any()  # colour outside the mask is zeroed
        # The cut-out is tight: every border row and column touches the mask.
        assert alpha[0].any() and alpha[-1].any() and alpha[:, 0].any() and alpha[:, -1].any()


def test_library_is_deterministic_and_subsamples_with_the_seed(coco_library):
    again = cut_body_part_patches(COCO / "test_coco.json", COCO, parts=COCO_BODY_PARTS, seed=7)
    assert again.digest() == coco_library.digest()  # everything fits: the seed plays no role

    def subset(seed):
        return cut_body_part_patches(
            COCO / "test_coco.json", COCO, parts=COCO_BODY_PARTS, max_patches=10, seed=seed
        )

    first, second, other = subset(0), subset(0), subset(1)
    assert len(first) == 10 and first.digest() == second.digest() != other.digest()
    full = {PatchLibrary([p]).digest() for p in coco_library}
    assert {PatchLibrary([p]).digest() for p in first} <= full


def test_save_load_round_trip_without_pickle(coco_library, tmp_path, monkeypatch):
    path = tmp_path / "cache" / "patches.npz"
    coco_library.save(path)
    assert [p.name for p in path.parent.iterdir()] == ["patches.npz"]  # no temp file left behind

    calls = []
    real_load = np.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("allow_pickle"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(np, "load", spy)
    loaded = PatchLibrary.load(path)
    assert calls == [False]
    assert loaded.digest() == coco_library.digest() and len(loaded) == len(coco_library)
    assert [p.part for p in loaded] == [p.part for p in coco_library]


def test_load_refuses_pickled_objects_and_garbage(tmp_path):
    pickled = tmp_path / "pickled.npz"
    np.savez(
        pickled,
        version=np.array(1),
        shapes=np.zeros((1, 2), np.int64),
        pixels=np.zeros(0, np.uint8),
        parts=np.array(["head"], dtype=object),
    )
    with pytest.raises(DataError, match="pickled.npz"):
        PatchLibrary.load(pickled)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="garbage.npz"):
        PatchLibrary.load(garbage)


def test_empty_library_round_trips(tmp_path):
    PatchLibrary([]).save(tmp_path / "empty.npz")
    assert len(PatchLibrary.load(tmp_path / "empty.npz")) == 0


def _write_rle_coco(tmp_path: Path, compressed: bool) -> tuple[Path, np.ndarray, np.ndarray]:
    """One synthetic person: a plus-shaped mask of stripes, with an RLE segmentation."""
    height, width = 120, 100
    image = np.full((height, width, 3), BACKGROUND, np.uint8)
    image[..., 0] = np.arange(width, dtype=np.uint8)[None, :]  # distinct colours inside the person
    mask = np.zeros((height, width), np.uint8)
    mask[10:110, 40:60] = 1  # body: a vertical bar
    mask[30:45, 15:85] = 1  # arms: a horizontal bar
    image[mask == 0] = BACKGROUND
    cv2.imwrite(str(tmp_path / "person.png"), image)
    rle = mask_utils.encode(np.asfortranarray(mask))
    if compressed:
        segmentation = {"size": [height, width], "counts": rle["counts"].decode()}
    else:  # uncompressed: run lengths of the column-major mask, starting with a run of zeros
        flat = mask.flatten(order="F")
        edges = np.flatnonzero(np.diff(flat)) + 1
        runs = np.diff(np.concatenate([[0], edges, [flat.size]]))
        segmentation = {"size": [height, width], "counts": ([0] if flat[0] else []) + runs.tolist()}
    keypoints = [50, 15, 2, 20, 38, 2, 80, 38, 2, 50, 100, 2, 0, 0, 0]
    data = {
        "images": [{"id": 1, "file_name": "person.png", "height": height, "width": width}],
        "annotations": [
            {
                "id": 5,
                "image_id": 1,
                "category_id": 1,
                "iscrowd": 0,
                "segmentation": segmentation,
                "keypoints": keypoints,
                "num_keypoints": 4,
                "bbox": [15, 10, 70, 100],
            }
        ],
        "categories": [{"id": 1, "name": "person"}],
    }
    ann_file = tmp_path / "ann.json"
    ann_file.write_text(json.dumps(data))
    return ann_file, image, mask


@pytest.mark.parametrize("compressed", [True, False], ids=["rle", "uncompressed-rle"])
def test_rle_segmentation_is_cut(tmp_path, compressed):
    ann_file, image, mask = _write_rle_coco(tmp_path, compressed)
    parts = {
        "arm_span": (1, 2),
        "spine": (0, 3),
        "upper_body": (0, 1, 2),
        "needs_4": (1, 4),
        "body": (0, 1, 2, 4),
    }
    library = cut_body_part_patches(ann_file, tmp_path, parts=parts)
    # (1, 4): a limb with an unlabelled end is skipped; (0, 1, 2, 4): a region with 3 labelled points is kept.
    assert [p.part for p in library] == ["arm_span", "spine", "upper_body", "body"]
    for patch in library:
        alpha = patch.rgba[..., 3] > 0
        assert alpha.sum() >= 64
        # Only person pixels are cut: nothing of the background colour is opaque.
        assert not np.all(patch.rgba[..., :3] == BACKGROUND, axis=-1)[alpha].any()
    # The horizontal limb spans the arms: wider than tall, and inside the 70 px arm bar.
    arm = library[0].rgba
    assert arm.shape[1] > arm.shape[0] and arm.shape[1] <= 70


def test_bad_parts_are_rejected():
    with pytest.raises(ConfigError, match="single"):
        cut_body_part_patches(COCO / "test_coco.json", COCO, parts={"single": (3,)})


# --- the occluded twin ---------------------------------------------------------------------------------


def _grid_keypoints(anchor_xy, height=192, width=160, step=6) -> np.ndarray:
    """Keypoint 0 at the anchor, then a labelled grid over the whole image."""
    ys, xs = np.mgrid[2:height:step, 3:width:step]
    grid = np.stack([xs.ravel(), ys.ravel(), np.full(xs.size, 2)], axis=1).astype(float)
    return np.concatenate([[[*anchor_xy, 2.0]], grid])


def test_twin_changes_only_the_pasted_patch_and_flags_covered_keypoints():
    library = disk_library()
    settings = OcclusionSettings(clean_fraction=0.0, patches_per_person=(1, 3), size_range=(0.25, 0.5))
    anchor = (70.0, 100.0)
    keypoints = _grid_keypoints(anchor)
    box = [30, 20, 100, 160]
    for seed in range(25):
        image = constant_image()
        before = image.copy()
        twin, covered = occluded_twin(
            image, keypoints, box, library, np.random.default_rng(seed), anchors=[0], settings=settings
        )
        np.testing.assert_array_equal(image, before)
        changed = np.any(twin != image, axis=-1)
        assert changed.any()
        # Every changed pixel is patch colour (alpha=0 pixels were not pasted) and lies in the disk's
        # footprint: radius at most half the largest patch side, around the anchor, whatever the rotation.
        np.testing.assert_array_equal(twin[changed], np.broadcast_to(PATCH_COLOUR, (changed.sum(), 3)))
        yy, xx = np.nonzero(changed)
        assert np.hypot(xx - anchor[0], yy - anchor[1]).max() <= 0.5 * 0.5 * 160 + 1.5
        # Covered = under the pasted alpha, which here is exactly where the twin changed.
        ix, iy = keypoints[:, 0].astype(int), keypoints[:, 1].astype(int)
        np.testing.assert_array_equal(covered, changed[iy, ix])
        assert covered[0] and covered.sum() < len(covered)


def test_covered_needs_a_label_and_far_keypoints_stay_uncovered():
    library = PatchLibrary([Patch(rgba=np.full((10, 10, 4), 255, np.uint8), part="square")])
    settings = OcclusionSettings(
        clean_fraction=0.0, patches_per_person=(1, 1), size_range=(0.2, 0.2), max_rotation=0
    )
    keypoints = np.array([[80, 96, 2], [80, 96, 0], [84, 99, 1], [5, 5, 2], [400, 96, 2]], dtype=float)
    twin, covered = occluded_twin(
        constant_image(),
        keypoints,
        [40, 16, 80, 160],
        library,
        np.random.default_rng(0),
        anchors=[0],
        settings=settings,
    )
    assert covered.tolist() == [True, False, True, False, False]
    changed = np.any(twin != constant_image(), axis=-1)
    yy, xx = np.nonzero(changed)
    assert (yy.max() - yy.min() + 1, xx.max() - xx.min() + 1) == (32, 32)  # 0.2 * 160, no rotation


def test_box_centre_is_the_fallback_anchor_and_borders_clip():
    library = disk_library()
    settings = OcclusionSettings(clean_fraction=0.0, patches_per_person=(1, 1), size_range=(0.3, 0.3))
    unlabelled = np.array([[10, 10, 0]], dtype=float)
    twin, covered = occluded_twin(
        constant_image(),
        unlabelled,
        [60, 80, 40, 100],
        library,
        np.random.default_rng(0),
        anchors=[0],
        settings=settings,
    )
    yy, xx = np.nonzero(np.any(twin != constant_image(), axis=-1))
    assert abs(xx.mean() - 80) < 1 and abs(yy.mean() - 130) < 1 and not covered.any()
    corner = np.array([[0, 0, 2]], dtype=float)
    twin, covered = occluded_twin(
        constant_image(),
        corner,
        [0, 0, 100, 150],
        library,
        np.random.default_rng(0),
        anchors=[0],
        settings=settings,
    )
    assert covered.all() and np.any(twin != constant_image(), axis=-1)[0, 0]


def test_clean_fraction_one_and_zero(coco_library):
    image = cv2.imread(str(COCO / "000000000785.jpg"))
    ann = json.loads((COCO / "test_coco.json").read_text())["annotations"][0]
    keypoints = np.asarray(ann["keypoints"], dtype=float).reshape(-1, 3)
    anchors = COCO_OCCLUSION_ANCHORS
    for seed in range(10):
        twin, covered = occluded_twin(
            image,
            keypoints,
            ann["bbox"],
            coco_library,
            np.random.default_rng(seed),
            anchors=anchors,
            settings=OcclusionSettings(clean_fraction=1.0),
        )
        assert twin is not image and np.array_equal(twin, image) and not covered.any()
        twin, covered = occluded_twin(
            image,
            keypoints,
            ann["bbox"],
            coco_library,
            np.random.default_rng(seed),
            anchors=anchors,
            settings=OcclusionSettings(clean_fraction=0.0),
        )
        assert not np.array_equal(twin, image) and covered.shape == (17,)
        assert covered[list(anchors)].any()  # a patch is centred on a labelled anchor


def test_same_rng_state_gives_the_same_twin(coco_library):
    image = cv2.imread(str(COCO / "000000000785.jpg"))
    keypoints = np.asarray(
        json.loads((COCO / "test_coco.json").read_text())["annotations"][0]["keypoints"], dtype=float
    ).reshape(-1, 3)
    settings = OcclusionSettings(clean_fraction=0.0)

    def twin(seed):
        return occluded_twin(
            image,
            keypoints,
            [280, 44, 218, 346],
            coco_library,
            np.random.default_rng(seed),
            anchors=COCO_OCCLUSION_ANCHORS,
            settings=settings,
        )

    (a, covered_a), (b, covered_b), (c, _) = twin(3), twin(3), twin(4)
    assert a.tobytes() == b.tobytes() and np.array_equal(covered_a, covered_b)
    assert a.tobytes() != c.tobytes()


def test_default_clean_fraction_is_about_a_third():
    library = disk_library(9)
    image = constant_image(48, 40)
    keypoints = np.array([[20, 24, 2]], dtype=float)
    clean = sum(
        np.array_equal(
            occluded_twin(
                image,
                keypoints,
                [5, 5, 30, 38],
                library,
                np.random.default_rng(seed),
                anchors=[0],
                settings=OcclusionSettings(),
            )[0],
            image,
        )
        for seed in range(300)
    )
    assert 0.25 <= clean / 300 <= 0.42


@pytest.mark.parametrize(
    "kwargs",
    [
        {"clean_fraction": 1.5},
        {"patches_per_person": (3, 1)},
        {"size_range": (0.0, 0.5)},
        {"max_rotation": -1},
    ],
)
def test_bad_settings_are_rejected(kwargs):
    with pytest.raises(ConfigError, match="occlusion"):
        OcclusionSettings(**kwargs)


def test_empty_library_cannot_occlude():
    with pytest.raises(DataError, match="empty"):
        occluded_twin(
            constant_image(),
            np.zeros((1, 3)),
            [0, 0, 10, 10],
            PatchLibrary([]),
            np.random.default_rng(0),
            anchors=[0],
            settings=OcclusionSettings(clean_fraction=0.0),
        )
