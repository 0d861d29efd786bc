"""IJB-B / IJB-C 1:1 template verification, from the meta files as insightface distributes them.

Layout of `data.ijb_root` (`<t>` is `ijbb` or `ijbc`), the one arcface_torch's `eval_ijbc.py` reads:
- `meta/<t>_face_tid_mid.txt`: one line per image, `<image name> <template id> <media id>`.
- `meta/<t>_name_5pts_score.txt`: one line per image in the same order, `<image name> x1 y1 ... x5 y5
  <faceness score>` (five landmarks in the loose crop's pixels, the detector's score).
- `meta/<t>_template_pair_label.txt`: one line per template pair, `<template 1> <template 2> <1|0>`.
- `loose_crop/<image name>`: the images, aligned here with `norm_crop` from the five landmarks.

Scoring, as `eval_ijbc.py` does it: an image's feature is the embedding of the image plus that of its
mirror image (not normalised: the norm is kept as a quality weight), multiplied by the faceness score; the
features of one media (the frames of one video) are averaged; a template's feature is the sum of its
media features, L2-normalised; a pair's score is the cosine of its two templates. TAR at FAR = 1e-6 ...
1e-1 is read off the ROC curve at the point whose FAR is nearest the target (see `roc_tar_at_far`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.core.errors import DataError
from tasks.face_recognition.data import FaceImage, VerificationSet
from tasks.face_recognition.verification import normalise

FARS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


def far_name(far: float) -> str:
    """`tar_far_1e-4` for 1e-4: the metric name of one operating point."""
    return f"tar_far_1e{int(round(np.log10(far)))}"


def _columns(path: Path, count: int | tuple[int, ...], what: str) -> list[list[str]]:
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as err:
        raise DataError(f"data.ijb_root: cannot read {path} ({err.strerror})") from None
    counts = (count,) if isinstance(count, int) else count
    rows = []
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) not in counts:
            raise DataError(
                f"{path} line {number}: expected '{what}' ({counts[0]} fields), got {len(fields)}"
            )
        rows.append(fields)
    if not rows:
        raise DataError(f"{path}: no lines")
    return rows


def _ints(rows: list[list[str]], column: int, path: Path, name: str) -> np.ndarray:
    try:
        return np.array([int(r[column]) for r in rows], dtype=np.int64)
    except ValueError:
        bad = next(i for i, r in enumerate(rows) if not r[column].lstrip("-").isdigit())
        raise DataError(
            f"{path}: {name} of entry {bad + 1} is not an integer ({rows[bad][column]!r})"
        ) from None


class IJBSet(VerificationSet):
    """The images of an IJB protocol (each once), with what `ijb_metrics` needs to score template pairs:
    `pairs` and `same` are over templates here, not images."""

    def __init__(
        self, images: list[FaceImage], templates: np.ndarray, medias: np.ndarray, faceness: np.ndarray,
        pairs: np.ndarray, same: np.ndarray, *, input_size: int, name: str,
    ):  # fmt: skip
        super().__init__(images, np.asarray(pairs, dtype=np.int64), same, input_size=input_size, name=name)
        self.templates, self.medias, self.faceness = templates, medias, faceness


def read_ijb(root: Path, target: str, *, input_size: int) -> IJBSet:
    """Read the IJB-B or IJB-C 1:1 protocol under `root` (see the module docstring).

    Raises:
        DataError: a missing or malformed meta file (naming file and line), the image lists of the two
            meta files disagreeing, or a pair naming a template no image belongs to.
    """
    root, t = Path(root), target.lower()
    meta = root / "meta"
    tid_mid = meta / f"{t}_face_tid_mid.txt"
    points = meta / f"{t}_name_5pts_score.txt"
    pair_file = meta / f"{t}_template_pair_label.txt"
    rows = _columns(tid_mid, 3, "<image> <template> <media>")
    marks = _columns(points, 12, "<image> x1 y1 ... x5 y5 <score>")
    if len(rows) != len(marks):
        raise DataError(f"{points}: {len(marks)} images, but {tid_mid} lists {len(rows)}")
    templates = _ints(rows, 1, tid_mid, "template id")
    medias = _ints(rows, 2, tid_mid, "media id")
    images, faceness = [], []
    for number, (row, mark) in enumerate(zip(rows, marks, strict=True), 1):
        if row[0] != mark[0]:
            raise DataError(f"{points} entry {number}: image {mark[0]!r}, but {tid_mid} has {row[0]!r} there")
        try:
            values = np.array([float(v) for v in mark[1:]], dtype=np.float64)
        except ValueError:
            raise DataError(
                f"{points} entry {number}: landmarks or score of {mark[0]} are not numbers"
            ) from None
        images.append(
            FaceImage(path=root / "loose_crop" / mark[0], landmarks=values[:10].reshape(5, 2), where=mark[0])
        )
        faceness.append(values[10])
    pair_rows = _columns(pair_file, 3, "<template 1> <template 2> <label>")
    pairs = np.stack(
        [_ints(pair_rows, 0, pair_file, "template 1"), _ints(pair_rows, 1, pair_file, "template 2")], 1
    )
    labels = _ints(pair_rows, 2, pair_file, "label")
    if not np.isin(labels, (0, 1)).all():
        raise DataError(f"{pair_file}: labels must be 0 or 1, got {sorted(set(labels.tolist()) - {0, 1})}")
    unknown = np.setdiff1d(pairs.reshape(-1), templates)
    if unknown.size:
        raise DataError(f"{pair_file}: template {int(unknown[0])} has no image in {tid_mid}")
    return IJBSet(
        images, templates, medias, np.asarray(faceness), pairs, labels.astype(bool),
        input_size=input_size, name=t,
    )  # fmt: skip


def template_features(
    features: np.ndarray, templates: np.ndarray, medias: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Image features -> (sorted template ids, their L2-normalised features).

    Within a template the images of one media are averaged, then the media features are summed.
    Vectorised by sorting on (template, media): IJB-C has 469k images in 23k templates.
    """
    features = np.asarray(features, dtype=np.float64)
    templates, medias = np.asarray(templates), np.asarray(medias)
    order = np.lexsort((medias, templates))
    t, m, f = templates[order], medias[order], features[order]
    starts = np.flatnonzero(np.r_[True, (t[1:] != t[:-1]) | (m[1:] != m[:-1])])
    counts = np.diff(np.r_[starts, len(t)])
    media_means = np.add.reduceat(f, starts, axis=0) / counts[:, None]
    media_templates = t[starts]
    template_starts = np.flatnonzero(np.r_[True, media_templates[1:] != media_templates[:-1]])
    summed = np.add.reduceat(media_means, template_starts, axis=0)
    return media_templates[template_starts], normalise(summed)


