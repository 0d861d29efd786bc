"""NME, FR@0.1, AUC@0.1 and the visible/occluded split against values computed by hand."""

import numpy as np
import pytest

from tasks.face_alignment.metrics import ced_auc, failure_rate, landmark_metrics


def _two_faces():
    """Face 0 (norm 10): errors 1.2, 0, 2.4 px -> 0.12, 0, 0.24 -> NME 0.12.
    Face 1 (norm 20): errors 5 (a 3-4-5 offset), 0, 0 px -> 0.25, 0, 0 -> NME 0.25 / 3."""
    gt = np.zeros((2, 3, 2))
    pred = gt.copy()
    pred[0, 0] = (1.2, 0.0)
    pred[0, 2] = (0.0, -2.4)
    pred[1, 0] = (3.0, 4.0)
    return pred, gt, np.array([10.0, 20.0])


def test_nme_fr_auc_by_hand():
    pred, gt, norm = _two_faces()
    labelled = np.ones((2, 3), bool)
    stats = landmark_metrics(pred, gt, labelled, np.zeros((2, 3), bool), norm)
    assert stats["NME"] == pytest.approx((0.12 + 0.25 / 3) / 2)
    assert stats["FR@0.1"] == 0.5  # face 0 (0.12) fails, face 1 (0.0833) does not
    # AUC@0.1 = mean(max(0, 0.1 - e)) / 0.1 = (0 + (0.1 - 0.08333)) / 2 / 0.1
    assert stats["AUC@0.1"] == pytest.approx((0.1 - 0.25 / 3) / 2 / 0.1)
    assert stats["NME_visible"] == pytest.approx((0.12 + 0 + 0.24 + 0.25 + 0 + 0) / 6)
    assert stats["NME_occluded"] is None  # nothing marked occluded


def test_unlabelled_landmarks_are_ignored_and_occluded_ones_pooled_apart():
    pred, gt, norm = _two_faces()
    labelled = np.array([[True, True, False], [True, True, True]])  # face 0 drops its 0.24 error
    occluded = np.array([[True, False, True], [False, False, True]])  # (0, 2) is unlabelled: not counted
    stats = landmark_metrics(pred, gt, labelled, occluded, norm)
    assert stats["NME"] == pytest.approx((0.06 + 0.25 / 3) / 2)
    assert stats["NME_occluded"] == pytest.approx((0.12 + 0.0) / 2)  # (0, 0) and (1, 2)
    assert stats["NME_visible"] == pytest.approx((0.0 + 0.25 + 0.0) / 3)  # (0, 1), (1, 0), (1, 1)


def test_failure_rate_and_auc_closed_form():
    errors = np.array([0.05, 0.15, 0.1, 0.0])
    assert failure_rate(errors) == 0.25  # only 0.15 exceeds 0.1
    assert ced_auc(errors) == pytest.approx((0.05 + 0 + 0 + 0.1) / 4 / 0.1)
    assert ced_auc(np.zeros(3)) == 1.0 and ced_auc(np.full(3, 0.2)) == 0.0


def test_auc_equals_the_integral_of_the_ced_curve():
    """The closed form is the exact area under the cumulative error distribution."""
    errors = np.random.default_rng(0).gamma(2.0, 0.03, size=200)
    grid = np.linspace(0, 0.1, 100_001)
    ced = (errors[None, :] <= grid[:, None]).mean(axis=1)
    numeric = np.sum((ced[1:] + ced[:-1]) / 2 * np.diff(grid)) / 0.1
    assert ced_auc(errors) == pytest.approx(numeric, abs=1e-4)


def test_bad_shapes_and_distances_are_refused():
    pred, gt, norm = _two_faces()
    with pytest.raises(ValueError, match="positive"):
        landmark_metrics(pred, gt, np.ones((2, 3), bool), np.zeros((2, 3), bool), np.array([10.0, 0.0]))
    with pytest.raises(ValueError, match=r"\(N, K, 2\)"):
        landmark_metrics(pred[:, :2], gt, np.ones((2, 3), bool), np.zeros((2, 3), bool), norm)
