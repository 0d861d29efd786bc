"""Provenance for a copy of the source without its git folder (a lent GPU machine, a container image).

Records name the commit that made them (`harness.core.results.source_state`), read from git. A copy that
travels without `.git` would otherwise say `unknown`. Where git is absent and `$HARNESS_SOURCE_MANIFEST` names
a manifest written from a clean checkout (the commit and every tracked file's git blob id, `git ls-files -s`),
the copy is checked against it file by file: identical files name that commit, clean; any difference says
dirty, with a digest of what differed. The manifest vouches for nothing it has not checked.

    python -m harness.core.source_manifest OUT      # from a clean checkout
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

MANIFEST_ENV = "HARNESS_SOURCE_MANIFEST"
REPO_ROOT = Path(__file__).resolve().parents[2]
_SYMLINK, _GITLINK = "120000", "160000"


def blob_id(path: Path) -> str | None:
    """Git's blob id of a file (of a symbolic link: of its target text), None when it is missing."""
    try:
        data = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
    except OSError:
        return None
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def write_manifest(repo: Path, out: Path) -> str:
    """Write `out` from the clean checkout at `repo`; returns its commit.

    Raises:
        RuntimeError: not a git checkout, or tracked files differ from the commit (a manifest vouches for a
            commit only).
    """

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"{repo}: git {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    commit = git("rev-parse", "HEAD").strip()
    if git("status", "--porcelain", "--untracked-files=no").strip():
        raise RuntimeError(f"{repo}: tracked files differ from {commit[:12]}; commit them first")
    Path(out).write_text(f"commit {commit}\n" + git("ls-files", "-s", "-z"))  # NUL-separated: names as is
    return commit


@lru_cache(maxsize=4)
def check_manifest(manifest: Path, root: Path) -> tuple[str, bool, str | None]:
    """(commit, dirty, digest of the differing paths) of the tree at `root` against `manifest`.

    Raises:
        ValueError: the file is not such a manifest.
    """
    head, _, entries = Path(manifest).read_text().partition("\n")
    if not head.startswith("commit ") or not entries:
        raise ValueError(f"{manifest}: not a source manifest (first line must be 'commit <sha>', then files)")
    differing = []
    for line in filter(None, entries.split("\0")):
        meta, _, name = line.partition("\t")
        mode, blob, _stage = meta.split()
        if mode == _GITLINK:  # a submodule: its own commit, not a file here
            continue
        found = blob_id(root / name)
        if found != blob:
            differing.append(f"{name} {blob} {found}")
    commit = head.split()[1]
    if not differing:
        return commit, False, None
    return commit, True, hashlib.sha256("\n".join(differing).encode()).hexdigest()


def manifest_state(root: Path) -> tuple[str, bool, str | None] | None:
    """The state `$HARNESS_SOURCE_MANIFEST` vouches for at `root`, or None when the variable is unset."""
    path = os.environ.get(MANIFEST_ENV)
    if not path:
        return None
    try:
        return check_manifest(Path(path).resolve(), Path(root).resolve())
    except (OSError, ValueError) as err:
        raise RuntimeError(f"${MANIFEST_ENV}={path}: {err}") from err


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m harness.core.source_manifest OUT")
    print(f"wrote {sys.argv[1]} for commit {write_manifest(REPO_ROOT, Path(sys.argv[1]))}")
