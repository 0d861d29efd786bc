"""MXNet RecordIO (`.rec` + `.idx`) as insightface packs its training sets, read without mxnet.

Why our own reader: mxnet's last release needs numpy < 2, and the format is small enough to read directly.

The format, as dmlc-core writes it and insightface uses it:
- `.idx`: text, one `<key>\\t<byte offset in .rec>` per line.
- `.rec`: records, each framed as `uint32 magic 0xced7230a`, `uint32 lrecord`, data, zero padding to a
  multiple of 4 bytes. `lrecord` holds the data length in its lower 29 bits and a continuation flag in the
  upper 3: 0 a whole record, 1 the first part, 2 a middle part, 3 the last part. A record is split into
  parts where its own data contains the magic word at a 4-byte aligned position: the writer drops those 4
  bytes and the reader puts the magic word back between the parts.
- A record's data starts with an `IRHeader`, struct `IfQQ` (little endian): flag (uint32), label
  (float32), id (uint64), id2 (uint64). When flag > 0 the header is followed by `flag` float32 values,
  which are the label (an array) instead of the scalar. The rest of the data is the encoded image.
- insightface's convention: record 0 is a header record whose label array is `[a, b]`: the image records
  are keys 1..a-1 and keys a..b-1 are one record per identity whose label `[start, end)` is the range of
  that identity's image keys. A `property` file beside the `.rec` reads `<identities>,<height>,<width>`.

Each error is one line naming the file and the byte offset or key that is wrong.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.core.errors import DataError

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_LENGTH_MASK = (1 << 29) - 1
_HEADER = struct.Struct("<IfQQ")
_FRAME = struct.Struct("<II")

WHOLE, FIRST, MIDDLE, LAST = 0, 1, 2, 3


@dataclass(frozen=True)
class IRHeader:
    """A record's image header: `label` is a float, or a float32 array when `flag` > 0."""

    flag: int
    label: float | np.ndarray
    id: int
    id2: int


def pack(header: IRHeader, payload: bytes) -> bytes:
    """IRHeader (+ label array when it is one) + payload: the data of one record."""
    label = np.asarray(header.label, dtype=np.float32).reshape(-1)
    if label.size == 1 and header.flag == 0:
        return _HEADER.pack(0, float(label[0]), header.id, header.id2) + payload
    return _HEADER.pack(label.size, 0.0, header.id, header.id2) + label.tobytes() + payload


def unpack(data: bytes, where: str) -> tuple[IRHeader, bytes]:
    """Split one record's data into its IRHeader and the payload (the encoded image).

    Raises:
        DataError: the data is shorter than its header says.
    """
    if len(data) < _HEADER.size:
        raise DataError(f"{where}: record of {len(data)} bytes is shorter than its 24-byte IRHeader")
    flag, label, ident, ident2 = _HEADER.unpack_from(data)
    start = _HEADER.size
    if flag > 0:
        end = start + 4 * flag
        if len(data) < end:
            raise DataError(
                f"{where}: IRHeader flag {flag} announces {flag} label floats, the record ends before them"
            )
        return IRHeader(flag, np.frombuffer(data[start:end], np.float32).copy(), ident, ident2), data[end:]
    return IRHeader(0, float(label), ident, ident2), data[start:]


def frame(data: bytes) -> bytes:
    """The bytes dmlc-core writes for one record: parts split at aligned magic words, padded to 4."""
    parts, start = [], 0
    for i in range(0, len(data) - len(data) % 4, 4):
        if data[i : i + 4] == _MAGIC_BYTES:
            parts.append((FIRST if start == 0 else MIDDLE, data[start:i]))
            start = i + 4
    parts.append((LAST if start else WHOLE, data[start:]))
    out = bytearray()
    for flag, chunk in parts:
        out += _FRAME.pack(MAGIC, (flag << 29) | len(chunk)) + chunk
    out += b"\0" * (-len(data) % 4)
    return bytes(out)


