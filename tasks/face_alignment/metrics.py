"""Face alignment metrics: NME, failure rate and AUC of the cumulative error distribution.

Definitions (as in the HRNetV2 / WFLW / 300W literature):
- per-face error e_i = mean over the face's labelled landmarks of ||pred - gt||_2, divided by the face's
  normalising distance (inter-pupil for COFW, outer eye corners for 300W and WFLW);
- NME = mean_i e_i;
- FR@t = share of faces with e_i > t (t = 0.1);
- AUC@t = (1/t) * integral_0^t CED(x) dx, CED(x) = share of faces with e_i <= x. For a finite set this
  integral is exact in closed form: each face contributes max(0, t - e_i), so
  AUC@t = mean_i max(0, t - e_i) / t (no threshold grid, no step-size error).
- NME_visible / NME_occluded: the same normalised point errors pooled over landmarks that are visible /
  occluded (a landmark is occluded when a pasted patch covers it, or when the dataset marks it occluded).
"""

from __future__ import annotations

import numpy as np


def normalised_point_errors(pred: np.ndarray, gt: np.ndarray, norm: np.ndarray) -> np.ndarray:
    """(N, K) landmark errors divided by each face's normalising distance.

    Args:
        pred: (N, K, 2) predicted landmarks.
        gt: (N, K, 2) ground-truth landmarks.
        norm: (N,) normalising distances (positive).

    Raises:
        ValueError: shapes differ or a normalising distance is not positive.
    """
    pred, gt, norm = (np.asarray(a, dtype=np.float64) for a in (pred, gt, norm))
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[2] != 2 or norm.shape != pred.shape[:1]:
        raise ValueError(
            f"expected pred, gt (N, K, 2) and norm (N,), got {pred.shape}, {gt.shape}, {norm.shape}"
        )
    if (norm <= 0).any() or not np.isfinite(norm).all():
        raise ValueError(
            f"normalising distances must be positive, got {norm[(norm <= 0) | ~np.isfinite(norm)]}"
        )
    return np.linalg.norm(pred - gt, axis=-1) / norm[:, None]


def face_errors(point_errors: np.ndarray, labelled: np.ndarray) -> np.ndarray:
    """(N,) per-face NME: the mean of each face's labelled landmark errors."""
    labelled = np.asarray(labelled, dtype=bool)
    counts = labelled.sum(axis=1)
    if (counts == 0).any():
        raise ValueError("every face needs at least one labelled landmark")
    return (point_errors * labelled).sum(axis=1) / counts


def failure_rate(errors: np.ndarray, threshold: float = 0.1) -> float:
    """Share of faces whose NME exceeds `threshold`."""
    return float((np.asarray(errors) > threshold).mean())


def ced_auc(errors: np.ndarray, threshold: float = 0.1) -> float:
    """Exact area under the cumulative error distribution on [0, threshold], divided by `threshold`."""
    return float(np.maximum(0.0, 1.0 - np.asarray(errors, dtype=np.float64) / threshold).mean())


def landmark_metrics(
    pred: np.ndarray,
    gt: np.ndarray,
    labelled: np.ndarray,
    occluded: np.ndarray,
    norm: np.ndarray,
    threshold: float = 0.1,
) -> dict[str, float | None]:
    """NME, FR@t, AUC@t and NME over visible / occluded landmarks.

    Args:
        pred, gt: (N, K, 2) landmarks.
        labelled: (N, K) bool, landmarks with ground truth.
        occluded: (N, K) bool, labelled landmarks that are covered.
        norm: (N,) normalising distances.
        threshold: the failure / AUC threshold (0.1).

    Returns:
        {"NME", "FR@0.1", "AUC@0.1", "NME_visible", "NME_occluded"}; the last two are None when no landmark
        of that kind exists (a clean split without occlusion marks has no occluded landmarks).

    Example:
        >>> gt = np.zeros((1, 2, 2)); pred = gt + [[[0.0, 1.0], [0.0, 0.0]]]
        >>> landmark_metrics(pred, gt, np.ones((1, 2), bool), np.zeros((1, 2), bool), np.array([10.0]))["NME"]
        0.05
    """
    labelled = np.asarray(labelled, dtype=bool)
    occluded = np.asarray(occluded, dtype=bool) & labelled
    errors = normalised_point_errors(pred, gt, norm)
    per_face = face_errors(errors, labelled)
    visible = labelled & ~occluded
    suffix = f"@{threshold:g}"
    return {
        "NME": float(per_face.mean()),
        f"FR{suffix}": failure_rate(per_face, threshold),
        f"AUC{suffix}": ced_auc(per_face, threshold),
        "NME_visible": float(errors[visible].mean()) if visible.any() else None,
        "NME_occluded": float(errors[occluded].mean()) if occluded.any() else None,
    }
