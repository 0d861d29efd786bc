"""The mxnet-free RecordIO reader against bytes laid out by hand in dmlc-core's format."""

import pickle
import struct

import cv2
import numpy as np
import pytest

from harness.core.errors import DataError
from tasks.face_recognition.data import FaceTrainSet
from tasks.face_recognition.recordio import (
    MAGIC,
    IRHeader,
    RecordFile,
    RecordWriter,
    frame,
    pack,
    read_index,
    unpack,
)
from tasks.face_recognition.sources import RecordFaces, read_label_list

MAGIC_LE = struct.pack("<I", MAGIC)


def _png(value: int, size: int = 8) -> bytes:
    return cv2.imencode(".png", np.full((size, size, 3), value, np.uint8))[1].tobytes()


def _header_bytes(flag, label, ident, ident2=0) -> bytes:
    """IRHeader written out field by field (uint32, float32, uint64, uint64), independent of `pack`."""
    return struct.pack("<I", flag) + struct.pack("<f", label) + struct.pack("<QQ", ident, ident2)


def _write_insightface_rec(folder, images_per_identity=(2, 1), property_text="2,8,8"):
    """By default keys 1..3 images (labels 0, 0, 1), keys 4..5 identity records, key 0 the header [4, 6]."""
    folder.mkdir(exist_ok=True)
    records = {}
    first_identity = 1 + sum(images_per_identity)
    header_label = [first_identity, first_identity + len(images_per_identity)]  # [4, 6] by default
    records[0] = _header_bytes(2, 0.0, 0) + np.array(header_label, np.float32).tobytes()
    key, ranges = 1, []
    for identity, count in enumerate(images_per_identity):
        start = key
        for _ in range(count):
            records[key] = _header_bytes(0, float(identity), key) + _png(40 * key)
            key += 1
        ranges.append((start, key))
    for identity, (start, end) in enumerate(ranges):
        records[key] = _header_bytes(2, 0.0, identity) + np.array([start, end], np.float32).tobytes()
        key += 1
    with RecordWriter(folder / "train.rec") as writer:
        for k in sorted(records):
            writer.write(k, records[k])
    if property_text is not None:
        (folder / "property").write_text(property_text)
    return records


def test_frame_is_dmlc_layout_and_splits_at_aligned_magic_words():
    # 11 bytes: whole record, flag 0, length 11, one zero byte of padding.
    assert frame(b"hello world") == MAGIC_LE + struct.pack("<I", 11) + b"hello world" + b"\0"
    # The magic word at offset 4 splits the record: first part "abcd" (flag 1), last part "xy" (flag 3),
    # the magic word itself is not written; a magic word at an unaligned offset is left alone.
    data = b"abcd" + MAGIC_LE + b"xy"
    assert frame(data) == (
        MAGIC_LE + struct.pack("<I", (1 << 29) | 4) + b"abcd"
        + MAGIC_LE + struct.pack("<I", (3 << 29) | 2) + b"xy" + b"\0\0"
    )  # fmt: skip
    unaligned = b"a" + MAGIC_LE + b"bcd"
    assert frame(unaligned)[4:8] == struct.pack("<I", 8)


