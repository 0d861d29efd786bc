"""Body-part patches cut out of COCO person masks: the occluders of pose's occluded twins (D-Slope's "other
people are the commonest occluders"). The library and the pasting are the engine's
(harness/core/occlusion.py).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from harness.core.errors import ConfigError, DataError
from harness.core.io import read_image as read_image_file
from harness.core.occlusion import Patch, PatchLibrary

# Limb geometry, relative to the limb length L and the person's longer box side S.
_LIMB_WIDTH = 0.6  # rectangle width = 0.6 * L ...
_LIMB_WIDTH_CLAMP = (0.06, 0.25)  # ... clamped to [0.06 S, 0.25 S] (foreshortened or very long limbs)
_LIMB_EXTEND = 0.15  # the rectangle runs 0.15 * L past both joints, so the joints themselves are inside
# Region geometry: the keypoints' convex hull grown by 0.15 * its diagonal + 0.03 * S.
_REGION_MARGIN = 0.15
_REGION_MIN_POINTS = 3  # a region is cut from its labelled keypoints when at least this many are labelled
_REGION_MARGIN_FLOOR = 0.03


def cut_body_part_patches(
    ann_file: Path,
    image_dir: Path,
    *,
    parts: Mapping[str, Sequence[int]],
    max_patches: int = 500,
    min_size: int = 8,
    seed: int = 0,
) -> PatchLibrary:
    """Cut body-part patches out of the person masks of a COCO keypoint annotation file.

    Every non-crowd annotation with a segmentation (polygons, compressed or uncompressed RLE) is a
    candidate for each of its parts whose keypoints are labelled (v > 0). A part of two keypoints is a
    limb (both must be labelled): a rectangle along the segment, about 0.6x its length wide (clamped
    relative to the person box) and running a little past both joints. A part of three or more
    keypoints is a region (at least three must be labelled, so a head seen in profile still counts):
    the convex hull of the labelled points grown by a margin relative to its size. Either shape is
    intersected with the person mask; the patch is the bounding box of the result with the mask as
    alpha. Cut-outs smaller than `min_size` on a side, or with fewer than `min_size**2` mask pixels,
    are skipped.

    When there are more than `max_patches` valid cut-outs, a uniform random subset is kept (candidates
    are visited in a seeded random order until enough are valid, so only the images needed are read).
    The result is ordered by (image id, annotation id, part order in `parts`) and is a pure function of
    the inputs and `seed`.

    Args:
        ann_file: COCO json with `images` and `annotations` (`keypoints`, `segmentation`, `bbox`).
        image_dir: folder holding the images named by `file_name`.
        parts: part name -> keypoint indices that bound it (at least two each).
        max_patches: the most patches to keep.
        min_size: the smallest accepted side of a cut-out, in pixels.
        seed: the seed of the subsampling.

    Returns:
        The library (possibly empty when no annotation qualifies).

    Raises:
        ConfigError: a part has fewer than two or negative keypoint indices, or max_patches < 1.
        DataError: the annotation file or an image it names is missing or unreadable.

    Example:
        >>> lib = cut_body_part_patches(Path("ann.json"), Path("images"), parts={"lower_arm_l": (7, 9)})
        ... # doctest: +SKIP
    """
    part_items = _check_parts(parts)
    if max_patches < 1:
        raise ConfigError(f"max_patches: expected >= 1, got {max_patches}")
    try:
        data = json.loads(Path(ann_file).read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"{ann_file}: cannot read the COCO annotations ({err})") from None
    images = {info["id"]: info for info in data.get("images", [])}

    # Candidates from the annotations alone, in canonical order.
    candidates: list[tuple[int, str, tuple[int, ...]]] = []
    annotations = sorted(data.get("annotations", []), key=lambda a: (a.get("image_id", 0), a.get("id", 0)))
    for ann_index, ann in enumerate(annotations):
        if ann.get("iscrowd", 0) or not ann.get("segmentation") or ann.get("image_id") not in images:
            continue
        keypoints = np.asarray(ann.get("keypoints", []), dtype=np.float64).reshape(-1, 3)
        for name, indices in part_items:
            present = tuple(i for i in indices if i < len(keypoints) and keypoints[i, 2] > 0)
            if len(present) == len(indices) or len(present) >= _REGION_MIN_POINTS:
                candidates.append((ann_index, name, present))

    @functools.lru_cache(maxsize=8)
    def read_image(image_id: int) -> np.ndarray:
        return read_image_file(Path(image_dir) / images[image_id]["file_name"])

    @functools.lru_cache(maxsize=16)
    def person_mask(ann_index: int) -> np.ndarray:
        ann = annotations[ann_index]
        height, width = read_image(ann["image_id"]).shape[:2]
        where = f"{ann_file}, annotation {ann.get('id')}"
        return _decode_segmentation(ann["segmentation"], height, width, where=where)

    order = np.random.default_rng(seed).permutation(len(candidates))
    kept: list[tuple[int, Patch]] = []
    for position in order:
        ann_index, name, indices = candidates[position]
        ann = annotations[ann_index]
        image = read_image(ann["image_id"])
        mask = person_mask(ann_index)
        keypoints = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)[list(indices), :2]
        rgba = _cut_part(image, mask, keypoints, _person_scale(ann, mask), min_size)
        if rgba is not None:
            kept.append((int(position), Patch(rgba=rgba, part=name)))
            if len(kept) == max_patches:
                break
    kept.sort(key=lambda item: item[0])
    return PatchLibrary([patch for _, patch in kept])


def _check_parts(parts: Mapping[str, Sequence[int]]) -> list[tuple[str, tuple[int, ...]]]:
    items = []
    for name, indices in parts.items():
        indices = tuple(int(i) for i in indices)
        if len(indices) < 2 or min(indices) < 0:
            raise ConfigError(f"parts['{name}']: expected >= 2 non-negative keypoint indices, got {indices}")
        items.append((str(name), indices))
    return items


def _decode_segmentation(segmentation, height: int, width: int, *, where: str) -> np.ndarray:
    """A COCO segmentation (polygons, compressed or uncompressed RLE) as an (H, W) bool mask."""
    if isinstance(
        segmentation, list
    ):  # polygons: fewer than 3 points has no area (4 numbers would read as a box)
        polygons = [p for p in segmentation if len(p) >= 6 and len(p) % 2 == 0]
        if not polygons:
            return np.zeros((height, width), dtype=bool)
        rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    elif isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
        if list(segmentation["size"]) != [height, width]:
            raise DataError(
                f"{where}: RLE size {segmentation['size']} does not match the image ({height}, {width})"
            )
        if isinstance(segmentation["counts"], list):  # uncompressed RLE
            rle = mask_utils.frPyObjects(segmentation, height, width)
        else:
            counts = segmentation["counts"]
            rle = {"size": [height, width], "counts": counts.encode() if isinstance(counts, str) else counts}
    else:
        raise DataError(f"{where}: unknown segmentation format {type(segmentation).__name__}")
    return mask_utils.decode(rle).astype(bool)


def _person_scale(ann: dict, mask: np.ndarray) -> float:
    """The person's longer box side (from `bbox`, or the mask when the box is missing)."""
    box = ann.get("bbox")
    if box and len(box) == 4 and max(box[2], box[3]) > 0:
        return float(max(box[2], box[3]))
    ys, xs = np.nonzero(mask)
    return float(max(np.ptp(xs) + 1, np.ptp(ys) + 1)) if len(xs) else 1.0


