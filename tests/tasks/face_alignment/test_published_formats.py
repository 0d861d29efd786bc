"""Face landmarks in the formats the datasets are published in: WFLW's attribute list (.txt) and 300W's iBUG
.pts files, built here in those exact schemas around the real COFW fixture images (COFW's MATLAB files:
test_cofw_mat.py)."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from harness.core.errors import DataError
from harness.core.occlusion import OcclusionSettings
from harness.core.task import OcclusionPlan
from tasks.face_alignment.dataset import FaceLandmarks
from tasks.face_alignment.landmarks import W300, WFLW
from tasks.face_alignment.task import FaceAlignmentSettings, FaceAlignmentTask

REPO = Path(__file__).resolve().parents[3]
FIXTURES = Path(os.environ.get("HARNESS_FIXTURES", REPO.parent / "shared" / "fixtures"))
COFW = json.loads((FIXTURES / "cofw" / "test_cofw.json").read_text())
PLAN = OcclusionPlan(train=None, val=OcclusionSettings(clean_fraction=0.0), max_patches=30)


def _points(count: int, box: list[float], seed: int) -> np.ndarray:
    """`count` points spread over a face box (what matters here is that they round-trip exactly)."""
    x, y, w, h = box
    rng = np.random.default_rng(seed)
    return np.round(
        np.column_stack([x + rng.uniform(0.1, 0.9, count) * w, y + rng.uniform(0.1, 0.9, count) * h]), 3
    )


def _wflw_root(tmp_path: Path) -> tuple[Path, list[np.ndarray]]:
    """WFLW's release layout: WFLW_images/<event>/<name>.jpg and the 98-point attribute lists."""
    root = tmp_path / "wflw"
    lists = root / "WFLW_annotations" / "list_98pt_rect_attr_train_test"
    lists.mkdir(parents=True)
    lines, truth = [], []
    for index, (info, ann) in enumerate(zip(COFW["images"], COFW["annotations"], strict=True)):
        name = f"51--Dresses/{info['file_name']}"
        (root / "WFLW_images" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "WFLW_images" / name).symlink_to(FIXTURES / "cofw" / info["file_name"])
        points = _points(98, ann["bbox"], index)
        x, y, w, h = ann["bbox"]
        flags = [0, 0, 0, 0, 1, 0] if index == 0 else [1, 0, 0, 0, 0, 1]  # occlusion / largepose + blur
        numbers = [*points.ravel().tolist(), int(x), int(y), int(x + w), int(y + h), *flags]
        lines.append(" ".join(f"{v:g}" for v in numbers) + f" {name}")
        truth.append(points)
    for split in ("train", "test"):
        (lists / f"list_98pt_rect_attr_{split}.txt").write_text("\n".join(lines) + "\n")
    return root, truth


def test_wflw_attribute_list_reads_as_published(tmp_path):
    root, truth = _wflw_root(tmp_path)
    ann = root / "WFLW_annotations" / "list_98pt_rect_attr_train_test" / "list_98pt_rect_attr_test.txt"
    data = FaceLandmarks(ann, root / "WFLW_images", layout=WFLW, input_size=(64, 64))
    assert len(data) == 2 and data[0]["target"].shape == (98, 16, 16)
    first = data.records[0]
    np.testing.assert_allclose(first.keypoints[:, :2], truth[0])
    assert (first.keypoints[:, 2] == 2).all()
    x, y, w, h = COFW["annotations"][0]["bbox"]
    np.testing.assert_allclose(first.box, [int(x), int(y), int(x + w) - int(x), int(y + h) - int(y)])
    assert first.attributes == {"largepose": 0, "expression": 0, "illumination": 0, "makeup": 0,
                                "occlusion": 1, "blur": 0}  # fmt: skip
    assert first.image_path == root / "WFLW_images" / "51--Dresses" / COFW["images"][0]["file_name"]


