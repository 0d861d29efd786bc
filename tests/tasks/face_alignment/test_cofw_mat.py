"""COFW's published MATLAB v7.3 files (`COFW_{train,test}_color.mat`), built here with h5py in that schema:
a userblock with MATLAB's header, images as a cell of object references, every array stored transposed."""

import json
import os
import shutil
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from harness.cli import app
from harness.core.cache import file_digest
from harness.core.errors import DataError
from harness.core.io import read_image
from harness.core.occlusion import OcclusionSettings
from harness.core.task import OcclusionPlan
from tasks.face_alignment.cofw_mat import SPLIT_FIELDS, extract_cofw_mat
from tasks.face_alignment.dataset import FaceLandmarks
from tasks.face_alignment.landmarks import COFW
from tasks.face_alignment.task import FaceAlignmentSettings, FaceAlignmentTask

REPO = Path(__file__).resolve().parents[3]
FIXTURES = Path(os.environ.get("HARNESS_FIXTURES", REPO.parent / "shared" / "fixtures"))
FIXTURE_JSON = FIXTURES / "cofw" / "test_cofw.json"
PLAN = OcclusionPlan(train=None, val=OcclusionSettings(clean_fraction=0.0), max_patches=30)
MATLAB_HEADER = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Tue Jun 11 2013 HDF5 schema 1.00 ."


def write_cofw_mat(path: Path, split: str, stored_images: list, boxes, phis, **overrides) -> Path:
    """A COFW .mat as MATLAB writes it: `stored_images` already in HDF5 order (3 x W x H or W x H), boxes
    (N x 4) and phis (N x 87) transposed on writing. `overrides` replaces (array) or drops (None) a field."""
    images_field, boxes_field, phis_field = SPLIT_FIELDS[split]
    with h5py.File(path, "w", userblock_size=512) as mat:
        refs = mat.create_group("#refs#")
        cell = []
        for index, stored in enumerate(stored_images):
            image = refs.create_dataset(f"i{index}", data=stored)
            image.attrs["MATLAB_class"] = np.bytes_("uint8")
            cell.append(image.ref)
        fields = {
            images_field: np.array([cell], dtype=h5py.ref_dtype),  # an N x 1 cell, stored 1 x N
            boxes_field: np.asarray(boxes, dtype=np.float64).T,
            phis_field: np.asarray(phis, dtype=np.float64).T,
        }
        fields.update(overrides)
        for name, data in fields.items():
            if data is not None:
                mat.create_dataset(name, data=data)
        if images_field in mat:
            mat[images_field].attrs["MATLAB_class"] = np.bytes_("cell")
    with open(path, "r+b") as handle:  # MATLAB's text header lives in the 512-byte userblock
        handle.write(MATLAB_HEADER)
    return path


def stored_colour(height: int, width: int) -> np.ndarray:
    """3 x W x H as MATLAB stores an H x W x 3 RGB image: channel c at (row y, column x) = 100c + 10y + x."""
    stored = np.zeros((3, width, height), dtype=np.uint8)
    for c in range(3):
        for x in range(width):
            for y in range(height):
                stored[c, x, y] = 100 * c + 10 * y + x
    return stored


def stored_gray(height: int, width: int) -> np.ndarray:
    """W x H as MATLAB stores an H x W grayscale image: (row y, column x) = 7x + y."""
    return np.array([[7 * x + y for y in range(height)] for x in range(width)], dtype=np.uint8)


def phis_row(x0: float, y0: float, occluded: list[int]) -> np.ndarray:
    """29 x (x0, x0 + 1, ...), 29 y (y0, y0 + 0.5, ...), 29 flags: MATLAB's 1-based pixel coordinates."""
    flags = np.zeros(29)
    flags[occluded] = 1
    return np.concatenate([x0 + np.arange(29.0), y0 + 0.5 * np.arange(29.0), flags])


