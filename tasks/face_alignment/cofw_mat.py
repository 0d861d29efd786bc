"""COFW as Caltech publishes it: `COFW_train_color.mat` / `COFW_test_color.mat`, MATLAB v7.3 (HDF5) files that
hold the images themselves.

Fields (train / test), each stored transposed, as HDF5 stores every MATLAB array:
- `IsTr` / `IsT`: an N x 1 cell of uint8 images, stored as object references; a colour image (MATLAB
  H x W x 3, RGB) is stored 3 x W x H, a grayscale one (H x W) W x H.
- `bboxesTr` / `bboxesT`: N x 4 face boxes `x y w h` (stored 4 x N).
- `phisTr` / `phisT`: N x 87 per face: 29 x, 29 y, 29 occlusion flags, 1 = occluded (stored 87 x N).

Coordinates: MATLAB's pixel grid is 1-based (the first pixel's centre is at 1), the harness's 0-based, so the
landmarks move by -1. That is what mmpose's converter (`tools/dataset_converters/parse_cofw_dataset.py`, which
made the `cofw_{train,test}.json` that the json route reads) does, and what the MPII reader does with MATLAB's
joints. Like that converter, the box is kept as published and negative values are clamped to 0, and faces are
numbered train 1..1345, test on from 1346: either route then gives the same landmarks, boxes and ids, so the
same frozen occluded val (its patches are drawn per image and annotation id).

The faces are extracted once per file content into the harness cache, as mmpose's json plus lossless PNGs, so
crops, the occluded val and the digests read them like any other json.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from harness.core.cache import build_once, content_key, file_digest
from harness.core.errors import DataError
from harness.core.io import atomic_write_json

COFW_POINTS = 29
SPLIT_FIELDS = {"train": ("IsTr", "bboxesTr", "phisTr"), "test": ("IsT", "bboxesT", "phisT")}
COFW_TRAIN_FACES = 1345  # mmpose numbers the test faces after the published train set's
FORMAT_VERSION = 1  # bump when the extracted json or images change, so old cache folders are not reused


def extract_cofw_mat(path: Path, cache_root: Path) -> tuple[Path, Path]:
    """(annotation json, image folder) of a COFW `.mat`, extracted on first use under `cache_root`.

    Raises:
        DataError: one line naming the file and the field: not HDF5, a missing field, a wrong shape or type,
            a non-finite value or an occlusion flag other than 0 / 1.
    """
    path = Path(path)
    digest = file_digest(path)
    out = Path(cache_root) / f"{path.stem}_{content_key({'mat': digest, 'format': FORMAT_VERSION})}"
    build_once(out, lambda tmp: _extract_into(path, digest, tmp), done="annotations.json")
    return out / "annotations.json", out / "images"


def _extract_into(path: Path, digest: str, folder: Path) -> None:
    import h5py

    try:
        mat = h5py.File(path, "r")
    except OSError:
        raise DataError(
            f"{path}: not a MATLAB v7.3 (HDF5) file; expected COFW's published COFW_{{train,test}}_color.mat"
        ) from None
    with mat:
        split, (images_field, boxes_field, points_field) = _split_of(mat, path)
        phis = _matrix(mat, path, points_field, 3 * COFW_POINTS, "29 x, 29 y, 29 occlusion flags")
        _check_flags(path, points_field, phis)
        boxes = _matrix(mat, path, boxes_field, 4, "x, y, w, h", faces=len(phis))
        refs = _cell(mat, path, images_field, faces=len(phis))
        first_id = 1 + (COFW_TRAIN_FACES if split == "test" else 0)
        (folder / "images").mkdir()
        images, annotations = [], []
        for row, (ref, phi, box) in enumerate(zip(refs, phis, boxes, strict=True)):
            image_id = first_id + row
            pixels = _image(mat, path, images_field, ref, row)
            name = f"{image_id:06d}.png"
            if not cv2.imwrite(str(folder / "images" / name), pixels):
                raise DataError(f"cannot write {folder / 'images' / name}")
            images.append({"id": image_id, "file_name": name, "height": pixels.shape[0],
                           "width": pixels.shape[1]})  # fmt: skip
            annotations.append(_annotation(phi, box, image_id))
    info = {"source": path.name, "source_sha256": digest, "split": split}
    data = {"info": info, "images": images, "annotations": annotations}
    atomic_write_json(folder / "annotations.json", data)


def _split_of(mat, path: Path) -> tuple[str, tuple[str, str, str]]:
    """Train or test, by the fields the file holds; every field of that split must be there."""
    found = [split for split, fields in SPLIT_FIELDS.items() if any(f in mat for f in fields)]
    if len(found) != 1:
        raise DataError(
            f"{path}: {'no' if not found else 'both train and test'} COFW fields; expected IsTr, bboxesTr, "
            "phisTr (train) or IsT, bboxesT, phisT (test)"
        )
    fields = SPLIT_FIELDS[found[0]]
    for field in fields:
        if field not in mat:
            holds = ", ".join(fields)
            raise DataError(f"{path}: field '{field}' missing; COFW's {found[0]} file holds {holds}")
    return found[0], fields


def _matrix(mat, path: Path, field: str, columns: int, what: str, faces: int | None = None) -> np.ndarray:
    """A MATLAB N x `columns` double matrix (stored `columns` x N) as an (N, columns) array."""
    data = mat[field]
    rows = "N" if faces is None else str(faces)
    expected = f"MATLAB {rows} x {columns} ({what}), stored {columns} x {rows}"
    shape = getattr(data, "shape", None)
    if shape is None or len(shape) != 2 or shape[0] != columns or faces not in (None, shape[1]):
        stored = "a group" if shape is None else " x ".join(map(str, shape))
        raise DataError(f"{path}: field '{field}' is stored {stored}; expected {expected}")
    if data.dtype.kind not in "fiu":
        raise DataError(f"{path}: field '{field}' holds {data.dtype}, expected numbers ({expected})")
    values = np.asarray(data, dtype=np.float64).T
    bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if bad.size:
        raise DataError(f"{path}: field '{field}' row {bad[0] + 1} has a non-finite value; expected {what}")
    return values


def _check_flags(path: Path, field: str, phis: np.ndarray) -> None:
    """Flags become visibility (2 - flag), so anything but 0 / 1 would be silently mislabelled."""
    flags = phis[:, 2 * COFW_POINTS :]
    odd = np.argwhere(~np.isin(flags, (0.0, 1.0)))
    if odd.size:
        row, column = odd[0]
        raise DataError(
            f"{path}: field '{field}' row {row + 1} column {2 * COFW_POINTS + column + 1}: occlusion flag "
            f"{flags[row, column]:g}; expected 0 (visible) or 1 (occluded)"
        )


def _cell(mat, path: Path, field: str, faces: int) -> np.ndarray:
    """The object references of an N x 1 (or 1 x N) cell array, in row order."""
    import h5py

    data = mat[field]
    shape = getattr(data, "shape", None)
    if shape is None or h5py.check_dtype(ref=data.dtype) is None:
        raise DataError(f"{path}: field '{field}' is not a cell array; expected {faces} images (N x 1 cell)")
    if sorted(shape) != [1, faces]:
        stored = " x ".join(map(str, shape))
        raise DataError(f"{path}: field '{field}' is a cell stored {stored}; expected {faces} images (N x 1)")
    return np.asarray(data).ravel()


def _image(mat, path: Path, field: str, ref, row: int) -> np.ndarray:
    """The BGR (or grayscale) H x W image a cell entry refers to, from its stored 3 x W x H (or W x H)."""
    where = f"{path}: field '{field}' row {row + 1}"
    expected = "uint8, stored 3 x W x H (colour) or W x H (grayscale)"
    try:
        data = mat[ref]
    except (ValueError, KeyError, TypeError):
        raise DataError(f"{where}: not a reference to an image; expected {expected}") from None
    shape = getattr(data, "shape", None)
    colour = shape is not None and len(shape) == 3 and shape[0] == 3
    if shape is None or data.dtype != np.uint8 or not (colour or len(shape) == 2) or 0 in shape:
        stored = "a group" if shape is None else f"{data.dtype} {' x '.join(map(str, shape))}"
        raise DataError(f"{where}: image stored as {stored}; expected {expected}")
    pixels = np.asarray(data).T  # W x H -> H x W; 3 x W x H -> H x W x 3 (RGB)
    return np.ascontiguousarray(pixels[:, :, ::-1]) if colour else pixels


def _annotation(phi: np.ndarray, box: np.ndarray, image_id: int) -> dict:
    """One face in mmpose's COFW json schema: 0-based landmarks, v = 2 visible / 1 occluded, box x y w h."""
    flags = phi[2 * COFW_POINTS :]
    points = np.column_stack([phi[:COFW_POINTS], phi[COFW_POINTS : 2 * COFW_POINTS]]) - 1.0
    keypoints = np.column_stack([np.maximum(points, 0.0), 2.0 - flags])
    bbox = np.maximum(box, 0.0)
    return {
        "id": image_id,
        "image_id": image_id,
        "keypoints": keypoints.ravel().tolist(),
        "num_keypoints": COFW_POINTS,
        "bbox": bbox.tolist(),
        "area": float(bbox[2] * bbox[3]),
        "iscrowd": 0,
        "category_id": 1,
    }
