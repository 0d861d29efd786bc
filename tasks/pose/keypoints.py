"""Keypoint layouts (COCO-17, MPII-16, CrowdPose-14): names, flip pairs, skeleton, OKS sigmas, anchors.

Why here and not in the engine: only the pose task knows what a joint is. Everything else (patch
library, trainer, methods) receives these as plain arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

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


# --- Other datasets' keypoint layouts -------------------------------------------------------------------

MPII_KEYPOINTS: tuple[str, ...] = (
    "right_ankle",
    "right_knee",
    "right_hip",
    "left_hip",
    "left_knee",
    "left_ankle",
    "pelvis",
    "thorax",
    "upper_neck",
    "head_top",
    "right_wrist",
    "right_elbow",
    "right_shoulder",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
)

CROWDPOSE_KEYPOINTS: tuple[str, ...] = (
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
    "head",
    "neck",
)


@dataclass(frozen=True)
class KeypointSpec:
    """Everything the pose task needs to know about one dataset's keypoint layout.

    Attributes:
        name: layout name ("coco", "mpii", "crowdpose").
        keypoints: keypoint names in annotation order.
        flip_pairs: index pairs swapped by a horizontal flip.
        skeleton: 0-based limbs, for figures.
        sigmas: per-keypoint OKS falloff, or None where the dataset is scored by PCKh (MPII).
        anchors: joints the occluder pastes patches over (elbows, wrists, hips, knees).
        oks_area: the OKS scale s²: "annotation" (COCO: the person's segmentation `area`, derived from
            the box where a file has none) or "box" (CrowdPose's toolkit: always 0.53 x box area).
    """

    name: str
    keypoints: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    skeleton: tuple[tuple[int, int], ...]
    sigmas: np.ndarray | None
    anchors: tuple[int, ...]
    oks_area: str = "annotation"

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoints)

    def category(self) -> dict:
        """The person category entry of a COCO-style json in this layout."""
        return {
            "id": 1,
            "name": "person",
            "supercategory": "person",
            "keypoints": list(self.keypoints),
            "skeleton": [[a + 1, b + 1] for a, b in self.skeleton],
        }


COCO_LAYOUT = KeypointSpec(
    name="coco",
    keypoints=COCO_KEYPOINTS,
    flip_pairs=COCO_FLIP_PAIRS,
    skeleton=COCO_SKELETON,
    sigmas=COCO_OKS_SIGMAS,
    anchors=COCO_OCCLUSION_ANCHORS,
)

MPII_LAYOUT = KeypointSpec(
    name="mpii",
    keypoints=MPII_KEYPOINTS,
    flip_pairs=((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)),
    skeleton=(
        (0, 1),
        (1, 2),
        (2, 6),
        (5, 4),
        (4, 3),
        (3, 6),
        (6, 7),
        (7, 8),
        (8, 9),
        (10, 11),
        (11, 12),
        (12, 7),
        (15, 14),
        (14, 13),
        (13, 7),
    ),  # fmt: skip
    sigmas=None,
    anchors=(1, 2, 3, 4, 10, 11, 14, 15),
)

# CrowdPose's own OKS sigmas (as in its crowdposetools): COCO's limb sigmas, 0.79 for head and neck.
CROWDPOSE_LAYOUT = KeypointSpec(
    name="crowdpose",
    keypoints=CROWDPOSE_KEYPOINTS,
    flip_pairs=((0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11)),
    skeleton=(
        (12, 13),
        (13, 0),
        (13, 1),
        (0, 2),
        (2, 4),
        (1, 3),
        (3, 5),
        (13, 6),
        (13, 7),
        (6, 8),
        (8, 10),
        (7, 9),
        (9, 11),
    ),  # fmt: skip
    sigmas=np.array([0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89, 0.79, 0.79])
    / 10.0,
    anchors=(2, 3, 4, 5, 6, 7, 8, 9),
    oks_area="box",
)

SPECS: dict[str, KeypointSpec] = {spec.name: spec for spec in (COCO_LAYOUT, MPII_LAYOUT, CROWDPOSE_LAYOUT)}
