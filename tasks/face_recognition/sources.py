"""Training-set sources beyond identity folders: insightface label lists and insightface RecordIO.

- Label list (`data.dataset: list`, `data.train_root` = the folder holding `label.txt`): one image per
  line, `<relative path><TAB or spaces><integer label>`, optionally followed by ten numbers, the five
  landmarks `x1 y1 ... x5 y5` in source pixels (those images are aligned with `norm_crop`, the others
  are taken as aligned). In a line with a tab the path ends at the first tab (so it may hold spaces) and
  the numbers after it are split at any whitespace; a line without tabs is split at whitespace. Labels
  are 0-based; the classifier has max(label) + 1 classes.
- RecordIO (`data.dataset: rec`, `data.train_root` = the folder holding `train.rec`, `train.idx` and
  optionally `property`): see `recordio.py`. Images are read by key on demand, so a 5M-image set costs
  one integer per image in memory, and each DataLoader worker reads through its own file handle.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from harness.core.errors import DataError
from tasks.face_recognition.data import FaceImage
from tasks.face_recognition.recordio import RecordFile, read_property, unpack

LABEL_FILE = "label.txt"
REC_NAME = "train"


def read_label_list(root: Path) -> tuple[list[FaceImage], np.ndarray]:
    """`root/label.txt` -> (images under root, integer labels).

    Raises:
        DataError: missing file, a malformed line (naming the line), or no image.
    """
    root = Path(root)
    path = root / LABEL_FILE
    if not path.is_file():
        raise DataError(f"data.train_root: no {LABEL_FILE} in {root} (expected '<image>\\t<label>' lines)")
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: unreadable label list ({err})") from None
    images, labels = [], []
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if "\t" in line:  # the path is the first tab field (it may hold spaces); the rest are numbers
            path_field, _, rest = line.strip().partition("\t")
            fields = [path_field.strip(), *rest.split()]
        else:
            fields = line.split()
        if len(fields) not in (2, 12):
            raise DataError(
                f"{path} line {number}: expected '<image> <label>' or '<image> <label> x1 y1 ... x5 y5', "
                f"got {len(fields)} fields"
            )
        try:
            label = int(fields[1])
        except ValueError:
            raise DataError(f"{path} line {number}: label must be an integer, got {fields[1]!r}") from None
        if label < 0:
            raise DataError(f"{path} line {number}: label must be >= 0, got {label}")
        landmarks = None
        if len(fields) == 12:
            try:
                landmarks = np.array([float(v) for v in fields[2:]], dtype=np.float64).reshape(5, 2)
            except ValueError:
                raise DataError(f"{path} line {number}: landmarks of {fields[0]} are not numbers") from None
            if not np.isfinite(landmarks).all():
                raise DataError(f"{path} line {number}: landmarks of {fields[0]} are not finite")
        file = root / fields[0]
        images.append(FaceImage(path=file, landmarks=landmarks, where=f"{path} line {number}: {file}"))
        labels.append(label)
    if not images:
        raise DataError(f"{path}: no image lines")
    return images, np.asarray(labels, dtype=np.int64)


class RecordFaces(Sequence):
    """The images of an insightface `train.rec` as a lazy sequence of labelled `FaceImage`s.

    With insightface's header record 0 (flag > 0, label `[a, b]`) the images are keys 1..a-1 and the
    identities number b - a; without it every key is an image and `property` must give the identities.

    Args:
        root: the folder holding `train.rec`, `train.idx` and optionally `property`.

    Raises:
        DataError: missing files, a header and `property` that disagree, or neither saying the identities.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        rec = self.root / f"{REC_NAME}.rec"
        if not rec.is_file():
            raise DataError(f"data.train_root: no {REC_NAME}.rec in {self.root}")
        self.records = RecordFile(rec)
        self.image_size: tuple[int, int] | None = None
        header, _ = unpack(self.records.read(0), f"{rec} key 0") if 0 in self.records else (None, b"")
        from_header = None
        if header is not None and header.flag > 0:
            first_identity, end = (int(v) for v in np.asarray(header.label)[:2])
            if not 1 <= first_identity <= end:
                raise DataError(
                    f"{rec} key 0: header record label [{first_identity}, {end}] is not an image range "
                    "followed by an identity range"
                )
            self.keys = np.arange(1, first_identity, dtype=np.int64)
            from_header = end - first_identity
        else:
            self.keys = self.records.keys.copy()
        prop = self.root / "property"
        from_property = None
        if prop.is_file():
            from_property, height, width = read_property(prop)
            self.image_size = (height, width)
        if from_property is not None and from_header is not None and from_property != from_header:
            raise DataError(
                f"{prop}: {from_property} identities, but {rec} header record 0 says {from_header}"
            )
        classes = from_property if from_property is not None else from_header
        if classes is None:
            raise DataError(f"{rec}: no header record 0 and no {prop}: the number of identities is unknown")
        self.num_classes = int(classes)
        ends = self.keys[:1].tolist() + self.keys[-1:].tolist()
        missing = [int(k) for k in ends if k not in self.records]
        if missing:
            raise DataError(f"{self.records.idx}: image key {missing[0]} is missing from the index")

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        key = int(self.keys[index])
        where = f"{self.records.rec} key {key}"
        header, payload = unpack(self.records.read(key), where)
        label = header.label if header.flag == 0 else np.asarray(header.label)[0]
        label = int(label)
        if not 0 <= label < self.num_classes:
            raise DataError(f"{where}: label {label} outside 0..{self.num_classes - 1}")
        return FaceImage(data=payload, label=label, where=where)


def train_source(kind: str, root: Path) -> tuple[Sequence[FaceImage], np.ndarray | None, int]:
    """(images, labels or None when each image carries its own, identities) of a training set.

    Args:
        kind: `folder` (root/<identity>/*), `list` (root/label.txt) or `rec` (root/train.rec).
        root: `data.train_root`.
    """
    from tasks.face_recognition.data import read_identity_folder

    root = Path(root).expanduser()
    if kind == "rec":
        faces = RecordFaces(root)
        return faces, None, faces.num_classes
    if kind == "list":
        images, labels = read_label_list(root)
        return images, labels, int(labels.max()) + 1
    images, labels, names = read_identity_folder(root)
    return images, labels, len(names)
