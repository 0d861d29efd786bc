"""10-fold verification accuracy, TAR@FAR and the margin logits against hand computations."""

import math

import numpy as np
import pytest
import torch

from tasks.face_recognition.head import RecognitionHead, margin_logits
from tasks.face_recognition.verification import (
    best_threshold,
    pair_scores,
    tar_at_far,
    ten_fold_accuracy,
    verification_metrics,
)


def _embeddings_for_scores(scores):
    """Pairs (2i, 2i+1) of unit vectors in the plane whose cosine is scores[i]."""
    rows = []
    for s in scores:
        angle = math.acos(s)
        rows += [[1.0, 0.0], [math.cos(angle), math.sin(angle)]]
    return np.array(rows) * 3.0  # not normalised: scoring normalises


def test_pair_scores_are_cosines_of_normalised_embeddings():
    scores = [0.9, -0.2, 0.5]
    embeddings = _embeddings_for_scores(scores)
    pairs = np.arange(6).reshape(3, 2)
    np.testing.assert_allclose(pair_scores(embeddings, pairs), scores, atol=1e-12)


def test_best_threshold_is_the_exact_optimum():
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    same = np.array([False, False, True, False, True, True])
    threshold, accuracy = best_threshold(scores, same)
    # Cutting between 0.2 and 0.3 or between 0.4 and 0.5 gets 5 of 6; the first such cut is taken.
    assert accuracy == pytest.approx(5 / 6) and threshold == pytest.approx(0.25)


def test_ten_fold_accuracy_known_answer():
    # 10 folds of 10 pairs; in folds 0-4 one matched pair scores below every threshold -> 9/10 there.
    scores, same = [], []
    for fold in range(10):
        for k in range(10):
            matched = k < 5
            score = 0.8 if matched else 0.2
            if fold < 5 and k == 0:
                score = 0.1  # an outlier: a matched pair scored like a stranger
            scores.append(score)
            same.append(matched)
    embeddings = _embeddings_for_scores(scores)
    result = ten_fold_accuracy(pair_scores(embeddings, np.arange(200).reshape(100, 2)), np.array(same))
    assert result["accuracy"] == pytest.approx(0.95)
    assert result["accuracy_std"] == pytest.approx(0.05)
    assert 0.2 < result["threshold"] < 0.8


def test_tar_at_far_counts_impostors_above_the_threshold():
    impostors = np.linspace(0.0, 0.999, 2000)  # 2000 impostors: FAR 1e-3 allows 2 above the threshold
    genuine = np.array([0.9985, 0.9992, 0.9995, 1.0, 0.5])
    scores = np.concatenate([impostors, genuine])
    same = np.concatenate([np.zeros(2000, bool), np.ones(5, bool)])
    # Threshold = 3rd highest impostor (0.998); genuine above it: 0.9985, 0.9992, 0.9995, 1.0 -> 4/5.
    assert tar_at_far(scores, same, 1e-3) == pytest.approx(4 / 5)
    # FAR 1e-4 allows none: threshold = highest impostor (0.999) -> 0.9992, 0.9995, 1.0 pass -> 3/5.
    assert tar_at_far(scores, same, 1e-4) == pytest.approx(3 / 5)
    metrics = verification_metrics(scores, same)
    assert metrics["tar_far_1e-3"] == pytest.approx(0.8) and metrics["pairs"] == 2005


def test_arcface_and_cosface_logits_by_hand():
    cosine = torch.tensor([[0.6, 0.2, -0.4], [0.1, -0.95, 0.3]])
    labels = torch.tensor([0, 1])
    s, m = 64.0, 0.5
    arc = margin_logits(cosine, labels, kind="arcface", scale=s, margin=m)
    # Sample 0: cos(acos(0.6) + 0.5) = 0.6 cos 0.5 - 0.8 sin 0.5.
    assert arc[0, 0].item() == pytest.approx(s * (0.6 * math.cos(m) - 0.8 * math.sin(m)), rel=1e-6)
    # Sample 1: theta = acos(-0.95) > pi - m, so insightface's fallback cos - m sin(m).
    assert arc[1, 1].item() == pytest.approx(s * (-0.95 - m * math.sin(m)), rel=1e-6)
    others = torch.tensor([[False, True, True], [True, False, True]])
    assert torch.allclose(arc[others], s * cosine[others])
    cos = margin_logits(cosine, labels, kind="cosface", scale=30.0, margin=0.35)
    assert cos[0, 0].item() == pytest.approx(30 * (0.6 - 0.35)) and cos[1, 1].item() == pytest.approx(
        30 * -1.3
    )
    assert torch.allclose(cos[others], 30 * cosine[others])


def test_recognition_head_holds_class_weights_and_imitates_the_normalised_embedding():
    head = RecognitionHead(8, (2, 2), num_classes=5, embedding_size=16)
    x = torch.randn(4, 8, 2, 2)
    out = head.train()(x)
    assert out["embedding"].shape == (4, 16) and out["cosine"].shape == (4, 5)
    assert out["cosine"].abs().max() <= 1 + 1e-6
    target = head.imitation_target(out)
    assert torch.allclose(target.norm(dim=1), torch.ones(4))
    assert "class_weight" in dict(head.named_parameters())
    assert set(head.eval()(x)) == {"embedding"}
