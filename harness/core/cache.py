"""Content-keyed folders built once, and the digests that key them and prove what a run saw.

Every generated input (embedded synthetic data, frozen occluded val splits, masked face sets) is built once
per content key and shared by every run, sweep trial and process. Building happens in a scratch folder next to
the target that is renamed into place in one step, so a reader never sees half a folder, two processes
building the same key at once both end with the same complete folder (the first rename wins, the other copy
is discarded), and an interrupted build leaves nothing that looks complete. A build that fails on the file
system raises one `DataError` naming the folder and the cause.

Example:
    >>> folder = build_once(root / f"split_{content_key({'seed': 0})}", write_split)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.core.errors import DataError
from harness.core.io import atomic_write_json

_CHUNK = 1 << 20


def content_key(parts: Any, length: int = 12) -> str:
    """A short hex key of JSON-able `parts` (key order does not matter), for a cache folder's name."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:length]


def file_digest(path: Path) -> str:
    """sha256 (hex) of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def images_digest(ann_file: Path, image_dir: Path) -> str:
    """sha256 over the name and bytes of every image a COCO-style json lists (`images[].file_name`), in
    file-name order.

    Cached next to the json (keyed by the json's digest), so a record can prove two runs saw byte-identical
    pixels at the cost of one pass over the images; a read-only dataset folder just recomputes it next time.
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
        digest.update(bytes.fromhex(file_digest(Path(image_dir) / name)))
    result = digest.hexdigest()
    try:
        atomic_write_json(cache, {"annotations_sha256": annotations, "images_sha256": result})
    except OSError:
        pass
    return result


@contextmanager
def scratch_dir(near: Path, prefix: str = ".build-") -> Iterator[Path]:
    """A fresh folder inside `near` (created), on the same file system so its contents can be renamed into
    place atomically; removed on exit whatever happens.

    Raises:
        DataError: the folder cannot be created or written (read-only cache, disk full).
    """
    near = Path(near)
    try:
        near.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=near, prefix=prefix))
    except OSError as err:
        raise DataError(f"cannot build in {near}: {err.strerror or err}") from None
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def build_once(folder: Path, build: Callable[[Path], None], *, done: str = "manifest.json") -> Path:
    """Return `folder`, building it first unless it already holds `done` (the file a complete build has).

    Args:
        folder: the content-keyed folder (its name should carry `content_key` of everything it depends on).
        build: fills the scratch folder it is given with what `folder` must hold, including `done`.
        done: the file whose presence means "complete".

    Raises:
        DataError: the build failed on the file system (the cause and the folder are named), or `build` did
            not write `done`. Errors `build` raises itself (e.g. a DataError about its input) pass through.
    """
    folder = Path(folder)
    if (folder / done).is_file():
        return folder
    with scratch_dir(folder.parent, prefix=f".{folder.name}.") as tmp:
        try:
            build(tmp)
        except OSError as err:
            raise DataError(f"cannot build {folder}: {err}") from None
        if not (tmp / done).is_file():
            raise DataError(f"building {folder} wrote no {done}")
        try:
            tmp.rename(folder)
        except OSError as err:
            if not (folder / done).is_file():  # not "another process finished the same build first"
                raise DataError(
                    f"cannot move the built folder into {folder}: {err.strerror or err} "
                    "(an incomplete folder of that name is in the way: delete it)"
                ) from None
    return folder