def hand_mat(tmp_path: Path, split: str = "test", **overrides) -> Path:
    """Two faces: a colour 5 x 6 image, a grayscale 4 x 7 one (the second face's first x is 0.5, left of
    pixel 1, and its box starts at x = -2)."""
    first = phis_row(1.5, 2.0, [22, 23])
    second = phis_row(10.0, 20.0, [0])
    second[0] = 0.5
    return write_cofw_mat(
        tmp_path / f"COFW_{split}_color.mat", split, [stored_colour(5, 6), stored_gray(4, 7)],
        [[3, 4, 50, 60], [-2, 7, 40, 45]], [first, second], **overrides,
    )  # fmt: skip


def test_cofw_mat_reads_images_boxes_landmarks_and_flags_as_written(tmp_path):
    mat = hand_mat(tmp_path)
    ann, images = extract_cofw_mat(mat, tmp_path / "cache")
    data = json.loads(ann.read_text())
    # Test faces are numbered after COFW's 1,345 train faces, as mmpose's cofw_test.json numbers them.
    assert [(i["id"], i["file_name"], i["height"], i["width"]) for i in data["images"]] == [
        (1346, "001346.png", 5, 6), (1347, "001347.png", 4, 7),
    ]  # fmt: skip
    colour, gray = (read_image(images / i["file_name"]) for i in data["images"])
    assert colour[2, 4].tolist() == [224, 124, 24]  # BGR of row 2, column 4: R 24, G 124, B 224
    assert colour[0, 0].tolist() == [200, 100, 0] and colour[4, 5].tolist() == [245, 145, 45]
    assert gray[3, 6].tolist() == [45, 45, 45] and gray[1, 2].tolist() == [15, 15, 15]  # 7x + y
    records = FaceLandmarks(ann, images, layout=COFW).records
    first, second = records
    # 1-based -> 0-based: the first x, 1.5, is 0.5; y 2.0 is 1.0; later points step by 1 and 0.5.
    np.testing.assert_allclose(first.keypoints[:3], [[0.5, 1.0, 2], [1.5, 1.5, 2], [2.5, 2.0, 2]])
    np.testing.assert_allclose(first.keypoints[22:24], [[22.5, 12.0, 1], [23.5, 12.5, 1]])
    assert np.flatnonzero(first.occluded).tolist() == [22, 23]
    np.testing.assert_allclose(first.box, [3, 4, 50, 60])  # x y w h, kept as published
    # Left of the first pixel (0.5 -> -0.5) and a box starting at x = -2 clamp to 0, as mmpose's json.
    np.testing.assert_allclose(second.keypoints[:2], [[0.0, 19.0, 1], [10.0, 19.5, 2]])
    assert np.flatnonzero(second.occluded).tolist() == [0]
    np.testing.assert_allclose(second.box, [0, 7, 40, 45])
    assert data["info"] == {"source": mat.name, "source_sha256": file_digest(mat), "split": "test"}


def test_train_file_numbers_faces_from_one_and_extraction_is_cached(tmp_path):
    mat = hand_mat(tmp_path, "train")
    ann, _ = extract_cofw_mat(mat, tmp_path / "cache")
    assert [i["id"] for i in json.loads(ann.read_text())["images"]] == [1, 2]
    stamp = ann.stat().st_mtime_ns
    assert extract_cofw_mat(mat, tmp_path / "cache")[0] == ann and ann.stat().st_mtime_ns == stamp


def fixture_as_mat(path: Path) -> Path:
    """The real COFW fixture faces turned back into Caltech's schema: pixels in MATLAB order, landmarks
    1-based, flag = 2 - visibility, the box as mmpose copied it."""
    data = json.loads(FIXTURE_JSON.read_text())
    stored, boxes, phis = [], [], []
    for info, ann in zip(data["images"], data["annotations"], strict=True):
        rgb = cv2.cvtColor(read_image(FIXTURES / "cofw" / info["file_name"]), cv2.COLOR_BGR2RGB)
        stored.append(rgb.T)  # H x W x 3 -> 3 x W x H
        points = np.asarray(ann["keypoints"]).reshape(29, 3)
        phis.append(np.concatenate([points[:, 0] + 1, points[:, 1] + 1, 2 - points[:, 2]]))
        boxes.append(ann["bbox"])
    return write_cofw_mat(path, "test", stored, boxes, phis)