def read_index(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """`.idx` -> (keys, byte offsets) as int64 arrays sorted by key.

    Arrays, not a dict: MS1MV3 has 5.2M records, and a dict of them would cost each DataLoader worker
    hundreds of MB once copy-on-write pages are touched.

    Raises:
        DataError: unreadable file, a line other than two integers (naming the line), a repeated key.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or err
        raise DataError(f"{path}: cannot read the RecordIO index ({reason})") from None
    try:
        values = np.array(text.split(), dtype=np.int64)
        well_formed = values.size % 2 == 0 and all(len(line.split()) in (0, 2) for line in text.splitlines())
    except ValueError:
        well_formed = False
    if not well_formed:
        for number, line in enumerate(text.splitlines(), 1):
            fields = line.split()
            if fields and (len(fields) != 2 or not all(f.lstrip("-").isdigit() for f in fields)):
                raise DataError(f"{path} line {number}: expected '<key>\\t<offset>', got {line.strip()!r}")
    if values.size == 0:
        raise DataError(f"{path}: empty RecordIO index")
    keys, offsets = values[0::2], values[1::2]
    order = np.argsort(keys, kind="stable")
    keys, offsets = keys[order], offsets[order]
    repeated = keys[1:][keys[1:] == keys[:-1]]
    if repeated.size:
        raise DataError(f"{path}: key {int(repeated[0])} appears twice")
    return keys, offsets


class RecordFile:
    """Random access to the records of a `.rec` by key through its `.idx`.

    Keys and offsets are numpy arrays (shared copy-on-write by forked workers). The file handle is opened
    lazily and per process: a DataLoader worker that receives this object (by
    fork or pickle) opens its own handle on first read, so workers never share a file position.

    Args:
        rec: the `.rec` file.
        idx: its `.idx` (default: the same name with `.idx`).

    Example:
        >>> records = RecordFile(Path("faces_emore/train.rec"))  # doctest: +SKIP
        >>> header, jpeg = unpack(records.read(1), "train.rec key 1")  # doctest: +SKIP
    """

    def __init__(self, rec: Path, idx: Path | None = None):
        self.rec = Path(rec)
        self.idx = Path(idx) if idx is not None else self.rec.with_suffix(".idx")
        if not self.rec.is_file():
            raise DataError(f"{self.rec}: RecordIO file not found")
        self.keys, self.offsets = read_index(self.idx)
        self.size = self.rec.stat().st_size
        bad = np.flatnonzero((self.offsets < 0) | (self.offsets > self.size - _FRAME.size))
        if bad.size:
            key, offset = int(self.keys[bad[0]]), int(self.offsets[bad[0]])
            raise DataError(
                f"{self.idx}: key {key} points at offset {offset}, beyond {self.rec} "
                f"({self.size} bytes): the index does not belong to this .rec, or the .rec is truncated"
            )
        self._handle = None
        self._pid = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_handle"], state["_pid"] = None, None
        return state

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: int) -> bool:
        at = int(np.searchsorted(self.keys, key))
        return at < len(self.keys) and int(self.keys[at]) == key

    def _file(self):
        if self._handle is None or self._pid != os.getpid():
            self._handle = open(self.rec, "rb")  # noqa: SIM115  (kept open for the process's lifetime)
            self._pid = os.getpid()
        return self._handle

    def read(self, key: int) -> bytes:
        """The data of record `key`, its parts joined.

        Raises:
            DataError: unknown key, or no valid record at its offset (naming the file and offset).
        """
        if key not in self:
            raise DataError(f"{self.idx}: no key {key} (keys {int(self.keys[0])}..{int(self.keys[-1])})")
        handle = self._file()
        offset = int(self.offsets[np.searchsorted(self.keys, key)])
        handle.seek(offset)
        data = bytearray()
        first = True
        while True:
            at = handle.tell()
            head = handle.read(_FRAME.size)
            if len(head) < _FRAME.size:
                raise DataError(f"{self.rec} offset {at}: truncated record frame (key {key})")
            magic, lrecord = _FRAME.unpack(head)
            if magic != MAGIC:
                raise DataError(
                    f"{self.rec} offset {at}: no record here (magic 0x{magic:08x}, expected 0x{MAGIC:08x}; "
                    f"key {key} of {self.idx}): the index does not match the .rec"
                )
            flag, length = lrecord >> 29, lrecord & _LENGTH_MASK
            if flag > LAST or (first and flag in (MIDDLE, LAST)) or (not first and flag in (WHOLE, FIRST)):
                raise DataError(
                    f"{self.rec} offset {at}: continuation flag {flag} out of sequence (key {key})"
                )
            padded = length + (-length % 4)
            chunk = handle.read(padded)
            if len(chunk) < padded:
                raise DataError(
                    f"{self.rec} offset {at}: truncated record (key {key}: {length} bytes announced, "
                    f"{max(len(chunk), 0)} left in the file)"
                )
            data += chunk[:length]
            if flag in (WHOLE, LAST):
                return bytes(data)
            data += _MAGIC_BYTES
            first = False

    def close(self) -> None:
        if self._handle is not None and self._pid == os.getpid():
            self._handle.close()
        self._handle = None


class RecordWriter:
    """Writes a `.rec` and its `.idx` (tests, and packing a folder the way insightface's tools do)."""

    def __init__(self, rec: Path, idx: Path | None = None):
        self.rec = Path(rec)
        self.idx = Path(idx) if idx is not None else self.rec.with_suffix(".idx")
        self._rec = open(self.rec, "wb")  # noqa: SIM115  (closed by close())
        self._lines: list[str] = []

    def write(self, key: int, data: bytes) -> None:
        self._lines.append(f"{key}\t{self._rec.tell()}\n")
        self._rec.write(frame(data))

    def close(self) -> None:
        self._rec.close()
        self.idx.write_text("".join(self._lines))

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_property(path: Path) -> tuple[int, int, int]:
    """insightface's `property` file: `<identities>,<height>,<width>`.

    Raises:
        DataError: not three positive integers.
    """
    text = Path(path).read_text().strip()
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) <= 0:
        raise DataError(
            f"{path}: expected '<identities>,<height>,<width>' (e.g. 93431,112,112), got {text!r}"
        )
    return values  # type: ignore[return-value]
