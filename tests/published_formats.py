"""Fixtures in the schemas the datasets are published in (not the harness's own), built from the real samples.

Each builder keeps exactly the fields the published files carry, so a loader that leans on a field only some
conversions add (CrowdPose has no `area`, no `segmentation`) fails here as it would on the real download.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

# The keys of a published CrowdPose annotation and image (crowdpose_{train,val,test,trainval}.json).
CROWDPOSE_ANNOTATION_KEYS = ("num_keypoints", "iscrowd", "keypoints", "image_id", "bbox", "category_id", "id")
CROWDPOSE_IMAGE_KEYS = ("file_name", "id", "height", "width", "crowdIndex")
CROWDPOSE_NAMES = (
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "head", "neck",
)  # fmt: skip


def crowdpose_from_coco(coco: dict, crowd_indices: list[float]) -> dict:
    """COCO persons in CrowdPose's published schema: 14 joints (head = nose, neck = mid-shoulders), no
    `area` or `segmentation`, `num_keypoints` counting visible (v=2) joints only, `crowdIndex` per image."""
    annotations = []
    for ann in coco["annotations"]:
        k = np.asarray(ann["keypoints"], float).reshape(17, 3)
        neck = np.array([*(k[5, :2] + k[6, :2]) / 2, 2.0]) if k[5, 2] > 0 and k[6, 2] > 0 else np.zeros(3)
        joints = np.concatenate([k[5:17], k[0:1], neck[None]])
        annotations.append(
            {
                "num_keypoints": int((joints[:, 2] == 2).sum()),
                "iscrowd": int(ann["iscrowd"]),
                "keypoints": [int(round(v)) for v in joints.reshape(-1)],
                "image_id": ann["image_id"],
                "bbox": [round(float(v), 2) for v in ann["bbox"]],
                "category_id": 1,
                "id": ann["id"],
            }
        )
    images = [
        {
            "file_name": i["file_name"],
            "id": i["id"],
            "height": i["height"],
            "width": i["width"],
            "crowdIndex": c,
        }
        for i, c in zip(coco["images"], crowd_indices, strict=True)
    ]
    skeleton = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7]]
    category = {"supercategory": "person", "id": 1, "name": "person", "keypoints": list(CROWDPOSE_NAMES)}
    category["skeleton"] = skeleton
    return {"categories": [category], "images": images, "annotations": annotations}


def write_crowdpose_root(coco_root: Path, root: Path, crowd_indices: list[float], splits=("test",)) -> Path:
    """<root>/json/crowdpose_<split>.json + <root>/images/ (the COCO fixture's images), CrowdPose's layout."""
    coco = json.loads((coco_root / "annotations" / "person_keypoints_val2017.json").read_text())
    data = crowdpose_from_coco(coco, crowd_indices)
    (root / "json").mkdir(parents=True)
    for split in splits:
        (root / "json" / f"crowdpose_{split}.json").write_text(json.dumps(data))
    (root / "images").symlink_to(coco_root / "val2017")
    return root
