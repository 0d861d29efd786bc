"""C-COCO and C-MPII: occluded copies of COCO / MPII splits, rebuilt from the public releases.

The paper's occluded benchmarks are only available from its authors; here they are a deterministic
function of (source split, patch library, severity, seed): every person gets body-part patches cut from
COCO train person masks pasted over elbows, wrists, hips and knees, and the annotation file (same format
as the source) records per person which keypoints a patch covers.

Output layout mirrors the source, so the built folder is itself a dataset root:
    C-COCO: <out>/annotations/person_keypoints_<split>.json, <out>/<split>/*.png, <out>/manifest.json
    C-MPII: <out>/annot/<split>.json, <out>/images/*.png, <out>/manifest.json

Reliability: each image is written atomically and its flags appended to a progress log, so an interrupted
build resumes where it stopped; the annotation file and the manifest are written last, only once every
image they list exists.

Example:
    harness benchmark build c-coco --coco-root ~/data/coco --split val2017 --seed 0 --out ~/data/c-coco

One module on purpose (~430 lines): the C-COCO / C-MPII builder, its severity ladder and its resumable,
verified output are one job (`harness benchmark build`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from harness.core.cache import file_digest
from harness.core.errors import DataError
from harness.core.io import atomic_write, atomic_write_json, read_image
from harness.core.occlusion import OcclusionSettings, PatchLibrary, occluded_twin
from harness.core.registry import BENCHMARKS
from tasks.pose.keypoints import COCO_BODY_PARTS, COCO_LAYOUT, MPII_LAYOUT
from tasks.pose.patches import cut_body_part_patches

# Severity ladder: 0 = no patch (the clean split re-encoded), then more and larger patches per person.
SEVERITY_LEVELS: dict[int, tuple[tuple[int, int], tuple[float, float]]] = {
    0: ((0, 0), (0.25, 0.5)),
    1: ((1, 1), (0.2, 0.35)),
    2: ((1, 3), (0.25, 0.5)),  # the training twins' default
    3: ((2, 4), (0.3, 0.55)),
    4: ((3, 5), (0.35, 0.65)),
}
PROGRESS_LOG = ".build_progress.jsonl"


def severity_settings(level: int) -> OcclusionSettings:
    """Occlusion settings of a severity level; every person is occluded (no clean fraction)."""
    if level not in SEVERITY_LEVELS:
        raise DataError(f"--severity: expected one of {sorted(SEVERITY_LEVELS)}, got {level}")
    patches, sizes = SEVERITY_LEVELS[level]
    return OcclusionSettings(clean_fraction=0.0, patches_per_person=patches, size_range=sizes)


@dataclass
class Person:
    """One person to occlude: a stable key (for its random stream and flags), keypoints (K, 3), box."""

    key: tuple[int, int]
    keypoints: np.ndarray
    box: np.ndarray


@dataclass
class ImageJob:
    source: Path
    output_name: str
    persons: list[Person]


def occlude_images(
    jobs: list[ImageJob],
    out_images: Path,
    out_root: Path,
    *,
    library: PatchLibrary,
    settings: OcclusionSettings,
    anchors: tuple[int, ...],
    seed: int,
    build_key: dict[str, Any],
    on_image: Callable[[], None] | None = None,
) -> dict[tuple[int, int], list[int]]:
    """Paste patches on every job's persons, write PNGs; return covered flags per person key.

    Images already written by an interrupted build with the same `build_key` are skipped (their flags
    come from the progress log); a log from other settings is an error rather than a silent mix.
    """
    out_images.mkdir(parents=True, exist_ok=True)
    log_path = out_root / PROGRESS_LOG
    header = {"build_key": build_key}
    done: dict[str, dict[str, list[int]]] = {}
    if log_path.is_file():
        lines = log_path.read_text().splitlines()
        if not lines or json.loads(lines[0]) != json.loads(json.dumps(header)):
            raise DataError(f"{log_path}: an unfinished build with other settings is in this folder")
        for line in lines[1:]:
            try:
                entry = json.loads(line)
            except ValueError:  # the last line of a killed build may be cut short
                continue
            if (out_images / entry["image"]).is_file():
                done[entry["image"]] = entry["flags"]
    else:
        log_path.write_text(json.dumps(header, sort_keys=True) + "\n")
    flags: dict[tuple[int, int], list[int]] = {}
    with open(log_path, "a") as log:
        for job in jobs:
            if job.output_name in done:
                for key, covered in done[job.output_name].items():
                    flags[tuple(json.loads(key))] = covered
            else:
                canvas = read_image(job.source)
                written = {}
                for person in job.persons:
                    rng = np.random.default_rng((seed, *person.key))
                    canvas, covered = occluded_twin(
                        canvas, person.keypoints, person.box, library, rng, anchors=anchors, settings=settings
                    )
                    flags[person.key] = written[json.dumps(list(person.key))] = covered.astype(int).tolist()
                ok, png = cv2.imencode(".png", canvas)
                if not ok:
                    raise DataError(f"{job.source}: could not encode the occluded image")
                atomic_write(
                    out_images / job.output_name, lambda handle, data=png: handle.write(data.tobytes())
                )
                log.write(json.dumps({"image": job.output_name, "flags": written}, sort_keys=True) + "\n")
                log.flush()
                os.fsync(log.fileno())
            if on_image is not None:
                on_image()
    return flags


def _check_out(out: Path, manifest: dict[str, Any]) -> bool:
    """True when `out` already holds a finished build of exactly these settings."""
    path = out / "manifest.json"
    if not path.is_file():
        return False
    existing = json.loads(path.read_text())
    if existing.get("build_key") != json.loads(json.dumps(manifest["build_key"])):
        raise DataError(f"{path}: this folder holds a build with other settings; choose another --out")
    return True


def _finish(out: Path, ann_path: Path, annotations: Any, manifest: dict[str, Any]) -> Path:
    atomic_write_json(ann_path, annotations)
    atomic_write_json(out / "manifest.json", manifest)
    (out / PROGRESS_LOG).unlink(missing_ok=True)
    return out / "manifest.json"


def _covered_counts(flags: Iterable[list[int]], names: tuple[str, ...]) -> dict[str, int]:
    totals = np.zeros(len(names), dtype=int)
    for covered in flags:
        totals += np.asarray(covered, dtype=int)
    return {name: int(n) for name, n in zip(names, totals, strict=True)}


def build_coco_split(
    ann_file: Path,
    image_dir: Path,
    out: Path,
    split: str,
    *,
    library: PatchLibrary,
    settings: OcclusionSettings,
    seed: int,
    anchors: tuple[int, ...] = COCO_LAYOUT.anchors,
    keypoint_names: tuple[str, ...] = COCO_LAYOUT.keypoints,
    extra_manifest: dict[str, Any] | None = None,
    progress: Callable[[int], Callable[[], None]] | None = None,
) -> tuple[Path, Path]:
    """Occlude every person of a COCO-format split; return (annotation json, image folder) of the copy."""
    from tasks.pose.dataset import load_coco

    load_coco(ann_file)  # one-line errors for a missing or malformed file
    data = json.loads(Path(ann_file).read_text())
    ann_path, images_out = out / "annotations" / f"person_keypoints_{split}.json", out / split
    build_key = {
        "annotations_sha256": file_digest(ann_file),
        "patch_library_sha256": library.digest(),
        "settings": dataclasses.asdict(settings),
        "anchors": list(anchors),
        "seed": seed,
    }
    manifest = {"build_key": build_key, **(extra_manifest or {})}
    if _check_out(out, manifest):
        return ann_path, images_out
    persons: dict[int, list[Person]] = {}
    for ann in data["annotations"]:
        keypoints = np.asarray(ann.get("keypoints", []), dtype=np.float64).reshape(-1, 3)
        box = np.asarray(ann.get("bbox", [0, 0, 0, 0]), dtype=np.float64)
        if ann.get("iscrowd", 0) or keypoints.size == 0 or box[2] <= 0 or box[3] <= 0:
            continue
        persons.setdefault(ann["image_id"], []).append(
            Person((int(ann["image_id"]), int(ann["id"])), keypoints, box)
        )
    jobs = []
    for info in data["images"]:
        missing = Path(image_dir) / info["file_name"]
        if not missing.is_file():
            raise DataError(
                f"{ann_file}: image {info['file_name']} (field file_name) not found in {image_dir}"
            )
        out_name = Path(info["file_name"]).with_suffix(".png").name
        jobs.append(ImageJob(missing, out_name, sorted(persons.get(info["id"], []), key=lambda p: p.key)))
    flags = occlude_images(
        jobs,
        images_out,
        out,
        library=library,
        settings=settings,
        anchors=anchors,
        seed=seed,
        build_key=build_key,
        on_image=progress(len(jobs)) if progress else None,
    )
    for info in data["images"]:
        info["file_name"] = Path(info["file_name"]).with_suffix(".png").name
    for ann in data["annotations"]:
        key = (int(ann["image_id"]), int(ann["id"]))
        if key in flags:
            ann["occluded_keypoints"] = flags[key]
    manifest.update(
        {
            "annotations": str(ann_path.relative_to(out)),
            "images": len(jobs),
            "image_folder": split,
            "persons": len(flags),
            "covered_keypoints": int(sum(sum(f) for f in flags.values())),
            "covered_per_keypoint": _covered_counts(flags.values(), keypoint_names),
        }
    )
    _finish(out, ann_path, data, manifest)
    return ann_path, images_out


def build_mpii_split(
    ann_file: Path,
    image_dir: Path,
    out: Path,
    split: str,
    *,
    library: PatchLibrary,
    settings: OcclusionSettings,
    seed: int,
    extra_manifest: dict[str, Any] | None = None,
    progress: Callable[[int], Callable[[], None]] | None = None,
) -> tuple[Path, Path]:
    """Occlude every person of an MPII json list; return (annotation json, image folder) of the copy."""
    from tasks.pose.dataset import MpiiKeypoints, read_mpii

    entries = read_mpii(Path(ann_file), MPII_LAYOUT.num_keypoints)
    ann_path, images_out = out / "annot" / f"{split}.json", out / "images"
    build_key = {
        "annotations_sha256": file_digest(ann_file),
        "patch_library_sha256": library.digest(),
        "settings": dataclasses.asdict(settings),
        "anchors": list(MPII_LAYOUT.anchors),
        "seed": seed,
    }
    manifest = {"build_key": build_key, **(extra_manifest or {})}
    if _check_out(out, manifest):
        return ann_path, images_out
    for index, entry in enumerate(entries):
        if not (Path(image_dir) / entry["image"]).is_file():
            raise DataError(
                f"{ann_file}: entry {index} field 'image' names {entry['image']}, not in {image_dir}"
            )
    records = MpiiKeypoints(ann_file, image_dir).records  # the boxes the pose model crops
    by_image: dict[str, list[Person]] = {}
    for record, entry in zip(records, entries, strict=True):
        by_image.setdefault(entry["image"], []).append(
            Person((record.image_id, record.ann_id), record.keypoints, record.box)
        )
    jobs = [
        ImageJob(Path(image_dir) / name, Path(name).with_suffix(".png").name, persons)
        for name, persons in by_image.items()
    ]
    flags = occlude_images(
        jobs,
        images_out,
        out,
        library=library,
        settings=settings,
        anchors=MPII_LAYOUT.anchors,
        seed=seed,
        build_key=build_key,
        on_image=progress(len(jobs)) if progress else None,
    )
    output = []
    for record, entry in zip(records, entries, strict=True):
        output.append(
            {
                **entry,
                "image": Path(entry["image"]).with_suffix(".png").name,
                "occluded_joints": flags[(record.image_id, record.ann_id)],
            }
        )
    manifest.update(
        {
            "annotations": str(ann_path.relative_to(out)),
            "images": len(jobs),
            "image_folder": "images",
            "persons": len(output),
            "covered_keypoints": int(sum(sum(e["occluded_joints"]) for e in output)),
            "covered_per_keypoint": _covered_counts(
                (e["occluded_joints"] for e in output), MPII_LAYOUT.keypoints
            ),
        }
    )
    _finish(out, ann_path, output, manifest)
    return ann_path, images_out


# --- `harness benchmark build` entries ----------------------------------------------------------------


class BuildSettings(BaseModel):
    """Options shared by both builders (given on the command line as --seed, --severity, ...)."""

    model_config = ConfigDict(extra="forbid")

    out: Path
    split: str
    seed: int = 0
    severity: int = Field(2, ge=0, le=max(SEVERITY_LEVELS))
    patch_ann: Path | None = None  # COCO train person_keypoints json the patches are cut from
    patch_images: Path | None = None  # its image folder
    max_patches: int = 500


class CCocoSettings(BuildSettings):
    coco_root: Path
    split: str = "val2017"
    patch_split: str = "train2017"


class CMpiiSettings(BuildSettings):
    mpii_root: Path
    split: str = "valid"


def _library(
    settings: BuildSettings, default_root: Path | None, patch_split: str
) -> tuple[PatchLibrary, dict]:
    ann, images = settings.patch_ann, settings.patch_images
    if ann is None and default_root is not None:
        ann = default_root / "annotations" / f"person_keypoints_{patch_split}.json"
    if images is None and default_root is not None:
        images = default_root / patch_split
    if ann is None or images is None:
        raise DataError(
            "--patch-ann and --patch-images: the COCO train person masks the patches are cut from"
        )
    if not Path(ann).is_file():
        raise DataError(f"--patch-ann: person keypoints json not found: {ann}")
    library = cut_body_part_patches(
        Path(ann), Path(images), parts=COCO_BODY_PARTS, max_patches=settings.max_patches, seed=settings.seed
    )
    if len(library) == 0:
        raise DataError(f"{ann}: no body-part patch could be cut (persons need segmentation + keypoints)")
    return library, {"patch_annotations": str(ann), "patch_parts": library.part_counts()}


def _common_manifest(name: str, settings: BuildSettings, source: Path, library_info: dict) -> dict:
    return {
        "benchmark": name,
        "source_annotations": str(source),
        "split": settings.split,
        "seed": settings.seed,
        "severity": settings.severity,
        **library_info,
    }


@BENCHMARKS.register("c-coco")
class CCoco:
    """C-COCO: every person of a COCO keypoint split occluded by COCO-train body parts."""

    Settings = CCocoSettings

    @staticmethod
    def build(settings: CCocoSettings, progress=None) -> Path:
        root = settings.coco_root.expanduser()
        ann_file = root / "annotations" / f"person_keypoints_{settings.split}.json"
        library, info = _library(settings, root, settings.patch_split)
        build_coco_split(
            ann_file,
            root / settings.split,
            settings.out,
            settings.split,
            library=library,
            settings=severity_settings(settings.severity),
            seed=settings.seed,
            extra_manifest=_common_manifest("c-coco", settings, ann_file, info),
            progress=progress,
        )
        return settings.out / "manifest.json"


@BENCHMARKS.register("c-mpii")
class CMpii:
    """C-MPII: every person of an MPII split occluded by COCO-train body parts (see --patch-ann)."""

    Settings = CMpiiSettings

    @staticmethod
    def build(settings: CMpiiSettings, progress=None) -> Path:
        root = settings.mpii_root.expanduser()
        ann_file = root / "annot" / f"{settings.split}.json"
        library, info = _library(settings, None, "")
        build_mpii_split(
            ann_file,
            root / "images",
            settings.out,
            settings.split,
            library=library,
            settings=severity_settings(settings.severity),
            seed=settings.seed,
            extra_manifest=_common_manifest("c-mpii", settings, ann_file, info),
            progress=progress,
        )
        return settings.out / "manifest.json"
