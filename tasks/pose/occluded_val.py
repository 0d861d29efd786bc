"""The frozen occluded val split: every person of a COCO-format split gets body-part patches, once.

Built once per (source annotations, patch library, settings, seed) and cached, so every method and
every run is scored on the very same occluded images. The output is an ordinary COCO-format split
(lossless PNGs + json) whose annotations also carry `occluded_keypoints`: 1 where a patch covers the
keypoint, for visible/occluded-keypoint metrics.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from rich.progress import Progress

from harness.core.cache import build_once, content_key, file_digest
from harness.core.occlusion import OcclusionSettings, PatchLibrary


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
    out_dir = Path(cache_root) / f"occluded_{Path(ann_file).stem}_s{seed}_{content_key(key)}"
    if layout == "mpii":
        ann_out, image_out = out_dir / "annot" / "val.json", out_dir / "images"
    else:
        ann_out, image_out = out_dir / "annotations" / "person_keypoints_val.json", out_dir / "val"

    def build_into(tmp: Path) -> None:
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

    build_once(out_dir, build_into, done="manifest.json")
    return ann_out, image_out
