"""A cell measured twice (a sweep run again into one folder, a resumed trial retraining its teacher) counts
once: the first-made record is reported, the repeat is listed in tables/repeats.csv. Numbers by hand."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from report_records import pose_record

from harness.report import generate_report
from harness.report.repeats import first_per_cell

DSLOPE = {0: 0.50, 1: 0.52, 2: 0.54}
OCC_AUG = {0: 0.49, 1: 0.50, 2: 0.52}


def _record(method: str, seed: int, value: float, started_at: str, run_id: str | None = None) -> dict:
    record = pose_record(method, seed, value, model={"backbone": "hrnet_w18_small"})
    record["started_at"] = started_at
    if run_id:
        record["run_id"], record["_file"] = run_id, f"{run_id}.json"
    return record


def _study() -> list[dict]:
    records = [_record("dslope", s, v, f"2026-12-04T10:0{s}:00") for s, v in DSLOPE.items()]
    records += [_record("occ_aug", s, v, f"2026-12-04T10:0{s}:00") for s, v in OCC_AUG.items()]
    # occ_aug seed 1 again, later, with another value; its file name sorts first, so order by start time
    records.append(_record("occ_aug", 1, 0.60, "2026-12-04T12:00:00", run_id="a_pose_occ_aug_repeat"))
    return records


def test_first_made_record_of_a_cell_is_kept_and_the_repeat_named():
    records = _study()
    failed = {**_record("occ_aug", 2, 0.0, "2026-12-04T13:00:00", run_id="z_failed"), "status": "failed"}
    kept, repeats = first_per_cell([*records, failed])
    assert len(kept) == 7 and failed in kept  # a failed record counts nowhere, so it is never a repeat
    ((repeat, reported),) = repeats
    assert repeat["run_id"] == "a_pose_occ_aug_repeat"
    assert (reported["method"], reported["seed"], reported["metrics"]["AP"]) == ("occ_aug", 1, 0.50)
    other_split = {**records[-1], "split": "clean_val", "split_role": "clean"}
    assert len(first_per_cell([*records[:-1], other_split])[1]) == 0  # another split is another cell


def test_report_pools_and_pairs_the_first_record_only(tmp_path: Path):
    runs = tmp_path / "runs"
    runs.mkdir()
    for r in _study():
        (runs / f"{r['run_id']}__{r['network']}__{r['split']}.json").write_text(json.dumps(r))
    summary = generate_report(tmp_path, formats=["md", "csv"])
    # occ_aug 0.49, 0.50, 0.52: mean 0.5033, sd 0.0153 over 3 seeds (the repeat's 0.60 would make n=4)
    table = (tmp_path / "tables" / "pose.md").read_text()
    assert "0.503 ± 0.015 (n=3)" in table and "(n=4)" not in table
    (verdict,) = [v for v in summary.verdicts if "occ_aug" in v]
    assert "+0.0167 ± 0.0058" in verdict  # differences 0.01, 0.02, 0.02 (with the repeat: 0.01, -0.08, 0.02)
    with open(tmp_path / "tables" / "repeats.csv") as f:
        (row,) = list(csv.DictReader(f))
    assert row["run_id"] == "a_pose_occ_aug_repeat"
    assert row["reported_run_id"] == "pose_occ_aug_hrnet_w18_small_s1_pNone_150"
    assert any("1 records repeat a cell" in note for note in summary.notes)


def test_no_repeats_no_file(tmp_path: Path):
    runs = tmp_path / "runs"
    runs.mkdir()
    for r in _study()[:-1]:
        (runs / f"{r['run_id']}__{r['network']}__{r['split']}.json").write_text(json.dumps(r))
    summary = generate_report(tmp_path, formats=["csv"])
    assert not (tmp_path / "tables" / "repeats.csv").exists()
    assert not [note for note in summary.notes if "repeat" in note]
    assert "+0.0167 ± 0.0058 (paired over 3 seeds" in summary.verdicts[0]
