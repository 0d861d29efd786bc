"""A copy of the source without .git names its commit through a manifest, checked file by file."""

import shutil
import subprocess

import pytest

from harness.core.results import source_state
from harness.core.source_manifest import MANIFEST_ENV, blob_id, check_manifest, write_manifest


def git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path):
    repo = tmp_path / "repo"
    (repo / "sub dir").mkdir(parents=True)
    (repo / "a.py").write_text("print('a')\n")
    (repo / "sub dir" / "b.bin").write_bytes(bytes(range(256)) * 3)
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    return repo


def copy_without_git(repo, target):
    shutil.copytree(repo, target, ignore=shutil.ignore_patterns(".git"))
    return target


def test_blob_id_is_gits(repo):
    for name in ("a.py", "sub dir/b.bin"):
        assert blob_id(repo / name) == git(repo, "hash-object", name).strip()
    assert blob_id(repo / "missing") is None


def test_an_identical_copy_names_the_commit_clean_and_a_changed_one_says_dirty(repo, tmp_path, monkeypatch):
    manifest = tmp_path / "source.manifest"
    commit = write_manifest(repo, manifest)
    assert commit == git(repo, "rev-parse", "HEAD").strip()
    copy = copy_without_git(repo, tmp_path / "copy")
    monkeypatch.setenv(MANIFEST_ENV, str(manifest))
    state = source_state(copy)
    assert (state.commit, state.dirty, state.diff_sha256) == (commit, False, None)

    (copy / "sub dir" / "b.bin").write_bytes(b"changed")
    changed = check_manifest.__wrapped__(manifest, copy)
    assert changed[:2] == (commit, True) and len(changed[2]) == 64
    (copy / "sub dir" / "b.bin").unlink()
    missing = check_manifest.__wrapped__(manifest, copy)
    assert missing[:2] == (commit, True) and missing[2] != changed[2]  # the digest follows what differs


def test_without_git_or_manifest_the_commit_is_unknown(repo, tmp_path, monkeypatch):
    monkeypatch.delenv(MANIFEST_ENV, raising=False)
    state = source_state(copy_without_git(repo, tmp_path / "copy"))
    assert (state.commit, state.dirty) == ("unknown", None)


def test_a_dirty_checkout_writes_no_manifest_and_a_bad_manifest_is_named(repo, tmp_path, monkeypatch):
    (repo / "a.py").write_text("print('b')\n")
    with pytest.raises(RuntimeError, match="tracked files differ"):
        write_manifest(repo, tmp_path / "m")
    assert not (tmp_path / "m").exists()
    bad = tmp_path / "bad.manifest"
    bad.write_text("not a manifest\n")
    monkeypatch.setenv(MANIFEST_ENV, str(bad))
    with pytest.raises(RuntimeError, match=rf"\${MANIFEST_ENV}=.*first line must be 'commit <sha>'"):
        source_state(copy_without_git(repo, tmp_path / "copy"))
