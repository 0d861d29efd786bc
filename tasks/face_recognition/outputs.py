"""Face recognition outside training: the masked-pair severity ladder and the pair-scores file.

- Severity ladder: the second image of every pair carries more of the face covered at each level, from
  the kinds of occluders this task draws (their sizes follow the five landmarks, so the ladder is a count
  ladder): 0 none, 1 sunglasses, 2 a mask (the frozen masked split's default), 3 mask + sunglasses, 4 mask
  + sunglasses + a hand.
- Prediction file: `pair_scores.csv`, one row per pair (`pair, first, second, same, score`: the cosine
  score the verification metrics threshold), so ROC / accuracy can be recomputed with any tool.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.errors import ConfigError
from harness.core.io import atomic_write_text
from harness.core.occlusion import OcclusionSettings

SEVERITY_KINDS: dict[int, tuple[str, ...]] = {
    0: (),
    1: ("sunglasses",),
    2: ("mask",),
    3: ("mask", "sunglasses"),
    4: ("mask", "sunglasses", "hand"),
}


def severity_occluders(level: int) -> tuple[OcclusionSettings, tuple[str, ...]]:
    """(settings, occluder kinds) of a ladder level for `build_masked_split`.

    Every kind of the level is drawn on every second image: `FaceOccluder` draws min(n, kinds) of them
    with n from `patches_per_person`, so (len(kinds), 3) draws them all; level 2 keeps the default (1, 3),
    so its split is the default masked split itself. Level 0 leaves every image clean.
    """
    if level not in SEVERITY_KINDS:
        raise ConfigError(f"occlusion.val_severity: expected one of {sorted(SEVERITY_KINDS)}, got {level}")
    kinds = SEVERITY_KINDS[level]
    if not kinds:
        return OcclusionSettings(clean_fraction=1.0, patches_per_person=(1, 3)), ("mask",)
    return OcclusionSettings(clean_fraction=0.0, patches_per_person=(len(kinds), 3)), kinds


def write_pair_scores(predictions: list[dict[str, Any]], dataset, embedding_size: int, path: Path) -> str:
    """Write one row per pair with the cosine score of its flip-test embeddings; return the format."""
    from tasks.face_recognition.verification import pair_scores

    embeddings = np.zeros((len(dataset), embedding_size), dtype=np.float32)
    for p in predictions:
        embeddings[p["index"]] = p["embedding"]
    scores = pair_scores(embeddings, dataset.pairs)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["pair", "first", "second", "same", "score"])
    for index, ((a, b), same, score) in enumerate(zip(dataset.pairs, dataset.same, scores, strict=True)):
        first, second = dataset.images[int(a)], dataset.images[int(b)]
        writer.writerow([index, _name(first, a), _name(second, b), int(bool(same)), f"{float(score):.8f}"])
    atomic_write_text(Path(path), out.getvalue())
    return "pair_scores_csv"


def _name(face, index) -> str:
    return str(face.path) if face.path is not None else (face.where or f"image {int(index)}")
