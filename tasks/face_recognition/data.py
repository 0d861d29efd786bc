"""Face recognition data: identity folders, LFW pairs.txt, insightface .bin files, alignment, datasets.

Formats read (each error is one line naming the file and what was wrong):
- identity folder: `root/<identity>/*.jpg|png|...`; identities are the sorted folder names. An optional
  `root/landmarks.txt` gives five points per image (`<relative path> x1 y1 ... x5 y5`: left eye, right
  eye, nose, left and right mouth corner, "left" meaning image left); such images are aligned with
  insightface's `norm_crop`, the others are taken as already aligned and resized to 112x112.
- LFW `pairs.txt`: an optional header (`10 300`: sets and matched pairs per set), then matched lines
  `name n1 n2` and mismatched lines `name1 n1 name2 n2`, over `root/<name>/<name>_<n:04d>.jpg`.
- insightface `.bin`: a pickle of (list of encoded images, list of is-same flags), image 2i paired with
  2i+1. It is read with a restricted unpickler that only builds bytes, numpy arrays and plain containers.

One module on purpose (~410 lines): the readers of the three layouts share one image and pair model.
"""

from __future__ import annotations

import io
import pickle
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from harness.core.errors import DataError
from harness.core.io import read_image

ALIGNED_SIZE = 112
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
LANDMARKS_FILE = "landmarks.txt"


