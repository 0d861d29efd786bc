"""The ablation table: each arm minus the default D-Slope, paired per run seed on one pretraining checkpoint
across several results folders (the from-scratch arm, which has no checkpoint, by run seed); hand-computed
differences and a reference t-test."""

import json

import pytest
from scipy import stats

from benchmarks.validity_ablation import ablation_values, arm_of, paired_rows, to_markdown
from harness.report import load_records


def _record(folder, name, *, pretrain_seed, seed, ap, method="dslope", network="enet", **settings):
    scratch = pretrain_seed is None  # as the harness writes it: no pretrain section without pretraining
    record = {
        "run_id": name, "task": "pose", "method": method, "network": network, "split": "occluded_val",
        "status": "ok", "seed": seed, "evaluated": network in ("enet", "net"), "severity": None,
        "evaluation": None, "metrics": {"AP": ap},
        "config": {"model": {"pretrained": None if scratch else "embedded"},
                   "method_args": {method: settings},
                   "pretrain": None if scratch else {"seed": pretrain_seed}},
    }  # fmt: skip
    (folder / "runs").mkdir(parents=True, exist_ok=True)
    (folder / "runs" / f"{name}__{network}__occluded_val.json").write_text(json.dumps(record))


@pytest.fixture
def folders(tmp_path):
    study, ablation = tmp_path / "study", tmp_path / "ablation"
    for seed, ap in enumerate([0.50, 0.52, 0.55]):
        _record(study, f"d{seed}", pretrain_seed=1000, seed=seed, ap=ap)
        _record(study, f"g{seed}", pretrain_seed=1000, seed=seed, ap=0.9, network="gnet")  # not evaluated
        _record(study, f"o{seed}", pretrain_seed=1001, seed=seed, ap=0.10)  # another checkpoint
        _record(study, f"c{seed}", pretrain_seed=1000, seed=seed, ap=0.0, method="occ_aug", network="net")
    for seed, ap in enumerate([0.51, 0.55, 0.56]):
        _record(ablation, f"s{seed}", pretrain_seed=1000, seed=seed, ap=ap, feature_reduction="sum")
    for seed, ap in enumerate([0.05, 0.06]):
        _record(ablation, f"x{seed}", pretrain_seed=None, seed=seed, ap=ap)
    return study, ablation


def test_arms_pair_per_run_seed_on_the_chosen_checkpoint_across_folders(folders):
    rows = {r["arm"]: r for r in paired_rows(ablation_values(load_records(list(folders)), checkpoint=1000))}
    assert set(rows) == {"branch sum", "from scratch"}
    branch = rows["branch sum"]
    assert branch["seeds"] == [0, 1, 2]
    assert branch["diff_mean"] == pytest.approx((0.01 + 0.03 + 0.01) / 3)
    assert branch["default_mean"] == pytest.approx(0.52333333)  # checkpoint 1001's 0.10 left out
    expected_p = stats.ttest_rel([0.51, 0.55, 0.56], [0.50, 0.52, 0.55]).pvalue
    assert branch["p"] == pytest.approx(expected_p) and 0 < branch["p"] < 1
    scratch = rows["from scratch"]  # no checkpoint of its own: paired with checkpoint 1000's seeds 0 and 1
    assert scratch["seeds"] == [0, 1]
    assert scratch["diff_mean"] == pytest.approx(((0.05 - 0.50) + (0.06 - 0.52)) / 2)
    table = to_markdown(list(rows.values()))
    assert "| branch sum | occluded_val | AP | 0.540 | 0.523 | +0.0167 ± 0.0115 | 0,1,2 |" in table


def test_several_checkpoints_without_a_choice_or_an_absent_choice_is_an_error(folders):
    with pytest.raises(SystemExit, match=r"several pretraining checkpoints \[1000, 1001\]: choose one"):
        ablation_values(load_records(list(folders)))
    with pytest.raises(
        SystemExit, match=r"no D-Slope run from pretraining checkpoint 7; the records have \[1000, 1001\]"
    ):
        ablation_values(load_records(list(folders)), checkpoint=7)


def test_arm_names():
    base = {"method": "dslope", "config": {"model": {"pretrained": "embedded"}, "method_args": {}}}
    assert arm_of(base) == "default"
    scratch = {**base, "config": {"model": {"pretrained": None}}}
    assert arm_of(scratch) == "from scratch"
    settings = {"dslope": {"independent_init": True}}
    independent = {**base, "config": {"model": {"pretrained": "x"}, "method_args": settings}}
    assert arm_of(independent) == "independent init"
