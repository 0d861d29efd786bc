"""Face occluders: hands, everyday objects, sunglasses and face masks, as a
`harness.core.occlusion.PatchLibrary`.

Why these: they are what covers real faces (COFW's and WFLW's occlusion subsets are mostly hands, food,
cups, phones, microphones, sunglasses, and since 2020 surgical masks). Hands, objects and sunglasses are
drawn here; the mask patches cut the fabric of insightface's own mask images (`insightface/data/images/
mask_*.jpg`, read from the installed package) into a mask outline with ear loops. Nothing is downloaded.

Every patch is an (h, w, 4) BGRA array whose alpha is 0 or 255, colour zeroed where alpha is 0, so the
library hashes, saves and pastes exactly like pose's body-part library. A library is a pure function of
(max_patches, seed) and the mask images.

One module on purpose (~430 lines): each occluder kind is a short drawing function; together they are the
one patch library face alignment pastes.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import cv2
import numpy as np

from harness.core.errors import DataError
from harness.core.io import read_image
from harness.core.occlusion import Patch, PatchLibrary

GENERATOR_VERSION = 1
PART_SHARES = {"hand": 0.35, "object": 0.25, "sunglasses": 0.2, "mask": 0.2}
_SIDE = 96  # patches are drawn at about this size and resized when pasted
_SHIFT = 4
_ONE = 1 << _SHIFT


def insightface_mask_images() -> list[Path]:
    """The mask images shipped in the installed insightface package (found without importing it).

    Raises:
        DataError: insightface is not installed or ships no mask image.
    """
    spec = importlib.util.find_spec("insightface")
    folders = list(spec.submodule_search_locations or []) if spec else []
    paths = sorted(p for folder in folders for p in (Path(folder) / "data" / "images").glob("mask_*.jpg"))
    if not paths:
        raise DataError("insightface's mask images (insightface/data/images/mask_*.jpg) were not found")
    return paths


def library_key(max_patches: int, seed: int) -> str:
    """What a cached library depends on: size, seed, generator version and the mask images' bytes."""
    sha = hashlib.sha256(f"v{GENERATOR_VERSION}:{max_patches}:{seed}".encode())
    for path in insightface_mask_images():
        sha.update(path.name.encode() + hashlib.sha256(path.read_bytes()).digest())
    return sha.hexdigest()[:12]


def face_patch_library(max_patches: int = 500, seed: int = 0, cache_dir: Path | None = None) -> PatchLibrary:
    """Hands, objects, sunglasses and masks in the shares of `PART_SHARES`, cached under `cache_dir`.

    Args:
        max_patches: library size.
        seed: patch i is drawn from rng(seed, i), so a library is deterministic.
        cache_dir: folder for the .npz (built once); None builds in memory only.

    Example:
        >>> library = face_patch_library(40, seed=0)
        >>> sorted(library.part_counts())
        ['hand', 'mask', 'object', 'sunglasses']
    """
    cache = Path(cache_dir) / f"face_patches_{library_key(max_patches, seed)}.npz" if cache_dir else None
    if cache is not None and cache.is_file():
        return PatchLibrary.load(cache)
    fabrics = [read_image(path) for path in insightface_mask_images()]
    parts = list(PART_SHARES)
    shares = np.array(list(PART_SHARES.values()))
    counts = np.floor(shares * max_patches).astype(int)
    counts[np.argsort(-shares)[: max_patches - counts.sum()]] += 1  # the remainder to the largest shares
    sequence = [part for part, count in zip(parts, counts, strict=True) for _ in range(count)]
    patches = []
    for index, part in enumerate(sequence):
        rng = np.random.default_rng((seed, index))
        if part == "hand":
            rgba = draw_hand(rng)
        elif part == "object":
            rgba = draw_object(rng)
        elif part == "sunglasses":
            rgba = draw_sunglasses(rng)
        else:
            rgba = cut_mask(rng, fabrics[int(rng.integers(len(fabrics)))])
        patches.append(Patch(rgba=_tight(rgba), part=part))
    library = PatchLibrary(patches)
    if cache is not None:
        library.save(cache)
    return library


# ---------------------------------------------------------------------------------------------- drawing


def _fix(p) -> tuple[int, int]:
    return int(round(p[0] * _ONE)), int(round(p[1] * _ONE))


