"""harness/core/cache.py: content-keyed folders built once (atomic, race-safe) and the digests records
carry."""

import hashlib
import json

import pytest

from harness.core.cache import build_once, content_key, file_digest, images_digest, scratch_dir
from harness.core.errors import DataError


def test_content_key_ignores_key_order_and_matches_a_hand_computed_digest():
    expected = hashlib.sha256(b'{"a": 1, "b": [2, 3]}').hexdigest()[:12]
    assert content_key({"b": [2, 3], "a": 1}) == content_key({"a": 1, "b": [2, 3]}) == expected


def test_file_and_images_digests_match_hashlib_and_the_images_digest_is_cached(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "b.png").write_bytes(b"bbb")
    (tmp_path / "img" / "a.png").write_bytes(b"a" * 3_000_000)  # more than one read chunk
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"images": [{"file_name": "b.png"}, {"file_name": "a.png"}]}))
    assert file_digest(tmp_path / "img" / "a.png") == hashlib.sha256(b"a" * 3_000_000).hexdigest()
    expected = hashlib.sha256()
    for name, data in (("a.png", b"a" * 3_000_000), ("b.png", b"bbb")):  # file-name order
        expected.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    assert images_digest(ann, tmp_path / "img") == expected.hexdigest()
    (tmp_path / "img" / "b.png").write_bytes(b"changed")  # same json: the cached digest answers
    assert images_digest(ann, tmp_path / "img") == expected.hexdigest()
    ann.write_text(json.dumps({"images": [{"file_name": "b.png"}]}))  # new json: recomputed
    changed = hashlib.sha256(b"b.png\0" + hashlib.sha256(b"changed").digest()).hexdigest()
    assert images_digest(ann, tmp_path / "img") == changed


def test_build_once_builds_once_and_leaves_no_scratch(tmp_path):
    calls = []

    def build(tmp):
        calls.append(tmp)
        (tmp / "data.txt").write_text("x")
        (tmp / "manifest.json").write_text("{}")

    folder = tmp_path / "cache" / "split_abc"
    assert build_once(folder, build) == folder
    assert build_once(folder, build) == folder
    assert len(calls) == 1 and (folder / "data.txt").read_text() == "x"
    assert sorted(p.name for p in folder.parent.iterdir()) == ["split_abc"]


def test_a_concurrent_builder_that_finished_first_wins(tmp_path):
    folder = tmp_path / "split"

    def build(tmp):
        (tmp / "manifest.json").write_text("mine")
        folder.mkdir()  # meanwhile another process renamed its complete folder into place
        (folder / "x").write_text("theirs")
        (folder / "manifest.json").write_text("theirs")

    assert build_once(folder, build) == folder
    assert (folder / "manifest.json").read_text() == "theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["split"]  # our copy discarded


def test_failures_are_one_data_error_naming_the_folder_and_leave_nothing(tmp_path):
    folder = tmp_path / "split"

    def broken(tmp):
        (tmp / "half").write_text("x")
        raise FileNotFoundError(2, "No such file or directory", "/data/img.png")

    with pytest.raises(
        DataError, match=r"cannot build .*split: .*No such file or directory: '/data/img.png'"
    ):
        build_once(folder, broken)
    with pytest.raises(DataError, match=r"building .*split wrote no manifest.json"):
        build_once(folder, lambda tmp: None)
    assert list(tmp_path.iterdir()) == []
    folder.mkdir()
    (folder / "stale").write_text("an incomplete folder from elsewhere")
    with pytest.raises(DataError, match="incomplete folder of that name is in the way: delete it"):
        build_once(folder, lambda tmp: (tmp / "manifest.json").write_text("{}"))
    with pytest.raises(DataError, match="fails on purpose"):  # a builder's own error passes through

        def refuse(tmp):
            raise DataError("fails on purpose")

        build_once(tmp_path / "other", refuse)


def test_scratch_dir_is_removed_whatever_happens(tmp_path):
    with pytest.raises(RuntimeError):
        with scratch_dir(tmp_path / "root") as tmp:
            (tmp / "f").write_text("x")
            raise RuntimeError
    assert list((tmp_path / "root").iterdir()) == []
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(DataError, match="cannot build in .*file"):
        with scratch_dir(tmp_path / "file"):
            pass