@dataclass(frozen=True)
class FaceImage:
    """One face: a file or encoded bytes (from a .bin), with five landmarks when it is not aligned yet."""

    path: Path | None = None
    data: bytes | None = None
    landmarks: np.ndarray | None = None  # (5, 2) in source pixels, or None: already aligned
    where: str = ""  # how errors name it
    label: int | None = None  # the identity, where the image carries it (a RecordIO record's header)

    def load(self) -> np.ndarray:
        if self.path is not None:
            return read_image(self.path)
        image = cv2.imdecode(np.frombuffer(self.data or b"", np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise DataError(f"{self.where}: the encoded image cannot be decoded")
        return image


def align(image: np.ndarray, landmarks: np.ndarray | None, size: int = ALIGNED_SIZE):
    """Return (aligned size x size BGR crop, its five landmarks).

    With landmarks: insightface's `norm_crop` similarity warp onto the arcface template. Without: the image
    is taken as aligned already (resized to `size` if needed) and the template stands for its landmarks.
    insightface is imported here, not with the module: registering the task (every harness command does)
    needs none of the face packages, so a pose-only machine runs without them.
    """
    from insightface.utils.face_align import arcface_dst, estimate_norm

    if landmarks is None:
        if image.shape[:2] != (size, size):
            image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
        return image, arcface_dst * (size / 112.0)
    with warnings.catch_warnings():  # skimage's deprecation notice inside insightface, once per sample
        warnings.simplefilter("ignore", FutureWarning)
        matrix = estimate_norm(np.asarray(landmarks, dtype=np.float32), size)
    aligned = cv2.warpAffine(image, matrix, (size, size), borderValue=0.0)
    points = np.asarray(landmarks, dtype=np.float64) @ matrix[:, :2].T + matrix[:, 2]
    return aligned, points


def to_input(aligned: np.ndarray, input_size: int) -> torch.Tensor:
    """BGR uint8 aligned crop -> (3, s, s) RGB float tensor in arcface's (x - 127.5) / 127.5 range.

    Resizing is an area average (for 112 -> 56 exactly the 2x2 mean the exported ONNX graph applies).
    """
    image = aligned.astype(np.float32)
    if image.shape[0] != input_size:
        image = cv2.resize(image, (input_size, input_size), interpolation=cv2.INTER_AREA)
    image = (image[:, :, ::-1] - 127.5) / 127.5
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


# ---------------------------------------------------------------------------------------------- readers


def read_landmarks(path: Path) -> dict[str, np.ndarray]:
    """`<relative path> x1 y1 ... x5 y5` per line -> {relative path: (5, 2)}."""
    landmarks = {}
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: unreadable landmarks file ({err})") from None
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) != 11:
            raise DataError(
                f"{path} line {number}: expected '<image> x1 y1 ... x5 y5' (11 fields), got {len(fields)}"
            )
        try:
            points = np.array([float(v) for v in fields[1:]], dtype=np.float64).reshape(5, 2)
        except ValueError:
            raise DataError(
                f"{path} line {number}: landmark coordinates of {fields[0]} are not numbers"
            ) from None
        if not np.isfinite(points).all():
            raise DataError(f"{path} line {number}: landmark coordinates of {fields[0]} are not finite")
        landmarks[fields[0]] = points
    return landmarks


def _landmarks_for(root: Path) -> dict[str, np.ndarray]:
    path = root / LANDMARKS_FILE
    return read_landmarks(path) if path.is_file() else {}


def read_identity_folder(root: Path) -> tuple[list[FaceImage], np.ndarray, list[str]]:
    """Scan `root/<identity>/*` -> (images, integer labels, identity names in label order).

    Raises:
        DataError: the folder is missing or holds no identity folder with images.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data.train_root: identity folder not found: {root}")
    landmarks = _landmarks_for(root)
    images, labels, names = [], [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            continue
        for file in files:
            relative = file.relative_to(root).as_posix()
            images.append(FaceImage(path=file, landmarks=landmarks.get(relative), where=str(file)))
            labels.append(len(names))
        names.append(folder.name)
    if not names:
        raise DataError(f"{root}: no identity folder with images (expected root/<identity>/*.jpg)")
    return images, np.asarray(labels, dtype=np.int64), names


def count_identities(root: Path) -> int:
    """Identity folders holding at least one image (the classifier's size, without reading images)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data.train_root: identity folder not found: {root}")
    return sum(
        1
        for folder in root.iterdir()
        if folder.is_dir()
        and not folder.name.startswith(".")
        and any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir())
    )


@dataclass(frozen=True)
class Pair:
    first: tuple[str, int]  # (identity, image number)
    second: tuple[str, int]
    same: bool
    line: int


def _number(value: str, path: Path, line: int, field: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise DataError(f"{path} line {line}: {field} must be an image number, got {value!r}") from None
    if number < 0:
        raise DataError(f"{path} line {line}: {field} must be >= 0, got {number}")
    return number


def read_pairs(path: Path) -> list[Pair]:
    """Parse an LFW-style pairs.txt (tabs or spaces). See the module docstring for the format.

    Raises:
        DataError: a malformed line (naming the line and field), or a header whose counts disagree.
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"data.pairs: cannot read {path} ({getattr(err, 'strerror', None) or err})") from None
    pairs: list[Pair] = []
    header = None
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            continue
        if not pairs and header is None and len(fields) <= 2 and all(f.isdigit() for f in fields):
            header = [int(f) for f in fields]
            continue
        if len(fields) == 3:
            name, a, b = fields
            pairs.append(
                Pair(
                    (name, _number(a, path, number, "n1")),
                    (name, _number(b, path, number, "n2")),
                    True,
                    number,
                )
            )
        elif len(fields) == 4:
            name_a, a, name_b, b = fields
            pairs.append(
                Pair(
                    (name_a, _number(a, path, number, "n1")),
                    (name_b, _number(b, path, number, "n2")),
                    False,
                    number,
                )
            )
        else:
            raise DataError(
                f"{path} line {number}: expected 'name n1 n2' (matched) or 'name1 n1 name2 n2' (mismatched), "
                f"got {len(fields)} fields"
            )
    if not pairs:
        raise DataError(f"{path}: no pairs")
    if header is not None and len(header) == 2 and header[0] * header[1] * 2 != len(pairs):
        raise DataError(
            f"{path}: header says {header[0]} sets x {header[1]} matched + {header[1]} mismatched pairs "
            f"({header[0] * header[1] * 2}), found {len(pairs)}"
        )
    return pairs


def lfw_image_path(root: Path, name: str, number: int) -> Path:
    """LFW naming: root/<name>/<name>_<number:04d>.jpg."""
    return Path(root) / name / f"{name}_{number:04d}.jpg"


def pairs_over_folder(pairs_file: Path, root: Path) -> tuple[list[FaceImage], np.ndarray, np.ndarray]:
    """Resolve pairs.txt against an image folder -> (unique images, (N, 2) indices, (N,) is-same).

    Raises:
        DataError: an image named by the pairs file is missing (naming the pairs line and the path).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data.val_root: image folder not found: {root}")
    landmarks = _landmarks_for(root)
    index: dict[Path, int] = {}
    images: list[FaceImage] = []
    rows, same = [], []
    for pair in read_pairs(pairs_file):
        same.append(pair.same)
        row = []
        for name, number in (pair.first, pair.second):
            path = lfw_image_path(root, name, number)
            if path not in index:
                if not path.is_file():
                    raise DataError(f"{pairs_file} line {pair.line}: image {path} not found")
                relative = path.relative_to(root).as_posix()
                index[path] = len(images)
                images.append(FaceImage(path=path, landmarks=landmarks.get(relative), where=str(path)))
            row.append(index[path])
        rows.append(row)
    return images, np.asarray(rows, dtype=np.int64), np.asarray(same, dtype=bool)


class _RestrictedUnpickler(pickle.Unpickler):
    """Builds only what an insightface .bin holds: bytes, numpy arrays, lists, tuples, bools."""

    ALLOWED = {
        ("builtins", "bytes"),
        ("builtins", "bytearray"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def __init__(self, file, where: str):
        super().__init__(file, encoding="bytes")
        self.where = where

    def find_class(self, module: str, name: str):
        if (module, name) == ("_codecs", "encode"):
            return _latin1_bytes  # protocol-2 pickles of bytes: only the latin-1 text -> bytes step
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise DataError(
            f"{self.where}: refused to load global '{module}.{name}': an insightface .bin holds only "
            "encoded images and is-same flags (restricted unpickler)"
        )


def _latin1_bytes(text, encoding="latin1"):
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("only latin-1 text can become bytes")
    return text.encode("latin1")


def read_bin(path: Path) -> tuple[list[FaceImage], np.ndarray, np.ndarray]:
    """Read an insightface verification .bin -> (images, (N, 2) pair indices, (N,) is-same).

    Raises:
        DataError: missing file, refused global (a crafted pickle), or a structure other than
            (images, flags) with two images per flag.
    """
    path = Path(path)
    try:
        blob = path.read_bytes()
    except OSError as err:
        raise DataError(f"data.val_bin: cannot read {path} ({err.strerror})") from None
    try:
        loaded = _RestrictedUnpickler(io.BytesIO(blob), str(path)).load()
    except DataError:
        raise
    except Exception as err:  # noqa: BLE001  (a truncated or corrupt pickle raises many types)
        raise DataError(f"{path}: not an insightface .bin (unpickling failed: {err})") from None
    if not isinstance(loaded, (tuple, list)) or len(loaded) != 2:
        raise DataError(f"{path}: expected a pickled (images, issame) pair, got {type(loaded).__name__}")
    bins, issame = loaded
    if not isinstance(bins, (list, tuple)):
        raise DataError(f"{path}: images: expected a list of encoded images, got {type(bins).__name__}")
    try:
        same = np.asarray(issame, dtype=bool).reshape(-1)
    except (TypeError, ValueError):
        raise DataError(f"{path}: issame: expected a list of booleans") from None
    if len(bins) != 2 * len(same) or len(same) == 0:
        raise DataError(f"{path}: {len(bins)} images for {len(same)} is-same flags (expected 2 per flag)")
    images = []
    for i, item in enumerate(bins):
        if isinstance(item, np.ndarray) and item.dtype == np.uint8:
            item = item.tobytes()
        if not isinstance(item, (bytes, bytearray)):
            raise DataError(f"{path}: images[{i}]: expected encoded image bytes, got {type(item).__name__}")
        images.append(FaceImage(data=bytes(item), where=f"{path} images[{i}]"))
    pairs = np.arange(len(bins), dtype=np.int64).reshape(-1, 2)
    return images, pairs, same


def write_bin(path: Path, images: Sequence[bytes], issame: Sequence[bool]) -> None:
    """Write the .bin format (for tests and for packing a pairs folder the way insightface does)."""
    with open(path, "wb") as handle:
        pickle.dump((list(images), list(bool(s) for s in issame)), handle, protocol=pickle.HIGHEST_PROTOCOL)


# --------------------------------------------------------------------------------------------- datasets


class FaceTrainSet(Dataset):
    """Aligned training faces with labels; the occluded twin when an occluder is given.

    Per sample and epoch the rng is (seed, epoch, index): the twin and the horizontal flip (applied to both
    images, so they stay pixel-aligned) do not depend on worker scheduling. `images` is any sequence of
    `FaceImage` (a list, or a lazy RecordIO reader); `labels=None` takes each image's own `label`.
    """

    def __init__(
        self, images: Sequence[FaceImage], labels: np.ndarray | None, *, input_size: int, flip: bool = True,
        occluder=None, seed: int = 0,
    ):  # fmt: skip
        self.images = images
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        self.input_size, self.flip, self.occluder, self.seed = input_size, flip, occluder, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        face = self.images[index]
        label = face.label if self.labels is None else self.labels[index]
        aligned, points = align(face.load(), face.landmarks)
        rng = np.random.default_rng((self.seed, self.epoch, index))
        twin = self.occluder(aligned, points, rng) if self.occluder is not None else None
        if self.flip and rng.random() < 0.5:
            aligned = aligned[:, ::-1]
            twin = twin[:, ::-1] if twin is not None else None
        sample = {
            "image": to_input(aligned, self.input_size),
            "label": torch.tensor(label, dtype=torch.int64),
            "meta": {"index": index},
        }
        if twin is not None:
            sample["twin"] = to_input(twin, self.input_size)
        return sample


class VerificationSet(Dataset):
    """The images of a pair list (each once); `pairs` indexes them, `same` says which pairs match."""

    def __init__(
        self, images: list[FaceImage], pairs: np.ndarray, same: np.ndarray, *, input_size: int, name: str
    ):
        self.images, self.pairs, self.same = images, np.asarray(pairs), np.asarray(same, dtype=bool)
        self.input_size, self.name = input_size, name

    def __len__(self) -> int:
        return len(self.images)

    def aligned(self, index: int) -> np.ndarray:
        face = self.images[index]
        return align(face.load(), face.landmarks)[0]

    def __getitem__(self, index: int) -> dict:
        return {"image": to_input(self.aligned(index), self.input_size), "meta": {"index": index}}