def roc_tar_at_far(scores: np.ndarray, same: np.ndarray, fars=FARS) -> dict[str, float]:
    """TAR at each FAR as `eval_ijbc.py` reads it off scikit-learn's ROC curve.

    The ROC points are the (FAR, TAR) pairs at every distinct score threshold (a pair is accepted when its
    score is >= the threshold), starting at (0, 0), with the points dropped that lie on a straight segment
    between their neighbours (scikit-learn's `drop_intermediate`). For each target FAR the point whose FAR
    is nearest is taken; among equally near points, the one with the highest TAR.

    Raises:
        ValueError: no genuine or no impostor pair (the curve is undefined).
    """
    scores = np.asarray(scores, dtype=np.float64)
    same = np.asarray(same, dtype=bool)
    if same.all() or not same.any():
        raise ValueError("a ROC curve needs both genuine and impostor pairs")
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], same[order]
    last_of_value = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # one point per distinct threshold
    tp = np.cumsum(y)[last_of_value]
    fp = last_of_value + 1 - tp
    if len(tp) > 2:
        keep = np.r_[True, (np.diff(fp, 2) != 0) | (np.diff(tp, 2) != 0), True]
        tp, fp = tp[keep], fp[keep]
    far = np.r_[0, fp] / fp[-1]
    tar = np.r_[0, tp] / tp[-1]
    out = {}
    for target in fars:
        distance = np.abs(far - target)
        nearest = np.flatnonzero(distance == distance.min())
        out[far_name(target)] = float(tar[nearest].max())
    return out


