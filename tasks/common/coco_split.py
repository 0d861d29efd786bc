"""Writing a generated split in COCO layout (`annotations/<name>.json` + `<split>/` images) exactly once.

The embedded datasets of pose and face alignment are drawn on first use; a crash or a concurrent run never
leaves a json without its images: both are made in a scratch folder and moved in, the json last, so its
presence means "complete".
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from harness.core.cache import scratch_dir


def ensure_coco_split(
    folder: Path, ann_name: str, split: str, generate: Callable[[Path], dict]
) -> tuple[Path, Path]:
    """(json, image folder) of `split` under `folder`; `generate(image_dir)` draws the images into the
    (new) folder and returns the COCO dict, called only when the json is not there yet."""
    ann_file = Path(folder) / "annotations" / ann_name
    image_dir = Path(folder) / split
    if ann_file.is_file():
        return ann_file, image_dir
    with scratch_dir(Path(folder), prefix=f".{split}.tmp-") as tmp:
        data = generate(tmp / "images")
        (tmp / "annotations.json").write_text(json.dumps(data, separators=(",", ":")))
        if image_dir.exists():  # images of an earlier interrupted run whose json never landed
            shutil.rmtree(image_dir)
        os.replace(tmp / "images", image_dir)
        ann_file.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp / "annotations.json", ann_file)  # last: its presence means "complete"
    return ann_file, image_dir