def _cut_part(image: np.ndarray, mask: np.ndarray, points: np.ndarray, scale: float, min_size: int):
    """The (h, w, 4) RGBA cut-out of one part, or None when it is empty or too small."""
    height, width = mask.shape
    if len(points) == 2:
        start, end = points
        length = float(np.hypot(*(end - start)))
        if length < 1.0:
            return None
        along = (end - start) / length
        across = np.array([-along[1], along[0]])
        half_width = 0.5 * float(np.clip(_LIMB_WIDTH * length, *(c * scale for c in _LIMB_WIDTH_CLAMP)))
        a, b = start - _LIMB_EXTEND * length * along, end + _LIMB_EXTEND * length * along
        corners = np.stack(
            [
                a + half_width * across,
                b + half_width * across,
                b - half_width * across,
                a - half_width * across,
            ]
        )
        margin = 0.0
    else:
        corners = points
        margin = _REGION_MARGIN * float(np.hypot(*np.ptp(points, axis=0))) + _REGION_MARGIN_FLOOR * scale
    # Work in the window the shape can reach, clipped to the image.
    x0 = max(0, int(math.floor(corners[:, 0].min() - margin)))
    y0 = max(0, int(math.floor(corners[:, 1].min() - margin)))
    x1 = min(width, int(math.ceil(corners[:, 0].max() + margin)) + 1)
    y1 = min(height, int(math.ceil(corners[:, 1].max() + margin)) + 1)
    if x1 - x0 < min_size or y1 - y0 < min_size:
        return None
    shape = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    local = np.round(corners - [x0, y0]).astype(np.int32)
    cv2.fillConvexPoly(shape, cv2.convexHull(local), 1)
    if margin > 0:  # grow the hull by `margin`: pixels whose distance to it is within the margin
        distance = cv2.distanceTransform((shape == 0).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        shape = (distance <= margin).astype(np.uint8)
    region = shape.astype(bool) & mask[y0:y1, x0:x1]
    rows, cols = np.any(region, axis=1), np.any(region, axis=0)
    if not rows.any():
        return None
    r0, r1 = np.argmax(rows), len(rows) - np.argmax(rows[::-1])
    c0, c1 = np.argmax(cols), len(cols) - np.argmax(cols[::-1])
    region = region[r0:r1, c0:c1]
    if min(region.shape) < min_size or region.sum() < min_size * min_size:
        return None
    rgba = np.zeros((*region.shape, 4), dtype=np.uint8)
    rgba[..., :3] = image[y0 + r0 : y0 + r1, x0 + c0 : x0 + c1]
    rgba[~region, :3] = 0  # colour outside the mask means nothing: zero it (stable bytes, smaller files)
    rgba[..., 3] = region * np.uint8(255)
    return rgba