def test_hand_written_rec_with_header_and_multi_part_record_reads_back(tmp_path):
    # A .rec written byte by byte: key 0 header, key 1 a three-part record (magic twice in its data).
    payload = b"\x89PNG" + MAGIC_LE + b"middle!!" + MAGIC_LE + b"end"
    record1 = _header_bytes(0, 3.0, 1) + payload
    blob = bytearray()
    offsets = {}
    offsets[0] = len(blob)
    header0 = _header_bytes(2, 0.0, 0) + np.array([2, 3], np.float32).tobytes()
    blob += MAGIC_LE + struct.pack("<I", len(header0)) + header0  # 32 bytes, already aligned
    offsets[1] = len(blob)
    first, middle, last = record1[:28], record1[32:40], record1[44:]
    assert record1[28:32] == MAGIC_LE and record1[40:44] == MAGIC_LE
    blob += MAGIC_LE + struct.pack("<I", (1 << 29) | len(first)) + first
    blob += MAGIC_LE + struct.pack("<I", (2 << 29) | len(middle)) + middle
    blob += MAGIC_LE + struct.pack("<I", (3 << 29) | len(last)) + last + b"\0" * (-len(last) % 4)
    (tmp_path / "t.rec").write_bytes(bytes(blob))
    (tmp_path / "t.idx").write_text("".join(f"{k}\t{v}\n" for k, v in offsets.items()))

    records = RecordFile(tmp_path / "t.rec")
    header, rest = unpack(records.read(0), "key 0")
    assert header.flag == 2 and header.label.tolist() == [2.0, 3.0] and rest == b""
    header, rest = unpack(records.read(1), "key 1")
    assert (header.flag, header.label, header.id, header.id2) == (0, 3.0, 1, 0)
    assert rest == payload
    # Our writer produces exactly these bytes.
    with RecordWriter(tmp_path / "w.rec") as writer:
        writer.write(0, header0)
        writer.write(1, record1)
    assert (tmp_path / "w.rec").read_bytes() == bytes(blob)
    keys, found = read_index(tmp_path / "w.idx")
    assert dict(zip(keys.tolist(), found.tolist(), strict=True)) == offsets


def test_pack_unpack_round_trip_scalar_and_array_labels():
    scalar = pack(IRHeader(0, 7.0, 12, 0), b"img")
    assert scalar == _header_bytes(0, 7.0, 12) + b"img"
    header, payload = unpack(scalar, "x")
    assert (header.flag, header.label, header.id, payload) == (0, 7.0, 12, b"img")
    array = pack(IRHeader(3, np.array([1.0, 2.0, 3.0]), 5, 6), b"z")
    header, payload = unpack(array, "x")
    assert header.flag == 3 and header.label.tolist() == [1.0, 2.0, 3.0] and (header.id, header.id2) == (5, 6)


def test_insightface_layout_gives_images_labels_and_identities(tmp_path):
    _write_insightface_rec(tmp_path / "rec")
    faces = RecordFaces(tmp_path / "rec")
    assert len(faces) == 3 and faces.num_classes == 2 and faces.image_size == (8, 8)
    assert [f.label for f in faces] == [0, 0, 1]
    assert [int(f.load()[0, 0, 0]) for f in faces] == [40, 80, 120]
    train = FaceTrainSet(faces, None, input_size=8, flip=False)
    sample = train[2]
    assert int(sample["label"]) == 1 and tuple(sample["image"].shape) == (3, 8, 8)


def test_reader_pickles_without_its_handle_and_reopens(tmp_path):
    _write_insightface_rec(tmp_path / "rec")
    faces = RecordFaces(tmp_path / "rec")
    faces[0]  # opens the handle in this process
    assert faces.records._handle is not None
    copy = pickle.loads(pickle.dumps(faces))  # what a spawned DataLoader worker receives
    assert copy.records._handle is None
    assert copy[1].label == 0 and copy.records._handle is not None
    assert copy.records._handle is not faces.records._handle


def test_property_and_header_must_agree_and_one_must_exist(tmp_path):
    _write_insightface_rec(tmp_path / "a", property_text="5,112,112")
    with pytest.raises(DataError, match=r"property: 5 identities, but .*train.rec header record 0 says 2"):
        RecordFaces(tmp_path / "a")
    _write_insightface_rec(tmp_path / "b", property_text="two,112,112")
    with pytest.raises(DataError, match="expected '<identities>,<height>,<width>'"):
        RecordFaces(tmp_path / "b")


