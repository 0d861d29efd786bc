"""Landmark layouts of the face datasets: point count, flip pairs, NME normalisation, occluder anchors.

Why here and not in the engine: only this task knows what a landmark is. The dataset, the occluder and the
metrics receive these as plain arguments.

Indices are 0-based in the order of mmpose's COCO-style json files. "Left" and "right" below mean the image
side of a frontal face (the subject's right eye is on the image left).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Layout:
    """One dataset's landmark layout.

    Attributes:
        name: dataset name as used in configs ("cofw", "wflw", "300w").
        num_landmarks: points per face.
        flip_pairs: index pairs swapped by a horizontal flip.
        norm_points: the two landmarks whose distance normalises NME by default (the dataset's custom).
        norm_name: what that distance is called (for README and provenance).
        pupils: indices of the two eye centres (or None when the layout has no pupil points).
        outer_eyes: indices of the two outer eye corners.
        part_anchors: occluder part -> landmarks a patch of that part may be centred on; parts not listed
            use `anchors`.
        anchors: landmarks any other patch may be centred on.
        skeleton: index pairs drawn between landmarks in figures.
        visibility_marks_occlusion: the json's visibility 1 means "occluded" (COFW), so those points count
            as occluded in the visible/occluded NME split.
    """

    name: str
    num_landmarks: int
    flip_pairs: tuple[tuple[int, int], ...]
    norm_points: tuple[int, int]
    norm_name: str
    pupils: tuple[int, int] | None
    outer_eyes: tuple[int, int]
    part_anchors: dict[str, tuple[int, ...]]
    anchors: tuple[int, ...]
    skeleton: tuple[tuple[int, int], ...]
    visibility_marks_occlusion: bool = False


def _chain(*indices: int) -> tuple[tuple[int, int], ...]:
    return tuple(zip(indices[:-1], indices[1:], strict=True))


def _mirror(pairs: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    return tuple(sorted((min(a, b), max(a, b)) for a, b in pairs))


# COFW (29 points, as in LFPW): 0/1 outer brow ends, 2/3 inner brow ends, 4/5 left brow top/bottom,
# 6/7 right brow top/bottom, 8/9 outer eye corners, 10/11 inner eye corners, 12/13 left eye top/bottom,
# 14/15 right eye top/bottom, 16/17 pupils, 18/19 nose wings, 20 nose tip, 21 nose bottom, 22/23 mouth
# corners, 24 upper lip top, 25 upper lip bottom, 26 lower lip top, 27 lower lip bottom, 28 chin.
COFW_NAMES: tuple[str, ...] = (
    "left_brow_outer",
    "right_brow_outer",
    "left_brow_inner",
    "right_brow_inner",
    "left_brow_top",
    "left_brow_bottom",
    "right_brow_top",
    "right_brow_bottom",
    "left_eye_outer",
    "right_eye_outer",
    "left_eye_inner",
    "right_eye_inner",
    "left_eye_top",
    "left_eye_bottom",
    "right_eye_top",
    "right_eye_bottom",
    "left_pupil",
    "right_pupil",
    "left_nose_wing",
    "right_nose_wing",
    "nose_tip",
    "nose_bottom",
    "mouth_left",
    "mouth_right",
    "upper_lip_top",
    "upper_lip_bottom",
    "lower_lip_top",
    "lower_lip_bottom",
    "chin",
)

COFW = Layout(
    name="cofw",
    num_landmarks=29,
    flip_pairs=_mirror(
        [(0, 1), (2, 3), (4, 6), (5, 7), (8, 9), (10, 11), (12, 14), (13, 15), (16, 17), (18, 19), (22, 23)]
    ),
    norm_points=(16, 17),
    norm_name="inter-pupil distance",
    pupils=(16, 17),
    outer_eyes=(8, 9),
    # Sunglasses sit on the eyes, masks on the mouth; hands and objects anywhere on the face.
    part_anchors={"sunglasses": (10, 11), "mask": (21, 24, 25, 26)},
    anchors=tuple(range(29)),
    skeleton=(
        *_chain(0, 4, 2, 5, 0),
        *_chain(1, 6, 3, 7, 1),
        *_chain(8, 12, 10, 13, 8),
        *_chain(9, 14, 11, 15, 9),
        *_chain(18, 20, 19, 21, 18),
        *_chain(22, 24, 23, 27, 22),
        *_chain(25, 26),
    ),
    visibility_marks_occlusion=True,
)

# 300W / iBUG 68 points: 0-16 jaw, 17-21 / 22-26 brows, 27-30 nose bridge, 31-35 nostrils,
# 36-41 / 42-47 eyes, 48-59 outer lips, 60-67 inner lips.
_300W_PAIRS = [(i, 16 - i) for i in range(8)]
_300W_PAIRS += [(17 + i, 26 - i) for i in range(5)]
_300W_PAIRS += [(31, 35), (32, 34)]
_300W_PAIRS += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
_300W_PAIRS += [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58), (60, 64), (61, 63), (65, 67)]

W300 = Layout(
    name="300w",
    num_landmarks=68,
    flip_pairs=_mirror(_300W_PAIRS),
    norm_points=(36, 45),
    norm_name="inter-ocular distance (outer eye corners)",
    pupils=None,
    outer_eyes=(36, 45),
    part_anchors={"sunglasses": (27, 28, 39, 42), "mask": (33, 51, 62, 66)},
    anchors=tuple(range(68)),
    skeleton=(
        *_chain(*range(0, 17)),
        *_chain(*range(17, 22)),
        *_chain(*range(22, 27)),
        *_chain(*range(27, 31)),
        *_chain(*range(31, 36)),
        *_chain(*range(36, 42), 36),
        *_chain(*range(42, 48), 42),
        *_chain(*range(48, 60), 48),
        *_chain(*range(60, 68), 60),
    ),
)

# WFLW 98 points: 0-32 jaw, 33-41 / 42-50 brows (upper then lower edge), 51-54 nose bridge, 55-59 nostrils,
# 60-67 / 68-75 eyes, 76-87 outer lips, 88-95 inner lips, 96/97 pupils.
_WFLW_PAIRS = [(i, 32 - i) for i in range(16)]
_WFLW_PAIRS += [(33, 46), (34, 45), (35, 44), (36, 43), (37, 42), (38, 50), (39, 49), (40, 48), (41, 47)]
_WFLW_PAIRS += [(55, 59), (56, 58)]
_WFLW_PAIRS += [(60, 72), (61, 71), (62, 70), (63, 69), (64, 68), (65, 75), (66, 74), (67, 73)]
_WFLW_PAIRS += [(76, 82), (77, 81), (78, 80), (83, 87), (84, 86), (88, 92), (89, 91), (93, 95), (96, 97)]

WFLW = Layout(
    name="wflw",
    num_landmarks=98,
    flip_pairs=_mirror(_WFLW_PAIRS),
    norm_points=(60, 72),
    norm_name="inter-ocular distance (outer eye corners)",
    pupils=(96, 97),
    outer_eyes=(60, 72),
    part_anchors={"sunglasses": (51, 52, 64, 68, 96, 97), "mask": (57, 79, 85, 90, 94)},
    anchors=tuple(range(98)),
    skeleton=(
        *_chain(*range(0, 33)),
        *_chain(*range(33, 42), 33),
        *_chain(*range(42, 51), 42),
        *_chain(*range(51, 55)),
        *_chain(*range(55, 60)),
        *_chain(*range(60, 68), 60),
        *_chain(*range(68, 76), 68),
        *_chain(*range(76, 88), 76),
        *_chain(*range(88, 96), 88),
    ),
)

LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in (COFW, W300, WFLW)}


def coco_category(layout: Layout) -> dict:
    """The category entry of a COCO-style face landmark json (as mmpose ships them)."""
    return {
        "id": 1,
        "name": "face",
        "supercategory": "person",
        "keypoints": list(COFW_NAMES) if layout is COFW else [],
        "skeleton": [[a + 1, b + 1] for a, b in layout.skeleton],
    }
