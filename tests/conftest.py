"""Shared fixtures: a per-session cache for generated data, the real-format fixture paths, tiny configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("HARNESS_FIXTURES", REPO.parent / "shared" / "fixtures"))

# A tiny, fast pose configuration: small synthetic set, small crops, a few steps.
TINY_POSE = [
    "data.synthetic_train_images=12",
    "data.synthetic_val_images=4",
    "data.input_size=[96,64]",
    "model.backbone=hrnet_w18_small",
    "train.batch_size=4",
    "train.eval_batch_size=8",
    "train.num_workers=0",
    "train.epochs=1",
    "train.max_steps=2",
    "occlusion.max_patches=50",
]


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