def template_scores(
    embeddings: np.ndarray, dataset: IJBSet, *, detector_score: bool = True, chunk: int = 100_000
) -> np.ndarray:
    """Cosine score of every template pair from per-image embeddings (image + mirror image, summed)."""
    features = np.asarray(embeddings, dtype=np.float64)
    if detector_score:
        features = features * dataset.faceness[:, None]
    ids, feats = template_features(features, dataset.templates, dataset.medias)
    first, second = np.searchsorted(ids, dataset.pairs[:, 0]), np.searchsorted(ids, dataset.pairs[:, 1])
    scores = np.empty(len(dataset.pairs))
    for at in range(0, len(scores), chunk):  # IJB-C has 15.7M pairs: score them in slices
        end = at + chunk
        scores[at:end] = np.einsum("nd,nd->n", feats[first[at:end]], feats[second[at:end]])
    return scores


def ijb_metrics(embeddings: np.ndarray, dataset: IJBSet, *, detector_score: bool = True) -> dict[str, float]:
    """TAR at FAR = 1e-6 ... 1e-1 of the template pairs (and their count)."""
    scores = template_scores(embeddings, dataset, detector_score=detector_score)
    metrics = roc_tar_at_far(scores, dataset.same)
    metrics["pairs"] = float(len(scores))
    return metrics


def write_template_scores(
    embeddings: np.ndarray, dataset: IJBSet, path: Path, *, detector_score: bool = True
) -> str:
    """The prediction file of an IJB split: `pair, template1, template2, same, score` per template pair
    (what `eval_ijbc.py` saves as its score array, with the pair it belongs to). Written through pandas
    and renamed into place: IJB-C has 15.7M rows."""
    import os

    import pandas as pd

    scores = template_scores(embeddings, dataset, detector_score=detector_score)
    table = pd.DataFrame({
        "pair": np.arange(len(scores)), "template1": dataset.pairs[:, 0], "template2": dataset.pairs[:, 1],
        "same": dataset.same.astype(int), "score": scores,
    })  # fmt: skip
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    table.to_csv(tmp, index=False, float_format="%.8f")
    os.replace(tmp, path)
    return "template_scores_csv"


def write_ijb(root: Path, target: str, images: dict[str, np.ndarray], rows, pairs, landmarks, scores) -> None:
    """Write an IJB layout (tests): `images` by name, `rows` (name, template, media), `pairs` (t1, t2, label),
    `landmarks` (name -> (5, 2)) and `scores` (name -> faceness), in the order of `rows`."""
    import cv2

    root, t = Path(root), target.lower()
    (root / "meta").mkdir(parents=True, exist_ok=True)
    (root / "loose_crop").mkdir(exist_ok=True)
    for name, image in images.items():
        cv2.imwrite(str(root / "loose_crop" / name), image)
    (root / "meta" / f"{t}_face_tid_mid.txt").write_text(
        "".join(f"{n} {tid} {mid}\n" for n, tid, mid in rows)
    )
    (root / "meta" / f"{t}_template_pair_label.txt").write_text(
        "".join(f"{a} {b} {c}\n" for a, b, c in pairs)
    )
    (root / "meta" / f"{t}_name_5pts_score.txt").write_text(
        "".join(
            f"{n} {' '.join(f'{v:.4f}' for v in np.asarray(landmarks[n]).reshape(-1))} {scores[n]}\n"
            for n, _, _ in rows
        )
    )


def collate_embeddings(predictions: list[dict], count: int, size: int) -> np.ndarray:
    """Predictions (index, embedding) -> an (count, size) array in image order."""
    out = np.zeros((count, size), dtype=np.float32)
    for p in predictions:
        out[p["index"]] = p["embedding"]
    return out
