"""Face recognition's embedded pretraining split: other identities, a classifier sized for them."""

import hashlib

import torch

from tasks.face_recognition.task import FaceRecognitionSettings, FaceRecognitionTask


def test_pretraining_identities_are_other_people_and_size_their_own_classifier(tmp_path):
    settings = FaceRecognitionSettings(
        input_size=56, synthetic_train_identities=3, synthetic_train_images=2, synthetic_val_identities=2,
        synthetic_val_images=2, synthetic_pairs_per_fold=1,
    )  # fmt: skip
    task = FaceRecognitionTask(settings, cache_dir=tmp_path)
    pretrain = task.pretraining_set(seed=0, images=8)  # 8 images, 2 per identity: 4 identities
    assert sorted(set(pretrain.labels.tolist())) == [0, 1, 2, 3]
    from tasks.face_recognition.sources import train_source

    train_root = task._synthetic()[0]
    faces = train_source("folder", train_root)[0]
    benchmark = {hashlib.sha256(f.load().tobytes()).hexdigest() for f in faces}
    own = {hashlib.sha256(f.load().tobytes()).hexdigest() for f in pretrain.images}
    assert len(own) == 8 and not own & benchmark
    head = task.pretraining_head(512, 32)
    assert head.class_weight.shape[0] == 4 and task.head(512, 32).class_weight.shape[0] == 3
    head.train()
    out = head(torch.zeros(2, 512, 2, 2))
    assert out["embedding"].shape == (2, settings.embedding_size)
