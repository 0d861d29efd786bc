"""`harness report`: metric vs. severity (table + band figure), eval records kept out of the main tables
where they repeat a training record, and split-bar labels that stay legible for any number of arms."""

import json
from pathlib import Path

import pandas as pd
import pytest

from harness.report import figures as report_figures
from harness.report import generate_report
from harness.report.tables import build_table


def _record(run_id, method, split, ap, seed, *, severity=None, evaluation=None, config_hash="h", extra=None):
    config = {"method": method, "seed": seed, "occlusion": {"val_seed": 0}, "method_args": extra or {}}
    if severity is not None:
        config["occlusion"]["val_severity"] = severity
    return {
        "run_id": run_id, "task": "pose", "method": method, "backbone": "hrnet_w18_small",
        "dataset": "synthetic-coco", "split": split, "network": "net", "status": "ok", "metrics": {"AP": ap},
        "higher_is_better": {"AP": True}, "primary_metric": "AP", "seed": seed, "config": config,
        "config_hash": config_hash, "data": {}, "training": {}, "curves": [], "samples": [],
        "evaluated": True, "split_role": "occluded" if split == "occluded_val" else "clean",
        "method_role": "method" if method == "dslope" else "reference", "severity": severity,
        "evaluation": evaluation,
    }  # fmt: skip


def _write(results: Path, records) -> None:
    runs = results / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    for i, r in enumerate(records):
        (runs / f"{i:03d}.json").write_text(json.dumps(r))


# AP at severities 0..4 per method and seed: the table must show mean ± std over the two seeds.
CURVES = {
    ("clean", 0): [0.60, 0.55, 0.50, 0.40, 0.30],
    ("clean", 1): [0.62, 0.57, 0.48, 0.42, 0.28],
    ("dslope", 0): [0.58, 0.56, 0.53, 0.47, 0.40],
    ("dslope", 1): [0.60, 0.58, 0.55, 0.49, 0.44],
}


@pytest.fixture
def results(tmp_path):
    records = []
    for (method, seed), values in CURVES.items():
        run = f"{method}-s{seed}"
        records.append(_record(run, method, "clean_val", 0.7, seed))
        records.append(_record(run, method, "occluded_val", values[2], seed))
        # `harness eval` on the run's own settings: the same number as the training record, not a new run.
        same = {"source_run_id": run}
        records.append(_record(f"{run}.eval-a", method, "occluded_val", values[2], seed, evaluation=same))
        for level, ap in enumerate(values):
            evaluation = {"source_run_id": run}
            records.append(_record(f"{run}.eval-b", method, "occluded_val", ap, seed, severity=level,
                                   evaluation=evaluation, config_hash=f"h{level}"))  # fmt: skip
    _write(tmp_path / "results", records)
    return tmp_path / "results"


def test_severity_table_and_band_figure(results):
    summary = generate_report(results, formats=["md", "csv"])
    table = pd.read_csv(results / "tables" / "severity_pose_synthetic-coco.csv")
    for method in ("clean", "dslope"):
        row = table[table.method == method].iloc[0]
        for level in range(5):
            values = pd.Series([CURVES[method, 0][level], CURVES[method, 1][level]])
            assert row[f"severity {level}/AP/mean"] == pytest.approx(values.mean())
            assert row[f"severity {level}/AP/std"] == pytest.approx(values.std())  # sample std (n - 1)
            assert row[f"severity {level}/AP/n"] == 2
    figure = results / "figures" / "severity_pose_synthetic-coco.png"
    assert figure.read_bytes()[:4] == b"\x89PNG"
    assert any("severity 4" in text for text in summary.markdown)
    # The main table pools the training records only: n=2 per method, not 2 + eval repeats + 5 levels.
    pose = pd.read_csv(results / "tables" / "pose.csv")
    assert set(pose["occluded_val/AP/n"]) == {2} and set(pose["clean_val/AP/n"]) == {2}


def test_an_eval_on_other_data_is_its_own_row(results):
    source = {"source_run_id": "clean-s0"}
    other = _record("clean-s0.eval-c", "clean", "occluded_val", 0.1, 0, evaluation=source,
                    config_hash="other", extra={"data_note": {"x": 1}})  # fmt: skip
    (results / "runs" / "zzz.json").write_text(json.dumps(other))
    generate_report(results, formats=["csv"])
    pose = pd.read_csv(results / "tables" / "pose.csv")
    assert 0.1 in set(pose["occluded_val/AP/mean"])


