"""Embedded synthetic pose data: articulated people drawn with the COCO-17 skeleton, in COCO format.

Why embedded: no dataset can be downloaded here, yet the harness must train and evaluate out of the box.
Why COCO format: writing a real ``person_keypoints_<split>.json`` (boxes, polygon masks, keypoints with
visibility flags) next to JPEG files means the very loader, occluder library and OKS evaluation used for COCO
run unchanged on it.

Why it looks the way it does: stick figures with uniform random joint angles and look-alike left/right limbs
are nearly unlearnable in minutes (see the design notes). So poses follow human joint ranges (elbows and knees
bend one way, limbs have human proportions, bodies are mostly upright), the main person is large, and left
and right are told apart by cues that stay consistent under a horizontal flip, the way they do on real bodies:
a front-facing figure shows a face (eyes, nose, mouth) and has its left side on the image right; a
back-facing one shows only hair and has its left side on the image left. A figure may be turned slightly,
with its far-side limbs darker and drawn behind the torso and its face shifted towards the far side.

Keypoints are exactly the drawn joint centres (drawing is sub-pixel, with cv2's ``shift``). Visibility:
2 = drawn and visible, 1 = inside the image but covered by a person drawn later, 0 = outside the image (or,
for a back-facing figure, the eyes and nose, which cannot be seen).

One module on purpose (~550 lines): the figure model, its drawing and the COCO writer share the joint
geometry and read best in one place; nothing else imports its internals.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import cv2
import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from tasks.common.coco_split import ensure_coco_split
from tasks.pose.keypoints import coco_category

JPEG_QUALITY = 95
_SHIFT = 4  # sub-pixel drawing: coordinates are passed to cv2 multiplied by 2**_SHIFT
_ONE = 1 << _SHIFT
_MIN_VISIBLE_AREA = 150
_MIN_LABELLED = 4

# Body proportions as fractions of the person's standing height (feet to top of head).
_HEAD_R, _NECK, _TORSO = 0.062, 0.115, 0.29
_SHOULDER_W, _HIP_W = 0.23, 0.15
_UPPER_ARM, _LOWER_ARM, _UPPER_LEG, _LOWER_LEG = 0.16, 0.145, 0.235, 0.225

Color = tuple[int, int, int]


def ensure_synthetic_coco(
    root: Path, *, split: str, num_images: int, seed: int, image_size: tuple[int, int] = (192, 160)
) -> tuple[Path, Path]:
    """Generate (once) and return (annotation_json_path, image_dir). image_size is (height, width).

    The data lives in ``root/synthetic_s{seed}_n{num_images}_{h}x{w}/`` as ``annotations/
    person_keypoints_<split>.json`` and ``<split>/*.jpg``. A split is generated in a hidden temporary folder
    and moved into place when complete (the json last), so an interrupted run never looks finished. Same
    arguments give byte-identical files; each split name draws from its own seed.

    Args:
        root: cache folder under which the dataset folder is created.
        split: split name, e.g. "train" or "val".
        num_images: number of images to draw.
        seed: base seed.
        image_size: (height, width) of every image.

    Returns:
        (path of the COCO json, folder holding the images).

    Example:
        >>> ann, images = ensure_synthetic_coco(Path("/tmp/c"), split="val", num_images=4, seed=0)
    """
    height, width = (int(v) for v in image_size)
    folder = Path(root) / f"synthetic_s{seed}_n{num_images}_{height}x{width}"
    return ensure_coco_split(
        folder,
        f"person_keypoints_{split}.json",
        split,
        lambda out: _generate_split(out, split, num_images, seed, height, width),
    )


def _generate_split(out: Path, split: str, num_images: int, seed: int, height: int, width: int) -> dict:
    """Draw every image of a split into ``out`` and return the COCO dict."""
    out.mkdir(parents=True)
    split_seed = zlib.crc32(split.encode())  # stable across processes, unlike hash()
    images, annotations = [], []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True) as progress:
        job = progress.add_task(f"synthetic people ({split})", total=num_images)
        for index in range(num_images):
            rng = np.random.default_rng((seed, split_seed, index))
            image, people = _draw_image(rng, height, width)
            image_id = index + 1
            name = f"{image_id:06d}.jpg"
            cv2.imwrite(str(out / name), image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            images.append({"id": image_id, "file_name": name, "width": width, "height": height})
            for person in people:
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": 1,
                        "iscrowd": 0,
                        **person,
                    }
                )
            progress.advance(job)
    return {
        "info": {"description": f"synthetic people, seed {seed}, split {split}", "version": "1"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [coco_category()],
    }


# ---------------------------------------------------------------------------------------------- background


def _rand_color(rng: np.random.Generator, low: int = 15, high: int = 240) -> Color:
    return tuple(int(c) for c in rng.integers(low, high, 3))


def _scale(color: Color, factor: float) -> Color:
    return tuple(int(min(255, max(0, c * factor))) for c in color)


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A two-colour gradient with clutter: rectangles, lines, ellipses, limb-like blobs and noise."""
    c0, c1 = rng.integers(0, 256, 3).astype(np.float32), rng.integers(0, 256, 3).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ys = np.arange(height, dtype=np.float32)[:, None] / height
    xs = np.arange(width, dtype=np.float32)[None, :] / width
    t = ys * np.sin(angle) + xs * np.cos(angle)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    image = (c0 + (c1 - c0) * t[..., None]).astype(np.uint8)
    size = np.array([width, height])
    for _ in range(int(rng.integers(3, 10))):
        color = _rand_color(rng, 0, 256)
        p, q = (tuple(int(v) for v in rng.integers(-10, size + 10)) for _ in range(2))
        kind = int(rng.integers(4))
        if kind == 0:
            cv2.rectangle(image, p, q, color, -1)
        elif kind == 1:
            cv2.line(image, p, q, color, int(rng.integers(1, 6)), cv2.LINE_AA)
        elif kind == 2:
            axes = (int(rng.integers(4, 30)), int(rng.integers(4, 30)))
            cv2.ellipse(image, p, axes, float(rng.uniform(0, 180)), 0, 360, color, -1, cv2.LINE_AA)
        else:  # a distractor: a thick rounded bar in a skin or clothing colour, like a lone limb
            skin = rng.random() < 0.5
            color = _scale((140, 170, 220), rng.uniform(0.45, 1.05)) if skin else color
            q = tuple(int(v) for v in np.array(p) + rng.normal(0, 0.15, 2) * height)
            cv2.line(image, p, q, color, int(rng.integers(4, 12)), cv2.LINE_AA)
    return image


# ---------------------------------------------------------------------------------------------- pose


def _arm_angles(rng: np.random.Generator, style: str) -> tuple[float, float, float, float]:
    """(upper angle, lower angle, upper length factor, lower length factor) of one arm.

    Angles are degrees from "straight down", positive = away from the body's midline. An elbow bends one
    way: a lowered arm's forearm swings towards the midline, a raised arm's forearm towards the sky.
    """
    if style == "down":
        upper = rng.normal(12, 6)
        return upper, upper - rng.uniform(0, 30), rng.uniform(0.9, 1.0), rng.uniform(0.8, 1.0)
    if style == "akimbo":  # hands on hips
        upper = rng.normal(42, 8)
        return upper, upper - rng.uniform(75, 105), rng.uniform(0.85, 1.0), rng.uniform(0.8, 1.0)
    if style == "out":
        upper = rng.normal(85, 12)
        return upper, upper + rng.uniform(-15, 35), 1.0, rng.uniform(0.85, 1.0)
    if style == "up":
        upper = rng.normal(150, 14)
        return upper, upper + rng.uniform(-10, 20), rng.uniform(0.9, 1.0), rng.uniform(0.9, 1.0)
    if style == "wave":
        upper = rng.normal(95, 18)
        return upper, upper + rng.uniform(40, 90), 1.0, rng.uniform(0.85, 1.0)
    # "forward": arm pointing towards the camera, foreshortened, elbow bent
    upper = rng.normal(25, 15)
    return upper, upper + rng.uniform(-60, 40), rng.uniform(0.35, 0.75), rng.uniform(0.6, 1.0)


_ARM_STYLES = ("down", "akimbo", "out", "up", "wave", "forward")
_ARM_PROBS = (0.36, 0.08, 0.12, 0.14, 0.12, 0.18)


def _leg_angles(rng: np.random.Generator, style: str, lead: bool) -> tuple[float, float, float, float]:
    """(thigh angle, shin angle, thigh length factor, shin length factor) of one leg; see `_arm_angles`."""
    if style == "stand":
        thigh = rng.normal(6, 3)
        return thigh, thigh - rng.uniform(0, 6), 1.0, 1.0
    if style == "wide":
        thigh = rng.normal(20, 5)
        return thigh, thigh - rng.uniform(0, 10), 1.0, 1.0
    if style == "walk":  # the leading leg comes towards the camera, its knee bent
        thigh = rng.normal(8, 6)
        if lead:
            return thigh + rng.uniform(0, 12), thigh - rng.uniform(-5, 10), rng.uniform(0.7, 0.9), 1.0
        return thigh, thigh - rng.uniform(0, 8), 1.0, rng.uniform(0.85, 1.0)
    # "sit": thighs point at the camera (strongly foreshortened), shins hang down
    thigh = rng.normal(35, 12)
    return thigh, rng.normal(6, 6), rng.uniform(0.3, 0.55), rng.uniform(0.9, 1.0)


_LEG_STYLES = ("stand", "wide", "walk", "sit")
_LEG_PROBS = (0.4, 0.15, 0.3, 0.15)


def _skeleton(rng: np.random.Generator, turn: float, near: int) -> np.ndarray:
    """(17, 2) keypoints in a canonical frame: units of standing height, pelvis at the origin, y down,
    the person's left side on +x (a front view). ``near`` (+1 left, -1 right) is the side turned towards
    the camera by ``turn`` (0..~0.45), which narrows the shoulders and hips and shifts the face."""
    k = np.zeros((17, 2))
    narrow = 1.0 - 0.55 * turn
    width = rng.uniform(0.85, 1.12) * narrow
    lean = rng.normal(0, 0.015)
    k[11], k[12] = (_HIP_W / 2 * width, 0.0), (-_HIP_W / 2 * width, 0.0)
    k[5] = (lean + _SHOULDER_W / 2 * width, -_TORSO + rng.normal(0, 0.006))
    k[6] = (lean - _SHOULDER_W / 2 * width, -_TORSO + rng.normal(0, 0.006))
    arm_style = str(rng.choice(_ARM_STYLES, p=_ARM_PROBS))
    leg_style = str(rng.choice(_LEG_STYLES, p=_LEG_PROBS))
    lead_left = bool(rng.random() < 0.5)
    for side, sign in ((0, 1.0), (1, -1.0)):
        style = arm_style
        if style == "wave" and (side == 0) != lead_left:
            style = "down"
        elif rng.random() < 0.2:  # arms need not match
            style = str(rng.choice(_ARM_STYLES, p=_ARM_PROBS))
        chains = (
            (5 + side, _arm_angles(rng, style), _UPPER_ARM, _LOWER_ARM),
            (11 + side, _leg_angles(rng, leg_style, (side == 0) == lead_left), _UPPER_LEG, _LOWER_LEG),
        )
        for base, (a_up, a_low, f_up, f_low), len_up, len_low in chains:
            mid, end = base + 2, base + 4
            for joint, start, angle, length in (
                (mid, base, a_up, len_up * f_up),
                (end, mid, a_low, len_low * f_low),
            ):
                theta = np.deg2rad(angle)
                k[joint] = k[start] + np.array([sign * np.sin(theta), np.cos(theta)]) * length
    neck = (k[5] + k[6]) / 2
    head = neck + np.array([rng.normal(0, 0.008), -_NECK])
    r = _HEAD_R
    face_x = head[0] - near * turn * 0.7 * r  # the face turns away from the near side
    tilt = rng.normal(0, 0.06) * r
    k[0] = (face_x, head[1] + 0.3 * r)
    k[1] = (face_x + 0.36 * r, head[1] - 0.08 * r + tilt)
    k[2] = (face_x - 0.36 * r, head[1] - 0.08 * r - tilt)
    ear_shift = -near * turn * 0.25 * r
    k[3] = (head[0] + 0.95 * r + ear_shift, head[1] + 0.05 * r)
    k[4] = (head[0] - 0.95 * r + ear_shift, head[1] + 0.05 * r)
    return k


# ---------------------------------------------------------------------------------------------- drawing


class _Canvas:
    """A person's colour layer and mask, drawn together with sub-pixel coordinates."""

    def __init__(self, shape: tuple[int, int]):
        self.layer = np.zeros((*shape, 3), np.uint8)
        self.mask = np.zeros(shape, np.uint8)
        self.light = np.ones(shape[1], np.float32)

    @staticmethod
    def fix(p: np.ndarray) -> tuple[int, int]:
        return int(round(p[0] * _ONE)), int(round(p[1] * _ONE))

    def capsule(self, p: np.ndarray, q: np.ndarray, r1: float, r2: float, color: Color) -> None:
        """A tapered limb: a quadrilateral between discs of radius r1 at p and r2 at q."""
        d = q - p
        n = np.array([-d[1], d[0]]) / max(float(np.hypot(*d)), 1e-6)
        quad = np.array([p + n * r1, q + n * r2, q - n * r2, p - n * r1])
        pts = np.round(quad * _ONE).astype(np.int32)
        for img, c, line in ((self.layer, color, cv2.LINE_AA), (self.mask, 255, cv2.LINE_8)):
            cv2.fillConvexPoly(img, pts, c, line, _SHIFT)
            cv2.circle(img, self.fix(p), int(r1 * _ONE), c, -1, line, _SHIFT)
            cv2.circle(img, self.fix(q), int(r2 * _ONE), c, -1, line, _SHIFT)

    def polygon(self, pts: np.ndarray, color: Color) -> None:
        fixed = [np.round(pts * _ONE).astype(np.int32)]
        cv2.fillPoly(self.layer, fixed, color, cv2.LINE_AA, _SHIFT)
        cv2.fillPoly(self.mask, fixed, 255, cv2.LINE_8, _SHIFT)

    def ellipse(
        self,
        c: np.ndarray,
        axes: tuple[float, float],
        angle: float,
        color: Color,
        *,
        mask=True,
        arc: tuple[int, int] = (0, 360),
    ) -> None:
        ax = (int(axes[0] * _ONE), int(axes[1] * _ONE))
        cv2.ellipse(self.layer, self.fix(c), ax, angle, arc[0], arc[1], color, -1, cv2.LINE_AA, _SHIFT)
        if mask:
            cv2.ellipse(self.mask, self.fix(c), ax, angle, arc[0], arc[1], 255, -1, cv2.LINE_8, _SHIFT)


def _outfit(rng: np.random.Generator) -> dict:
    """Colours and cut of one person's clothes."""
    skin = _scale((140, 170, 220), rng.uniform(0.4, 1.08))
    shirt, pants = _rand_color(rng), _rand_color(rng)
    if rng.random() < 0.4:  # keep a visible boundary between the upper and lower body
        pants = _scale(pants, 0.55)
    return {
        "skin": skin,
        "shirt": shirt,
        "pants": pants,
        "hair": _scale(_rand_color(rng, 10, 120), rng.uniform(0.4, 1.3)),
        "shoes": _rand_color(rng, 0, 120),
        "sleeve": str(rng.choice(["long", "short", "none"], p=[0.45, 0.4, 0.15])),
        "shorts": bool(rng.random() < 0.25),
        "stripes": bool(rng.random() < 0.35),
    }


def _draw_person(
    rng: np.random.Generator,
    k: np.ndarray,
    size: float,
    front: bool,
    near: int,
    shape: tuple[int, int],
    up: np.ndarray,
) -> _Canvas:
    """Render one figure (keypoints already in image pixels) into its own layer and mask.

    ``near`` is +1/-1 for the person's left/right side turned towards the camera, 0 for a square-on pose:
    far-side limbs are darker and drawn behind the torso. ``up`` is the person's unit "up" vector.
    """
    o = _outfit(rng)
    canvas = _Canvas(shape)
    arm_r, leg_r = size * rng.uniform(0.024, 0.034), size * rng.uniform(0.032, 0.045)
    left_first = near == -1 or (near == 0 and rng.random() < 0.5)
    far_side, near_side = (0, 1) if left_first else (1, 0)  # 0 = person's left

    def shade(color: Color, side: int) -> Color:
        return _scale(color, 0.72) if near != 0 and side == far_side else color

    def leg(side: int) -> None:
        hip, knee, ankle = 11 + side, 13 + side, 15 + side
        canvas.capsule(k[hip], k[knee], leg_r * 1.1, leg_r * 0.85, shade(o["pants"], side))
        lower = o["skin"] if o["shorts"] else o["pants"]
        canvas.capsule(k[knee], k[ankle], leg_r * 0.85, leg_r * 0.6, shade(lower, side))
        foot = k[ankle] - up * leg_r * 0.35
        canvas.ellipse(foot, (leg_r * 1.05, leg_r * 0.6), 0.0, shade(o["shoes"], side))

    def arm(side: int) -> None:
        shoulder, elbow, wrist = 5 + side, 7 + side, 9 + side
        upper = o["skin"] if o["sleeve"] == "none" else o["shirt"]
        lower = o["shirt"] if o["sleeve"] == "long" else o["skin"]
        canvas.capsule(k[shoulder], k[elbow], arm_r * 1.15, arm_r * 0.9, shade(upper, side))
        canvas.capsule(k[elbow], k[wrist], arm_r * 0.9, arm_r * 0.7, shade(lower, side))
        d = k[wrist] - k[elbow]
        hand = k[wrist] + d / max(float(np.hypot(*d)), 1e-6) * arm_r * 0.8
        canvas.ellipse(hand, (arm_r * 1.05, arm_r * 0.85), 0.0, shade(o["skin"], side))

    # Far to near: far leg, near leg, far arm (when turned), torso, near arm(s), head.
    leg(far_side)
    leg(near_side)
    if near != 0:
        arm(far_side)
    _torso(canvas, k, size, o, up)
    if near == 0:
        arm(far_side)
    arm(near_side)
    _head(canvas, k, size, o, front, up)
    # Light from one side: a soft brightness ramp across the image, applied when compositing.
    canvas.light = np.linspace(rng.uniform(0.7, 1.0), rng.uniform(1.0, 1.2), shape[1], dtype=np.float32)
    if rng.random() < 0.5:
        canvas.light = canvas.light[::-1]
    return canvas


def _torso(canvas: _Canvas, k: np.ndarray, size: float, o: dict, up: np.ndarray) -> None:
    """Neck, shirt (shoulders to waist, optionally striped) and the pants' waistband."""
    across = np.array([-up[1], up[0]])  # perpendicular to the body axis
    sl, sr, hl, hr = k[5], k[6], k[11], k[12]
    out = across * (np.sign(np.dot(sl - sr, across)) or 1.0)  # from the right shoulder towards the left one
    neck_top = (k[3] + k[4]) / 2
    canvas.capsule((sl + sr) / 2, neck_top, size * 0.03, size * 0.025, o["skin"])
    pad = size * 0.03
    waist_l, waist_r = hl + up * size * 0.06, hr + up * size * 0.06
    shirt = np.array(
        [
            sl + up * pad * 0.8 + out * pad * 0.3,
            sl + out * pad,
            (sl + waist_l) / 2 + out * pad * 0.3,
            waist_l + out * pad * 0.5,
            waist_r - out * pad * 0.5,
            (sr + waist_r) / 2 - out * pad * 0.3,
            sr - out * pad,
            sr + up * pad * 0.8 - out * pad * 0.3,
        ]
    )
    canvas.polygon(shirt, o["shirt"])
    if o["stripes"]:
        stripe = _scale(o["shirt"], 0.6)
        layer = canvas.layer.copy()
        for t in np.linspace(0.15, 0.9, 5):
            a, b = sl + (waist_l - sl) * t + out * pad, sr + (waist_r - sr) * t - out * pad
            cv2.line(
                layer, canvas.fix(a), canvas.fix(b), stripe, max(1, int(size * 0.012)), cv2.LINE_AA, _SHIFT
            )
        inside = np.zeros(canvas.mask.shape, np.uint8)
        cv2.fillPoly(inside, [np.round(shirt * _ONE).astype(np.int32)], 1, cv2.LINE_8, _SHIFT)
        canvas.layer[inside > 0] = layer[inside > 0]
    band = np.array(
        [
            waist_l + out * pad * 0.5,
            hl + out * pad * 0.9 - up * pad * 0.5,
            hr - out * pad * 0.9 - up * pad * 0.5,
            waist_r - out * pad * 0.5,
        ]
    )
    canvas.polygon(band, o["pants"])


def _head(canvas: _Canvas, k: np.ndarray, size: float, o: dict, front: bool, up: np.ndarray) -> None:
    """Head with ears; a face (eyes, nose, mouth) when facing the camera, hair only when not."""
    r = _HEAD_R * size
    centre = (k[3] + k[4]) / 2 - up * 0.05 * r
    angle = float(np.degrees(np.arctan2(up[0], -up[1])))  # the body's tilt, as cv2.ellipse measures it
    for ear in (3, 4):
        canvas.ellipse(k[ear], (r * 0.24, r * 0.34), angle, _scale(o["skin"], 0.88))
    if front:
        canvas.ellipse(centre, (r * 0.9, r * 1.12), angle, o["skin"])
        canvas.ellipse(centre, (r * 0.95, r * 1.15), angle, o["hair"], arc=(180, 360))  # hair on top
        canvas.ellipse(
            centre - up * r * 0.15, (r * 0.88, r * 0.9), angle, o["skin"], mask=False, arc=(180, 360)
        )
        for eye in (1, 2):
            canvas.ellipse(k[eye], (r * 0.2, r * 0.15), angle, (245, 245, 245), mask=False)
            canvas.ellipse(k[eye], (r * 0.11, r * 0.11), angle, (25, 20, 20), mask=False)
        canvas.ellipse(k[0], (r * 0.13, r * 0.18), angle, _scale(o["skin"], 0.72), mask=False)
        mouth = k[0] - up * r * 0.38
        canvas.ellipse(mouth, (r * 0.3, r * 0.1), angle, (50, 50, 160), mask=False)
    else:
        canvas.ellipse(centre, (r * 0.95, r * 1.15), angle, o["hair"])
        canvas.ellipse(
            centre - up * r * 0.4, (r * 0.5, r * 0.35), angle, _scale(o["hair"], 1.35), mask=False
        )  # a sheen that reads as hair


# ---------------------------------------------------------------------------------------------- scene


def _place(rng: np.random.Generator, height: int, width: int, main: bool, slot: float) -> dict:
    """Scene placement of one person: facing, turn, canonical keypoints mapped into the image."""
    front = bool(rng.random() < 0.5)
    near = int(rng.choice([-1, 0, 1], p=[0.35, 0.3, 0.35]))
    turn = rng.uniform(0.1, 0.45) if near else 0.0
    canon = _skeleton(rng, turn, near)
    if not front:
        canon[:, 0] *= -1  # seen from behind, the person's left is on the image left
    angle = float(np.clip(rng.normal(0, 10), -25, 25))
    size = height * (rng.uniform(0.62, 0.98) if main else rng.uniform(0.4, 0.8))
    theta = np.deg2rad(angle)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    pts = canon @ rot.T * size
    up = rot @ np.array([0.0, -1.0])
    top = pts[:, 1].min() - (_HEAD_R * 1.3) * size
    bottom = pts[15:17, 1].max() + 0.03 * size
    extent = bottom - top
    if main:
        y0 = rng.uniform(-0.04, 0.04) * height + rng.uniform(0, max(0.0, height - extent))
        cx = width * (slot + rng.normal(0, 0.05))
    else:
        y0 = rng.uniform(-0.1 * height, max(0.0, height - 0.8 * extent))
        cx = width * (slot + rng.normal(0, 0.08))
    pts = pts + np.array([cx - pts[:, 0].mean(), y0 - top])
    return {"k": pts, "size": size, "front": front, "near": near, "up": up}


def _draw_image(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, list[dict]]:
    """One scene: cluttered background, 1-3 people (later ones occlude earlier ones), their annotations."""
    image = _background(rng, height, width)
    n = int(rng.choice([1, 2, 3], p=[0.5, 0.33, 0.17]))
    slots = rng.permutation(np.linspace(0.25, 0.75, n)) if n > 1 else [rng.uniform(0.35, 0.65)]
    people = [_place(rng, height, width, p == 0, float(slots[p])) for p in range(n)]
    # Near (lower feet) people are drawn last, covering the ones behind them.
    people.sort(key=lambda p: p["k"][15:17, 1].max())
    for p in people:
        # `near` is in the person's own terms (+1: their left side towards the camera).
        canvas = _draw_person(rng, p["k"], p["size"], p["front"], p["near"], (height, width), p["up"])
        p["mask"] = canvas.mask > 0
        ys, xs = np.nonzero(p["mask"])
        image[ys, xs] = np.clip(canvas.layer[ys, xs] * canvas.light[xs, None], 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        image = cv2.GaussianBlur(image, (3, 3), 0)
    grain = rng.standard_normal((height, width, 1), dtype=np.float32) * rng.uniform(2, 8)
    image = np.clip(image + grain, 0, 255).astype(np.uint8)
    annotations = []
    covered = np.zeros((height, width), bool)
    for p in reversed(people):  # nearest first: what is drawn later covers the earlier ones
        person = _annotation(p["k"], p["mask"] & ~covered, covered, p["front"])
        covered |= p["mask"]
        if person is not None:
            annotations.append(person)
    return image, annotations[::-1]


def _annotation(k: np.ndarray, visible: np.ndarray, covered: np.ndarray, front: bool) -> dict | None:
    """COCO annotation of one person from its keypoints and visible mask; None when too little shows."""
    height, width = visible.shape
    visible = cv2.morphologyEx(visible.astype(np.uint8), cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
    area = int(visible.sum())
    if area < _MIN_VISIBLE_AREA:
        return None
    xy = np.floor(k).astype(int)
    inside = (k[:, 0] >= 0) & (k[:, 0] < width) & (k[:, 1] >= 0) & (k[:, 1] < height)
    v = np.where(inside, 2, 0)
    hidden = np.zeros(17, bool)
    hidden[inside] = covered[xy[inside, 1], xy[inside, 0]]
    v[inside & hidden] = 1
    if not front:
        v[:3] = 0  # eyes and nose of a person seen from behind cannot be seen or placed
    contours, _ = cv2.findContours(visible, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polygons = [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]
    if not polygons or int((v > 0).sum()) < _MIN_LABELLED:
        return None
    ys, xs = np.nonzero(visible)
    x0, y0 = float(xs.min()), float(ys.min())
    keypoints = np.concatenate([np.where(v[:, None] > 0, k, 0.0), v[:, None]], axis=1)
    return {
        "bbox": [x0, y0, float(xs.max()) + 1 - x0, float(ys.max()) + 1 - y0],
        "area": float(area),
        "segmentation": polygons,
        "keypoints": [round(float(x), 2) for x in keypoints.reshape(-1)],
        "num_keypoints": int((v > 0).sum()),
        "attributes": {"facing": "front" if front else "back"},
    }
