"""Body-part patch library and seeded placement: the "occluded twin" of D-Slope.

Why: D-Slope trains two networks on the same person. GNet sees the clean crop; ENet sees an *occluded
twin* in which patches of real human body parts (forearms, legs, heads, torsos cut out of the training
set's own person masks) cover some joints, since other people are the commonest occluders in crowded
scenes. The patches are pasted on the full image *before* the crop/affine shared with the clean image,
so the two crops are pixel-aligned and both networks learn from the same clean targets.

This module knows nothing about a concrete task: the patches (pose cuts them from COCO person masks in
tasks/pose/patches.py, face alignment draws its occluders) and the anchor joints come from the task.

Example:
    >>> library = PatchLibrary(patches)  # doctest: +SKIP
    >>> rng = np.random.default_rng(0)
    >>> twin, covered = occluded_twin(image, keypoints, box, library, rng, anchors=(7, 8),
    ...                               settings=OcclusionSettings())  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import math
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from harness.core.errors import ConfigError, DataError
from harness.core.io import atomic_write

_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Patch:
    """One body-part cut-out.

    Attributes:
        rgba: (h, w, 4) uint8 image (BGR + alpha); alpha is 0 or 255 (the person mask), colour is 0 where
            alpha is 0.
        part: the body part's name, e.g. "lower_arm_l" or "head".
    """

    rgba: np.ndarray
    part: str


class PatchLibrary:
    """An ordered, immutable collection of body-part patches.

    Args:
        patches: the patches; each `rgba` must be an (h, w, 4) uint8 array with h, w > 0.

    Raises:
        ValueError: a patch is not an (h, w, 4) uint8 array.
    """

    def __init__(self, patches: Sequence[Patch]):
        checked = []
        for index, patch in enumerate(patches):
            rgba = np.asarray(patch.rgba)
            if rgba.dtype != np.uint8 or rgba.ndim != 3 or rgba.shape[2] != 4 or 0 in rgba.shape:
                raise ValueError(
                    f"patch {index} ('{patch.part}'): expected (h, w, 4) uint8, got {rgba.shape} {rgba.dtype}"
                )
            rgba = np.ascontiguousarray(rgba).copy()
            rgba.setflags(write=False)
            checked.append(Patch(rgba=rgba, part=str(patch.part)))
        self._patches: tuple[Patch, ...] = tuple(checked)

    def __len__(self) -> int:
        return len(self._patches)

    def __getitem__(self, index: int) -> Patch:
        return self._patches[index]

    def __iter__(self):
        return iter(self._patches)

    @property
    def patches(self) -> tuple[Patch, ...]:
        """All patches, in library order."""
        return self._patches

    def part_counts(self) -> dict[str, int]:
        """How many patches each part contributed (for logs and provenance)."""
        counts: dict[str, int] = {}
        for patch in self._patches:
            counts[patch.part] = counts.get(patch.part, 0) + 1
        return counts

    def save(self, path: Path) -> None:
        """Write the library as a compressed .npz (no pickled objects), atomically.

        Args:
            path: the destination file; its folder is created.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        shapes = np.array([p.rgba.shape[:2] for p in self._patches], dtype=np.int64).reshape(-1, 2)
        pixels = np.concatenate([p.rgba.reshape(-1) for p in self._patches] or [np.zeros(0, np.uint8)])
        names = np.array([p.part for p in self._patches], dtype=str)
        atomic_write(
            path,
            lambda handle: np.savez_compressed(
                handle, version=np.array(_FORMAT_VERSION), shapes=shapes, pixels=pixels, parts=names
            ),
        )

    @classmethod
    def load(cls, path: Path) -> PatchLibrary:
        """Read a library written by `save`.

        Args:
            path: the .npz file.

        Returns:
            The library, equal (same `digest`) to the one saved.

        Raises:
            DataError: the file is missing, not a patch library, or inconsistent.
        """
        try:
            with np.load(Path(path), allow_pickle=False) as archive:
                version = int(archive["version"])
                shapes, pixels, names = archive["shapes"], archive["pixels"], archive["parts"]
        except (OSError, KeyError, ValueError, TypeError, AttributeError, zipfile.BadZipFile) as err:
            raise DataError(f"{path}: not a readable patch library ({err})") from None
        sizes = shapes[:, 0] * shapes[:, 1] * 4 if len(shapes) else np.zeros(0, np.int64)
        if version != _FORMAT_VERSION or len(names) != len(shapes) or int(sizes.sum()) != pixels.size:
            raise DataError(
                f"{path}: patch library format {version} with {len(shapes)} shapes, {len(names)} names and "
                f"{pixels.size} bytes is inconsistent (expected format {_FORMAT_VERSION})"
            )
        ends = np.cumsum(sizes)
        patches = [
            Patch(rgba=pixels[end - size : end].reshape(int(h), int(w), 4), part=str(name))
            for (h, w), size, end, name in zip(shapes, sizes, ends, names, strict=True)
        ]
        return cls(patches)

    def digest(self) -> str:
        """SHA-256 (hex) over every patch's part name, shape and bytes, in order: the library's identity."""
        sha = hashlib.sha256()
        for patch in self._patches:
            sha.update(patch.part.encode() + b"\0")
            sha.update(np.asarray(patch.rgba.shape, dtype="<i8").tobytes())
            sha.update(patch.rgba.tobytes())
        return sha.hexdigest()


