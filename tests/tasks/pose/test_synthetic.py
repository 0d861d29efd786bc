"""The embedded synthetic pose data: real COCO format, deterministic, cached, flip-consistent cues."""

import hashlib

import numpy as np
from pycocotools import mask as mask_utils

from tasks.pose.dataset import load_coco
from tasks.pose.keypoints import coco_category
from tasks.pose.synthetic import ensure_synthetic_coco


def digest_tree(folder):
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def decode(segmentation, info):
    rles = mask_utils.frPyObjects(segmentation, info["height"], info["width"])
    return mask_utils.decode(mask_utils.merge(rles))


def test_is_valid_coco_with_polygons_matching_area(tmp_path):
    ann_file, image_dir = ensure_synthetic_coco(tmp_path, split="val", num_images=10, seed=0)
    assert ann_file == tmp_path / "synthetic_s0_n10_192x160" / "annotations" / "person_keypoints_val.json"
    coco = load_coco(ann_file)
    assert coco.dataset["categories"] == [coco_category()]
    assert len(coco.imgs) == 10 and len(coco.anns) >= 10
    for info in coco.imgs.values():
        assert (info["height"], info["width"]) == (192, 160)
        assert (image_dir / info["file_name"]).is_file()
    for ann in coco.anns.values():
        keypoints = ann["keypoints"]
        assert len(keypoints) == 51 and ann["num_keypoints"] == sum(v > 0 for v in keypoints[2::3])
        assert ann["category_id"] == 1 and ann["iscrowd"] == 0
        assert ann["bbox"][2] > 0 and ann["bbox"][3] > 0
        assert ann["segmentation"] and all(len(poly) >= 6 for poly in ann["segmentation"])
        decoded = decode(ann["segmentation"], coco.imgs[ann["image_id"]])
        assert decoded.sum() > 0
        assert abs(int(decoded.sum()) - ann["area"]) <= 0.15 * ann["area"]
    assert not [p for p in ann_file.parents[1].iterdir() if p.name.startswith(".")]  # no temp folder left


def test_same_seed_same_bytes_other_seed_or_split_other_bytes(tmp_path):
    a = ensure_synthetic_coco(tmp_path / "a", split="train", num_images=6, seed=3)[0].parents[1]
    b = ensure_synthetic_coco(tmp_path / "b", split="train", num_images=6, seed=3)[0].parents[1]
    c = ensure_synthetic_coco(tmp_path / "c", split="train", num_images=6, seed=4)[0].parents[1]
    _, val_dir = ensure_synthetic_coco(tmp_path / "d", split="val", num_images=6, seed=3)
    assert len(digest_tree(a)) == 7 and digest_tree(a) == digest_tree(b)
    assert digest_tree(a) != digest_tree(c)
    train_images, val_images = digest_tree(a / "train"), digest_tree(val_dir)
    assert train_images.keys() == val_images.keys() and train_images != val_images


def test_second_call_reuses_the_files(tmp_path):
    ann_file, image_dir = ensure_synthetic_coco(tmp_path, split="val", num_images=3, seed=0)
    stamps = [ann_file.stat().st_mtime_ns, (image_dir / "000001.jpg").stat().st_mtime_ns]
    again, _ = ensure_synthetic_coco(tmp_path, split="val", num_images=3, seed=0)
    assert again == ann_file
    assert [ann_file.stat().st_mtime_ns, (image_dir / "000001.jpg").stat().st_mtime_ns] == stamps


def test_visible_keypoints_lie_on_their_person(tmp_path):
    ann_file, _ = ensure_synthetic_coco(tmp_path, split="val", num_images=20, seed=1)
    coco = load_coco(ann_file)
    on_mask = total = 0
    for ann in coco.anns.values():
        info = coco.imgs[ann["image_id"]]
        mask = decode(ann["segmentation"], info)
        k = np.array(ann["keypoints"]).reshape(17, 3)
        for x, y in k[k[:, 2] == 2, :2]:
            assert 0 <= x < info["width"] and 0 <= y < info["height"]
            xi, yi = int(x), int(y)
            window = mask[max(0, yi - 3) : yi + 4, max(0, xi - 3) : xi + 4]
            on_mask += bool(window.any())
            total += 1
    assert total > 100 and on_mask / total > 0.97


def test_facing_decides_left_right_layout(tmp_path):
    """Front-facing: the person's left shoulder is on the image right; back-facing: the opposite."""
    ann_file, _ = ensure_synthetic_coco(tmp_path, split="val", num_images=40, seed=2)
    coco = load_coco(ann_file)
    agree = {"front": [], "back": []}
    for ann in coco.anns.values():
        k = np.array(ann["keypoints"]).reshape(17, 3)
        if k[5, 2] > 0 and k[6, 2] > 0:
            agree[ann["attributes"]["facing"]].append(k[5, 0] > k[6, 0])
        if ann["attributes"]["facing"] == "back":
            assert (k[:3, 2] == 0).all()  # no face to see from behind
    assert len(agree["front"]) > 5 and len(agree["back"]) > 5
    assert np.mean(agree["front"]) > 0.8 and np.mean(agree["back"]) < 0.2
