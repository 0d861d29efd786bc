"""The budget axis from records alone: metric vs. fine-tuning steps (table + figure), and verdicts that say
which budget they compare. Numbers are hand-computed."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from report_records import pose_record

from harness.report import generate_report
from harness.report.budget import budget_tables

# steps -> method -> per-seed occluded AP
AP = {
    150: {"dslope": [0.50, 0.52], "occ_aug": [0.51, 0.53]},
    600: {"dslope": [0.60, 0.64], "occ_aug": [0.58, 0.60]},
}


def _record(method: str, steps: int, seed: int, value: float) -> dict:
    return pose_record(method, seed, value, train={"max_steps": steps, "lr": 1e-3})


def _records() -> list[dict]:
    return [
        _record(method, steps, seed, value)
        for steps, methods in AP.items()
        for method, values in methods.items()
        for seed, value in enumerate(values)
    ]


def test_budget_table_has_a_column_per_step_count_in_numeric_order():
    records = _records() + [_record("dslope", 1200, 0, 0.70)]
    (table,) = budget_tables(records)
    assert table.name == "budget_pose_synthetic-coco_occluded"
    assert [split for split, _ in table.columns] == ["150 steps", "600 steps", "1200 steps"]
    row = next(i for i, r in enumerate(table.rows) if r[0] == "dslope")
    mean, std, n = table.cells[row, 1]
    assert (mean, n) == (pytest.approx(0.62), 2) and std == pytest.approx(statistics.stdev([0.60, 0.64]))
    assert table.cells[row, 2][:1] == (pytest.approx(0.70),)
    assert budget_tables([r for r in records if r["training"]["steps"] == 150]) == []  # one budget: no table


def test_report_writes_budget_table_figure_and_budget_labelled_verdicts(tmp_path: Path):
    runs = tmp_path / "runs"
    runs.mkdir()
    for r in _records():
        r.pop("_file")
        (runs / f"{r['run_id']}__{r['network']}__{r['split']}.json").write_text(json.dumps(r))
    summary = generate_report(tmp_path, formats=["md", "csv"])
    assert (tmp_path / "tables" / "budget_pose_synthetic-coco_occluded.md").is_file()
    assert (tmp_path / "figures" / "budget_pose_synthetic-coco_occluded.png").read_bytes()[:4] == b"\x89PNG"
    lines = {line.split(":")[0]: line for line in summary.verdicts}
    # 150 steps: differences -0.01, -0.01 (no spread: too few to judge); 600: +0.02, +0.04
    assert "-0.0100 ± 0.0000" in lines["pose/synthetic-coco/hrnet_w18_small [max_steps=150]"]
    assert "+0.030 ± 0.014" in lines["pose/synthetic-coco/hrnet_w18_small [max_steps=600]"]
