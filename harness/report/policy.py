"""The paper's table policy: which tables the records call for and which methods the ablation and the
qualitative figure compare. Everything else in the report is generic over tasks and methods.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

REAL_OCCLUSION_DATASETS = ("ochuman", "crowdpose")
_BASELINE_METHOD = "clean"
_DSLOPE_METHOD = "dslope"


def _table_families(records: list[dict[str, Any]]) -> list[tuple[str, str, Callable[[dict], bool]]]:
    """(name, title, selector) of each table the records call for; other tasks get a table of their own."""

    def real(r: dict) -> bool:
        return str(r.get("dataset", "")).lower() in REAL_OCCLUSION_DATASETS

    families = [
        (
            "pose",
            "Pose estimation: clean vs. occluded val",
            lambda r: r.get("task") == "pose" and not real(r),
        ),
        ("real_occlusion", "Real occlusion (OCHuman, CrowdPose)", real),
        ("face_alignment", "Face alignment", lambda r: r.get("task") == "face_alignment" and not real(r)),
        (
            "face_recognition",
            "Face recognition",
            lambda r: r.get("task") == "face_recognition" and not real(r),
        ),
    ]
    named = {"pose", "face_alignment", "face_recognition"}
    for task in sorted({str(r.get("task")) for r in records} - named):
        families.append((task, f"Task {task}", lambda r, t=task: str(r.get("task")) == t and not real(r)))
    return families
