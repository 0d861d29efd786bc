"""A tiny embedded face set shared by this folder's tests."""

import pytest

TINY_FACES = [
    "task=face_recognition",
    "model.backbone=resnet18",
    "data.synthetic_train_identities=6",
    "data.synthetic_train_images=3",
    "data.synthetic_val_identities=4",
    "data.synthetic_val_images=3",
    "data.synthetic_pairs_per_fold=2",
    "data.input_size=56",
    "data.embedding_size=32",
    "train.batch_size=4",
    "train.eval_batch_size=16",
    "train.num_workers=0",
    "train.epochs=1",
    "train.max_steps=2",
]


@pytest.fixture
def tiny_faces(tmp_path) -> list[str]:
    return [*TINY_FACES, f"output.work_dir={tmp_path / 'work'}", f"output.results_dir={tmp_path / 'results'}"]
