"""The frozen occluded val split: every person of a COCO-format split gets body-part patches, once.

Built once per (source annotations, patch library, settings, seed) and cached, so every method and
every run is scored on the very same occluded images. The output is an ordinary COCO-format split
(lossless PNGs + json) whose annotations also carry `occluded_keypoints`: 1 where a patch covers the
keypoint, for visible/occluded-keypoint metrics.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
from rich.progress import Progress

from harness.io import atomic_write_json
from harness.occlusion import OcclusionSettings, PatchLibrary, occluded_twin
from tasks.pose.dataset import load_coco, read_image


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def images_digest(ann_file: Path, image_dir: Path) -> str:
    """sha256 over the name and bytes of every image a COCO json lists, in file-name order.

    Computed once and cached next to the json (keyed by the json's digest), so a record can prove two
    runs saw byte-identical pixels at the cost of one pass over the images.
    """
    ann_file = Path(ann_file)
    cache = ann_file.with_name(f".{ann_file.stem}.images.sha256.json")
    annotations = file_digest(ann_file)
    try:
        cached = json.loads(cache.read_text())
        if cached.get("annotations_sha256") == annotations:
            return cached["images_sha256"]
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    digest = hashlib.sha256()
    for name in sorted(info["file_name"] for info in json.loads(ann_file.read_text())["images"]):
        digest.update(name.encode() + b"\0")
        digest.update(hashlib.sha256((Path(image_dir) / name).read_bytes()).digest())
    result = digest.hexdigest()
    try:
        atomic_write_json(cache, {"annotations_sha256": annotations, "images_sha256": result})
    except OSError:  # a read-only dataset folder: recomputed next time
        pass
    return result


def build_occluded_split(
    ann_file: Path,
    image_dir: Path,
    cache_root: Path,
    *,
    library: PatchLibrary,
    settings: OcclusionSettings,
    anchors: tuple[int, ...],
    seed: int,
) -> tuple[Path, Path]:
    """Return (annotation json, image folder) of the occluded split, building it on first use.

    Each person's patches come from rng(seed, image_id, ann_id), so the split does not depend on
    iteration order; persons of one image are occluded one after another on the same canvas.
    """
    key = {
        "annotations": file_digest(ann_file),
        "library": library.digest(),
        "settings": dataclasses.asdict(settings),
        "anchors": list(anchors),
        "seed": seed,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    out_dir = Path(cache_root) / f"occluded_{Path(ann_file).stem}_s{seed}_{digest}"
    ann_out, image_out = out_dir / "annotations.json", out_dir / "images"
    if ann_out.is_file():
        return ann_out, image_out

    coco = load_coco(ann_file)
    data = json.loads(Path(ann_file).read_text())
    anns_by_image: dict[int, list[dict]] = {}
    for ann in data["annotations"]:
        anns_by_image.setdefault(ann["image_id"], []).append(ann)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    (tmp / "images").mkdir()
    covered_total = persons = 0
    with Progress(transient=True) as progress:
        job = progress.add_task("building occluded val", total=len(data["images"]))
        for info in data["images"]:
            canvas = read_image(Path(image_dir) / info["file_name"])
            for ann in sorted(anns_by_image.get(info["id"], []), key=lambda a: a["id"]):
                keypoints = np.asarray(ann.get("keypoints", []), dtype=np.float64).reshape(-1, 3)
                box = ann.get("bbox", [0, 0, 0, 0])
                if ann.get("iscrowd", 0) or keypoints.size == 0 or box[2] <= 0 or box[3] <= 0:
                    continue
                rng = np.random.default_rng((seed, int(info["id"]), int(ann["id"])))
                canvas, covered = occluded_twin(
                    canvas, keypoints, box, library, rng, anchors=anchors, settings=settings
                )
                ann["occluded_keypoints"] = covered.astype(int).tolist()
                covered_total += int(covered.sum())
                persons += 1
            info["file_name"] = Path(info["file_name"]).with_suffix(".png").name
            cv2.imwrite(str(tmp / "images" / info["file_name"]), canvas)
            progress.advance(job)
    del coco
    atomic_write_json(tmp / "annotations.json", data)
    atomic_write_json(
        tmp / "manifest.json",
        {
            "source": str(ann_file),
            **key,
            "images": len(data["images"]),
            "persons": persons,
            "covered_keypoints": covered_total,
        },
    )
    try:
        tmp.rename(out_dir)
    except OSError:  # another process built it first
        shutil.rmtree(tmp, ignore_errors=True)
    return ann_out, image_out
