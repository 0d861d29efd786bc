"""The backbone axis from records alone: methods × backbones (the policy headline's occluded columns), from
one results folder or several reported together. Numbers are hand-computed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from report_records import pose_record

from harness.core.errors import ConfigError
from harness.report import generate_report, read_sources
from harness.report.backbones import backbone_tables
from harness.report.policy import load_policy

# backbone -> method -> per-seed (occluded AP, kOKS_occluded)
VALUES = {
    "hrnet_w18_small": {"dslope": [(0.50, 0.60), (0.54, 0.62)], "occ_aug": [(0.52, 0.61), (0.56, 0.65)]},
    "resnet18": {"dslope": [(0.40, 0.70), (0.42, 0.72)], "occ_aug": [(0.30, 0.50), (0.34, 0.52)]},
}


def _records(backbones=VALUES) -> list[dict]:
    records = []
    for backbone, methods in backbones.items():
        for method, values in methods.items():
            for seed, (ap, koks) in enumerate(values):
                record = pose_record(method, seed, ap, model={"backbone": backbone, "sized_for": backbone})
                record["metrics"]["kOKS_occluded"] = koks
                record["higher_is_better"]["kOKS_occluded"] = True
                records.append(record)
    return records


def _write(folder: Path, records: list[dict]) -> None:
    (folder / "runs").mkdir(parents=True)
    for r in records:
        (folder / "runs" / f"{r.pop('_file')}").write_text(json.dumps(r))


def test_methods_are_rows_and_each_backbone_has_the_headline_occluded_columns():
    (table,) = backbone_tables(_records(), load_policy(), [])
    assert table.name == "pose_by_backbone"
    assert table.rows == [("dslope", "enet"), ("occ_aug", "net")]
    assert table.title.endswith("(occluded split, synthetic-coco)")
    assert table.columns == [
        ("hrnet_w18_small", "occluded AP"), ("hrnet_w18_small", "occluded kOKS_occluded"),
        ("resnet18", "occluded AP"), ("resnet18", "occluded kOKS_occluded"),
    ]  # fmt: skip
    mean, std, n = table.cells[0, 2]  # dslope on resnet18, AP
    assert (mean, n) == (pytest.approx(0.41), 2) and std == pytest.approx(0.0141421, abs=1e-6)
    assert table.cells[1, 0][0] == pytest.approx(0.54)  # occ_aug on hrnet, AP
    # bold: the better method within each backbone and metric
    assert table.best() == {(1, 0), (1, 1), (0, 2), (0, 3)}


def test_one_backbone_makes_no_table_and_mixed_settings_are_skipped_with_a_note():
    assert backbone_tables(_records({"resnet18": VALUES["resnet18"]}), load_policy(), []) == []
    mixed = _records()
    mixed[0]["config"]["train"] = {"lr": 0.1}  # one hrnet dslope run with another setting
    notes: list[str] = []
    assert backbone_tables(mixed, load_policy(), notes) == []
    assert notes == ["table pose_by_backbone: ('hrnet_w18_small', 'dslope') holds several settings, skipped"]


def test_several_results_folders_report_together_and_say_where_they_came_from(tmp_path):
    records = _records()
    _write(tmp_path / "study" / "hrnet", [r for r in records if r["backbone"] == "hrnet_w18_small"])
    _write(tmp_path / "study" / "others", [r for r in records if r["backbone"] != "hrnet_w18_small"])
    out = tmp_path / "study" / "backbones"
    folders = [tmp_path / "study" / "hrnet", tmp_path / "study" / "others"]
    generate_report(folders, out, ["md", "csv"])
    assert json.loads((out / "tables" / "sources.json").read_text()) == {
        "results": ["../hrnet", "../others"], "filters": []
    }  # fmt: skip
    table = (out / "tables" / "pose_by_backbone.md").read_text()
    assert "| dslope | enet | 0.520 ± 0.028 (n=2) |" in table.replace("**", "")
    assert "PCKh" not in table  # headline columns no record fills are not mentioned
    sources, filters = read_sources(out)
    again = tmp_path / "again"
    generate_report(sources, again, ["md", "csv"], filters)
    assert (again / "tables" / "pose_by_backbone.md").read_text() == table
    with pytest.raises(ConfigError, match="--out"):
        generate_report(folders)
