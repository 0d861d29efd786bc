"""MPII PCKh: a joint is correct when it lies within `threshold` x head size of the ground truth.

Head size is 0.6 x the diagonal of the annotated head box (SC_BIAS of the MPII evaluation code). The means
leave out pelvis and thorax, as the MPII leaderboard does, and weight joints by how often they are
annotated (so a mean is hits / annotated joints over the 14 scored joints). Values are percentages, the
convention of every MPII table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.core.errors import DataError

SC_BIAS = 0.6
# Joint groups of the MPII table (indices into the 16 MPII joints), left and right averaged.
JOINT_GROUPS: dict[str, tuple[int, ...]] = {
    "Head": (9,),
    "Shoulder": (12, 13),
    "Elbow": (11, 14),
    "Wrist": (10, 15),
    "Hip": (2, 3),
    "Knee": (1, 4),
    "Ankle": (0, 5),
}
UNSCORED_JOINTS = (6, 7)  # pelvis, thorax


def head_sizes(head_boxes: np.ndarray) -> np.ndarray:
    """(N, 2, 2) head boxes [[x1, y1], [x2, y2]] -> (N,) head sizes (0.6 x box diagonal)."""
    boxes = np.asarray(head_boxes, dtype=np.float64)
    return np.linalg.norm(boxes[:, 1] - boxes[:, 0], axis=1) * SC_BIAS


def pckh_hits(
    predicted: np.ndarray,
    ground_truth: np.ndarray,
    annotated: np.ndarray,
    sizes: np.ndarray,
    threshold: float,
) -> np.ndarray:
    """(N, 16) bool: annotated joints within threshold x head size of the ground truth."""
    error = np.linalg.norm(np.asarray(predicted, float) - np.asarray(ground_truth, float), axis=2)
    return (error <= threshold * np.asarray(sizes, float)[:, None]) & np.asarray(annotated, bool)


def _percent(hits: int, total: int) -> float | None:
    return 100.0 * hits / total if total else None


def pckh_table(
    predicted: np.ndarray,
    ground_truth: np.ndarray,
    annotated: np.ndarray,
    head_boxes: np.ndarray,
    covered: np.ndarray | None = None,
) -> dict[str, float | None]:
    """PCKh@0.5 per joint group, its mean, Mean@0.1, and (given `covered`) the mean on visible/covered joints.

    Args:
        predicted, ground_truth: (N, 16, 2) joint coordinates in image pixels.
        annotated: (N, 16) joints labelled in the ground truth (MPII `joints_vis`).
        head_boxes: (N, 2, 2) head boxes.
        covered: (N, 16) joints under an occluder, or None when the split has no such flags.

    Returns:
        {"PCKh", "PCKh@0.1", "PCKh_Head", ..., "PCKh_Ankle", "PCKh_visible", "PCKh_occluded"} in percent;
        None where no joint of that kind is annotated.
    """
    sizes = head_sizes(head_boxes)
    scored = np.asarray(annotated, bool).copy()
    scored[:, list(UNSCORED_JOINTS)] = False
    hits = pckh_hits(predicted, ground_truth, scored, sizes, 0.5)
    result: dict[str, float | None] = {
        "PCKh": _percent(int(hits.sum()), int(scored.sum())),
        "PCKh@0.1": _percent(
            int(pckh_hits(predicted, ground_truth, scored, sizes, 0.1).sum()), int(scored.sum())
        ),
    }
    for name, joints in JOINT_GROUPS.items():
        per_joint = [_percent(int(hits[:, j].sum()), int(scored[:, j].sum())) for j in joints]
        known = [v for v in per_joint if v is not None]
        result[f"PCKh_{name}"] = float(np.mean(known)) if known else None
    result["PCKh_visible"] = result["PCKh_occluded"] = None
    if covered is not None:
        covered = np.asarray(covered, bool)
        for name, mask in (("PCKh_visible", scored & ~covered), ("PCKh_occluded", scored & covered)):
            result[name] = _percent(int(hits[mask].sum()), int(mask.sum()))
    return result


def load_head_boxes(path: Path, count: int) -> np.ndarray:
    """Head boxes for the `count` persons of an MPII annotation list, in list order.

    Reads `mpii_gt_val.mat` / `gt_valid.mat` (field `headboxes_src`, shape (2, 2, N)) or a json list of
    [[x1, y1], [x2, y2]] boxes.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"head boxes file not found: {path}")
    if path.suffix == ".mat":
        from scipy.io import loadmat

        data = loadmat(str(path))
        if "headboxes_src" not in data:
            raise DataError(f"{path}: no field 'headboxes_src' (expected MPII's gt_valid.mat layout)")
        boxes = np.transpose(np.asarray(data["headboxes_src"], dtype=np.float64), (2, 0, 1))
    else:
        import json

        try:
            boxes = np.asarray(json.loads(path.read_text()), dtype=np.float64)
        except ValueError as err:
            raise DataError(
                f"{path}: expected a json list of [[x1, y1], [x2, y2]] head boxes ({err})"
            ) from None
    if boxes.ndim != 3 or boxes.shape[1:] != (2, 2):
        raise DataError(f"{path}: head boxes have shape {boxes.shape}, expected (N, 2, 2)")
    if len(boxes) != count:
        raise DataError(f"{path}: {len(boxes)} head boxes for {count} annotated persons")
    return boxes