@dataclass(frozen=True)
class OcclusionSettings:
    """How an occluded twin is drawn.

    Attributes:
        clean_fraction: share of twins left unoccluded (the twin equals the clean image).
        patches_per_person: inclusive range of the number of patches pasted on an occluded person.
        size_range: the patch's longer side relative to the person box's longer side, drawn uniformly.
        max_rotation: patch rotation in degrees, drawn uniformly in [-max_rotation, max_rotation].

    Raises:
        ConfigError: a value is out of range.
    """

    clean_fraction: float = 1 / 3
    patches_per_person: tuple[int, int] = (1, 3)
    size_range: tuple[float, float] = (0.25, 0.5)
    max_rotation: float = 45.0

    def __post_init__(self):
        low, high = self.patches_per_person
        small, large = self.size_range
        if not 0.0 <= self.clean_fraction <= 1.0:
            raise ConfigError(
                f"occlusion.clean_fraction: expected a value in [0, 1], got {self.clean_fraction!r}"
            )
        if not 0 <= low <= high:
            raise ConfigError(
                f"occlusion.patches_per_person: expected 0 <= low <= high, got {self.patches_per_person}"
            )
        if not 0.0 < small <= large:
            raise ConfigError(f"occlusion.size_range: expected 0 < low <= high, got {self.size_range}")
        if self.max_rotation < 0:
            raise ConfigError(f"occlusion.max_rotation: expected >= 0 degrees, got {self.max_rotation}")


