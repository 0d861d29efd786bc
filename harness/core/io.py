"""Atomic file writes: a reader sees the old file or the new one, never half of one. Safe loading."""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import cv2
import numpy as np
import torch

from harness.core.errors import CheckpointError, ConfigError, DataError

_JPEG_START, _JPEG_END = b"\xff\xd8", b"\xff\xd9"


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Call `write(handle)` on a temp file beside `path`, fsync, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda handle: handle.write(text.encode()))


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def atomic_torch_save(path: Path, obj: Any) -> None:
    atomic_write(path, lambda handle: torch.save(obj, handle))


def read_image(path: Path) -> np.ndarray:
    """BGR uint8 image, or a one-line DataError naming the file.

    A JPEG cut short (a partial copy or download) still decodes in OpenCV, with only a warning and a
    grey lower part, so it is refused here when its end-of-image marker is missing.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        reason = "missing" if not Path(path).exists() else f"unreadable ({err.strerror})"
        raise DataError(f"image {path} is {reason}") from None
    # Entropy-coded JPEG data never holds FF D9 (an FF there is followed by 00 or a restart marker), so
    # the marker within the last bytes (allowing a little padding) means the file is complete.
    if data.startswith(_JPEG_START) and _JPEG_END not in data[-64:]:
        raise DataError(f"image {path} is a truncated JPEG (no end-of-image marker)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        raise DataError(f"image {path} is unreadable or not an image")
    return image


def safe_torch_load(path: Path, what: str) -> Any:
    """`torch.load(weights_only=True)`: tensors and plain containers only, so no pickled code runs.

    Args:
        path: the file.
        what: how the message names it ("checkpoint", "model.pretrained", ...).

    Raises:
        CheckpointError: missing, corrupt, or holding anything but weights (e.g. a crafted pickle).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what}: no file at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001  (torch raises many types for corrupt or unsafe files)
        first = str(err).strip().splitlines()[0].split(". ")[0] if str(err).strip() else type(err).__name__
        if "weights_only" in str(err) or "Unsupported global" in str(err):
            first = "it holds pickled objects other than weights, refused (weights_only=True)"
        elif not zipfile.is_zipfile(path):
            first = "truncated, or not a PyTorch checkpoint (no complete zip archive)"
        raise CheckpointError(f"{what} {path} is corrupt or unsafe: {first}") from None


def ensure_writable(folder: Path, what: str) -> None:
    """Create `folder` if needed and check a file can be written there, before any work is done.

    Raises:
        ConfigError: naming the key and the folder.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise ConfigError(f"{what}: cannot write to {folder} ({err.strerror or err})") from None
