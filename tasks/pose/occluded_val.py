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

from rich.progress import Progress

from harness.io import atomic_write_json
from harness.occlusion import OcclusionSettings, PatchLibrary


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
    layout: str = "coco",
    keypoint_names: tuple[str, ...] | None = None,
) -> tuple[Path, Path]:
    """Return (annotation file, image folder) of the occluded split, building it on first use.

    The same builder as `harness benchmark build` (C-COCO / C-MPII), with the run's occlusion settings.
    Each person's patches come from rng(seed, image, person), so the split does not depend on iteration
    order. Built in a temporary folder renamed into place, so concurrent trials never see half of one.
    `keypoint_names` is the split's own layout (COCO's 17 by default; CrowdPose has 14): the manifest
    counts covered keypoints per name.
    """
    from tasks.pose.benchmark import build_coco_split, build_mpii_split

    key = {
        "annotations": file_digest(ann_file),
        "library": library.digest(),
        "settings": dataclasses.asdict(settings),
        "anchors": list(anchors),
        "seed": seed,
        "layout": layout,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    out_dir = Path(cache_root) / f"occluded_{Path(ann_file).stem}_s{seed}_{digest}"
    if layout == "mpii":
        ann_out, image_out = out_dir / "annot" / "val.json", out_dir / "images"
    else:
        ann_out, image_out = out_dir / "annotations" / "person_keypoints_val.json", out_dir / "val"
    if (out_dir / "manifest.json").is_file():
        return ann_out, image_out
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        with Progress(transient=True) as progress:

            def advance(total: int):
                job = progress.add_task("building occluded val", total=total)
                return lambda: progress.advance(job)

            build = build_mpii_split if layout == "mpii" else build_coco_split
            extra = {} if layout == "mpii" else {"anchors": anchors}
            if layout != "mpii" and keypoint_names is not None:
                extra["keypoint_names"] = tuple(keypoint_names)
            build(
                ann_file,
                image_dir,
                tmp,
                "val",
                library=library,
                settings=settings,
                seed=seed,
                extra_manifest={"source": str(ann_file)},
                progress=advance,
                **extra,
            )
        tmp.rename(out_dir)
    except OSError:
        if not (out_dir / "manifest.json").is_file():  # not "another process built it first"
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ann_out, image_out
