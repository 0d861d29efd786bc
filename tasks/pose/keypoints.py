"""COCO-17 keypoint metadata: names, flip pairs, skeleton, OKS sigmas, body parts for occluders.

Why here and not in the engine: only the pose task knows what a joint is. Everything else (patch
library, trainer, methods) receives these as plain arguments.
"""

from __future__ import annotations

import numpy as np

COCO_KEYPOINTS: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)

# Index pairs swapped by a horizontal flip.
COCO_FLIP_PAIRS: tuple[tuple[int, int], ...] = (
    (1, 2),
    (3, 4),
    (5, 6),
    (7, 8),
    (9, 10),
    (11, 12),
    (13, 14),
    (15, 16),
)

# 0-based limb list (COCO's own json stores it 1-based).
COCO_SKELETON: tuple[tuple[int, int], ...] = (
    (15, 13),
    (13, 11),
    (16, 14),
    (14, 12),
    (11, 12),
    (5, 11),
    (6, 12),
    (5, 6),
    (5, 7),
    (6, 8),
    (7, 9),
    (8, 10),
    (1, 2),
    (0, 1),
    (0, 2),
    (1, 3),
    (2, 4),
    (3, 5),
    (4, 6),
)

# Per-keypoint OKS falloff, identical to pycocotools' COCOeval defaults.
COCO_OKS_SIGMAS = (
    np.array(
        [0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89]
    )
    / 10.0
)

# Body parts the occluder library cuts out of person masks: a part is the keypoints that bound it
# (two = a limb segment, more = a region such as the head or torso).
COCO_BODY_PARTS: dict[str, tuple[int, ...]] = {
    "upper_arm_l": (5, 7),
    "upper_arm_r": (6, 8),
    "lower_arm_l": (7, 9),
    "lower_arm_r": (8, 10),
    "upper_leg_l": (11, 13),
    "upper_leg_r": (12, 14),
    "lower_leg_l": (13, 15),
    "lower_leg_r": (14, 16),
    "head": (0, 1, 2, 3, 4),
    "torso": (5, 6, 11, 12),
}

# Joints where patches are pasted (the paper pastes over elbows, knees and hips, where real
# occlusion by other people and objects concentrates).
COCO_OCCLUSION_ANCHORS: tuple[int, ...] = (7, 8, 9, 10, 11, 12, 13, 14)


def coco_category() -> dict:
    """The COCO person category entry, as found in person_keypoints_*.json."""
    return {
        "id": 1,
        "name": "person",
        "supercategory": "person",
        "keypoints": list(COCO_KEYPOINTS),
        "skeleton": [[a + 1, b + 1] for a, b in COCO_SKELETON],
    }
