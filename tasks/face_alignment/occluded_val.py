"""The frozen occluded val split (C-COFW style): every face of a split gets occluder patches, once.

Built once per (source annotations, patch library, settings, layout, seed) and cached, so every method and
every run is scored on the very same occluded images. The output is an ordinary COCO-style face landmark
split (lossless PNGs + json) whose annotations also carry `occluded_keypoints`: 1 where a patch covers the
landmark, for the visible / occluded NME split.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np

from harness.core.cache import build_once, content_key
from harness.core.io import atomic_write_json, read_image
from harness.core.occlusion import OcclusionSettings, PatchLibrary, occluded_twin
from tasks.face_alignment.dataset import face_records
from tasks.face_alignment.landmarks import Layout
from tasks.face_alignment.published import annotation_digest, read_annotations


def build_occluded_split(
    ann_file: Path,
    image_dir: Path,
    cache_root: Path,
    *,
    library: PatchLibrary,
    settings: OcclusionSettings,
    layout: Layout,
    seed: int,
) -> tuple[Path, Path]:
    """Return (annotation json, image folder) of the occluded split, building it on first use.

    Each face's patches come from rng(seed, image_id, ann_id), so the split does not depend on iteration
    order; faces of one image are occluded one after another on the same canvas. Images without a usable
    face are copied unchanged (as PNG).

    Args:
        ann_file, image_dir: the clean split.
        cache_root: folder under which the split's folder is created.
        library: the occluder patches.
        settings: patch count, size and rotation (clean_fraction 0 occludes every face).
        layout: the landmark layout (anchors for each occluder part).
        seed: the split's seed.
    """
    key = {
        "annotations": annotation_digest(ann_file),
        "library": library.digest(),
        "settings": dataclasses.asdict(settings),
        "layout": layout.name,
        "anchors": list(layout.anchors),
        "part_anchors": {k: list(v) for k, v in sorted(layout.part_anchors.items())},
        "seed": seed,
    }
    out_dir = Path(cache_root) / f"occluded_{Path(ann_file).stem}_s{seed}_{content_key(key)}"
    ann_out, image_out = out_dir / "annotations.json", out_dir / "images"
    if ann_out.is_file():
        return ann_out, image_out

    data = read_annotations(ann_file, image_dir)
    records, _ = face_records(data, Path(ann_file), Path(image_dir), layout)  # validates the file first
    usable = {r.ann_id: r for r in records}

    def build_into(tmp: Path) -> None:
        (tmp / "images").mkdir()
        anns_by_image: dict[int, list[dict]] = {}
        for ann in data["annotations"]:
            anns_by_image.setdefault(ann["image_id"], []).append(ann)
        covered_total = faces = 0
        for info in data["images"]:
            canvas = read_image(Path(image_dir) / info["file_name"])
            for ann in sorted(anns_by_image.get(info["id"], []), key=lambda a: a.get("id", 0)):
                record = usable.get(int(ann.get("id", -1)))
                if record is None:
                    continue
                rng = np.random.default_rng((seed, int(info["id"]), record.ann_id))
                canvas, covered = occluded_twin(
                    canvas,
                    record.keypoints,
                    record.box,
                    library,
                    rng,
                    anchors=layout.anchors,
                    part_anchors=layout.part_anchors,
                    settings=settings,
                )
                ann["occluded_keypoints"] = covered.astype(int).tolist()
                covered_total += int(covered.sum())
                faces += 1
            # A name unique per image even when two sources share a stem in different folders.
            info["file_name"] = f"{int(info['id']):08d}_{Path(info['file_name']).stem}.png"
            cv2.imwrite(str(tmp / "images" / info["file_name"]), canvas)
        atomic_write_json(tmp / "annotations.json", data)
        atomic_write_json(
            tmp / "manifest.json",
            {
                "source": str(ann_file),
                **key,
                "images": len(data["images"]),
                "faces": faces,
                "covered": covered_total,
            },
        )

    build_once(out_dir, build_into, done="annotations.json")
    return ann_out, image_out
