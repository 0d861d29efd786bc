"""Embedded synthetic pose data: articulated people drawn with the COCO-17 skeleton, in COCO format.

Why: no dataset can be downloaded here, yet the harness must train and evaluate out of the box. Writing the
data as a real `person_keypoints_<split>.json` with JPEGs means the very loader used for COCO runs on it.
Why it looks the way it does: figures with uniform random joint angles and look-alike left/right limbs are
nearly unlearnable in minutes (see design.md). So poses follow human joint ranges, people are large, and
left/right is told apart by cues that stay consistent under a horizontal flip: a front-facing figure shows a
face (eyes, nose, mouth) and its left side on the image right; a back-facing one shows hair and its left side
on the image left.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zlib
from pathlib import Path

import cv2
import numpy as np
from rich.progress import Progress

from tasks.pose.keypoints import coco_category

JPEG_QUALITY = 95

# Body proportions as fractions of the person's height (feet to top of head).
HEAD_R, NECK, TORSO = 0.065, 0.13, 0.30
SHOULDER_W, HIP_W = 0.24, 0.16
UPPER_ARM, LOWER_ARM, UPPER_LEG, LOWER_LEG = 0.165, 0.15, 0.235, 0.225


def ensure_synthetic_coco(
    root: Path, *, split: str, num_images: int, seed: int, image_size: tuple[int, int] = (192, 160)
) -> tuple[Path, Path]:
    """Generate (once) and return (annotation_json_path, image_dir). image_size is (height, width).

    Example:
        >>> ann, images = ensure_synthetic_coco(Path("/tmp/c"), split="val", num_images=4, seed=0)
    """
    height, width = image_size
    folder = Path(root) / f"synthetic_s{seed}_n{num_images}_{height}x{width}"
    ann_file = folder / "annotations" / f"person_keypoints_{split}.json"
    image_dir = folder / split
    if ann_file.is_file():
        return ann_file, image_dir
    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder, prefix=f".{split}."))
    split_seed = zlib.crc32(split.encode())
    images, annotations = [], []
    with Progress(transient=True) as progress:
        job = progress.add_task(f"generating synthetic {split}", total=num_images)
        for index in range(num_images):
            rng = np.random.default_rng((seed, split_seed, index))
            image, people = _draw_image(rng, height, width)
            image_id = index + 1
            name = f"{image_id:06d}.jpg"
            cv2.imwrite(str(tmp / name), image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            images.append({"id": image_id, "file_name": name, "width": width, "height": height})
            for person in people:
                person.update(id=len(annotations) + 1, image_id=image_id, category_id=1, iscrowd=0)
                annotations.append(person)
            progress.advance(job)
    data = {"info": {"description": f"synthetic people, seed {seed}, split {split}"},
            "images": images, "annotations": annotations, "categories": [coco_category()]}  # fmt: skip
    (tmp / "annotations.json").write_text(json.dumps(data))
    # Move the finished split into place; the json last, because its presence means "complete".
    if image_dir.exists():
        shutil.rmtree(image_dir)
    (tmp / "annotations.json").rename(tmp.parent / f".{split}.json.tmp")
    tmp.rename(image_dir)
    ann_file.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp.parent / f".{split}.json.tmp", ann_file)
    return ann_file, image_dir


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A gradient with random clutter: rectangles, lines, blobs and noise."""
    c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = np.linspace(0, 1, height if rng.random() < 0.5 else width, dtype=np.float32)
    ramp = c0[None] * (1 - t[:, None]) + c1[None] * t[:, None]
    image = np.empty((height, width, 3), np.float32)
    image[:] = ramp[:, None] if len(t) == height else ramp[None]
    image = image.astype(np.uint8)
    for _ in range(rng.integers(3, 9)):
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = rng.integers(3)
        p = rng.integers(0, [width, height])
        q = rng.integers(0, [width, height])
        if kind == 0:
            cv2.rectangle(image, tuple(int(v) for v in p), tuple(int(v) for v in q), color, -1)
        elif kind == 1:
            cv2.line(image, tuple(int(v) for v in p), tuple(int(v) for v in q), color, int(rng.integers(1, 6)))
        else:
            axes = (int(rng.integers(4, 25)), int(rng.integers(4, 25)))
            cv2.ellipse(image, tuple(int(v) for v in p), axes, float(rng.uniform(0, 180)), 0, 360, color, -1)
    noise = rng.normal(0, 6, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def _limb_angles(rng: np.random.Generator) -> dict[str, float]:
    """Angles in degrees from 'straight down', positive = away from the body's midline."""
    style = rng.choice(["stand", "walk", "raise", "wave", "squat"], p=[0.3, 0.25, 0.15, 0.2, 0.1])
    a = {}
    for side in ("l", "r"):
        upper = rng.normal(18, 10)
        if style == "raise":
            upper = rng.normal(130, 25)
        elif style == "wave" and (side == "l") == (rng.random() < 0.5):
            upper = rng.normal(95, 30)
        elif style == "walk":
            upper = rng.normal(15, 20)
        a[f"upper_arm_{side}"] = upper
        a[f"lower_arm_{side}"] = upper + rng.uniform(-10, 110) * (1 if upper < 60 else -1) * -1
        leg = rng.normal(8, 5)
        knee = rng.uniform(0, 15)
        if style == "walk":
            leg = rng.normal(8, 15)
            knee = rng.uniform(0, 40)
        elif style == "squat":
            leg = rng.normal(45, 12)
            knee = -rng.uniform(40, 80)
        a[f"upper_leg_{side}"] = leg
        a[f"lower_leg_{side}"] = leg + knee * (-1 if leg > 20 else 1) * 0.5 - (knee if style == "squat" else 0)
    return a


def _skeleton(rng: np.random.Generator, center_x: float, feet_y: float, height: float, front: bool) -> np.ndarray:
    """(17, 2) keypoints of a figure; `front` decides on which image side its left limbs are."""
    a = _limb_angles(rng)
    side_sign = {"l": 1.0 if front else -1.0, "r": -1.0 if front else 1.0}  # image x direction of each side
    width_scale = rng.uniform(0.75, 1.1)
    hip_y = feet_y - (UPPER_LEG + LOWER_LEG) * height * 0.97
    shoulder_y = hip_y - TORSO * height
    lean = rng.normal(0, 0.02) * height
    k = np.zeros((17, 2))
    for side, s_idx, h_idx in (("l", 5, 11), ("r", 6, 12)):
        sx = side_sign[side]
        k[s_idx] = (center_x + lean + sx * SHOULDER_W * 0.5 * height * width_scale, shoulder_y)
        k[h_idx] = (center_x + sx * HIP_W * 0.5 * height * width_scale, hip_y)
        for upper, lower, base, mid, end, len_u, len_l in (
            ("upper_arm", "lower_arm", s_idx, s_idx + 2, s_idx + 4, UPPER_ARM, LOWER_ARM),
            ("upper_leg", "lower_leg", h_idx, h_idx + 2, h_idx + 4, UPPER_LEG, LOWER_LEG),
        ):
            for joint, start, name, length in ((mid, base, upper, len_u), (end, mid, lower, len_l)):
                theta = np.deg2rad(a[f"{name}_{side}"])
                k[joint] = k[start] + np.array([sx * np.sin(theta), np.cos(theta)]) * length * height
    neck = (k[5] + k[6]) / 2
    head = neck + np.array([rng.normal(0, 0.01) * height, -NECK * height])
    yaw = rng.uniform(-0.4, 0.4)  # head turn: shifts the face towards one side
    r = HEAD_R * height
    eye_dx, ear_dx = 0.38 * r, 0.95 * r
    face_x = head[0] + yaw * r * 0.5 * (1 if front else -1)
    left = 1.0 if front else -1.0
    k[0] = (face_x, head[1] + 0.25 * r)
    k[1] = (face_x + left * eye_dx, head[1] - 0.1 * r)
    k[2] = (face_x - left * eye_dx, head[1] - 0.1 * r)
    k[3] = (head[0] + left * ear_dx, head[1])
    k[4] = (head[0] - left * ear_dx, head[1])
    return k


def _color(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(20, 236, 3))


def _draw_person(rng: np.random.Generator, k: np.ndarray, height: float, front: bool, shape: tuple[int, int]):
    """Render one figure into its own layer; returns (colour layer, mask)."""
    layer = np.zeros((*shape, 3), np.uint8)
    mask = np.zeros(shape, np.uint8)
    skin = tuple(int(c) for c in np.array([140, 170, 220]) * rng.uniform(0.45, 1.05))
    shirt, pants, hair, shoes = _color(rng), _color(rng), _color(rng), _color(rng)
    arm_w = max(2, int(height * rng.uniform(0.045, 0.065)))
    leg_w = max(3, int(height * rng.uniform(0.06, 0.085)))
    sleeve = skin if rng.random() < 0.4 else shirt
    pt = lambda i: tuple(int(round(v)) for v in k[i])  # noqa: E731

    def seg(i: int, j: int, color, width: int) -> None:
        for img, c in ((layer, color), (mask, 255)):
            cv2.line(img, pt(i), pt(j), c, width, cv2.LINE_AA if img is layer else cv2.LINE_8)
            cv2.circle(img, pt(j), width // 2, c, -1)

    # Legs, torso, arms, head: far-to-near order of a frontal figure.
    for hip, knee, ankle in ((11, 13, 15), (12, 14, 16)):
        seg(hip, knee, pants, leg_w)
        seg(knee, ankle, pants, int(leg_w * 0.85))
        cv2.ellipse(layer, pt(ankle), (leg_w // 2 + 2, leg_w // 3 + 1), 0, 0, 360, shoes, -1)
        cv2.ellipse(mask, pt(ankle), (leg_w // 2 + 2, leg_w // 3 + 1), 0, 0, 360, 255, -1)
    torso = np.array([k[5], k[6], k[12], k[11]]).round().astype(np.int32)
    cv2.fillConvexPoly(layer, torso, shirt, cv2.LINE_AA)
    cv2.fillConvexPoly(mask, torso, 255)
    if rng.random() < 0.5:  # stripes give the shirt texture
        stripe = tuple(int(c * 0.6) for c in shirt)
        top, bottom = int(min(k[5][1], k[6][1])), int(max(k[11][1], k[12][1]))
        for y in range(top, bottom, max(3, int(height * 0.04))):
            cv2.line(layer, (int(min(k[5][0], k[11][0])) - 2, y), (int(max(k[6][0], k[12][0])) + 2, y), stripe, 1)
        layer[mask == 0] = 0
    for shoulder, elbow, wrist in ((5, 7, 9), (6, 8, 10)):
        seg(shoulder, elbow, sleeve, arm_w)
        seg(elbow, wrist, skin, int(arm_w * 0.85))
        cv2.circle(layer, pt(wrist), arm_w // 2 + 1, skin, -1)
        cv2.circle(mask, pt(wrist), arm_w // 2 + 1, 255, -1)
    head = ((k[3] + k[4]) / 2).round().astype(int)
    r = int(round(HEAD_R * height))
    cv2.ellipse(layer, tuple(head), (r, int(r * 1.15)), 0, 0, 360, skin if front else hair, -1, cv2.LINE_AA)
    cv2.ellipse(mask, tuple(head), (r, int(r * 1.15)), 0, 0, 360, 255, -1)
    cv2.ellipse(layer, tuple(head), (r, int(r * 1.15)), 0, 180, 360, hair, -1, cv2.LINE_AA)  # hair on top
    if front:
        dot = max(1, r // 5)
        for eye in (1, 2):
            cv2.circle(layer, pt(eye), dot, (30, 30, 30), -1)
        cv2.circle(layer, pt(0), dot, tuple(int(c * 0.7) for c in skin), -1)
        mouth = (pt(0)[0], pt(0)[1] + max(2, r // 3))
        cv2.ellipse(layer, mouth, (max(2, r // 3), max(1, r // 8)), 0, 0, 180, (40, 40, 150), -1)
    for ear in (3, 4):
        cv2.circle(layer, pt(ear), max(1, r // 4), tuple(int(c * 0.85) for c in skin), -1)
    # Light from one side: a soft brightness ramp over the whole figure.
    ramp = np.linspace(rng.uniform(0.75, 1.0), rng.uniform(1.0, 1.2), shape[1], dtype=np.float32)
    layer = np.clip(layer * ramp[None, :, None], 0, 255).astype(np.uint8)
    return layer, mask


def _draw_image(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, list[dict]]:
    image = _background(rng, height, width)
    n_people = int(rng.choice([1, 2, 3], p=[0.55, 0.3, 0.15]))
    slots = rng.permutation(np.linspace(0.25, 0.75, n_people)) if n_people > 1 else [rng.uniform(0.35, 0.65)]
    layers = []
    for p in range(n_people):
        main = p == 0
        person_h = height * (rng.uniform(0.6, 0.95) if main else rng.uniform(0.4, 0.8))
        center_x = width * float(slots[p]) + rng.normal(0, 0.05) * width
        feet_y = height * rng.uniform(0.85, 1.0) if main else height * rng.uniform(0.6, 1.0)
        front = bool(rng.random() < 0.55)
        k = _skeleton(rng, center_x, feet_y, person_h, front)
        angle = float(np.clip(rng.normal(0, 10), -25, 25))
        pivot = (k[11] + k[12]) / 2
        rot = cv2.getRotationMatrix2D((float(pivot[0]), float(pivot[1])), angle, 1.0)
        k = k @ rot[:, :2].T + rot[:, 2]
        layer, mask = _draw_person(rng, k, person_h, front, (height, width))
        layers.append((k, layer, mask, front))
    # Farther (smaller, higher-feet) people first; later ones occlude earlier ones.
    order = sorted(range(n_people), key=lambda i: layers[i][0][15:17, 1].max())
    occluders = np.zeros((height, width), bool)
    visible_masks = [None] * n_people
    for i in order:
        _, layer, mask, _ = layers[i]
        image[mask > 0] = layer[mask > 0]
    for i in reversed(order):
        mask = layers[i][2] > 0
        visible_masks[i] = mask & ~occluders
        occluders |= mask
    people = []
    for rank, i in enumerate(order):
        k, _, _, front = layers[i]
        later = np.zeros((height, width), bool)
        for j in order[rank + 1:]:
            later |= layers[j][2] > 0
        person = _annotation(k, visible_masks[i], later, front)
        if person is not None:
            people.append(person)
    return image, people


def _annotation(k: np.ndarray, visible: np.ndarray, covered_by_later: np.ndarray, front: bool) -> dict | None:
    height, width = visible.shape
    if visible.sum() < 150:
        return None
    xy = np.round(k).astype(int)
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < width) & (xy[:, 1] >= 0) & (xy[:, 1] < height)
    v = np.where(inside, 2, 0)
    hidden = np.zeros(17, bool)
    hidden[inside] = covered_by_later[xy[inside, 1], xy[inside, 0]]
    v[inside & hidden] = 1
    if not front:
        v[:3] = 0  # the face of a back-facing person is not visible, as COCO annotators leave it
    keypoints = np.concatenate([np.where(v[:, None] > 0, k, 0.0), v[:, None]], axis=1)
    contours, _ = cv2.findContours(visible.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polygons = [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]
    if not polygons or (v > 0).sum() < 4:
        return None
    ys, xs = np.nonzero(visible)
    return {
        "bbox": [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)],
        "area": float(visible.sum()),
        "segmentation": polygons,
        "keypoints": [round(float(x), 2) for x in keypoints.reshape(-1)],
        "num_keypoints": int((v > 0).sum()),
        "attributes": {"facing": "front" if front else "back"},
    }