def test_the_mat_and_mmpose_json_routes_give_the_same_faces(tmp_path):
    ann, images = extract_cofw_mat(fixture_as_mat(tmp_path / "COFW_test_color.mat"), tmp_path / "cache")
    from_mat = FaceLandmarks(ann, images, layout=COFW, input_size=(64, 64))
    from_json = FaceLandmarks(FIXTURE_JSON, FIXTURES / "cofw", layout=COFW, input_size=(64, 64))
    assert len(from_mat) == len(from_json) == 2
    for index, (a, b) in enumerate(zip(from_mat.records, from_json.records, strict=True)):
        np.testing.assert_allclose(a.keypoints, b.keypoints, rtol=0, atol=1e-9)
        np.testing.assert_array_equal(a.box, b.box)
        np.testing.assert_array_equal(a.occluded, b.occluded)
        # PNG is lossless, so the crops and targets are those of the decoded JPEGs, to the bit.
        assert torch.equal(from_mat[index]["image"], from_json[index]["image"])
        assert torch.allclose(from_mat[index]["target"], from_json[index]["target"], atol=1e-6)


def test_task_reads_the_published_mat_files_under_data_root(tmp_path):
    root = tmp_path / "cofw"
    root.mkdir()
    test_mat = fixture_as_mat(root / "COFW_test_color.mat")
    shutil.copy(test_mat, root / "COFW_train_color.mat")
    with h5py.File(root / "COFW_train_color.mat", "r+") as mat:  # the train file's field names
        for old, new in zip(SPLIT_FIELDS["test"], SPLIT_FIELDS["train"], strict=True):
            mat.move(old, new)
    settings = FaceAlignmentSettings(dataset="cofw", root=str(root), input_size=(64, 64))
    task = FaceAlignmentTask(settings, cache_dir=tmp_path / "cache")
    train, splits = task.datasets(seed=0, occlusion=PLAN)
    assert [r.image_id for r in train.records] == [1, 2]
    assert [r.image_id for r in splits["clean_val"].records] == [1346, 1347]
    assert [r.image_id for r in splits["occluded_val"].records] == [1346, 1347]
    provenance = task.provenance()
    assert provenance["train_annotations"] == str(root / "COFW_train_color.mat")
    assert provenance["val_annotations_sha256"] == file_digest(test_mat)