def _tight(rgba: np.ndarray) -> np.ndarray:
    """Crop to the alpha's bounding box, binarise alpha and zero the colour outside it."""
    alpha = rgba[..., 3] >= 128
    rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    rgba = rgba[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].copy()
    alpha = rgba[..., 3] >= 128
    rgba[..., 3] = alpha * np.uint8(255)
    rgba[~alpha, :3] = 0
    return rgba


def _shade(layer: np.ndarray, mask: np.ndarray, rng: np.random.Generator, strength: float = 0.35) -> None:
    """A linear light gradient over the drawn pixels, in place."""
    h, w = mask.shape
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[:h, :w].astype(np.float32)
    t = ((xs / w - 0.5) * np.cos(angle) + (ys / h - 0.5) * np.sin(angle)) * 2
    factor = 1 + strength * rng.uniform(0.3, 1.0) * t
    layer[mask] = np.clip(layer[mask] * factor[mask, None], 0, 255).astype(np.uint8)


def _skin(rng: np.random.Generator) -> tuple[int, int, int]:
    """A skin tone (BGR) between light and dark."""
    t = rng.uniform(0, 1)
    light, dark = np.array([180, 200, 235]), np.array([55, 75, 115])
    tone = light + (dark - light) * t + rng.normal(0, 8, 3)
    return tuple(int(c) for c in np.clip(tone, 0, 255))


def draw_hand(rng: np.random.Generator) -> np.ndarray:
    """An open or half-closed hand with a wrist: palm, four fingers and a thumb, in a skin tone."""
    size = _SIDE
    canvas = np.zeros((size * 2, size * 2, 3), np.uint8)
    mask = np.zeros(canvas.shape[:2], np.uint8)
    colour = _skin(rng)
    c = np.array([size, size * 1.05])
    palm_w, palm_h = size * rng.uniform(0.22, 0.28), size * rng.uniform(0.26, 0.32)
    spread = rng.uniform(0.0, 1.0)  # 0: fingers together, 1: spread
    curl = rng.uniform(0.0, 0.6)  # shorter fingers when curled

    def limb(p, q, r, col):
        d = np.asarray(q) - np.asarray(p)
        n = np.array([-d[1], d[0]]) / max(float(np.hypot(*d)), 1e-6)
        quad = np.round(np.array([p + n * r, q + n * r, q - n * r, p - n * r]) * _ONE).astype(np.int32)
        for img, value in ((canvas, col), (mask, 255)):
            cv2.fillConvexPoly(img, quad, value, cv2.LINE_AA, _SHIFT)
            cv2.circle(img, _fix(p), int(r * _ONE), value, -1, cv2.LINE_AA, _SHIFT)
            cv2.circle(img, _fix(q), int(r * _ONE), value, -1, cv2.LINE_AA, _SHIFT)

    # wrist / forearm
    limb(c + [0, palm_h * 0.6], c + [rng.normal(0, 4), size * 0.95], palm_w * 0.75, colour)
    for img, value in ((canvas, colour), (mask, 255)):
        cv2.ellipse(
            img, _fix(c), (int(palm_w * _ONE), int(palm_h * _ONE)), 0, 0, 360, value, -1, cv2.LINE_AA, _SHIFT
        )
    finger_r = palm_w * rng.uniform(0.2, 0.25)
    lengths = np.array([0.9, 1.0, 0.95, 0.75]) * size * rng.uniform(0.3, 0.38) * (1 - curl)
    for i, length in enumerate(lengths):
        x = c[0] + (i - 1.5) * palm_w * 0.5
        angle = np.deg2rad((i - 1.5) * 9 * (1 + 2 * spread) + rng.normal(0, 3))
        base = np.array([x, c[1] - palm_h * 0.75])
        tip = base + length * np.array([np.sin(angle), -np.cos(angle)])
        shade = tuple(int(v * rng.uniform(0.88, 1.0)) for v in colour)
        limb(base, tip, finger_r, shade)
    side = rng.choice([-1.0, 1.0])
    thumb_base = c + [side * palm_w * 0.8, palm_h * 0.1]
    thumb_angle = np.deg2rad(side * rng.uniform(35, 80))
    thumb_tip = thumb_base + size * 0.3 * np.array([np.sin(thumb_angle), -np.cos(thumb_angle)])
    limb(thumb_base, thumb_tip, finger_r * 1.1, colour)
    # knuckle / crease lines
    dark = tuple(int(v * 0.7) for v in colour)
    for i in range(3):
        x = c[0] + (i - 1) * palm_w * 0.5
        cv2.line(
            canvas,
            _fix((x, c[1] - palm_h * 0.7)),
            _fix((x, c[1] - palm_h * 0.2)),
            dark,
            1,
            cv2.LINE_AA,
            _SHIFT,
        )
    canvas[mask == 0] = 0
    _shade(canvas, mask > 0, rng)
    rgba = np.dstack([canvas, mask])
    angle = rng.uniform(-180, 180)
    matrix = cv2.getRotationMatrix2D((size, size), angle, 1.0)
    return cv2.warpAffine(rgba, matrix, (size * 2, size * 2), flags=cv2.INTER_LINEAR)