def test_truncated_and_mismatched_files_are_one_line_naming_file_and_offset(tmp_path):
    _write_insightface_rec(tmp_path / "rec")
    rec, idx = tmp_path / "rec" / "train.rec", tmp_path / "rec" / "train.idx"
    offsets = dict(zip(*(a.tolist() for a in read_index(idx)), strict=True))
    blob = rec.read_bytes()

    # Truncated inside the last record's data (key 5).
    rec.write_bytes(blob[: offsets[5] + 12])
    with pytest.raises(DataError) as err:
        RecordFile(rec).read(5)
    message = str(err.value)
    assert f"{rec} offset {offsets[5]}: truncated record (key 5: 32 bytes announced, 4 left" in message
    assert "\n" not in message
    # Truncated before key 4: the index itself is refused, naming both files and the offset.
    rec.write_bytes(blob[: offsets[4] - 8])
    expected = rf"train.idx: key 4 points at offset {offsets[4]}, beyond .*train.rec"
    with pytest.raises(DataError, match=expected):
        RecordFile(rec)

    # An index whose offset points into the middle of a record.
    rec.write_bytes(blob)
    idx.write_text(idx.read_text().replace(f"2\t{offsets[2]}", f"2\t{offsets[2] + 4}"))
    with pytest.raises(DataError) as err:
        RecordFile(rec).read(2)
    message = str(err.value)
    assert f"{rec} offset {offsets[2] + 4}: no record here" in message and "index does not match" in message

    # An index pointing past the end of the .rec (another set's index).
    idx.write_text(f"0\t{offsets[0]}\n1\t{len(blob) + 100}\n")
    with pytest.raises(DataError, match=rf"key 1 points at offset {len(blob) + 100}, beyond .*train.rec"):
        RecordFile(rec)

    idx.write_text(f"0\t{offsets[0]}\n1\t{offsets[1]}\n1\t{offsets[2]}\n")
    with pytest.raises(DataError, match=r"train.idx: key 1 appears twice"):
        RecordFile(rec)

    idx.write_text("0\tzero\n")
    with pytest.raises(DataError, match=r"train.idx line 1: expected '<key>\\t<offset>'"):
        RecordFile(rec)


def test_label_list_with_tabs_spaces_and_landmarks(tmp_path):
    (tmp_path / "images").mkdir()
    for name in ("a.png", "b c.png", "d.png"):
        cv2.imwrite(str(tmp_path / "images" / name), np.full((8, 8, 3), 9, np.uint8))
    (tmp_path / "label.txt").write_text(
        "images/a.png\t0\nimages/b c.png\t2\nimages/d.png 1 1 2 3 4 5 6 7 8 9 10\n"
    )
    images, labels = read_label_list(tmp_path)
    assert labels.tolist() == [0, 2, 1]
    assert images[1].path == tmp_path / "images" / "b c.png" and images[1].landmarks is None
    assert images[2].landmarks.tolist() == [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]]

    (tmp_path / "label.txt").write_text("images/a.png\t0\nimages/d.png x\n")
    with pytest.raises(DataError, match=r"label.txt line 2: label must be an integer, got 'x'"):
        read_label_list(tmp_path)
    (tmp_path / "label.txt").write_text("images/a.png 0 1 2 3\n")
    with pytest.raises(DataError, match=r"label.txt line 1: expected '<image> <label>' or .* got 5 fields"):
        read_label_list(tmp_path)


def test_dataloader_workers_each_read_through_their_own_handle(tmp_path):
    from torch.utils.data import DataLoader

    _write_insightface_rec(tmp_path / "rec", images_per_identity=(3, 3), property_text=None)
    faces = RecordFaces(tmp_path / "rec")
    faces[0]  # the parent's handle is open before the workers fork
    loader = DataLoader(FaceTrainSet(faces, None, input_size=8, flip=False), batch_size=2, num_workers=2)
    labels = [int(v) for batch in loader for v in batch["label"]]
    assert labels == [0, 0, 0, 1, 1, 1]
    pixels = [int(b["image"][i, 0, 0, 0] * 127.5 + 127.5) for b in loader for i in range(2)]
    assert pixels == [40 * k for k in range(1, 7)]  # every record read whole, in key order
