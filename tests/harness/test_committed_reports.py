"""Every committed study's tables are what `harness report` makes of its committed records, byte for byte, so
a reader on a fresh clone regenerates exactly the numbers the README quotes."""

from __future__ import annotations

from pathlib import Path

import pytest

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


def test_there_are_committed_studies():
    assert len(STUDIES) >= 5