def test_json_route_still_wins_when_mmpose_files_are_there(tmp_path):
    root = tmp_path / "cofw"
    (root / "annotations").mkdir(parents=True)
    for name in ("cofw_train.json", "cofw_test.json"):
        shutil.copy(FIXTURE_JSON, root / "annotations" / name)
    (root / "COFW_train_color.mat").write_bytes(b"not read")
    task = FaceAlignmentTask(FaceAlignmentSettings(dataset="cofw", root=str(root)), cache_dir=tmp_path / "c")
    (train, _), (val, _), _ = task.source_files()
    assert (train.name, val.name) == ("cofw_train.json", "cofw_test.json")
    (root / "annotations" / "cofw_test.json").unlink()
    with pytest.raises(DataError, match=r"data.val_file: .*cofw_test.json \(nor the published .*_test_color"):
        task.source_files()


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"phisT": None}, r"field 'phisT' missing; COFW's test file holds IsT, bboxesT, phisT"),
        (
            {"phisT": np.zeros((86, 2))},
            r"field 'phisT' is stored 86 x 2; expected MATLAB N x 87 \(29 x, 29 y, 29 occlusion flags\)",
        ),
        (
            {"phisT": np.zeros((2, 87))},  # written untransposed: MATLAB would see 87 x 2
            r"field 'phisT' is stored 2 x 87; expected MATLAB N x 87",
        ),
        (
            {"bboxesT": np.zeros((4, 3))},
            r"field 'bboxesT' is stored 4 x 3; expected MATLAB 2 x 4 \(x, y, w, h\), stored 4 x 2",
        ),
        ({"IsT": np.zeros((1, 2))}, r"field 'IsT' is not a cell array; expected 2 images"),
        (
            {"phisT": np.concatenate([np.ones((58, 2)), np.full((29, 2), 2.0)])},
            r"field 'phisT' row 1 column 59: occlusion flag 2; expected 0 \(visible\) or 1 \(occluded\)",
        ),
        (
            {"bboxesT": np.array([[1.0, 1.0], [2.0, np.nan], [3.0, 3.0], [4.0, 4.0]])},
            r"field 'bboxesT' row 2 has a non-finite value; expected x, y, w, h",
        ),
    ],
)
def test_bad_cofw_mat_is_one_line_naming_the_file_and_field(tmp_path, overrides, fragment):
    mat = hand_mat(tmp_path, **overrides)
    with pytest.raises(DataError, match=r"COFW_test_color.mat: " + fragment) as err:
        extract_cofw_mat(mat, tmp_path / "cache")
    assert "\n" not in str(err.value)
    assert not list((tmp_path / "cache").glob("*/annotations.json"))  # nothing half-written


def test_bad_images_and_non_hdf5_files_are_one_line(tmp_path):
    mat = write_cofw_mat(tmp_path / "a.mat", "test", [np.zeros((6, 5), dtype=np.float64)], [[1, 1, 4, 4]],
                         [phis_row(1, 1, [])])  # fmt: skip
    bad_type = r"a.mat: field 'IsT' row 1: image stored as float64 6 x 5; expected uint8, stored 3 x W x H"
    with pytest.raises(DataError, match=bad_type):
        extract_cofw_mat(mat, tmp_path / "cache")
    mat = write_cofw_mat(tmp_path / "b.mat", "test", [np.zeros((4, 6, 5), dtype=np.uint8)], [[1, 1, 4, 4]],
                         [phis_row(1, 1, [])])  # fmt: skip
    with pytest.raises(DataError, match=r"b.mat: field 'IsT' row 1: image stored as uint8 4 x 6 x 5"):
        extract_cofw_mat(mat, tmp_path / "cache")
    v5 = tmp_path / "COFW_test.mat"
    v5.write_bytes(b"MATLAB 5.0 MAT-file, Platform: PCWIN".ljust(256, b"\0"))
    with pytest.raises(DataError, match=r"COFW_test.mat: not a MATLAB v7.3 \(HDF5\) file"):
        extract_cofw_mat(v5, tmp_path / "cache")
    with pytest.raises(DataError, match=r"COFW_test.mat: a COFW .mat holds its images; extract it first"):
        FaceLandmarks(v5, tmp_path, layout=COFW)


def test_cli_run_on_a_bad_mat_exits_2_with_one_line(tmp_path):
    root = tmp_path / "cofw"
    root.mkdir()
    hand_mat(root, phisT=None)
    shutil.copy(root / "COFW_test_color.mat", root / "COFW_train_color.mat")
    sets = [
        "data.dataset=cofw", f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}",
        "train.num_workers=0", f"output.work_dir={tmp_path / 'work'}",
        f"output.results_dir={tmp_path / 'results'}",
    ]  # fmt: skip
    args = [x for s in sets for x in ("--set", s)]
    result = CliRunner().invoke(app, ["run", "--task", "face_alignment", "--method", "clean", *args])
    assert result.exit_code == 2, result.output
    assert "COFW_train_color.mat: field 'phisT' missing; COFW's test file holds" in result.output
    assert "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) <= 2
