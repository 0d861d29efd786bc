"""The embedded synthetic pose data: real COCO format, deterministic, cached, flip-consistent cues."""

import hashlib

import numpy as np
from pycocotools import mask as mask_utils

from tasks.pose.dataset import load_coco
from tasks.pose.synthetic import ensure_synthetic_coco


def digest_tree(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_is_valid_coco_with_polygons_matching_area(tmp_path):
    ann_file, image_dir = ensure_synthetic_coco(tmp_path, split="val", num_images=10, seed=0)
    coco = load_coco(ann_file)
    assert len(coco.imgs) == 10 and len(coco.anns) >= 10
    for ann in coco.anns.values():
        assert len(ann["keypoints"]) == 51 and ann["num_keypoints"] == sum(v > 0 for v in ann["keypoints"][2::3])
        assert ann["bbox"][2] > 0 and ann["bbox"][3] > 0
        info = coco.imgs[ann["image_id"]]
        rles = mask_utils.frPyObjects(ann["segmentation"], info["height"], info["width"])
        decoded = mask_utils.decode(mask_utils.merge(rles))
        assert abs(int(decoded.sum()) - ann["area"]) <= 0.15 * ann["area"]
    assert (image_dir / coco.imgs[1]["file_name"]).is_file()


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    a = ensure_synthetic_coco(tmp_path / "a", split="train", num_images=6, seed=3)[0].parents[1]
    b = ensure_synthetic_coco(tmp_path / "b", split="train", num_images=6, seed=3)[0].parents[1]
    c = ensure_synthetic_coco(tmp_path / "c", split="train", num_images=6, seed=4)[0].parents[1]
    assert digest_tree(a) == digest_tree(b)
    assert digest_tree(a) != digest_tree(c)


def test_second_call_reuses_the_files(tmp_path):
    ann_file, _ = ensure_synthetic_coco(tmp_path, split="val", num_images=3, seed=0)
    stamp = ann_file.stat().st_mtime_ns
    assert ensure_synthetic_coco(tmp_path, split="val", num_images=3, seed=0)[0].stat().st_mtime_ns == stamp


def test_visible_keypoints_lie_on_their_person(tmp_path):
    ann_file, _ = ensure_synthetic_coco(tmp_path, split="val", num_images=20, seed=1)
    coco = load_coco(ann_file)
    on_mask = total = 0
    for ann in coco.anns.values():
        info = coco.imgs[ann["image_id"]]
        mask = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(ann["segmentation"], info["height"], info["width"])))
        k = np.array(ann["keypoints"]).reshape(17, 3)
        for x, y, v in k[k[:, 2] == 2]:
            xi, yi = int(round(x)), int(round(y))
            assert 0 <= xi < info["width"] and 0 <= yi < info["height"]
            window = mask[max(0, yi - 3): yi + 4, max(0, xi - 3): xi + 4]
            on_mask += bool(window.any())
            total += 1
    assert on_mask / total > 0.97


def test_facing_decides_left_right_layout(tmp_path):
    """Front-facing: the person's left shoulder is on the image right; back-facing: the opposite."""
    ann_file, _ = ensure_synthetic_coco(tmp_path, split="val", num_images=40, seed=2)
    coco = load_coco(ann_file)
    agree = {"front": [], "back": []}
    for ann in coco.anns.values():
        k = np.array(ann["keypoints"]).reshape(17, 3)
        if k[5, 2] > 0 and k[6, 2] > 0:
            agree[ann["attributes"]["facing"]].append(k[5, 0] > k[6, 0])
    assert np.mean(agree["front"]) > 0.8 and np.mean(agree["back"]) < 0.2
    assert len(agree["front"]) > 5 and len(agree["back"]) > 5
