"""Every committed study's tables are what `harness report` makes of its committed records, byte for byte, so
a reader on a fresh clone regenerates exactly the numbers the README quotes."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from record_strings import strings_in

from harness.report import generate_report, read_sources

RESULTS = Path(__file__).resolve().parents[2] / "results"
# A study's own records, or a report of several studies' records (its tables/sources.json names them).
STUDIES = sorted(
    {p.parent for p in RESULTS.rglob("runs") if (p.parent / "tables").is_dir()}
    | {p.parents[1] for p in RESULTS.rglob("tables/sources.json")}
)


def _files(folder: Path) -> dict[Path, bytes]:
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("study", STUDIES, ids=[str(s.relative_to(RESULTS)) for s in STUDIES])
def test_committed_tables_regenerate_byte_identically(study: Path, tmp_path: Path):
    sources = read_sources(study)
    folders, filters = sources if sources else (study, [])
    generate_report(folders, tmp_path, formats=["md", "tex", "csv"], filters=filters)
    committed = {
        p.relative_to(study / "tables"): p.read_bytes() for p in (study / "tables").rglob("*") if p.is_file()
    }
    made = {
        p.relative_to(tmp_path / "tables"): p.read_bytes()
        for p in (tmp_path / "tables").rglob("*")
        if p.is_file()
    }
    assert sorted(made) == sorted(committed)
    for name, content in made.items():
        if name == Path("sources.json"):  # folders relative to where the tables were written: differs here
            continue
        assert content == committed[name], (
            f"{study.relative_to(RESULTS)}/tables/{name} is stale: rerun harness report"
        )


def test_committed_records_name_a_clean_commit_on_main_and_no_machine_path():
    """Records anyone can follow: the exact commit that made them (never `+dirty`), present in this clone's
    history, and paths relative to the results / work / cache roots (`{work}/...`), never this machine's."""
    records = sorted(RESULTS.rglob("runs/*.json"))
    assert len(records) > 100
    commits = set()
    for path in records:
        record = json.loads(path.read_text())
        name = path.relative_to(RESULTS)
        assert re.fullmatch(r"[0-9a-f]{40}", record["commit"]), f"{name}: commit {record['commit']!r}"
        assert record.get("dirty") is not True, f"{name}: made from a dirty tree"
        absolute = [s for s in strings_in(record) if s.startswith(("/", "~")) or re.match(r"[A-Za-z]:\\", s)]
        assert not absolute, f"{name}: machine paths {absolute[:3]}"
        commits.add(record["commit"])
    git = ["git", "-C", str(RESULTS.parent)]
    shallow = subprocess.run([*git, "rev-parse", "--is-shallow-repository"], capture_output=True, text=True)
    if shallow.returncode == 0 and shallow.stdout.strip() == "false":  # a full clone holds every commit
        for commit in sorted(commits):
            found = subprocess.run([*git, "cat-file", "-e", f"{commit}^{{commit}}"], capture_output=True)
            assert found.returncode == 0, f"commit {commit} named by committed records is not in this history"


def test_there_are_committed_studies():
    assert len(STUDIES) >= 5
