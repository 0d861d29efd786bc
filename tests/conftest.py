"""Shared fixtures: a per-session cache for generated data, the real-format fixture paths, tiny configs."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("HARNESS_FIXTURES", REPO.parent / "shared" / "fixtures"))

from tiny_pose import TINY_POSE  # noqa: E402  (tests/ is on sys.path through this conftest)


@pytest.fixture(scope="session", autouse=True)
def harness_cache(tmp_path_factory) -> Path:
    """Generated datasets go to a session temp dir (shared by tests), never to the user's cache."""
    cache = Path(os.environ.get("HARNESS_TEST_CACHE", tmp_path_factory.mktemp("harness-cache")))
    os.environ["HARNESS_CACHE"] = str(cache)
    return cache


@pytest.fixture
def coco_fixture() -> tuple[Path, Path]:
    root = FIXTURES / "coco"
    if not root.is_dir():
        pytest.fail(f"real-format fixtures missing at {root}")
    return root / "test_coco.json", root


@pytest.fixture
def tiny_pose_overrides(tmp_path) -> list[str]:
    return [*TINY_POSE, f"output.work_dir={tmp_path / 'work'}", f"output.results_dir={tmp_path / 'results'}"]


# Dataset roots in the official layouts, assembled in a temp dir from the read-only real-format fixtures.


def link_images(names, source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        (target / name).symlink_to(source / name)


@pytest.fixture
def coco_root(tmp_path) -> Path:
    """<root>/annotations/person_keypoints_val2017.json + <root>/val2017/ from the COCO fixture."""
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    shutil.copy(FIXTURES / "coco" / "test_coco.json", root / "annotations" / "person_keypoints_val2017.json")
    data = json.loads((FIXTURES / "coco" / "test_coco.json").read_text())
    link_images([i["file_name"] for i in data["images"]], FIXTURES / "coco", root / "val2017")
    return root


def mpii_head_boxes(entries: list[dict]) -> np.ndarray:
    """Head boxes for the fixture (it has none): a square around the head top / upper neck segment."""
    boxes = []
    for entry in entries:
        top, neck = np.asarray(entry["joints"][9]), np.asarray(entry["joints"][8])
        half = np.linalg.norm(top - neck) / 2
        centre = (top + neck) / 2
        boxes.append([(centre - half).tolist(), (centre + half).tolist()])
    return np.asarray(boxes)


@pytest.fixture
def mpii_root(tmp_path) -> Path:
    """<root>/annot/valid.json (+ train.json) and <root>/images/ from the MPII fixture, head boxes in json."""
    root = tmp_path / "mpii"
    (root / "annot").mkdir(parents=True)
    entries = json.loads((FIXTURES / "mpii" / "test_mpii.json").read_text())
    for split in ("train", "valid"):
        (root / "annot" / f"{split}.json").write_text(json.dumps(entries))
    (root / "annot" / "head_boxes.json").write_text(json.dumps(mpii_head_boxes(entries).tolist()))
    link_images(sorted({e["image"] for e in entries}), FIXTURES / "mpii", root / "images")
    return root
