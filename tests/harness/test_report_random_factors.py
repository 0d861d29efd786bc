"""The starting checkpoint as a random factor: runs pool across `pretrain.seed`, methods pair within each
(seed, pretrain.seed) cell, and the report separates the spread between checkpoints from the spread between
run seeds. All numbers below are computed by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from report_records import pose_record

from harness.report import generate_report
from harness.report.interpret import RANDOM_FACTORS, _cell, _is_evaluated, _variant
from harness.report.spread import components
from harness.report.verdict import paired_verdicts

# cell (seed, pretrain.seed) -> occluded AP
DSLOPE = {(0, 1000): 0.50, (1, 1000): 0.52, (0, 1001): 0.60, (1, 1001): 0.64}
OCC_AUG = {(0, 1000): 0.49, (1, 1000): 0.50, (0, 1001): 0.58, (1, 1001): 0.61}


def _record(method: str, cell: tuple[int, int], value: float) -> dict:
    seed, pretrain_seed = cell
    model = {"backbone": "hrnet_w18_small", "pretrained": "embedded"}
    return pose_record(method, seed, value, model=model, pretrain={"seed": pretrain_seed, "steps": 400},
                       output={"results_dir": "{results}"})  # fmt: skip


def _records() -> list[dict]:
    return [_record("dslope", c, v) for c, v in DSLOPE.items()] + [
        _record("occ_aug", c, v) for c, v in OCC_AUG.items()
    ]


def test_pretraining_seed_pools_like_a_seed_and_pairs_within_cells():
    records = _records()
    assert RANDOM_FACTORS == ("pretrain.seed",)
    assert len({json.dumps(_variant(r), sort_keys=True) for r in records if r["method"] == "dslope"}) == 1
    assert _cell(records[2]) == (0, 1001)
    (verdict,) = paired_verdicts(records, _is_evaluated, _variant, _cell, RANDOM_FACTORS)
    # differences 0.01, 0.02, 0.02, 0.03: mean 0.02, sd sqrt(0.0002 / 3), t = 4.899 on 3 df
    assert verdict.mean == pytest.approx(0.02) and verdict.std == pytest.approx(0.0081650, abs=1e-6)
    # closed form of the t CDF on 3 df: 1/2 + (x/(1+x^2) + atan x)/pi, x = t/sqrt 3
    assert verdict.p_value == pytest.approx(0.0162766, abs=1e-6)
    # per checkpoint: 0.015 and 0.025, t = 4 on 1 df
    assert verdict.factor_means() == pytest.approx([0.015, 0.025])
    assert verdict.factor_p_value == pytest.approx(1 - 2 * math.atan(4) / math.pi)  # Cauchy: t on 1 df
    text = verdict.text()
    assert "paired over 4 cells: 2 seeds x 2 pretrain.seed" in text
    assert "dslope better, p=0.016" in text and "over the 2 pretrain.seed means: p=0.156" in text


def test_spread_between_checkpoints_and_within_one_by_hand():
    cells, values = list(DSLOPE), list(DSLOPE.values())
    mean, between, within, draws, per_draw = components(cells, values)
    assert mean == pytest.approx(0.565)
    assert between == pytest.approx(0.0777817, abs=1e-6)  # sd of 0.51 and 0.62
    assert within == pytest.approx(0.0223607, abs=1e-6)  # sqrt(mean(0.0002, 0.0008))
    assert (draws, per_draw) == (2, 2)
    assert components([(0, 1000), (1, 1000)], [0.5, 0.6]) is None  # one draw: nothing to separate


def test_report_writes_the_spread_table_and_pools_rows(tmp_path: Path):
    runs = tmp_path / "runs"
    runs.mkdir()
    for r in _records():
        (runs / f"{r['run_id']}__{r['network']}__{r['split']}.json").write_text(json.dumps(r))
    summary = generate_report(tmp_path, formats=["md"])
    spread = (tmp_path / "tables" / "spread.md").read_text()
    assert (
        "| pose/synthetic-coco/hrnet_w18_small dslope (enet) | occluded_val | AP | "
        "+0.5650 | 0.0778 | 0.0224 | 2 | 2 |" in spread
    )
    assert "dslope − occ_aug | occluded_val | AP | +0.0200 | 0.0071 | 0.0071 | 2 | 2 |" in spread
    assert any("paired over 4 cells" in line for line in summary.verdicts)
