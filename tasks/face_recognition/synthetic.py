"""Embedded synthetic identities, written in the real formats (identity folders, landmarks.txt, pairs.txt).

Why embedded: nothing can be downloaded here, yet the task must train and evaluate out of the box. Why the
real formats: the very loaders, alignment (`norm_crop` from the five drawn landmarks) and verification
protocol used for CASIA/MS1M folders and LFW run unchanged on it.

An identity is a fixed set of shape and texture parameters (face outline and jaw, skin, hair colour and
style, eye spacing, size and iris colour, brows, nose, mouth, beard, moles). Each image redraws that
identity under a new pose (roll, scale, shift, yaw), expression (smile, open mouth, raised brows, blink),
lighting (direction, strength, colour cast), background, blur and noise. Training and validation
identities are disjoint, as in LFW-style open-set verification. Same arguments give identical files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from harness.core.cache import build_once

CANVAS = 128
JPEG_QUALITY = 95
_HAIR = [
    (20, 20, 25),
    (30, 45, 70),
    (40, 80, 130),
    (80, 140, 200),
    (150, 150, 155),
    (220, 220, 225),
    (30, 50, 150),
    (60, 60, 60),
]  # fmt: skip  (BGR: black, brown, light brown, blond, grey, white, red, dark grey)
_IRIS = [(30, 50, 90), (140, 110, 60), (80, 130, 70), (120, 120, 120), (20, 30, 50)]


@dataclass(frozen=True)
class Identity:
    aspect: float
    jaw: float
    skin: tuple[float, float, float]
    hair: tuple[float, float, float]
    hair_style: int  # 0 bald, 1 short, 2 fringe, 3 long, 4 high top
    hairline: float
    eye_u: float
    eye_v: float
    eye_size: float
    iris: tuple[float, float, float]
    brow_width: int
    brow_tilt: float
    nose_v: float
    nose_w: float
    mouth_v: float
    mouth_w: float
    lip: tuple[float, float, float]
    beard: int  # 0 none, 1 moustache, 2 full, 3 goatee
    moles: tuple[tuple[float, float], ...]
    ear: float


def make_identity(rng: np.random.Generator) -> Identity:
    skin_v = rng.uniform(70, 235)
    skin = (skin_v * rng.uniform(0.55, 0.8), skin_v * rng.uniform(0.7, 0.9), skin_v)
    hair = np.asarray(_HAIR[int(rng.integers(len(_HAIR)))], float) * rng.uniform(0.8, 1.15)
    lip = np.asarray(skin) * np.array([0.6, 0.55, 0.9]) * rng.uniform(0.8, 1.05)
    return Identity(
        aspect=rng.uniform(1.15, 1.5),
        jaw=rng.uniform(0.0, 0.8),
        skin=tuple(np.clip(skin, 0, 255)),
        hair=tuple(np.clip(hair, 0, 255)),
        hair_style=int(rng.integers(5)),
        hairline=rng.uniform(0.45, 0.8),
        eye_u=rng.uniform(0.34, 0.5),
        eye_v=rng.uniform(-0.2, 0.0),
        eye_size=rng.uniform(0.09, 0.16),
        iris=tuple(np.asarray(_IRIS[int(rng.integers(len(_IRIS)))], float)),
        brow_width=int(rng.integers(1, 5)),
        brow_tilt=rng.uniform(-0.12, 0.12),
        nose_v=rng.uniform(0.2, 0.42),
        nose_w=rng.uniform(0.1, 0.24),
        mouth_v=rng.uniform(0.55, 0.75),
        mouth_w=rng.uniform(0.2, 0.38),
        lip=tuple(np.clip(lip, 0, 255)),
        beard=int(rng.choice(4, p=[0.6, 0.15, 0.15, 0.1])),
        moles=tuple((rng.uniform(-0.7, 0.7), rng.uniform(-0.5, 0.8)) for _ in range(int(rng.integers(0, 3)))),
        ear=rng.uniform(0.15, 0.3),
    )


def _background(rng: np.random.Generator) -> np.ndarray:
    kind = int(rng.integers(3))
    base = rng.uniform(0, 255, 3)
    canvas = np.empty((CANVAS, CANVAS, 3), np.float32)
    canvas[:] = base
    if kind == 1:  # linear gradient
        other = rng.uniform(0, 255, 3)
        ramp = np.linspace(0, 1, CANVAS, dtype=np.float32)
        ramp = ramp[:, None] if rng.random() < 0.5 else ramp[None, :]
        canvas = base + (other - base) * ramp[..., None] * np.ones((CANVAS, CANVAS, 1), np.float32)
    elif kind == 2:  # blobs
        for _ in range(int(rng.integers(3, 8))):
            centre = tuple(int(v) for v in rng.integers(0, CANVAS, 2))
            cv2.circle(
                canvas, centre, int(rng.integers(8, 40)), tuple(float(v) for v in rng.uniform(0, 255, 3)), -1
            )
    return canvas.astype(np.float32)


def render(identity: Identity, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw one image of `identity` -> (128x128 BGR uint8, (5, 2) landmarks in pixels)."""
    p = identity
    canvas = _background(rng)
    half_w = rng.uniform(24, 30)  # face half-width in pixels
    roll = math.radians(rng.uniform(-15, 15))
    centre = np.array([64 + rng.uniform(-6, 6), 68 + rng.uniform(-6, 6)])
    yaw = rng.uniform(-0.35, 0.35)
    pitch = rng.uniform(-0.05, 0.05)
    smile, open_mouth = rng.uniform(-0.2, 1.0), rng.uniform(0, 1) if rng.random() < 0.25 else 0.0
    brow_raise, eye_open = rng.uniform(-0.03, 0.06), 0.25 if rng.random() < 0.1 else 1.0
    rot = np.array([[math.cos(roll), -math.sin(roll)], [math.sin(roll), math.cos(roll)]])

    def to_px(u, v, depth=0.5):
        """Face coordinates (unit = half-width) -> pixels, with yaw turning points of some depth."""
        u = np.asarray(u, float) * (1 - 0.25 * abs(math.sin(yaw))) + depth * math.sin(yaw)
        v = np.asarray(v, float) + pitch * depth
        xy = np.stack([u, v], -1) * half_w
        return xy @ rot.T + centre

    def poly(points):
        return np.round(points * 16).astype(np.int32)

    def colour(c):
        return tuple(float(v) for v in c)

    t = np.linspace(0, 2 * math.pi, 48, endpoint=False)
    ou, ov = np.cos(t), np.sin(t)
    lower = ov > 0
    ou = np.where(lower, ou * (1 - p.jaw * 0.45 * ov), ou)
    ov = ov * p.aspect
    outline = to_px(ou, ov, depth=0.0)
    hair = colour(p.hair)
    if p.hair_style == 3:  # long hair behind the face
        cv2.fillPoly(canvas, [poly(to_px(np.concatenate([ou * 1.35, [1.4, -1.4]]),
                                         np.concatenate([np.minimum(ov * 1.1, 1.0), [1.9, 1.9]]), 0.0))],
                     hair, cv2.LINE_AA, 4)  # fmt: skip
    for side in (-1, 1):  # ears
        cv2.ellipse(canvas, tuple(int(v) for v in poly(to_px(side * 1.0, 0.05, 0.0))),
                    (int(16 * half_w * p.ear), int(16 * half_w * p.ear * 1.6)), 0, 0, 360,
                    colour(np.asarray(p.skin) * 0.9), -1, cv2.LINE_AA, 4)  # fmt: skip
    cv2.fillPoly(canvas, [poly(outline)], colour(p.skin), cv2.LINE_AA, 4)
    if p.hair_style in (1, 2, 3, 4):
        top = -p.aspect * (p.hairline if p.hair_style != 2 else 0.3)
        cap = ov < top
        extra = 1.35 if p.hair_style == 4 else 1.08
        cu, cv_ = ou[cap] * 1.06, ov[cap] * extra
        cap_px = to_px(np.concatenate([cu, [cu[-1], cu[0]]]), np.concatenate([cv_, [top, top]]), 0.1)
        cv2.fillPoly(canvas, [poly(cap_px)], hair, cv2.LINE_AA, 4)
    # Beard below the mouth line.
    if p.beard in (2, 3):
        width = 0.75 if p.beard == 2 else 0.3
        bu = np.array([-width, width, width * 0.6, 0, -width * 0.6])
        bv = np.array([p.mouth_v, p.mouth_v, p.aspect * 0.9, p.aspect, p.aspect * 0.9])
        cv2.fillPoly(canvas, [poly(to_px(bu, bv, 0.5))], hair, cv2.LINE_AA, 4)
    # Eyes, irises, brows.
    eyes = []
    for side in (-1, 1):
        u = side * p.eye_u
        far = (side > 0) == (yaw < 0)
        size = p.eye_size * (0.85 if far else 1.0)
        centre_px = to_px(u, p.eye_v, 0.5)
        eyes.append(centre_px)
        axes = (int(16 * half_w * size * 1.4), max(1, int(16 * half_w * size * 0.8 * eye_open)))
        angle = math.degrees(roll)
        c = tuple(int(v) for v in poly(centre_px))
        cv2.ellipse(canvas, c, axes, angle, 0, 360, (235, 235, 235), -1, cv2.LINE_AA, 4)
        if eye_open > 0.5:
            cv2.circle(canvas, c, int(16 * half_w * size * 0.7), colour(p.iris), -1, cv2.LINE_AA, 4)
            cv2.circle(canvas, c, int(16 * half_w * size * 0.3), (10, 10, 10), -1, cv2.LINE_AA, 4)
        brow_v = p.eye_v - size * 1.6 - 0.08 - brow_raise
        brow = to_px(np.array([u - side * 0.18, u + side * 0.18]),
                     np.array([brow_v + p.brow_tilt, brow_v - p.brow_tilt]), 0.5)  # fmt: skip
        cv2.polylines(canvas, [poly(brow)], False, colour(np.asarray(p.hair) * 0.7),
                      max(1, int(p.brow_width * half_w / 28)), cv2.LINE_AA, 4)  # fmt: skip
    # Nose: a shaded wedge, the tip is a landmark.
    nose_tip = to_px(0.0, p.nose_v, 0.9)
    nose = to_px(np.array([0.0, -p.nose_w, p.nose_w]), np.array([p.eye_v + 0.05, p.nose_v, p.nose_v]), 0.8)
    cv2.fillPoly(canvas, [poly(nose)], colour(np.asarray(p.skin) * 0.8), cv2.LINE_AA, 4)
    nostril = colour(np.asarray(p.skin) * 0.6)
    cv2.circle(
        canvas, tuple(int(v) for v in poly(nose_tip)), int(16 * half_w * 0.05), nostril, -1, cv2.LINE_AA, 4
    )
    # Mouth: corners are landmarks; a smile lifts them, an open mouth shows a dark gap.
    mouth_w = p.mouth_w * (1 + 0.15 * smile)
    corner_v = p.mouth_v - 0.06 * smile
    corners = to_px(np.array([-mouth_w, mouth_w]), np.array([corner_v, corner_v]), 0.55)
    middle_low = to_px(0.0, p.mouth_v + 0.04 + 0.12 * open_mouth, 0.6)
    middle_up = to_px(0.0, p.mouth_v - 0.03, 0.6)
    lips = np.stack([corners[0], middle_up, corners[1], middle_low])
    cv2.fillPoly(canvas, [poly(lips)], colour(p.lip), cv2.LINE_AA, 4)
    if open_mouth > 0.3:
        gap = np.stack([corners[0] * 0.8 + middle_up * 0.2, corners[1] * 0.8 + middle_up * 0.2, middle_low])
        cv2.fillPoly(canvas, [poly(gap)], (30, 20, 40), cv2.LINE_AA, 4)
    if p.beard == 1:
        stache = to_px(np.array([-mouth_w, mouth_w]), np.array([p.mouth_v - 0.1, p.mouth_v - 0.1]), 0.55)
        cv2.polylines(canvas, [poly(stache)], False, hair, max(2, int(half_w / 8)), cv2.LINE_AA, 4)
    for u, v in p.moles:
        cv2.circle(canvas, tuple(int(x) for x in poly(to_px(u, v, 0.3))), int(16 * 1.5), (30, 40, 60), -1,
                   cv2.LINE_AA, 4)  # fmt: skip
    # Lighting: directional ramp, ambient level, colour cast; then blur and sensor noise.
    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:CANVAS, 0:CANVAS].astype(np.float32)
    ramp = ((xs - 64) * math.cos(angle) + (ys - 64) * math.sin(angle)) / 64
    light = rng.uniform(0.75, 1.2) + rng.uniform(0, 0.35) * ramp
    canvas = canvas * light[..., None] * rng.uniform(0.9, 1.1, 3).astype(np.float32)
    sigma = rng.uniform(0, 1.0)
    if sigma > 0.3:
        canvas = cv2.GaussianBlur(canvas, (0, 0), sigma)
    canvas = canvas + rng.normal(0, rng.uniform(0, 6), canvas.shape).astype(np.float32)
    image = np.clip(canvas + 0.5, 0, 255).astype(np.uint8)
    landmarks = np.stack([eyes[0], eyes[1], nose_tip, corners[0], corners[1]])
    return image, landmarks


