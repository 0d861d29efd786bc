"""Face occluders placed from the five landmarks of an aligned crop, and the frozen masked pair split.

Three kinds, the commonest real occluders of faces:
- mask: insightface's surgical-mask photos (`insightface/data/images/mask_*.jpg`, local files of the
  installed package) warped onto the lower face, from just under the eyes to below the chin;
- sunglasses: two dark lenses on the eye landmarks with a bridge;
- hand: a skin-toned palm with fingers, centred near a random landmark, rotated.

Twins are drawn on the aligned 112x112 crop, before the resize shared with the clean image, so the clean
image and its twin stay pixel-aligned.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import cv2
import numpy as np

from harness.core.cache import build_once, content_key
from harness.core.errors import DataError
from harness.core.io import atomic_write_json
from harness.core.occlusion import OcclusionSettings
from tasks.face_recognition.data import align

KINDS = ("mask", "sunglasses", "hand")


@functools.lru_cache(maxsize=1)
def mask_textures() -> tuple[np.ndarray, ...]:
    """The mask photos shipped with insightface (BGR), loaded once per process."""
    import insightface

    folder = Path(insightface.__file__).parent / "data" / "images"
    textures = tuple(
        image
        for image in (cv2.imread(str(p)) for p in sorted(folder.glob("mask_*.jpg")))
        if image is not None
    )
    if not textures:
        raise DataError(f"no mask images found in {folder} (insightface's data/images/mask_*.jpg)")
    return textures


def _paste(canvas: np.ndarray, layer: np.ndarray, alpha: np.ndarray) -> None:
    a = alpha[..., None].astype(np.float32)
    canvas[:] = np.clip(canvas * (1 - a) + layer * a + 0.5, 0, 255).astype(np.uint8)


def draw_mask(image: np.ndarray, points: np.ndarray, rng: np.random.Generator) -> None:
    """Warp a mask photo over nose, mouth and chin (in place)."""
    texture = mask_textures()[int(rng.integers(len(mask_textures())))]
    eye_l, eye_r, nose, mouth_l, mouth_r = points
    eye_mid, mouth_mid = (eye_l + eye_r) / 2, (mouth_l + mouth_r) / 2
    across = eye_r - eye_l
    width = np.linalg.norm(across)
    unit = across / max(width, 1e-6)
    down = np.array([-unit[1], unit[0]])
    top = eye_mid + (nose - eye_mid) * rng.uniform(0.35, 0.55)
    bottom = mouth_mid + down * width * rng.uniform(0.55, 0.8)
    half = width * rng.uniform(0.9, 1.1)
    quad = np.float32(
        [top - unit * half, top + unit * half, bottom + unit * half * 0.8, bottom - unit * half * 0.8]
    )
    h, w = texture.shape[:2]
    matrix = cv2.getPerspectiveTransform(np.float32([[0, 0], [w, 0], [w, h], [0, h]]), quad)
    size = (image.shape[1], image.shape[0])
    layer = cv2.warpPerspective(texture, matrix, size, flags=cv2.INTER_LINEAR).astype(np.float32)
    alpha = np.zeros(image.shape[:2], np.float32)
    # The lower edge is rounded like a mask over the chin.
    chin = [
        bottom + unit * half * 0.8 * math.cos(t) + down * width * 0.25 * math.sin(t)
        for t in np.linspace(0, math.pi, 12)
    ]
    outline = np.array([quad[0], quad[1], *chin], dtype=np.float32)
    cv2.fillPoly(alpha, [np.round(outline * 16).astype(np.int32)], 1.0, cv2.LINE_AA, 4)
    layer *= rng.uniform(0.75, 1.1)  # the scene's lighting
    _paste(image, layer, alpha)


def draw_sunglasses(image: np.ndarray, points: np.ndarray, rng: np.random.Generator) -> None:
    """Two dark lenses on the eyes and a bridge (in place)."""
    eye_l, eye_r = points[0], points[1]
    width = float(np.linalg.norm(eye_r - eye_l))
    angle = math.degrees(math.atan2(eye_r[1] - eye_l[1], eye_r[0] - eye_l[0]))
    tint = rng.uniform(0, 60, 3)
    layer = np.zeros_like(image, dtype=np.float32)
    layer[:] = tint
    alpha = np.zeros(image.shape[:2], np.float32)
    axes = (int(16 * width * rng.uniform(0.3, 0.42)), int(16 * width * rng.uniform(0.22, 0.32)))
    for eye in (eye_l, eye_r):
        centre = tuple(int(v) for v in np.round(eye * 16))
        cv2.ellipse(alpha, centre, axes, angle, 0, 360, 1.0, -1, cv2.LINE_AA, 4)
    bridge = np.round(np.stack([eye_l, eye_r]) * 16).astype(np.int32)
    cv2.polylines(alpha, [bridge], False, 1.0, max(1, int(width / 20)), cv2.LINE_AA, 4)
    _paste(image, layer, alpha * rng.uniform(0.9, 1.0))


def draw_hand(image: np.ndarray, points: np.ndarray, rng: np.random.Generator) -> None:
    """A palm with four fingers and a thumb near a random landmark (in place)."""
    width = float(np.linalg.norm(points[1] - points[0]))
    centre = points[int(rng.integers(5))] + rng.normal(0, width * 0.2, 2)
    scale = width * rng.uniform(0.8, 1.3)
    angle = rng.uniform(0, 2 * math.pi)
    value = rng.uniform(70, 235)
    skin = np.array([value * rng.uniform(0.55, 0.8), value * rng.uniform(0.7, 0.9), value], np.float32)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])

    def place(local):
        return np.round((np.asarray(local, float) * scale @ rot.T + centre) * 16).astype(np.int32)

    alpha = np.zeros(image.shape[:2], np.float32)
    t = np.linspace(0, 2 * math.pi, 24, endpoint=False)
    cv2.fillPoly(alpha, [place(np.stack([0.45 * np.cos(t), 0.5 * np.sin(t)], 1))], 1.0, cv2.LINE_AA, 4)
    for offset, length in ((-0.3, 0.75), (-0.1, 0.85), (0.1, 0.8), (0.3, 0.65)):
        finger = place([[offset, -0.3], [offset, -0.3 - length]])
        cv2.polylines(alpha, [finger], False, 1.0, max(2, int(scale * 0.17)), cv2.LINE_AA, 4)
    cv2.polylines(
        alpha, [place([[0.35, 0.1], [0.75, -0.2]])], False, 1.0, max(2, int(scale * 0.18)), cv2.LINE_AA, 4
    )
    layer = np.empty_like(image, dtype=np.float32)
    layer[:] = skin
    _paste(image, layer, alpha)


_DRAW = {"mask": draw_mask, "sunglasses": draw_sunglasses, "hand": draw_hand}


class FaceOccluder:
    """Draws the occluded twin of an aligned face: `occluder(aligned, landmarks, rng) -> twin`.

    Args:
        settings: `clean_fraction` (share of twins left clean) and `patches_per_person` (how many occluders
            an occluded face gets; at most one of each kind). Sizes follow the face's landmarks.
        kinds: which occluders to draw from.
    """

    def __init__(self, settings: OcclusionSettings, kinds: tuple[str, ...] = KINDS):
        unknown = [k for k in kinds if k not in _DRAW]
        if unknown or not kinds:
            raise DataError(f"occluder kinds: expected some of {', '.join(KINDS)}, got {list(kinds)}")
        self.settings, self.kinds = settings, tuple(kinds)

    def __call__(self, aligned: np.ndarray, points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        twin = np.ascontiguousarray(aligned).copy()
        if rng.random() < self.settings.clean_fraction:
            return twin
        low, high = self.settings.patches_per_person
        count = min(max(int(rng.integers(low, high + 1)), 1), len(self.kinds))
        for kind in rng.choice(self.kinds, count, replace=False):
            _DRAW[str(kind)](twin, np.asarray(points, float), rng)
        return twin


def build_masked_split(
    dataset,
    cache_root: Path,
    *,
    settings: OcclusionSettings,
    kinds: tuple[str, ...],
    seed: int,
    source_digest: str,
) -> tuple[list[Path], np.ndarray]:
    """The frozen masked pair split: the second image of every pair occluded, the first left clean.

    Occluded crops are written once per (source, settings, seed) as lossless PNGs; each image's occluder
    comes from rng(seed, image index), so the split does not depend on order. Every method and run is
    scored on the very same pixels.

    Args:
        dataset: the clean `VerificationSet`.
        cache_root: where the split folder is created.
        settings: occlusion settings of the val split (`clean_fraction` should be 0).
        kinds: occluder kinds.
        seed: the split's seed.
        source_digest: identifies the clean pair list and images.

    Returns:
        (paths of the occluded aligned crops, indexed like the clean images that were occluded;
        sorted indices of those images).
    """
    key = {"source": source_digest, "settings": [settings.clean_fraction, list(settings.patches_per_person)],
           "kinds": list(kinds), "seed": seed}  # fmt: skip
    folder = Path(cache_root) / f"masked_{dataset.name}_s{seed}_{content_key(key)}"
    occluded = np.unique(dataset.pairs[:, 1])
    paths = [folder / f"{int(i):06d}.png" for i in occluded]

    def build_into(tmp: Path) -> None:
        occluder = FaceOccluder(settings, kinds)
        for index, path in zip(occluded, paths, strict=True):
            face = dataset.images[int(index)]
            aligned, points = align(face.load(), face.landmarks)
            twin = occluder(aligned, points, np.random.default_rng((seed, int(index))))
            cv2.imwrite(str(tmp / path.name), twin)
        atomic_write_json(tmp / "manifest.json", {**key, "images": len(paths)})

    build_once(folder, build_into, done="manifest.json")
    return paths, occluded
