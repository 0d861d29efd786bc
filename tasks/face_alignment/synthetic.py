"""Embedded synthetic faces with COFW's 29 or 300W's 68 landmarks, as mmpose's COCO-style json + JPEG files.

Why embedded: no dataset can be downloaded here, yet the task must train and evaluate out of the box. Why
mmpose's formats: writing the very json layout mmpose ships for COFW (29 points, visibility 2 = visible, a
face `bbox`) or for 300W (`face_landmarks_300w_<split>.json`, 68 points) means the real loader, the occluder
and the metrics run unchanged on it. Why two layouts: models that predict iBUG's 68 points (FAN,
`external_fan.py`) can be scored on the embedded benchmark too.

How a face is made: landmarks are placed on a frontal template with per-face shape variation (face width and
length, eye spacing and size, brow height and arch, nose length and width, mouth width, smile and opening,
chin), each with a depth; yaw and pitch rotate them in 3D (features shift across the face while the head
outline stays, as on real faces), then roll, scale and translation place the face in the image. The face is
drawn from those landmarks (sub-pixel, with cv2's `shift`), so every landmark sits exactly on its feature:
brows through their four points, eyes through corners and lids with the iris on the pupil, nostrils on the
wings, lips through corners and lip points. Skin tone, hair style and colour, iris colour, lighting direction,
brightness, tint, blur and noise vary, over a cluttered background.

The 68-point variant annotates the very same images (same seed, same bytes; only the json differs): points
COFW also has are COFW's, the others are taken on the curves the features are drawn with (brows' upper edge,
eye lids, the ridge line, the nose base, the lips' outer and inner edges), and the jaw runs along the drawn
head outline from ear level round the chin. Its box is the 68 points' tight box (iBUG's `bb_ground_truth`).
Like COFW's chin, jaw points of a face placed near the border can lie a few pixels outside the image, where
the drawn head is cut off.

One module on purpose (~610 lines): the landmark template, the drawing of each feature from its landmarks,
the 68 points taken on those drawn curves and the json writer share one geometry; splitting them would
scatter one generator over files.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import cv2
import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from tasks.common.coco_split import ensure_coco_split
from tasks.face_alignment.landmarks import COFW, W300, Layout, coco_category

JPEG_QUALITY = 95
GENERATOR_VERSION = 1  # the images and COFW's 29 points
W300_VERSION = 1  # the 68 points laid on the same images: bumped when they move, the images do not
_SHIFT = 4
_ONE = 1 << _SHIFT

Color = tuple[int, int, int]

# Per layout: the cache folder's prefix and the json's name (mmpose's name for the real dataset's files).
_VARIANTS = {
    "cofw": (f"synthetic_v{GENERATOR_VERSION}", "cofw_{split}.json"),
    "300w": (f"synthetic_300w_v{GENERATOR_VERSION}.{W300_VERSION}", "face_landmarks_300w_{split}.json"),
}


def ensure_synthetic_faces(
    root: Path,
    *,
    split: str,
    num_images: int,
    seed: int,
    image_size: tuple[int, int] = (112, 112),
    layout: Layout = COFW,
) -> tuple[Path, Path]:
    """Generate (once) and return (annotation json, image folder) of one split of synthetic faces.

    COFW's data lives in ``root/synthetic_v{version}_s{seed}_n{num_images}_{h}x{w}/`` as ``annotations/
    cofw_<split>.json`` and ``<split>/*.jpg``; 300W's in ``root/synthetic_300w_v{version}.{W300_VERSION}_...``
    as ``annotations/face_landmarks_300w_<split>.json`` and the same images. A split is generated in a hidden
    temporary folder and moved into place when complete (the json last), so an interrupted run never looks
    finished. Same arguments give byte-identical files; each split name draws from its own seed.

    Args:
        root: cache folder under which the dataset folder is created.
        split: split name, e.g. "train" or "val".
        num_images: number of images (one face each).
        seed: base seed.
        image_size: (height, width) of every image.
        layout: COFW (29 points) or W300 (iBUG's 68).

    Returns:
        (path of the json, folder holding the images).

    Example:
        >>> ann, images = ensure_synthetic_faces(Path("/tmp/c"), split="val", num_images=4, seed=0)
    """
    if layout.name not in _VARIANTS:
        raise ValueError(f"synthetic faces come in the {' and '.join(_VARIANTS)} layouts, not {layout.name}")
    height, width = (int(v) for v in image_size)
    prefix, ann_name = _VARIANTS[layout.name]
    folder = Path(root) / f"{prefix}_s{seed}_n{num_images}_{height}x{width}"
    return ensure_coco_split(
        folder,
        ann_name.format(split=split),
        split,
        lambda out: _generate_split(out, split, num_images, seed, height, width, layout),
    )


def _generate_split(
    out: Path, split: str, num_images: int, seed: int, height: int, width: int, layout: Layout
) -> dict:
    out.mkdir(parents=True)
    split_seed = zlib.crc32(split.encode())  # stable across processes, unlike hash()
    images, annotations = [], []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, transient=True) as progress:
        job = progress.add_task(f"synthetic faces ({split})", total=num_images)
        for index in range(num_images):
            rng = np.random.default_rng((seed, split_seed, index))
            image, landmarks, box = draw_face_image(rng, height, width, layout)
            image_id = index + 1
            name = f"{image_id:06d}.jpg"
            cv2.imwrite(str(out / name), image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            images.append({"id": image_id, "file_name": name, "height": height, "width": width})
            keypoints = np.concatenate([landmarks, np.full((len(landmarks), 1), 2.0)], axis=1)
            annotations.append(
                {
                    "image_id": image_id,
                    "id": image_id,
                    "category_id": 1,
                    "iscrowd": 0,
                    "num_keypoints": len(landmarks),
                    "bbox": [round(float(v), 2) for v in box],
                    "area": round(float(box[2] * box[3]), 2),
                    "keypoints": [round(float(v), 3) for v in keypoints.reshape(-1)],
                }
            )
            progress.advance(job)
    return {
        "info": {
            "description": f"synthetic faces ({layout.name.upper()} layout), seed {seed}, split {split}",
            "version": "1",
        },
        "images": images,
        "annotations": annotations,
        "categories": [coco_category(layout)],
    }


# ---------------------------------------------------------------------------------------------- geometry


def _template(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict]:
    """(29, 2) frontal landmarks, their (29,) depths, and the face shape, in units of the half face width.

    x grows to the image right, y downwards; the face ellipse is centred at the origin.
    """
    p = {
        "top": rng.uniform(1.2, 1.45),  # forehead height above the centre
        "eye_y": rng.normal(-0.05, 0.04),
        "eye_dx": rng.normal(0.42, 0.03),
        "eye_w": rng.normal(0.18, 0.015),
        "eye_h": rng.uniform(0.045, 0.09),
        "brow_gap": rng.normal(0.2, 0.03),
        "brow_thick": rng.uniform(0.04, 0.08),
        "brow_arch": rng.uniform(0.0, 0.07),
        "nose_len": rng.normal(0.44, 0.05),
        "nose_w": rng.normal(0.17, 0.02),
        "mouth_gap": rng.normal(0.28, 0.03),
        "mouth_w": rng.normal(0.3, 0.04),
        "smile": rng.normal(0.0, 0.03),
        "open": float(rng.choice([0.0, rng.uniform(0.02, 0.14)], p=[0.55, 0.45])),
        "lip_up": rng.uniform(0.035, 0.06),
        "lip_low": rng.uniform(0.045, 0.08),
        "chin_gap": rng.normal(0.33, 0.04),
        "gaze": rng.normal(0, 0.25, 2),
    }
    k = np.zeros((29, 2))
    ey, dx, ew, eh = p["eye_y"], p["eye_dx"], p["eye_w"], p["eye_h"]
    by = ey - p["brow_gap"]
    for side, s in ((0, -1.0), (1, 1.0)):  # 0: image left, 1: image right
        k[8 + side] = (s * (dx + ew), ey + 0.01)  # outer eye corner
        k[10 + side] = (s * (dx - ew), ey)  # inner eye corner
        k[12 + 2 * side] = (s * (dx - 0.1 * ew), ey - eh)  # eye top
        k[13 + 2 * side] = (s * (dx - 0.05 * ew), ey + 0.85 * eh)  # eye bottom
        k[16 + side] = (s * dx + p["gaze"][0] * ew * 0.35, ey + p["gaze"][1] * eh * 0.25)  # pupil
        k[0 + side] = (s * (dx + ew + 0.07), by + 0.05)  # outer brow end
        k[2 + side] = (s * (dx - ew - 0.03), by + 0.03)  # inner brow end
        k[4 + 2 * side] = (s * (dx + 0.01), by - p["brow_arch"] - p["brow_thick"] / 2)  # brow top
        k[5 + 2 * side] = (s * (dx + 0.01), by - p["brow_arch"] + p["brow_thick"] / 2)  # brow bottom
        k[18 + side] = (s * p["nose_w"], ey + p["nose_len"] + 0.02)  # nose wing
        k[22 + side] = (s * p["mouth_w"], ey + p["nose_len"] + p["mouth_gap"] - p["smile"])  # mouth corner
    nose_y = ey + p["nose_len"]
    mouth_y = nose_y + p["mouth_gap"]
    k[20] = (0.0, nose_y - 0.02)  # nose tip
    k[21] = (0.0, nose_y + 0.07)  # nose bottom
    k[24] = (0.0, mouth_y - p["open"] / 2 - p["lip_up"])
    k[25] = (0.0, mouth_y - p["open"] / 2)
    k[26] = (0.0, mouth_y + p["open"] / 2)
    k[27] = (0.0, mouth_y + p["open"] / 2 + p["lip_low"])
    k[28] = (0.0, mouth_y + p["open"] / 2 + p["lip_low"] + p["chin_gap"])
    p["bottom"] = k[28, 1]
    depth = np.array(
        [
            0.25,
            0.25,
            0.45,
            0.45,
            0.38,
            0.38,
            0.38,
            0.38,
            0.2,
            0.2,
            0.35,
            0.35,
            0.33,
            0.33,
            0.3,
            0.3,
            0.35,
            0.35,
        ]
        + [0.5, 0.5, 0.8, 0.62, 0.35, 0.35, 0.55, 0.52, 0.52, 0.5, 0.45]
    )
    depth[[12, 13]] = depth[[14, 15]] = 0.33
    return k, depth, p


def _rotate3d(points: np.ndarray, depth: np.ndarray, yaw: float, pitch: float) -> np.ndarray:
    """Orthographic projection of (x, y, depth) after turning the head by yaw and nodding by pitch."""
    x, y, z = points[:, 0], points[:, 1], depth
    x2 = x * np.cos(yaw) + z * np.sin(yaw)
    z2 = -x * np.sin(yaw) + z * np.cos(yaw)
    y2 = y * np.cos(pitch) - z2 * np.sin(pitch)
    return np.stack([x2, y2], axis=1)


def _outline(p: dict, yaw: float, pitch: float, n: int = 48) -> np.ndarray:
    """The head outline: an egg that is wider at the temples than at the jaw and ends at the chin."""
    return _rotate3d(*_frontal_outline(p, n), yaw, pitch)


def _frontal_outline(p: dict, n: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """The outline's (n, 2) points before the head turns, and their depths; from the image right (index 0)
    down round the chin (index n / 4) to the image left and back over the top."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    x, y = np.cos(t), np.sin(t)
    lower = y > 0
    jaw = 1 - 0.25 * np.clip(y, 0, 1) ** 1.5
    x = np.where(lower, x * jaw, x)
    y = np.where(lower, y * p["bottom"], y * p["top"])
    # The chin has depth; the silhouette elsewhere does not move when the head turns.
    z = 0.45 * np.clip(y / p["bottom"], 0, 1) ** 4
    return np.stack([x, y], 1), z


def _smooth_closed(points: np.ndarray, per_segment: int = 6) -> np.ndarray:
    """A closed Catmull-Rom curve through `points` (in order)."""
    steps = np.linspace(0, 1, per_segment, endpoint=False)
    return np.array([_on_closed(points, i, s) for i in range(len(points)) for s in steps])


def _on_closed(points: np.ndarray, segment: int, s: float) -> np.ndarray:
    """The point at `s` in [0, 1) from points[segment] to the next one on `_smooth_closed`'s curve, so a
    landmark placed with it lies on the curve a feature is drawn with."""
    count = len(points)
    p0, p1, p2, p3 = (points[(segment + j) % count] for j in (-1, 0, 1, 2))
    s2, s3 = s * s, s * s * s
    return 0.5 * (
        2 * p1 + (p2 - p0) * s + (2 * p0 - 5 * p1 + 4 * p2 - p3) * s2 + (3 * p1 - p0 - 3 * p2 + p3) * s3
    )


# ---------------------------------------------------------------------------------------------- drawing


def _fix(p) -> tuple[int, int]:
    return int(round(p[0] * _ONE)), int(round(p[1] * _ONE))


def _poly(img: np.ndarray, points: np.ndarray, colour) -> None:
    cv2.fillPoly(img, [np.round(np.asarray(points) * _ONE).astype(np.int32)], colour, cv2.LINE_AA, _SHIFT)


def _ellipse(img, centre, axes, angle, colour, thickness=-1) -> None:
    axes = (max(1, int(axes[0] * _ONE)), max(1, int(axes[1] * _ONE)))
    cv2.ellipse(img, _fix(centre), axes, angle, 0, 360, colour, thickness, cv2.LINE_AA, _SHIFT)


def _scale(colour, factor: float) -> Color:
    return tuple(int(np.clip(c * factor, 0, 255)) for c in colour)


def _skin(rng: np.random.Generator) -> Color:
    t = rng.uniform(0, 1)
    light, dark = np.array([175, 198, 236]), np.array([50, 70, 112])
    tone = light + (dark - light) * t + rng.normal(0, 7, 3)
    return tuple(int(c) for c in np.clip(tone, 0, 255))


_HAIR = (
    (20, 20, 25),
    (25, 40, 70),
    (40, 70, 110),
    (90, 150, 200),
    (160, 160, 165),
    (30, 50, 140),
    (10, 15, 15),
)
_IRIS = ((30, 50, 90), (20, 35, 60), (140, 110, 60), (80, 120, 70), (110, 110, 100))


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A two-colour gradient with clutter: rectangles, lines, ellipses and skin-coloured blobs."""
    c0, c1 = rng.integers(0, 256, 3).astype(np.float32), rng.integers(0, 256, 3).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ys = np.arange(height, dtype=np.float32)[:, None] / height
    xs = np.arange(width, dtype=np.float32)[None, :] / width
    t = ys * np.sin(angle) + xs * np.cos(angle)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    image = (c0 + (c1 - c0) * t[..., None]).astype(np.uint8)
    size = np.array([width, height])
    for _ in range(int(rng.integers(3, 9))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        p, q = (tuple(int(v) for v in rng.integers(-10, size + 10)) for _ in range(2))
        kind = int(rng.integers(4))
        if kind == 0:
            cv2.rectangle(image, p, q, colour, -1)
        elif kind == 1:
            cv2.line(image, p, q, colour, int(rng.integers(1, 5)), cv2.LINE_AA)
        elif kind == 2:
            axes = (int(rng.integers(3, 25)), int(rng.integers(3, 25)))
            cv2.ellipse(image, p, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1, cv2.LINE_AA)
        else:  # a skin-coloured blob, so skin alone does not give the face away
            axes = (int(rng.integers(4, 16)), int(rng.integers(4, 16)))
            cv2.ellipse(image, p, axes, float(rng.uniform(0, 180)), 0, 360, _skin(rng), -1, cv2.LINE_AA)
    return image


def draw_face_image(
    rng: np.random.Generator, height: int, width: int, layout: Layout = COFW
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image with one face; the layout changes the landmarks and box, never the image or the draws.

    Returns:
        (image (H, W, 3) uint8 BGR, landmarks (K, 2) in image pixels, face box [x, y, w, h]): COFW's 29
        points with a COFW-style box, or iBUG's 68 with their tight box (iBUG's `bb_ground_truth`).
    """
    image = _background(rng, height, width)
    canon, depth, p = _template(rng)
    yaw = float(np.clip(rng.normal(0, 0.3), -0.65, 0.65))
    pitch = float(np.clip(rng.normal(0, 0.12), -0.3, 0.3))
    roll = float(np.clip(rng.normal(0, 12), -35, 35))
    flat = _rotate3d(canon, depth, yaw, pitch)
    outline = _outline(p, yaw, pitch)
    # Scale: the face (brow to chin) spans 30-55 % of the image height, so the head stays in the image.
    face_h = float(flat[28, 1] - flat[[4, 6], 1].min())
    unit = rng.uniform(0.3, 0.55) * height / face_h
    theta = np.deg2rad(roll)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]) * unit
    centre = np.array([width, height]) * (0.5 + np.clip(rng.normal(0, 0.06, 2), -0.12, 0.12))

    def place(points: np.ndarray) -> np.ndarray:
        return points @ rot.T + centre

    k = place(flat)
    ring = place(outline)

    skin = _skin(rng)
    hair = _HAIR[int(rng.integers(len(_HAIR)))]
    hair = _scale(hair, rng.uniform(0.8, 1.2))
    layer = image.copy()
    # Neck and shoulders behind the head.
    shirt = tuple(int(c) for c in rng.integers(0, 256, 3))
    neck_top = place(np.array([[-0.45, p["bottom"] * 0.5], [0.45, p["bottom"] * 0.5]]))
    neck_bottom = place(np.array([[0.5, p["bottom"] + 0.9], [-0.5, p["bottom"] + 0.9]]))
    _poly(layer, np.concatenate([neck_top, neck_bottom]), _scale(skin, 0.8))
    shoulders = place(
        np.array([[-2.2, p["bottom"] + 0.7], [2.2, p["bottom"] + 0.7], [2.6, 4.0], [-2.6, 4.0]])
    )
    _poly(layer, shoulders, shirt)
    style = int(rng.integers(4))  # 0 bald/short, 1 cap of hair, 2 long hair, 3 bun / volume
    if style == 2:  # long hair falls behind the shoulders
        back = place(
            np.array([[-1.25, -0.6], [1.25, -0.6], [1.35, p["bottom"] + 0.6], [-1.35, p["bottom"] + 0.6]])
        )
        _poly(layer, back, hair)
    # Ears (a turned head hides the far one behind the face).
    for s in (-1.0, 1.0):
        ear = _rotate3d(np.array([[s * 1.0, p["eye_y"] + 0.15]]), np.array([-0.15]), yaw, pitch)
        _ellipse(layer, place(ear)[0], (0.14 * unit, 0.27 * unit), np.rad2deg(theta), _scale(skin, 0.9))
    # Face with directional light.
    face_mask = np.zeros((height, width), np.uint8)
    _poly(face_mask, ring, 255)
    face_layer = np.zeros_like(layer)
    _poly(face_layer, ring, skin)
    light_dir = rng.uniform(0, 2 * np.pi)
    strength = rng.uniform(0.0, 0.45)
    ys, xs = np.mgrid[:height, :width].astype(np.float32)
    span = max(1.0, unit)
    gradient = (
        1
        + strength
        * ((xs - centre[0]) / span * np.cos(light_dir) + (ys - centre[1]) / span * np.sin(light_dir))
        / 1.5
    )
    shaded = np.clip(face_layer.astype(np.float32) * gradient[..., None], 0, 255).astype(np.uint8)
    alpha = face_mask.astype(np.float32)[..., None] / 255
    layer = (shaded * alpha + layer * (1 - alpha)).astype(np.uint8)
    # Hair on top of the head (never down to the brows).
    if style != 0 or rng.random() < 0.5:
        fringe = rng.uniform(0.22, 0.5)
        cap = _outline({"top": p["top"] + 0.08, "bottom": p["bottom"]}, yaw, pitch)
        cap_top = cap[cap[:, 1] < 0] * 1.06
        brow_level = (p["eye_y"] - p["brow_gap"] - p["brow_arch"] - p["brow_thick"]) - fringe
        line = np.stack([np.linspace(1.05, -1.05, 9), brow_level + rng.normal(0, 0.03, 9)], 1)
        line[[0, -1], 1] += 0.25 if style != 0 else 0.0
        line = _rotate3d(line, np.full(9, 0.2), yaw, pitch)
        cap_poly = place(
            np.concatenate([cap_top[np.argsort(np.arctan2(cap_top[:, 1], cap_top[:, 0]))], line])
        )
        _poly(layer, cap_poly, hair)
        if style == 3:
            _ellipse(
                layer,
                place(np.array([[0.0, -p["top"] - 0.15]]))[0],
                (0.5 * unit, 0.3 * unit),
                np.rad2deg(theta),
                hair,
            )
    # Eyebrows: a filled quad through outer end, top, inner end, bottom.
    brow = _scale(hair, rng.uniform(0.6, 1.0)) if rng.random() < 0.8 else _scale(skin, 0.45)
    for s in (0, 1):
        quad = k[[0 + s, 4 + 2 * s, 2 + s, 5 + 2 * s]]
        _poly(layer, _smooth_closed(quad, 4), brow)
    # Eyes: sclera through the corners and lids, iris and pupil on the pupil landmark, lid line on top.
    iris = _IRIS[int(rng.integers(len(_IRIS)))]
    sclera = _scale((225, 232, 240), rng.uniform(0.85, 1.0))
    eye_h_px = float(np.linalg.norm(k[12] - k[13]))
    for s in (0, 1):
        contour = _smooth_closed(k[[8 + s, 12 + 2 * s, 10 + s, 13 + 2 * s]], 5)
        eye_mask = np.zeros((height, width), np.uint8)
        _poly(eye_mask, contour, 255)
        eye_layer = layer.copy()
        _poly(eye_layer, contour, sclera)
        r = max(0.9, 0.55 * eye_h_px)
        _ellipse(eye_layer, k[16 + s], (r, r), 0, iris)
        _ellipse(eye_layer, k[16 + s], (r * 0.45, r * 0.45), 0, (10, 10, 10))
        a = eye_mask.astype(np.float32)[..., None] / 255
        layer = (eye_layer * a + layer * (1 - a)).astype(np.uint8)
        top_lid = np.array(
            [
                k[8 + s],
                (k[8 + s] + k[12 + 2 * s]) / 2 + (k[12 + 2 * s] - k[13 + 2 * s]) * 0.08,
                k[12 + 2 * s],
                k[10 + s],
            ]
        )
        cv2.polylines(
            layer, [np.round(top_lid * _ONE).astype(np.int32)], False, (20, 20, 30), 1, cv2.LINE_AA, _SHIFT
        )
    # Nose: a shaded ridge from between the eyes to the tip, nostrils at the wings, the bottom point.
    dark_skin = _scale(skin, 0.62)
    bridge = (k[10] + k[11]) / 2
    cv2.line(layer, _fix(bridge), _fix(k[20]), _scale(skin, 0.8), 1, cv2.LINE_AA, _SHIFT)
    nose_w = float(np.linalg.norm(k[18] - k[19]))
    for s in (0, 1):
        toward = k[21] - k[18 + s]
        _ellipse(
            layer,
            k[18 + s] + toward * 0.3,
            (0.16 * nose_w, 0.09 * nose_w),
            np.rad2deg(np.arctan2(toward[1], toward[0])),
            dark_skin,
        )
    _poly(layer, _smooth_closed(np.array([k[18], k[20], k[19], k[21]]), 4), _scale(skin, 1.06))
    for s in (0, 1):
        _ellipse(layer, (k[18 + s] * 0.6 + k[21] * 0.4), (0.1 * nose_w, 0.06 * nose_w), 0, (25, 25, 40))
    # Mouth: dark opening between the lips, then upper and lower lips through their landmarks.
    lips = tuple(int(c) for c in np.clip(np.array(skin) * [0.7, 0.6, 1.0] + [0, 0, 25], 0, 255))
    lips = _scale(lips, rng.uniform(0.75, 1.0))
    if np.linalg.norm(k[25] - k[26]) > 0.4:  # open: the dark mouth between the lips
        _poly(layer, _smooth_closed(k[[22, 25, 23, 26]], 5), (30, 25, 45))
    upper = _smooth_closed(np.array([k[22], k[24], k[23], k[25]]), 5)
    lower = _smooth_closed(np.array([k[22], k[26], k[23], k[27]]), 5)
    _poly(layer, upper, lips)
    _poly(layer, lower, _scale(lips, 1.08))
    if np.linalg.norm(k[25] - k[26]) <= 0.4:  # closed: the line between the lips
        cv2.line(layer, _fix(k[22]), _fix(k[23]), _scale(lips, 0.5), 1, cv2.LINE_AA, _SHIFT)
    # Chin crease.
    chin_w = float(np.linalg.norm(k[22] - k[23])) * 0.25
    along = (k[23] - k[22]) / max(float(np.linalg.norm(k[23] - k[22])), 1e-6)
    cv2.line(
        layer,
        _fix(k[28] - along * chin_w - (k[28] - k[27]) * 0.25),
        _fix(k[28] + along * chin_w - (k[28] - k[27]) * 0.25),
        _scale(skin, 0.85),
        1,
        cv2.LINE_AA,
        _SHIFT,
    )
    # Global light, tint, blur and noise.
    image = layer.astype(np.float32) * rng.uniform(0.65, 1.25) * rng.uniform(0.9, 1.1, 3) + rng.normal(0, 8)
    image = np.clip(image, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        image = cv2.GaussianBlur(image, (3, 3), rng.uniform(0.4, 0.9))
    grain = rng.standard_normal((height, width, 1), dtype=np.float32) * rng.uniform(1, 6)
    image = np.clip(image + grain, 0, 255).astype(np.uint8)
    # COFW-style box: the landmarks' extent, a little wider than the brows and down to the chin.
    lo, hi = k.min(axis=0), k.max(axis=0)
    size = hi - lo
    box_lo = lo - size * np.array([rng.uniform(0.06, 0.14), rng.uniform(0.03, 0.08)])
    box_hi = hi + size * np.array([rng.uniform(0.06, 0.14), rng.uniform(0.02, 0.06)])
    box = np.array([box_lo[0], box_lo[1], box_hi[0] - box_lo[0], box_hi[1] - box_lo[1]])
    if layout is COFW:
        return image, k, box
    if layout is not W300:
        raise ValueError(f"synthetic faces come in the cofw and 300w layouts, not {layout.name}")
    points = ibug_landmarks(k, place(_jaw(p, yaw, pitch)))
    lo, hi = points.min(axis=0), points.max(axis=0)
    return image, points, np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]])


# ---------------------------------------------------------------------------------------------- iBUG's 68


def ibug_landmarks(k: np.ndarray, jaw: np.ndarray) -> np.ndarray:
    """iBUG's 68 points (300W's order) from COFW's 29 `k` and the 17 `jaw` points of the same face.

    Points both layouts have are COFW's own (eye and mouth corners, brow ends and tops, nose tip, wings and
    bottom, lip centres; the jaw's middle point is the outline's chin, the 3D point COFW's chin is); the
    others lie on the curves the features are drawn with, through the same COFW points, so the same image
    carries both annotations.
    """
    return np.array(
        [
            *jaw,
            *_brow(k[[0, 4, 2, 5]]),
            *_brow(k[[1, 6, 3, 7]])[::-1],  # 22-26 run from the inner end outwards
            *_nose(k),
            *_eye(k[[8, 12, 10, 13]]),
            *_eye(k[[9, 14, 11, 15]])[[3, 2, 1, 0, 5, 4]],  # 42-47 start at the inner corner
            *_lips(k),
        ]
    )


def _nose(k: np.ndarray) -> list[np.ndarray]:
    """27-30 on the drawn ridge (from between the inner eye corners to the tip), 31-35 across the drawn nose
    base (wing, bottom, wing) from the image left."""
    bridge = (k[10] + k[11]) / 2
    base = k[[18, 20, 19, 21]]  # drawn through wing, tip, wing, bottom
    ridge = [bridge, *(bridge + (k[20] - bridge) * f for f in (1 / 3, 2 / 3)), k[20]]
    return [*ridge, k[18], _on_closed(base, 3, 0.5), k[21], _on_closed(base, 2, 0.5), k[19]]


def _lips(k: np.ndarray) -> list[np.ndarray]:
    """48-59 round the drawn lips' outer edge and 60-67 round their inner edge, each clockwise from the mouth
    corner on the image left; the inner corners 60 / 64 are the mouth corners, where the drawn lips meet."""
    upper, lower = k[[22, 24, 23, 25]], k[[22, 26, 23, 27]]  # drawn through corner, centre, corner, centre
    outer = [
        k[22], _on_closed(upper, 0, 0.4), _on_closed(upper, 0, 0.8), k[24],
        _on_closed(upper, 1, 0.2), _on_closed(upper, 1, 0.6), k[23],
        _on_closed(lower, 2, 0.4), _on_closed(lower, 2, 0.8), k[27],
        _on_closed(lower, 3, 0.2), _on_closed(lower, 3, 0.6),
    ]  # fmt: skip
    inner = [
        k[22], _on_closed(upper, 3, 0.5), k[25], _on_closed(upper, 2, 0.5),
        k[23], _on_closed(lower, 1, 0.5), k[26], _on_closed(lower, 0, 0.5),
    ]  # fmt: skip
    return outer + inner


def _brow(quad: np.ndarray) -> np.ndarray:
    """Five points along the upper edge of a brow drawn through (outer end, top, inner end, bottom), from
    the outer end to the inner end."""
    return np.array([quad[0], _on_closed(quad, 0, 0.5), quad[1], _on_closed(quad, 1, 0.5), quad[2]])


def _eye(quad: np.ndarray) -> np.ndarray:
    """Six points on an eye drawn through (outer corner, top, inner corner, bottom): outer corner, two upper
    lid points, inner corner, two lower lid points, round from the outer corner over the top (iBUG's order for
    the eye on the image left)."""
    return np.array(
        [
            quad[0], _on_closed(quad, 0, 0.6), _on_closed(quad, 1, 0.4),
            quad[2], _on_closed(quad, 2, 0.6), _on_closed(quad, 3, 0.4),
        ]
    )  # fmt: skip


def _jaw(p: dict, yaw: float, pitch: float) -> np.ndarray:
    """iBUG's 17 jaw points before placement: evenly spaced (on the frontal face) along the drawn outline
    from ear level on the image left, round the chin, to ear level on the right; the middle one is the
    chin."""
    ring, depth = _frontal_outline(p)
    chain = _lower_outline(np.column_stack([ring, depth]), p["eye_y"] + 0.15)  # the ears' centre height
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(chain[:, :2], axis=0), axis=1))])
    at = np.linspace(0.0, arc[-1], 17)
    points = np.stack([np.interp(at, arc, chain[:, j]) for j in range(3)], axis=1)
    return _rotate3d(points[:, :2], points[:, 2], yaw, pitch)


def _lower_outline(ring: np.ndarray, level: float) -> np.ndarray:
    """The part of `_frontal_outline`'s ring ((x, y, depth) rows) below y = `level`, from the image left to
    the right, cut where the drawn edges cross the level (so every point stays on an edge)."""
    count, chin = len(ring), len(ring) // 4

    def end(step: int) -> tuple[int, np.ndarray]:
        i = chin
        while ring[(i + step) % count, 1] > level:
            i += step
        inside, outside = ring[i % count], ring[(i + step) % count]
        return i, inside + (outside - inside) * (inside[1] - level) / (inside[1] - outside[1])

    (left, left_cut), (right, right_cut) = end(1), end(-1)
    return np.vstack([left_cut, ring[np.arange(left, right - 1, -1) % count], right_cut])
