"""Twins in the pose dataset are pixel-aligned with the clean crop; the frozen occluded val is cached."""

import json

import cv2
import numpy as np
import torch

from harness.core.io import read_image
from harness.core.occlusion import OcclusionSettings, occluded_twin
from tasks.common import heatmap
from tasks.pose.dataset import Augmentation, CocoKeypoints, TwinSource
from tasks.pose.keypoints import COCO_BODY_PARTS, COCO_OCCLUSION_ANCHORS
from tasks.pose.occluded_val import build_occluded_split
from tasks.pose.patches import cut_body_part_patches

ALWAYS = OcclusionSettings(clean_fraction=0.0)


def library(coco_fixture):
    ann_file, image_dir = coco_fixture
    return cut_body_part_patches(ann_file, image_dir, parts=COCO_BODY_PARTS, max_patches=60)


def test_twin_differs_from_clean_crop_only_where_patches_landed(coco_fixture):
    ann_file, image_dir = coco_fixture
    lib = library(coco_fixture)
    twins = TwinSource(lib, ALWAYS, COCO_OCCLUSION_ANCHORS)
    dataset = CocoKeypoints(
        ann_file, image_dir, input_size=(128, 96), augmentation=Augmentation(), twins=twins, seed=2
    )
    checked = 0
    for index in range(len(dataset)):
        sample = dataset[index]
        record = dataset.records[index]
        # Recompute the full-image twin exactly as the dataset does (it is the rng's first consumer).
        rng = np.random.default_rng((2, 0, index))
        image = read_image(record.image_path)
        twin_full, _ = occluded_twin(
            image, record.keypoints, record.box, lib, rng, anchors=COCO_OCCLUSION_ANCHORS, settings=ALWAYS
        )
        changed_full = (twin_full != image).any(-1).astype(np.uint8) * 255
        meta = sample["meta"]
        flip = None
        for candidate in (False, True):  # the sample may have been flipped; find the matching warp
            m = heatmap.crop_affine(
                meta["center"].numpy(),
                meta["size"].numpy(),
                float(meta["rotation"]),
                (128, 96),
                flip=candidate,
            )
            clean = cv2.warpAffine(image, m, (96, 128), flags=cv2.INTER_LINEAR)
            ref = torch.from_numpy(
                ((clean[:, :, ::-1].astype(np.float32) - [123.675, 116.28, 103.53]) / [58.395, 57.12, 57.375])
                .transpose(2, 0, 1)
                .copy()
            ).float()
            if torch.allclose(ref, sample["image"], atol=1e-4):
                flip, matrix = candidate, m
        assert flip is not None, "clean crop does not match the recorded geometry"
        footprint = cv2.warpAffine(changed_full, matrix, (96, 128), flags=cv2.INTER_LINEAR) > 0
        footprint = cv2.dilate(footprint.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        differs = (sample["twin"] != sample["image"]).any(0).numpy()
        assert sample["covered"].dtype == torch.bool and sample["covered"].shape == (17,)
        assert not (differs & ~footprint).any(), "twin differs outside the pasted patches"
        checked += differs.any()
    assert checked >= len(dataset) // 2


def test_frozen_occluded_val_is_built_once_and_deterministic(coco_fixture, tmp_path):
    ann_file, image_dir = coco_fixture
    lib = library(coco_fixture)
    kwargs = {"library": lib, "settings": ALWAYS, "anchors": COCO_OCCLUSION_ANCHORS, "seed": 0}
    ann_a, images_a = build_occluded_split(ann_file, image_dir, tmp_path / "a", **kwargs)
    ann_b, images_b = build_occluded_split(ann_file, image_dir, tmp_path / "b", **kwargs)
    assert ann_a.read_bytes() == ann_b.read_bytes()
    assert [p.read_bytes() for p in sorted(images_a.iterdir())] == [
        p.read_bytes() for p in sorted(images_b.iterdir())
    ]
    stamp = ann_a.stat().st_mtime_ns
    assert build_occluded_split(ann_file, image_dir, tmp_path / "a", **kwargs)[0].stat().st_mtime_ns == stamp
    data = json.loads(ann_a.read_text())
    persons = [a for a in data["annotations"] if "occluded_keypoints" in a]
    assert len(persons) >= 12 and sum(sum(a["occluded_keypoints"]) for a in persons) > 0
    manifest = json.loads((ann_a.parent.parent / "manifest.json").read_text())
    assert manifest["persons"] == len(persons)
    assert manifest["build_key"]["patch_library_sha256"] == lib.digest()
    other = build_occluded_split(ann_file, image_dir, tmp_path / "a", **{**kwargs, "seed": 1})[0]
    assert other != ann_a and other.read_bytes() != ann_a.read_bytes()
    occluded = CocoKeypoints(ann_a, images_a)
    assert len(occluded) == 12
