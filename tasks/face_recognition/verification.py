"""Face verification metrics: the standard 10-fold accuracy and TAR at a fixed FAR (numpy only).

Scores are cosine similarities of L2-normalised embeddings (equivalent to insightface's squared
Euclidean distance, d^2 = 2 - 2 cos). A pair is declared "same" when its score is above the threshold.
"""

from __future__ import annotations

import numpy as np


def normalise(embeddings: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation (a zero row stays zero)."""
    embeddings = np.asarray(embeddings, dtype=np.float64)
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    return embeddings / np.maximum(norms, 1e-12)


def pair_scores(embeddings: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Cosine similarity of each (i, j) row of `pairs` over the rows of `embeddings`."""
    unit = normalise(embeddings)
    pairs = np.asarray(pairs, dtype=np.int64)
    return np.einsum("nd,nd->n", unit[pairs[:, 0]], unit[pairs[:, 1]])


def best_threshold(scores: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """The threshold with the highest accuracy on (scores, same), and that accuracy.

    Every distinct cut between sorted scores is tried (so the optimum is exact); the threshold is the
    midpoint of the cut, and below the lowest score when accepting everything is best.
    """
    scores = np.asarray(scores, dtype=np.float64)
    same = np.asarray(same, dtype=bool)
    order = np.argsort(scores, kind="stable")
    s, y = scores[order], same[order]
    n, positives = len(s), int(y.sum())
    # Cutting before index k rejects s[:k]: correct = negatives among them + positives from k on.
    rejected_neg = np.concatenate([[0], np.cumsum(~y)])
    rejected_pos = np.concatenate([[0], np.cumsum(y)])
    correct = rejected_neg + (positives - rejected_pos)
    valid = np.ones(n + 1, dtype=bool)
    valid[1:n] = s[1:] > s[:-1]  # a cut between equal scores is not a threshold
    k = int(np.argmax(np.where(valid, correct, -1)))
    if k == 0:
        threshold = s[0] - 1e-6 if n else 0.0
    elif k == n:
        threshold = s[-1] + 1e-6
    else:
        threshold = 0.5 * (s[k - 1] + s[k])
    return float(threshold), float(correct[k] / max(n, 1))


def ten_fold_accuracy(scores: np.ndarray, same: np.ndarray, folds: int = 10) -> dict[str, float]:
    """LFW protocol: for each of `folds` contiguous folds (file order, as LFW's pairs.txt is laid out in
    ten sets), pick the best threshold on the other folds and score the held-out fold.

    Returns:
        accuracy (mean over folds), accuracy_std (population std over folds) and threshold (mean).

    Example:
        >>> ten_fold_accuracy(np.array([0.9, 0.1] * 10), np.array([True, False] * 10))["accuracy"]
        1.0
    """
    scores = np.asarray(scores, dtype=np.float64)
    same = np.asarray(same, dtype=bool)
    if len(scores) < folds:
        raise ValueError(f"10-fold verification needs at least {folds} pairs, got {len(scores)}")
    accuracies, thresholds = [], []
    for test in np.array_split(np.arange(len(scores)), folds):
        train = np.setdiff1d(np.arange(len(scores)), test)
        threshold, _ = best_threshold(scores[train], same[train])
        accuracies.append(float(np.mean((scores[test] > threshold) == same[test])))
        thresholds.append(threshold)
    return {
        "accuracy": float(np.mean(accuracies)),
        "accuracy_std": float(np.std(accuracies)),
        "threshold": float(np.mean(thresholds)),
    }


def tar_at_far(scores: np.ndarray, same: np.ndarray, far: float) -> float:
    """True accept rate at the strictest threshold whose false accept rate is at most `far`.

    The threshold is the (floor(far * N_neg) + 1)-th highest impostor score, and a pair is accepted when
    its score is strictly above it, so at most floor(far * N_neg) impostors pass. With fewer than 1/far
    impostor pairs this is the highest impostor score (FAR = 0 on the pair list).
    """
    scores = np.asarray(scores, dtype=np.float64)
    same = np.asarray(same, dtype=bool)
    impostors = np.sort(scores[~same])[::-1]
    genuine = scores[same]
    if len(impostors) == 0 or len(genuine) == 0:
        raise ValueError("TAR@FAR needs both matched and mismatched pairs")
    allowed = int(np.floor(far * len(impostors)))
    threshold = impostors[min(allowed, len(impostors) - 1)]
    return float(np.mean(genuine > threshold))


TAR_METRICS = {"tar_far_1e-3": 1e-3, "tar_far_1e-4": 1e-4}


def not_computable(same: np.ndarray) -> dict[str, str]:
    """{metric: why} for the metrics a pair list cannot give: TAR@FAR without mismatched pairs (no FAR)
    or without matched pairs (no TAR). insightface's own sample test .bin has matched pairs only."""
    same = np.asarray(same, dtype=bool)
    if not (~same).any():
        reason = f"no mismatched pairs among {len(same)}: the false accept rate is undefined"
    elif not same.any():
        reason = f"no matched pairs among {len(same)}: the true accept rate is undefined"
    else:
        return {}
    return dict.fromkeys(TAR_METRICS, reason)


def verification_metrics(scores: np.ndarray, same: np.ndarray) -> dict[str, float]:
    """10-fold accuracy (mean, std, threshold) and TAR@FAR=1e-3 / 1e-4 of one pair list.

    What the pairs cannot give is left out (see `not_computable`); with fewer than ten pairs the folds
    are one pair each.
    """
    metrics = ten_fold_accuracy(scores, same, folds=min(10, len(scores)))
    missing = not_computable(same)
    for name, far in TAR_METRICS.items():
        if name not in missing:
            metrics[name] = tar_at_far(scores, same, far)
    metrics["pairs"] = float(len(scores))
    return metrics
