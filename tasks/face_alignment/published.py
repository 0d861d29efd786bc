"""The face landmark datasets in the formats their authors publish, read into the COCO-style dict that
`dataset.face_records` takes (so crops, twins, occluded val and metrics are the same for every source).

- WFLW (`WFLW_annotations/list_98pt_rect_attr_train_test/list_98pt_rect_attr_{train,test}.txt`): one face per
  line, 98 x/y pairs (196 numbers), the detector rectangle `x_min y_min x_max y_max`, six 0/1 attribute flags
  (pose, expression, illumination, make-up, occlusion, blur) and the image path under `WFLW_images/`.
- 300W (iBUG's `.pts`): a folder of `<name>.pts` files (`version: 1`, `n_points: 68`, `{`, 68 `x y` lines,
  `}`), each beside its `<name>.png` or `.jpg`. The files carry no box: the face box is the tight box of the
  68 points, iBUG's `bb_ground_truth`.
- COFW's `COFW_{train,test}_color.mat` (MATLAB v7.3, HDF5) hold their images too, so they are not read here
  but extracted once into the cache as mmpose's json + PNGs (`cofw_mat.py`; the task does it).

Anything else is read as mmpose's json (`dataset.read_json`). A malformed line or file is one line naming the
file, the line and the field.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from harness.core.cache import file_digest
from harness.core.errors import DataError

WFLW_POINTS = 98
# WFLW's attribute columns, named as the harness's WFLW subset splits are (`wflw_<name>`).
WFLW_ATTRIBUTES = ("largepose", "expression", "illumination", "makeup", "occlusion", "blur")
PTS_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def read_annotations(path: Path, image_dir: Path) -> dict:
    """The annotations at `path` as a COCO-style dict: a folder of `.pts`, a WFLW `.txt` list, or a json.

    `image_dir` is the folder the dict's `file_name`s are relative to (a `.pts` folder's images lie beside
    their points, so their names are made relative to it).
    """
    from tasks.face_alignment.dataset import read_json

    path = Path(path)
    if path.is_dir():
        return read_pts_folder(path, Path(image_dir))
    if path.suffix == ".txt":
        return read_wflw_list(path)
    if path.suffix == ".mat":
        raise DataError(
            f"{path}: a COFW .mat holds its images; extract it first with "
            "tasks.face_alignment.cofw_mat.extract_cofw_mat (the task does, for data.train_file / val_file)"
        )
    return read_json(path)


def annotation_digest(path: Path) -> str:
    """sha256 of an annotation file, or of a `.pts` folder's file names and bytes (in name order)."""
    path = Path(path)
    if not path.is_dir():
        return file_digest(path)
    digest = hashlib.sha256()
    for pts in sorted(path.rglob("*.pts")):
        digest.update(pts.relative_to(path).as_posix().encode() + b"\0" + pts.read_bytes())
    return digest.hexdigest()


def read_wflw_list(path: Path) -> dict:
    """WFLW's `list_98pt_rect_attr_*.txt` -> {"images", "annotations"}, one image entry per line."""
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: unreadable WFLW list ({err})") from None
    images, annotations = [], []
    expected = 2 * WFLW_POINTS + 4 + len(WFLW_ATTRIBUTES) + 1
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != expected:
            raise DataError(
                f"{path} line {number}: {len(fields)} fields, expected {expected} (196 landmark coordinates, "
                "x_min y_min x_max y_max, 6 attribute flags, image path)"
            )
        try:
            values = np.array([float(v) for v in fields[:-1]])
        except ValueError:
            raise DataError(f"{path} line {number}: landmarks, box and flags must be numbers") from None
        points = values[: 2 * WFLW_POINTS].reshape(WFLW_POINTS, 2)
        x0, y0, x1, y1 = values[2 * WFLW_POINTS : 2 * WFLW_POINTS + 4]
        flags = values[2 * WFLW_POINTS + 4 :].astype(int)
        index = len(images) + 1
        images.append({"id": index, "file_name": fields[-1]})
        annotations.append(
            {
                "id": index,
                "image_id": index,
                "keypoints": labelled(points),
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "attributes": dict(zip(WFLW_ATTRIBUTES, flags.tolist(), strict=True)),
            }
        )
    return {"images": images, "annotations": annotations}


def labelled(points: np.ndarray) -> list[float]:
    """(K, 2) points -> COCO's [x, y, v] * K with every point labelled (v = 2): these files mark none."""
    return np.concatenate([points, np.full((len(points), 1), 2.0)], axis=1).ravel().tolist()


def read_pts(path: Path) -> np.ndarray:
    """An iBUG `.pts` file -> (n_points, 2) coordinates."""
    where = str(path)
    try:
        lines = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{where}: unreadable .pts file ({err})") from None
    header = (
        dict(line.split(":", 1) for line in lines[: lines.index("{")] if ":" in line) if "{" in lines else {}
    )
    if "n_points" not in header or "}" not in lines:
        raise DataError(f"{where}: expected iBUG's .pts layout ('n_points: N', '{{', N 'x y' lines, '}}')")
    body = lines[lines.index("{") + 1 : lines.index("}")]
    try:
        count = int(header["n_points"])
        points = np.array([[float(v) for v in line.split()] for line in body], dtype=np.float64)
    except ValueError:
        raise DataError(f"{where}: field 'n_points' or a point is not a number") from None
    if points.shape != (count, 2):
        raise DataError(
            f"{where}: {len(body)} point lines for n_points {count}, expected {count} 'x y' lines"
        )
    return points


def read_pts_folder(folder: Path, image_dir: Path) -> dict:
    """Every `.pts` under `folder` (sorted) with its image beside it -> {"images", "annotations"}; file names
    relative to `image_dir`."""
    files = sorted(Path(folder).rglob("*.pts"))
    if not files:
        raise DataError(f"{folder}: no .pts file (expected iBUG's 300W layout: <name>.pts beside <name>.png)")
    images, annotations = [], []
    for index, pts in enumerate(files, 1):
        image = next((pts.with_suffix(s) for s in PTS_IMAGE_SUFFIXES if pts.with_suffix(s).is_file()), None)
        if image is None:
            raise DataError(f"{pts}: no image beside it (expected {pts.stem}.png or {pts.stem}.jpg)")
        points = read_pts(pts)
        (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
        images.append({"id": index, "file_name": os.path.relpath(image, image_dir)})
        annotations.append(
            {
                "id": index,
                "image_id": index,
                "keypoints": labelled(points),
                "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
            }
        )
    return {"images": images, "annotations": annotations}
