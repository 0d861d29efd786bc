"""Face alignment's embedded pretraining split: its own faces, none shared with the benchmark."""

import hashlib
from pathlib import Path

import torch

from harness.core.occlusion import OcclusionSettings
from harness.core.task import OcclusionPlan
from tasks.face_alignment.task import FaceAlignmentSettings, FaceAlignmentTask


def _digests(paths) -> set[str]:
    return {hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths}


def test_pretraining_faces_are_disjoint_from_train_and_val_and_train_the_head(tmp_path):
    settings = FaceAlignmentSettings(synthetic_train_images=6, synthetic_val_images=4)
    task = FaceAlignmentTask(settings, cache_dir=tmp_path)
    pretrain = task.pretraining_set(seed=0, images=6)
    plan = OcclusionPlan(train=None, val=OcclusionSettings(clean_fraction=0.0), max_patches=20)
    train, splits = task.datasets(seed=0, occlusion=plan)
    seen = _digests(r.image_path for r in pretrain.records)
    assert len(seen) == 6
    assert not seen & _digests(r.image_path for r in train.records)
    assert not seen & _digests(r.image_path for r in splits["clean_val"].records)
    sample = pretrain[0]
    head = task.pretraining_head(16, 4)
    assert head(torch.zeros(1, 16, 16, 16)).shape[1] == sample["target"].shape[0]  # one map per landmark
