"""pairs.txt parsing, the restricted .bin reader, landmarks files and alignment."""

import pickle

import cv2
import numpy as np
import pytest
from insightface.utils.face_align import arcface_dst

from harness.core.errors import DataError
from tasks.face_recognition.data import (
    align,
    pairs_over_folder,
    read_bin,
    read_identity_folder,
    read_landmarks,
    read_pairs,
    write_bin,
)


def test_pairs_txt_matched_and_mismatched_lines(tmp_path):
    path = tmp_path / "pairs.txt"
    path.write_text(
        "1\t2\nAbel_Pacheco\t1\t4\nAkhmed_Zakayev\t1\t3\nAbdel_Madi\t1\tDavid_Duval\t2\nA\t3\tB\t4\n"
    )
    pairs = read_pairs(path)
    assert [(p.first, p.second, p.same, p.line) for p in pairs] == [
        (("Abel_Pacheco", 1), ("Abel_Pacheco", 4), True, 2),
        (("Akhmed_Zakayev", 1), ("Akhmed_Zakayev", 3), True, 3),
        (("Abdel_Madi", 1), ("David_Duval", 2), False, 4),
        (("A", 3), ("B", 4), False, 5),
    ]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("Abel\t1\n", "line 1: expected 'name n1 n2' (matched) or 'name1 n1 name2 n2' (mismatched), got 2"),
        ("Abel\t1\tx\n", "line 1: n2 must be an image number, got 'x'"),
        ("Abel\tone\tB\t2\n", "line 1: n1 must be an image number, got 'one'"),
        ("10\t300\nA\t1\t2\n", "header says 10 sets x 300 matched + 300 mismatched pairs (6000), found 1"),
        ("\n", "no pairs"),
    ],
)
def test_bad_pairs_txt_is_one_line_naming_file_and_field(tmp_path, text, fragment):
    path = tmp_path / "pairs.txt"
    path.write_text(text)
    with pytest.raises(DataError) as err:
        read_pairs(path)
    assert str(path) in str(err.value) and fragment in str(err.value)
    assert "\n" not in str(err.value)


def _jpeg(value: int) -> bytes:
    image = np.full((112, 112, 3), value, np.uint8)
    return cv2.imencode(".jpg", image)[1].tobytes()


def test_pairs_over_lfw_folder_resolve_names_and_report_missing_images(tmp_path):
    for name, count in (("Ann", 2), ("Bob", 1)):
        (tmp_path / name).mkdir()
        for n in range(1, count + 1):
            (tmp_path / name / f"{name}_{n:04d}.jpg").write_bytes(_jpeg(10 * n))
    pairs_file = tmp_path / "pairs.txt"
    pairs_file.write_text("Ann\t1\t2\nAnn\t2\tBob\t1\n")
    images, pairs, same = pairs_over_folder(pairs_file, tmp_path)
    assert [i.path.name for i in images] == ["Ann_0001.jpg", "Ann_0002.jpg", "Bob_0001.jpg"]
    assert pairs.tolist() == [[0, 1], [1, 2]] and same.tolist() == [True, False]
    pairs_file.write_text("Ann\t1\t2\nAnn\t1\tBob\t7\n")
    with pytest.raises(DataError, match=r"pairs.txt line 2: image .*Bob_0007.jpg not found"):
        pairs_over_folder(pairs_file, tmp_path)


def test_bin_written_like_insightface_is_read_back(tmp_path):
    path = tmp_path / "lfw.bin"
    blobs = [_jpeg(v) for v in (0, 50, 100, 150)]
    write_bin(path, blobs, [True, False])
    images, pairs, same = read_bin(path)
    assert pairs.tolist() == [[0, 1], [2, 3]] and same.tolist() == [True, False]
    assert abs(int(images[2].load().mean()) - 100) <= 2
    # Protocol 2 (how Python 2 era .bin files were written) and numpy flags / uint8 buffers also load.
    with open(path, "wb") as handle:
        pickle.dump(
            ([np.frombuffer(b, np.uint8) for b in blobs], np.array([False, True])), handle, protocol=2
        )
    images, _, same = read_bin(path)
    assert same.tolist() == [False, True] and images[0].data == blobs[0]


class _Exploit:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > /dev/null",))


def test_malicious_bin_is_refused_without_running_code(tmp_path, monkeypatch):
    import os

    path = tmp_path / "evil.bin"
    path.write_bytes(pickle.dumps(([_Exploit()], [True])))
    calls = []
    monkeypatch.setattr(os, "system", lambda *a: calls.append(a))  # had the pickle run, we would see it
    with pytest.raises(DataError, match=r"evil.bin: refused to load global '(posix|os)\.system'"):
        read_bin(path)
    assert calls == []


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (([b"x", "a"], [True]), "images[1]: expected encoded image bytes, got str"),
        (([b"x"], [True]), "1 images for 1 is-same flags (expected 2 per flag)"),
        ({"bins": []}, "expected a pickled (images, issame) pair, got dict"),
    ],
)
def test_malformed_bin_names_the_field(tmp_path, payload, fragment):
    path = tmp_path / "bad.bin"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(DataError) as err:
        read_bin(path)
    assert str(path) in str(err.value) and fragment in str(err.value)


def test_truncated_bin_is_a_data_error(tmp_path):
    path = tmp_path / "cut.bin"
    write_bin(path, [_jpeg(0), _jpeg(1)], [True])
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(DataError, match="not an insightface .bin"):
        read_bin(path)


def test_align_maps_landmarks_onto_the_arcface_template():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (200, 160, 3), dtype=np.uint8)
    # The template scaled by 1.5, rotated 10 degrees and shifted: a similarity, so it is undone exactly.
    theta = np.radians(10)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    landmarks = (arcface_dst * 1.5) @ rot.T + [20, 15]
    aligned, points = align(image, landmarks)
    assert aligned.shape == (112, 112, 3)
    np.testing.assert_allclose(points, arcface_dst, atol=1e-3)
    # Without landmarks the image is taken as aligned: resized, the template stands for its landmarks.
    aligned, points = align(image, None)
    assert aligned.shape == (112, 112, 3) and np.allclose(points, arcface_dst)


def test_identity_folder_and_landmarks_file(tmp_path):
    for name in ("b_person", "a_person"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "1.jpg").write_bytes(_jpeg(0))
    (tmp_path / "empty").mkdir()
    (tmp_path / "landmarks.txt").write_text("a_person/1.jpg " + " ".join(["1"] * 10) + "\n")
    images, labels, names = read_identity_folder(tmp_path)
    assert names == ["a_person", "b_person"] and labels.tolist() == [0, 1]
    assert images[0].landmarks.shape == (5, 2) and images[1].landmarks is None
    (tmp_path / "landmarks.txt").write_text("a_person/1.jpg 1 2 3\n")
    with pytest.raises(
        DataError, match=r"landmarks.txt line 1: expected '<image> x1 y1 ... x5 y5' \(11 fields\)"
    ):
        read_landmarks(tmp_path / "landmarks.txt")
    with pytest.raises(DataError, match="identity folder not found"):
        read_identity_folder(tmp_path / "nope")


def test_registering_the_tasks_needs_no_insightface():
    """Every harness command registers every task; a pose-only machine (the lent GPU's image) lacks the face
    packages, so the face recognition task imports insightface only where it aligns a face."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['insightface'] = None\n"  # `import insightface` now raises ImportError
        "from harness.core.registry import TASKS; print(sorted(TASKS.names()))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "'face_recognition'" in done.stdout and "'pose'" in done.stdout