def test_wflw_task_on_the_published_lists_scores_its_attribute_subsets(tmp_path):
    root, _ = _wflw_root(tmp_path)
    lists = "WFLW_annotations/list_98pt_rect_attr_train_test"
    settings = FaceAlignmentSettings(
        dataset="wflw", root=str(root), image_dir="WFLW_images", input_size=(64, 64),
        train_file=f"{lists}/list_98pt_rect_attr_train.txt", val_file=f"{lists}/list_98pt_rect_attr_test.txt",
    )  # fmt: skip
    task = FaceAlignmentTask(settings, cache_dir=tmp_path / "cache")
    _, splits = task.datasets(seed=0, occlusion=PLAN)
    assert set(splits) == {"clean_val", "occluded_val", "wflw_occlusion", "wflw_largepose", "wflw_blur"}
    assert len(splits["wflw_occlusion"]) == 1 and len(splits["occluded_val"]) == 2
    assert len(task.provenance()["val_annotations_sha256"]) == 64


def test_wflw_line_with_a_missing_field_is_one_line_naming_it(tmp_path):
    root, _ = _wflw_root(tmp_path)
    ann = root / "WFLW_annotations" / "list_98pt_rect_attr_train_test" / "list_98pt_rect_attr_test.txt"
    lines = ann.read_text().splitlines()
    ann.write_text(lines[0] + "\n" + " ".join(lines[1].split()[1:]) + "\n")
    with pytest.raises(
        DataError, match=r"list_98pt_rect_attr_test.txt line 2: 206 fields, expected 207"
    ) as err:
        FaceLandmarks(ann, root / "WFLW_images", layout=WFLW)
    assert "\n" not in str(err.value)


def _pts_text(points: np.ndarray) -> str:
    body = "\n".join(f"{x:.3f} {y:.3f}" for x, y in points)
    return f"version: 1\nn_points:  {len(points)}\n{{\n{body}\n}}\n"


def _w300_root(tmp_path: Path) -> tuple[Path, list[np.ndarray]]:
    """300W's release layout: 01_Indoor/indoor_NNN.png beside indoor_NNN.pts (here the COFW images)."""
    root = tmp_path / "300W"
    (root / "01_Indoor").mkdir(parents=True)
    truth = []
    for index, (info, ann) in enumerate(zip(COFW["images"], COFW["annotations"], strict=True)):
        stem = root / "01_Indoor" / f"indoor_{index + 1:03d}"
        stem.with_suffix(".jpg").symlink_to(FIXTURES / "cofw" / info["file_name"])
        points = _points(68, ann["bbox"], 10 + index)
        stem.with_suffix(".pts").write_text(_pts_text(points))
        truth.append(points)
    return root, truth


def test_300w_pts_folder_reads_as_published_with_the_landmark_box(tmp_path):
    root, truth = _w300_root(tmp_path)
    data = FaceLandmarks(root / "01_Indoor", root, layout=W300, input_size=(64, 64))
    assert [r.image_path.name for r in data.records] == ["indoor_001.jpg", "indoor_002.jpg"]
    for record, points in zip(data.records, truth, strict=True):
        np.testing.assert_allclose(record.keypoints[:, :2], points, atol=5e-4)
        (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)  # iBUG's bb_ground_truth
        np.testing.assert_allclose(record.box, [x0, y0, x1 - x0, y1 - y0], atol=5e-4)
    assert data[1]["target"].shape == (68, 16, 16)


def test_300w_task_on_pts_folders(tmp_path):
    root, _ = _w300_root(tmp_path)
    settings = FaceAlignmentSettings(
        dataset="300w", root=str(root), image_dir=".", train_file="01_Indoor", val_file="01_Indoor",
        input_size=(64, 64),
    )  # fmt: skip
    task = FaceAlignmentTask(settings, cache_dir=tmp_path / "cache")
    _, splits = task.datasets(seed=0, occlusion=PLAN)
    assert len(splits["clean_val"]) == len(splits["occluded_val"]) == 2


def test_bad_pts_file_is_a_one_line_error(tmp_path):
    root, truth = _w300_root(tmp_path)
    bad = root / "01_Indoor" / "indoor_002.pts"
    bad.write_text(_pts_text(truth[1][:60]).replace("n_points:  60", "n_points:  68"))
    with pytest.raises(DataError, match=r"indoor_002.pts: 60 point lines for n_points 68"):
        FaceLandmarks(root / "01_Indoor", root, layout=W300)
    (root / "01_Indoor" / "indoor_001.jpg").unlink()
    with pytest.raises(DataError, match=r"indoor_001.pts: no image beside it"):
        FaceLandmarks(root / "01_Indoor", root, layout=W300)
