"""Prediction files: every evaluated split leaves its predictions in the run dir, in the field's format.

A number in a record is only as good as what it was computed from. After each evaluation the task writes
the split's predictions (`Task.write_predictions`: COCO keypoint results for pose, a landmarks json for face
alignment, pair scores for face recognition) under `<run dir>/predictions/`, and the record names the file
and its sha256, so anyone can rescore it with the field's own tools.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from harness.core.cache import file_digest
from harness.core.task import Task

PREDICTIONS_DIR = "predictions"


def prediction_path(folder: Path, network: str, split: str, severity: int | None, extension: str) -> Path:
    """`<folder>/predictions/<network>__<split>[__severity<k>].<extension>`."""
    level = f"__severity{severity}" if severity is not None else ""
    return Path(folder) / PREDICTIONS_DIR / f"{network}__{split}{level}.{extension}"


def save_predictions(
    task: Task, predictions: list[dict[str, Any]], dataset: Dataset, folder: Path, record: Any
) -> dict[str, Any] | None:
    """Write one split's predictions under `folder` and describe the file for `record.predictions`.

    Args:
        task: writes the file (`Task.write_predictions`).
        predictions: what `Task.predict` returned for the split, the very list that was scored.
        dataset: the split.
        folder: the run dir (training) or the evaluation's folder (`harness eval`).
        record: the split's ResultRecord (its network, split and severity name the file).

    Returns:
        {"file", "format", "sha256"}, or None when the task writes no prediction file.
    """
    path = prediction_path(folder, record.network, record.split, record.severity, task.prediction_format)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = task.write_predictions(predictions, dataset, path)
    if not fmt:
        return None
    return {"file": str(path), "format": fmt, "sha256": file_digest(path)}