def _write_split(folder: Path, identities: list[tuple[str, Identity]], images_per_identity: int, seed: int,
                 split_code: int) -> None:  # fmt: skip
    lines = []
    for number, (name, identity) in enumerate(identities):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for k in range(1, images_per_identity + 1):
            rng = np.random.default_rng((seed, split_code, number, k))
            image, landmarks = render(identity, rng)
            relative = f"{name}/{name}_{k:04d}.jpg"
            cv2.imwrite(str(folder / relative), image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            lines.append(relative + " " + " ".join(f"{v:.2f}" for v in landmarks.reshape(-1)))
    (folder / "landmarks.txt").write_text("\n".join(lines) + "\n")


def _pairs_lines(names: list[str], images_per_identity: int, pairs_per_fold: int, rng) -> list[str]:
    """LFW layout: a `10 n` header, then per fold n matched lines followed by n mismatched lines."""
    lines = [f"10\t{pairs_per_fold}"]
    for _ in range(10):
        for _ in range(pairs_per_fold):
            name = names[int(rng.integers(len(names)))]
            a, b = rng.choice(np.arange(1, images_per_identity + 1), 2, replace=False)
            lines.append(f"{name}\t{a}\t{b}")
        for _ in range(pairs_per_fold):
            i, j = rng.choice(len(names), 2, replace=False)
            a, b = rng.integers(1, images_per_identity + 1, 2)
            lines.append(f"{names[i]}\t{a}\t{names[j]}\t{b}")
    return lines


def ensure_synthetic_faces(
    root: Path, *, seed: int, train_identities: int, train_images: int, val_identities: int, val_images: int,
    pairs_per_fold: int,
) -> tuple[Path, Path, Path]:  # fmt: skip
    """Generate once and return (train identity folder, val image folder, val pairs.txt).

    The dataset folder is built under a hidden temporary name and renamed into place when complete, so an
    interrupted generation never looks finished.

    Example:
        >>> train, val, pairs = ensure_synthetic_faces(Path("/tmp/c"), seed=0, train_identities=4,
        ...     train_images=3, val_identities=4, val_images=3, pairs_per_fold=2)  # doctest: +SKIP
    """
    if val_images < 2 or val_identities < 2:
        raise ValueError("the synthetic val split needs at least 2 identities with 2 images each")
    name = (
        f"synthetic_s{seed}_{train_identities}x{train_images}_{val_identities}x{val_images}_p{pairs_per_fold}"
    )
    folder = Path(root) / name

    def build_into(tmp: Path) -> None:
        people = [
            make_identity(np.random.default_rng((seed, 0, i)))
            for i in range(train_identities + val_identities)
        ]
        train = [(f"id_{i:05d}", people[i]) for i in range(train_identities)]
        val = [(f"id_{i:05d}", people[i]) for i in range(train_identities, len(people))]
        _write_split(tmp / "train", train, train_images, seed, 1)
        _write_split(tmp / "val", val, val_images, seed, 2)
        lines = _pairs_lines(
            [n for n, _ in val], val_images, pairs_per_fold, np.random.default_rng((seed, 3))
        )
        (tmp / "pairs.txt").write_text("\n".join(lines) + "\n")

    build_once(folder, build_into, done="pairs.txt")
    return folder / "train", folder / "val", folder / "pairs.txt"