def occluded_twin(
    image: np.ndarray,
    keypoints: np.ndarray,
    box: Sequence[float],
    library: PatchLibrary,
    rng: np.random.Generator,
    *,
    anchors: Sequence[int],
    settings: OcclusionSettings,
    part_anchors: Mapping[str, Sequence[int]] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Paste body-part patches over a person's joints: the occluded twin of `image`.

    The rng is consumed in a fixed order (one draw for clean-or-not, one for the patch count, then per
    patch: anchor, patch, size, rotation), so the twin is a pure function of the inputs and the rng state.

    Args:
        image: (H, W, 3) uint8 image (BGR as cv2 loads it); left untouched.
        keypoints: (K, 3) [x, y, v] in image coordinates.
        box: the person box [x, y, w, h]; its longer side sets the patch size.
        library: the patches to draw from.
        rng: the random source.
        anchors: keypoint indices a patch may be centred on; a random labelled one is used per patch, the
            box centre when none is labelled.
        settings: clean fraction, patch count, size and rotation ranges.
        part_anchors: optional part name -> keypoint indices, for patches that belong somewhere (sunglasses
            on the eyes): a patch of a listed part is centred on one of its own labelled anchors instead.
            The rng draws are the same either way.

    Returns:
        (twin, covered): a new (H, W, 3) uint8 array, and a (K,) bool array that is True for each keypoint
        that is labelled, inside the image, and under a pasted patch's alpha at its rounded position.

    Raises:
        ValueError: `image` is not (H, W, 3) uint8 or `keypoints` is not (K, 3).
        DataError: the library is empty.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> twin, covered = occluded_twin(image, keypoints, [10, 20, 80, 160], library, rng,
        ...                               anchors=(7, 8), settings=OcclusionSettings())  # doctest: +SKIP
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image: expected (H, W, 3) uint8, got {image.shape} {image.dtype}")
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.ndim != 2 or keypoints.shape[1] != 3:
        raise ValueError(f"keypoints: expected (K, 3) [x, y, v], got shape {keypoints.shape}")
    twin = image.copy()
    covered = np.zeros(len(keypoints), dtype=bool)
    if rng.random() < settings.clean_fraction:
        return twin, covered
    if len(library) == 0:
        raise DataError("occluded_twin: the patch library is empty")

    height, width = image.shape[:2]

    def labelled_of(indices: Sequence[int]) -> list[int]:
        return [a for a in indices if 0 <= a < len(keypoints) and keypoints[a, 2] > 0]

    labelled = labelled_of(anchors)
    labelled_by_part = {part: labelled_of(indices) for part, indices in (part_anchors or {}).items()}
    bx, by, bw, bh = (float(v) for v in box)
    longer = max(bw, bh)
    # Keypoints that can be covered: labelled and (rounded) inside the image.
    kx = np.floor(keypoints[:, 0] + 0.5).astype(np.int64)
    ky = np.floor(keypoints[:, 1] + 0.5).astype(np.int64)
    testable = (keypoints[:, 2] > 0) & (kx >= 0) & (kx < width) & (ky >= 0) & (ky < height)

    count = int(rng.integers(settings.patches_per_person[0], settings.patches_per_person[1] + 1))
    for _ in range(count):
        anchor_draw = rng.random()
        patch = library[int(rng.integers(len(library)))]
        side = max(4.0, rng.uniform(*settings.size_range) * longer)
        angle = rng.uniform(-settings.max_rotation, settings.max_rotation)
        candidates = labelled_by_part.get(patch.part) or labelled
        if candidates:
            x, y = keypoints[candidates[int(anchor_draw * len(candidates))], :2]
        else:
            x, y = bx + bw / 2, by + bh / 2
        pasted = _place(patch.rgba, side, angle, float(x), float(y), height, width)
        if pasted is None:
            continue
        x0, y0, colour, alpha = pasted
        window = twin[y0 : y0 + alpha.shape[0], x0 : x0 + alpha.shape[1]]
        window[alpha] = colour[alpha]
        inside = testable & (kx >= x0) & (kx < x0 + alpha.shape[1]) & (ky >= y0) & (ky < y0 + alpha.shape[0])
        covered[inside] |= alpha[ky[inside] - y0, kx[inside] - x0]
    return twin, covered


def _place(rgba: np.ndarray, side: float, angle: float, x: float, y: float, height: int, width: int):
    """Resize `rgba` to a longer side of `side` px, rotate by `angle` degrees and centre it on (x, y).

    Returns:
        (x0, y0, colour, alpha) for the image window at (x0, y0) that the patch reaches, clipped to the
        image: colour (h, w, 3) uint8 and a binary alpha (h, w) bool; or None when the patch misses the image.
    """
    h, w = rgba.shape[:2]
    factor = side / max(h, w)
    new_w, new_h = max(1, round(w * factor)), max(1, round(h * factor))
    # Premultiplied colour (it is 0 where alpha is 0) and alpha are resampled together, then divided:
    # edge pixels keep the patch's colour instead of fading towards black.
    layers = rgba.astype(np.float32)
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    layers = cv2.resize(layers, (new_w, new_h), interpolation=interpolation)
    theta = math.radians(angle)
    # Snap the centre so the patch's pixel grid lands on the image's: an unrotated patch is pasted
    # without resampling (the centre moves by at most half a pixel).
    x = round(x - (new_w - 1) / 2) + (new_w - 1) / 2
    y = round(y - (new_h - 1) / 2) + (new_h - 1) / 2
    half_w = 0.5 * (abs(new_w * math.cos(theta)) + abs(new_h * math.sin(theta))) + 1
    half_h = 0.5 * (abs(new_w * math.sin(theta)) + abs(new_h * math.cos(theta))) + 1
    x0, y0 = max(0, math.floor(x - half_w)), max(0, math.floor(y - half_h))
    x1, y1 = min(width, math.ceil(x + half_w) + 1), min(height, math.ceil(y + half_h) + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    matrix = cv2.getRotationMatrix2D(((new_w - 1) / 2, (new_h - 1) / 2), angle, 1.0)
    matrix[:, 2] += (x - x0 - (new_w - 1) / 2, y - y0 - (new_h - 1) / 2)
    warped = cv2.warpAffine(
        layers,
        matrix,
        (x1 - x0, y1 - y0),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    alpha = warped[..., 3] >= 128
    if not alpha.any():
        return None
    weight = np.maximum(warped[..., 3:], 1e-3) / 255.0
    colour = np.clip(warped[..., :3] / weight + 0.5, 0, 255).astype(np.uint8)
    return x0, y0, colour, alpha