def draw_object(rng: np.random.Generator) -> np.ndarray:
    """An everyday occluder: a phone, a cup, a microphone, a card or book, a ball, or a scarf band."""
    size = _SIDE
    canvas = np.zeros((size, size, 3), np.uint8)
    mask = np.zeros((size, size), np.uint8)
    colour = tuple(int(v) for v in rng.integers(20, 235, 3))
    kind = int(rng.integers(6))

    def fill_poly(points, value_canvas, value_mask=255):
        pts = [np.round(np.asarray(points) * _ONE).astype(np.int32)]
        cv2.fillPoly(canvas, pts, value_canvas, cv2.LINE_AA, _SHIFT)
        cv2.fillPoly(mask, pts, value_mask, cv2.LINE_8, _SHIFT)

    if kind == 0:  # phone: dark rounded body, lighter screen
        w, h = size * rng.uniform(0.3, 0.4), size * rng.uniform(0.6, 0.8)
        x0, y0 = (size - w) / 2, (size - h) / 2
        body = tuple(int(v) for v in rng.integers(10, 70, 3))
        fill_poly([(x0, y0), (x0 + w, y0), (x0 + w, y0 + h), (x0, y0 + h)], body)
        screen = tuple(int(v) for v in rng.integers(60, 220, 3))
        m = w * 0.1
        cv2.rectangle(
            canvas,
            _fix((x0 + m, y0 + 2 * m)),
            _fix((x0 + w - m, y0 + h - 2 * m)),
            screen,
            -1,
            cv2.LINE_AA,
            _SHIFT,
        )
    elif kind == 1:  # cup: trapezoid with a handle and a rim
        w, h = size * rng.uniform(0.4, 0.55), size * rng.uniform(0.45, 0.6)
        x0, y0 = (size - w) / 2, (size - h) / 2
        fill_poly([(x0, y0), (x0 + w, y0), (x0 + w * 0.88, y0 + h), (x0 + w * 0.12, y0 + h)], colour)
        cv2.ellipse(
            canvas,
            _fix((x0 + w, y0 + h * 0.45)),
            (int(w * 0.22 * _ONE), int(h * 0.22 * _ONE)),
            0,
            -90,
            90,
            colour,
            max(2, int(w * 0.08)),
            cv2.LINE_AA,
            _SHIFT,
        )
        cv2.ellipse(
            mask,
            _fix((x0 + w, y0 + h * 0.45)),
            (int(w * 0.22 * _ONE), int(h * 0.22 * _ONE)),
            0,
            -90,
            90,
            255,
            max(2, int(w * 0.08)),
            cv2.LINE_8,
            _SHIFT,
        )
        rim = tuple(int(min(255, v * 1.3 + 20)) for v in colour)
        cv2.ellipse(
            canvas,
            _fix((x0 + w / 2, y0)),
            (int(w / 2 * _ONE), int(w * 0.1 * _ONE)),
            0,
            0,
            360,
            rim,
            -1,
            cv2.LINE_AA,
            _SHIFT,
        )
        cv2.ellipse(
            mask,
            _fix((x0 + w / 2, y0)),
            (int(w / 2 * _ONE), int(w * 0.1 * _ONE)),
            0,
            0,
            360,
            255,
            -1,
            cv2.LINE_8,
            _SHIFT,
        )
    elif kind == 2:  # microphone: a ball head on a handle
        r = size * rng.uniform(0.12, 0.17)
        head = np.array([size / 2, size * 0.25])
        handle = tuple(int(v) for v in rng.integers(10, 60, 3))
        fill_poly(
            [
                (size / 2 - r * 0.45, head[1]),
                (size / 2 + r * 0.45, head[1]),
                (size / 2 + r * 0.3, size * 0.95),
                (size / 2 - r * 0.3, size * 0.95),
            ],
            handle,
        )
        grille = tuple(int(v) for v in rng.integers(110, 200, 3))
        cv2.circle(canvas, _fix(head), int(r * _ONE), grille, -1, cv2.LINE_AA, _SHIFT)
        cv2.circle(mask, _fix(head), int(r * _ONE), 255, -1, cv2.LINE_8, _SHIFT)
        for k in range(-2, 3):
            cv2.line(
                canvas,
                _fix(head + [k * r * 0.35, -r * 0.9]),
                _fix(head + [k * r * 0.35, r * 0.9]),
                tuple(v // 2 for v in grille),
                1,
                cv2.LINE_AA,
                _SHIFT,
            )
    elif kind == 3:  # card or book: a rectangle with stripes of text
        w, h = size * rng.uniform(0.5, 0.9), size * rng.uniform(0.35, 0.7)
        x0, y0 = (size - w) / 2, (size - h) / 2
        fill_poly([(x0, y0), (x0 + w, y0), (x0 + w, y0 + h), (x0, y0 + h)], colour)
        ink = tuple(int(v * 0.4) for v in colour)
        for k in range(int(rng.integers(2, 6))):
            y = y0 + h * (0.2 + 0.15 * k)
            if y < y0 + h * 0.9:
                cv2.line(
                    canvas,
                    _fix((x0 + w * 0.1, y)),
                    _fix((x0 + w * rng.uniform(0.5, 0.9), y)),
                    ink,
                    2,
                    cv2.LINE_AA,
                    _SHIFT,
                )
    elif kind == 4:  # ball / fruit: a disc with a highlight
        r = size * rng.uniform(0.25, 0.4)
        centre = np.array([size / 2, size / 2])
        cv2.circle(canvas, _fix(centre), int(r * _ONE), colour, -1, cv2.LINE_AA, _SHIFT)
        cv2.circle(mask, _fix(centre), int(r * _ONE), 255, -1, cv2.LINE_8, _SHIFT)
        light = tuple(int(min(255, v + 70)) for v in colour)
        cv2.circle(canvas, _fix(centre - r * 0.35), int(r * 0.25 * _ONE), light, -1, cv2.LINE_AA, _SHIFT)
    else:  # scarf / cloth band: a wavy strip with a pattern
        h = size * rng.uniform(0.25, 0.4)
        xs = np.linspace(0, size - 1, 12)
        wave = rng.uniform(2, 6) * np.sin(xs / size * np.pi * rng.uniform(1, 3) + rng.uniform(0, 6))
        top = np.stack([xs, size / 2 - h / 2 + wave], 1)
        bottom = np.stack([xs[::-1], size / 2 + h / 2 + wave[::-1]], 1)
        fill_poly(np.concatenate([top, bottom]), colour)
        stripe = tuple(int(v) for v in rng.integers(0, 256, 3))
        for k in range(int(rng.integers(1, 4))):
            y = size / 2 - h / 2 + h * (k + 1) / 4
            cv2.line(canvas, _fix((0, y)), _fix((size - 1, y)), stripe, 2, cv2.LINE_AA, _SHIFT)
    canvas[mask == 0] = 0
    _shade(canvas, mask > 0, rng)
    return np.dstack([canvas, mask])


def draw_sunglasses(rng: np.random.Generator) -> np.ndarray:
    """Two dark lenses joined by a bridge, with temple arms; round, oval or rectangular."""
    w, h = _SIDE, int(_SIDE * 0.45)
    canvas = np.zeros((h, w, 3), np.uint8)
    mask = np.zeros((h, w), np.uint8)
    lens = tuple(int(v) for v in rng.integers(5, 60, 3))
    frame = tuple(int(v) for v in rng.integers(0, 200, 3))
    shape = int(rng.integers(3))
    rx, ry = w * rng.uniform(0.16, 0.2), h * rng.uniform(0.3, 0.42)
    thick = max(1, int(rng.integers(1, 4)))
    for cx in (w * 0.3, w * 0.7):
        centre = np.array([cx, h * 0.5])
        if shape == 2:
            p, q = _fix(centre - [rx, ry]), _fix(centre + [rx, ry])
            cv2.rectangle(canvas, p, q, lens, -1, cv2.LINE_AA, _SHIFT)
            cv2.rectangle(mask, p, q, 255, -1, cv2.LINE_8, _SHIFT)
            cv2.rectangle(canvas, p, q, frame, thick, cv2.LINE_AA, _SHIFT)
        else:
            axes = (int(rx * _ONE), int((rx if shape == 0 else ry) * _ONE))
            cv2.ellipse(canvas, _fix(centre), axes, 0, 0, 360, lens, -1, cv2.LINE_AA, _SHIFT)
            cv2.ellipse(mask, _fix(centre), axes, 0, 0, 360, 255, -1, cv2.LINE_8, _SHIFT)
            cv2.ellipse(canvas, _fix(centre), axes, 0, 0, 360, frame, thick, cv2.LINE_AA, _SHIFT)
        glint = tuple(int(min(255, v + 90)) for v in lens)
        cv2.line(
            canvas,
            _fix(centre + [-rx * 0.5, -ry * 0.3]),
            _fix(centre + [-rx * 0.1, -ry * 0.6]),
            glint,
            1,
            cv2.LINE_AA,
            _SHIFT,
        )
    bridge_y = h * 0.45
    for img, value in ((canvas, frame), (mask, 255)):
        cv2.line(
            img,
            _fix((w * 0.3 + rx * 0.9, bridge_y)),
            _fix((w * 0.7 - rx * 0.9, bridge_y)),
            value,
            thick + 1,
            cv2.LINE_AA,
            _SHIFT,
        )
        cv2.line(
            img, _fix((w * 0.3 - rx, h * 0.4)), _fix((1, h * 0.35)), value, thick + 1, cv2.LINE_AA, _SHIFT
        )
        cv2.line(
            img, _fix((w * 0.7 + rx, h * 0.4)), _fix((w - 2, h * 0.35)), value, thick + 1, cv2.LINE_AA, _SHIFT
        )
    canvas[mask == 0] = 0
    return np.dstack([canvas, mask])


def cut_mask(rng: np.random.Generator, fabric: np.ndarray) -> np.ndarray:
    """A face mask: a random window of an insightface mask image inside a mask outline, with ear loops.

    The outline is a rounded, pleated trapezoid that is wider at the chin, the way a worn surgical mask looks
    from the front.
    """
    fh, fw = fabric.shape[:2]
    margin_y, margin_x = int(fh * 0.06), int(fw * 0.04)  # drop the product photo's white border
    window = fabric[margin_y : fh - margin_y, margin_x : fw - margin_x]
    wh, ww = window.shape[:2]
    take_w = int(ww * rng.uniform(0.6, 1.0))
    take_h = int(min(wh, take_w * rng.uniform(0.45, 0.65)))
    x0 = int(rng.integers(0, ww - take_w + 1))
    y0 = int(rng.integers(0, wh - take_h + 1))
    w = _SIDE
    h = int(w * rng.uniform(0.5, 0.65))
    texture = cv2.resize(window[y0 : y0 + take_h, x0 : x0 + take_w], (w, h), interpolation=cv2.INTER_AREA)
    texture = np.clip(texture.astype(np.float32) * rng.uniform(0.8, 1.1) + rng.normal(0, 6, 3), 0, 255)
    mask = np.zeros((h, w), np.uint8)
    top_inset, bottom_inset = w * rng.uniform(0.1, 0.16), w * rng.uniform(0.0, 0.05)
    outline = np.array(
        [
            (top_inset, h * 0.12),
            (w / 2, h * 0.02),
            (w - top_inset, h * 0.12),
            (w - 1 - bottom_inset, h * 0.72),
            (w / 2, h * 0.98),
            (bottom_inset, h * 0.72),
        ]
    )
    cv2.fillPoly(mask, [np.round(outline * _ONE).astype(np.int32)], 255, cv2.LINE_8, _SHIFT)
    canvas = texture.astype(np.uint8)
    loop = tuple(int(v) for v in np.clip(texture.mean(axis=(0, 1)) * 0.9, 0, 255))
    for img, value in ((canvas, loop), (mask, 255)):
        cv2.line(img, _fix(outline[0]), _fix((1, h * 0.3)), value, 2, cv2.LINE_AA, _SHIFT)
        cv2.line(img, _fix(outline[2]), _fix((w - 2, h * 0.3)), value, 2, cv2.LINE_AA, _SHIFT)
    canvas[mask == 0] = 0
    _shade(canvas, mask > 0, rng, strength=0.2)
    return np.dstack([canvas, mask])