def test_split_bar_labels_never_overlap(tmp_path, monkeypatch):
    records = []
    for arm in range(12):  # twelve arms differing in long config keys, as an ablation sweep makes
        extra = {"dslope": {"enet_weight": 10.0**-arm, "a_rather_long_switch_name": arm % 2 == 0}}
        for split, ap in (("clean_val", 0.5 + arm / 100), ("occluded_val", 0.4)):
            records.append(
                {**_record(f"r{arm}", "dslope", split, ap, 0, extra=extra), "_file": f"{arm}.json"}
            )
    table = build_table("pose", "Pose", records, [], ["dataset", "method", "backbone", "network"])
    figures = []
    monkeypatch.setattr(report_figures, "_save", lambda fig, stem: figures.append(fig) or [])
    report_figures.figure_split_bars(table, tmp_path)
    (fig,) = figures
    fig.canvas.draw()
    boxes = [label.get_window_extent() for label in fig.axes[0].get_yticklabels()]
    assert len(boxes) == 12
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    assert all("enet_weight=" in label.get_text() for label in fig.axes[0].get_yticklabels())


def _summary(values: list[float], reference_error: float) -> tuple[float, float, float]:
    """By hand: mean over levels 1-4, that over level 0, Σ(1 - AP) over 1-4 relative to the reference's."""
    occluded = values[1:]
    mean = sum(occluded) / len(occluded)
    return mean, mean / values[0], sum(1 - v for v in occluded) / reference_error


def test_leaderboard_summary_with_an_external_model(results):
    external = [0.50, 0.45, 0.42, 0.35, 0.20]  # one external model, one "seed" (it was not trained)
    for level, ap in enumerate(external):
        record = _record("mmpose-x.eval-1", "external", "occluded_val", ap, 0, severity=level,
                         evaluation={"model": "mmpose:x"}, config_hash=f"x{level}")  # fmt: skip
        record.update(backbone="mmpose:x", method_role="external")
        (results / "runs" / f"ext{level}.json").write_text(json.dumps(record))
    generate_report(results, formats=["md", "csv"])
    table = pd.read_csv(results / "tables" / "severity_pose_synthetic-coco.csv")
    # The reference row of configs/report.yaml: clean on hrnet_w18_small, its Σ(1 - AP) averaged over seeds.
    reference = sum(sum(1 - v for v in CURVES["clean", s][1:]) for s in (0, 1)) / 2
    for method in ("clean", "dslope"):
        row = table[table.method == method].iloc[0]
        per_seed = pd.DataFrame([_summary(CURVES[method, s], reference) for s in (0, 1)])
        for column, name in enumerate(("mean occluded", "relative robustness", "mCE")):
            assert row[f"summary/{name}/mean"] == pytest.approx(per_seed[column].mean())
            assert row[f"summary/{name}/std"] == pytest.approx(per_seed[column].std())
            assert row[f"summary/{name}/n"] == 2
    row = table[table.method == "external"].iloc[0]
    assert row.backbone == "mmpose:x" and row["severity 4/AP/mean"] == pytest.approx(0.20)
    mean, relative, mce = _summary(external, reference)
    got = [row[f"summary/{name}/mean"] for name in ("mean occluded", "relative robustness", "mCE")]
    assert got == pytest.approx([mean, relative, mce])
    markdown = (results / "tables" / "severity_pose_synthetic-coco.md").read_text()
    header = next(line for line in markdown.splitlines() if line.startswith("| method"))
    assert header.index("severity 4") < header.index("summary mean occluded") < header.index("summary mCE")


def test_no_mce_without_a_single_reference_row(results, tmp_path):
    policy = tmp_path / "report.yaml"
    policy.write_text("robustness:\n  references:\n    - {backbone: [hrnet_w18_small]}\n")  # both rows match
    summary = generate_report(results, formats=["csv"], policy=policy)
    table = pd.read_csv(results / "tables" / "severity_pose_synthetic-coco.csv")
    assert "summary/mCE/mean" not in table.columns and "summary/relative robustness/mean" in table.columns
    assert any("no mCE" in note for note in summary.notes)
