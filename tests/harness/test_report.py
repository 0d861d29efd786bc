"""`harness report` on hand-written records with known numbers: tables, figures, filters, determinism."""

import json
import re
import statistics
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.core.errors import ConfigError
from harness.report import Filter, apply_filters, generate_report, parse_filters, parse_formats

runner = CliRunner()

CLEAN_AP = {"clean_val": [0.61, 0.64, 0.60], "occluded_val": [0.41, 0.45, 0.40]}
DSLOPE_AP = {"clean_val": [0.62, 0.63, 0.65], "occluded_val": [0.50, 0.52, 0.47]}
GNET_AP = [0.70, 0.71, 0.72]  # best clean AP, but GNet is not the evaluated network: never bold
SKELETON = [[0, 1], [1, 2]]


def _config(method: str, seed: int, **dslope) -> dict:
    return {
        "task": "pose",
        "method": method,
        "seed": seed,
        "device": "cpu",
        "model": {"backbone": "hrnet_w32"},
        "train": {"max_steps": 40},
        "method_args": {"dslope": {"enet_weight": 1e-3, "feature_loss": True, **dslope}},
        "occlusion": {"val_seed": 0},
        "output": {"results_dir": f"/somewhere/{seed}"},
    }


def _record(run_id, method, network, split, metrics, seed=0, *, task="pose", dataset="synthetic", **extra):
    record = {
        "run_id": run_id,
        "task": task,
        "method": method,
        "backbone": "hrnet_w32",
        "dataset": dataset,
        "split": split,
        "network": network,
        "status": "ok",
        "metrics": metrics,
        "higher_is_better": {name: name not in ("NME", "FR@0.1") for name in metrics},
        "seed": seed,
        "config": _config(method, seed),
        "config_hash": "h",
        "data": {"skeleton": SKELETON},
        "training": {"steps": 40},
        "reason": None,
        "curves": [],
        "samples": [],
    }
    record.update(extra)
    return record


def _write(results: Path, records: list[dict]) -> None:
    runs = results / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    for r in records:
        (runs / f"{r['run_id']}__{r['network']}__{r['split']}.json").write_text(json.dumps(r, indent=2))


def _pose_records() -> list[dict]:
    records = []
    for seed in range(3):
        for split in ("clean_val", "occluded_val"):
            ap_c, ap_d = CLEAN_AP[split][seed], DSLOPE_AP[split][seed]
            records.append(
                _record(f"clean-s{seed}", "clean", "net", split, {"AP": ap_c, "AR": ap_c + 0.1}, seed)
            )
            records.append(
                _record(f"dslope-s{seed}", "dslope", "enet", split, {"AP": ap_d, "AR": ap_d + 0.1}, seed)
            )
        records.append(_record(f"dslope-s{seed}", "dslope", "gnet", "clean_val", {"AP": GNET_AP[seed]}, seed))
    records[0]["curves"] = [
        {"epoch": 1, "step": 10, "train_loss": 0.9, "val_AP": 0.3},
        {"epoch": 2, "step": 20, "train_loss": 0.5, "val_AP": 0.6},
    ]
    failed = _record(
        "broken", "dslope", None, None, {}, 7, status="failed", reason="loss became nan at step 3"
    )
    return [*records, failed]


def _face_records() -> list[dict]:
    """Lower NME / FR is better: dslope must be bold for NME even though its number is smaller."""
    common = {"task": "face_alignment", "dataset": "cofw"}
    return [
        _record(
            "fa-clean", "clean", "net", "occluded_val", {"NME": 0.052, "FR@0.1": 0.08, "AUC": 0.55}, **common
        ),
        _record(
            "fa-dslope",
            "dslope",
            "enet",
            "occluded_val",
            {"NME": 0.041, "FR@0.1": 0.09, "AUC": 0.50},
            **common,
        ),
    ]


@pytest.fixture
def results(tmp_path) -> Path:
    _write(tmp_path / "results", [*_pose_records(), *_face_records()])
    return tmp_path / "results"


def _row(frame: pd.DataFrame, method: str) -> pd.Series:
    return frame[frame.method == method].iloc[0]


def test_tables_hold_exactly_the_means_and_stds(results):
    generate_report(results, formats=["md", "csv"])
    tables = results / "tables"
    frame = pd.read_csv(tables / "pose.csv")
    assert list(frame.method) == ["clean", "dslope", "dslope (gnet)"]
    for method, values in (("clean", CLEAN_AP), ("dslope", DSLOPE_AP)):
        row = _row(frame, method)
        for split, aps in values.items():
            assert row[f"{split}/AP/mean"] == pytest.approx(statistics.mean(aps), abs=1e-12)
            assert row[f"{split}/AP/std"] == pytest.approx(statistics.stdev(aps), abs=1e-12)
            assert row[f"{split}/AP/n"] == 3
            cell = f"{statistics.mean(aps):.3f} ± {statistics.stdev(aps):.3f} (n=3)"
            assert cell in (tables / "pose.md").read_text()
    gnet = _row(frame, "dslope (gnet)")
    assert gnet["occluded_val/AP/n"] == 0 and pd.isna(gnet["occluded_val/AP/mean"])
    markdown = (tables / "pose.md").read_text()
    gnet_line = next(line for line in markdown.splitlines() if line.startswith("| synthetic | dslope (gnet)"))
    assert "–" in gnet_line  # the occluded cell GNet has no record for
    provenance = pd.read_csv(tables / "pose_provenance.csv")
    assert set(provenance.run_id) == {f"{m}-s{s}" for m in ("clean", "dslope") for s in range(3)}


def test_best_per_column_follows_higher_is_better(results):
    generate_report(results, formats=["md"])
    pose = (results / "tables" / "pose.md").read_text()
    occluded = f"{statistics.mean(DSLOPE_AP['occluded_val']):.3f}"
    assert f"**{occluded} ±" in pose
    gnet_clean = f"{statistics.mean(GNET_AP):.3f}"
    assert f"{gnet_clean} ±" in pose and f"**{gnet_clean}" not in pose  # reference row is not ranked
    assert f"**{statistics.mean(DSLOPE_AP['clean_val']):.3f} ±" in pose  # best of the ranked rows
    face = (results / "tables" / "face_alignment.md").read_text()
    assert "**0.0410 (n=1)**" in face and "**0.0520" not in face  # NME: lower is better
    assert "**0.0800 (n=1)**" in face  # FR@0.1: lower is better
    assert "**0.550 (n=1)**" in face and "**0.500" not in face  # AUC: higher is better


def test_failed_records_are_excluded_and_listed(results):
    generate_report(results)
    tables = results / "tables"
    pose = (tables / "pose.md").read_text()
    failed_section = pose.split("### Failed runs")[1]
    assert "broken" in failed_section and "loss became nan at step 3" in failed_section
    assert "broken" not in pose.split("### Failed runs")[0]
    assert "broken" not in (tables / "pose_provenance.csv").read_text()
    assert "loss became nan at step 3" in (tables / "failed_runs.csv").read_text()
    assert "% Failed runs:" in (tables / "pose.tex").read_text()


def test_figures_are_valid_png_and_pdf(results):
    summary = generate_report(results, formats=["csv"])
    figures = results / "figures"
    for stem in ("pose_splits", "face_alignment_splits", "curves/clean-s0"):
        assert (figures / f"{stem}.png").read_bytes()[:4] == b"\x89PNG"
        assert (figures / f"{stem}.pdf").read_bytes()[:4] == b"%PDF"
    assert not (figures / "curves" / "dslope-s0.png").exists()  # no curves in that record
    assert any("severity" in note for note in summary.notes)  # no severities yet: skipped and said so
    assert any("qualitative" in note for note in summary.notes)


def _tabular_ok(tex: str, tables: int = 1) -> None:
    """Balanced braces, `tables` tabulars (a headline and its appendix: 2), and every row as wide as its
    column spec (multicolumn spans counted)."""
    unescaped = re.sub(r"\\[{}]", "", tex.replace("\\textbackslash{}", ""))
    body = "\n".join(line for line in unescaped.splitlines() if not line.lstrip().startswith("%"))
    depth = 0
    for ch in body:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0
    assert body.count("\\begin{tabular}") == body.count("\\end{tabular}") == tables
    for block in body.split("\\begin{tabular}")[1:]:
        spec = re.match(r"\{([lcr]+)\}", block).group(1)
        inner = block.split("\\end{tabular}")[0]
        rows = [line for line in inner.splitlines() if line.rstrip().endswith("\\\\")]
        assert len(rows) >= 2
        for line in rows:
            cells = re.sub(r"\\&", "", line.rstrip()[:-2]).split("&")
            spans = [int(m.group(1)) if (m := re.search(r"\\multicolumn\{(\d+)\}", c)) else 1 for c in cells]
            assert sum(spans) == len(spec), line


def test_latex_tables_are_structurally_valid(results):
    generate_report(results, formats=["tex"])
    for name in ("pose", "face_alignment"):  # both lead with a headline (configs/report.yaml)
        tex = (results / "tables" / f"{name}.tex").read_text()
        _tabular_ok(tex, tables=2)
        assert "\\textbf{" in tex
    pose = (results / "tables" / "pose.tex").read_text()
    assert "$\\pm$" in pose and "dslope-s1 (seed 1)" in pose and "clean\\_val" in pose


def test_filters_select_records(results, tmp_path):
    summary = generate_report(results, tmp_path / "a", ["csv"], parse_filters(["method=dslope", "seed=0"]))
    frame = pd.read_csv(tmp_path / "a" / "tables" / "pose.csv")
    assert list(frame.method) == ["dslope", "dslope (gnet)"]
    assert frame.iloc[0]["occluded_val/AP/n"] == 1 and pd.isna(frame.iloc[0]["occluded_val/AP/std"])
    assert frame.iloc[0]["occluded_val/AP/mean"] == DSLOPE_AP["occluded_val"][0]
    assert list(pd.read_csv(tmp_path / "a" / "tables" / "face_alignment.csv").method) == ["dslope"]
    assert summary.selected == 4
    generate_report(results, tmp_path / "b", ["csv"], parse_filters(["task=pose", "split=occluded_val"]))
    assert not (tmp_path / "b" / "tables" / "face_alignment.csv").exists()
    frame = pd.read_csv(tmp_path / "b" / "tables" / "pose.csv")
    assert list(frame.method) == ["clean", "dslope"]  # GNet stays a reference network, not promoted
    records = [{"config": {"model": {"backbone": "resnet50"}}}, {"config": {"model": {"backbone": "x"}}}]
    assert apply_filters(records, [Filter("config.model.backbone", "resnet50")]) == records[:1]
    feature_off = [{"config": {"a": {"b": False}}}]
    assert apply_filters(feature_off, [Filter("config.a.b", "false")]) == feature_off


def test_unknown_filter_key_or_format_is_a_one_line_error(results):
    with pytest.raises(ConfigError, match="unknown filter key 'colour'"):
        parse_filters(["colour=red"])
    with pytest.raises(ConfigError, match="must be key=value"):
        parse_filters(["method"])
    with pytest.raises(ConfigError, match="unknown report format 'docx'"):
        parse_formats("md,docx")
    result = runner.invoke(app, ["report", "--results", str(results), "--filter", "config.model.backbon=x"])
    assert result.exit_code == 2
    assert "unknown filter key 'config.model.backbon'" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_twice_gives_identical_bytes(results, tmp_path):
    _add_showcase(results, tmp_path)

    def snapshot() -> dict[str, bytes]:
        return {
            str(p.relative_to(results)): p.read_bytes()
            for p in sorted(results.rglob("*"))
            if p.is_file() and "runs" not in p.parts
        }

    generate_report(results)
    first = snapshot()
    generate_report(results)
    assert snapshot() == first
    assert "figures/qualitative_pose_synthetic_hrnet_w32.pdf" in first and len(first) > 10


def test_no_results_says_so_and_exits_zero(tmp_path):
    result = runner.invoke(app, ["report", "--results", str(tmp_path / "empty")])
    assert result.exit_code == 0
    assert f"no results in {tmp_path / 'empty'}" in result.output
    assert not (tmp_path / "empty" / "tables").exists()


def test_cli_writes_tables_and_figures_to_out(results, tmp_path):
    out = tmp_path / "paper"
    result = runner.invoke(
        app, ["report", "--results", str(results), "--out", str(out), "--format", "md,tex"]
    )
    assert result.exit_code == 0, result.output
    assert (out / "tables" / "pose.md").is_file() and (out / "tables" / "pose.tex").is_file()
    assert not (out / "tables" / "pose.csv").exists() and (out / "figures" / "pose_splits.png").is_file()
    assert "1 failed" in result.output


def _add_showcase(results: Path, tmp_path: Path) -> None:
    """Tiny image + samples on the occluded split of clean-s0 and dslope-s0 (ann 2 only in both)."""
    import matplotlib.image
    import numpy as np

    image = tmp_path / "person.png"
    matplotlib.image.imsave(image, np.linspace(0, 1, 40 * 30 * 3).reshape(40, 30, 3))
    truth = [
        v for k in range(17) for v in (5.0 + k % 4 * 4, 4.0 + k * 1.5, 2.0 if k < 16 else 0.0)
    ]  # COCO-17

    def sample(ann_id: int, shift: float) -> dict:
        prediction = [v + shift if i % 3 != 2 else 0.9 for i, v in enumerate(truth)]
        box = [2.0, 2.0, 20.0, 30.0]
        return {
            "image": str(image),
            "ann_id": ann_id,
            "box": box,
            "ground_truth": truth,
            "prediction": prediction,
        }

    for run_id, network, samples in (
        ("clean-s0", "net", [sample(1, 3.0), sample(2, 3.0)]),
        ("dslope-s0", "enet", [sample(2, 1.0), sample(3, 1.0)]),
    ):
        path = results / "runs" / f"{run_id}__{network}__occluded_val.json"
        record = json.loads(path.read_text())
        record["samples"] = samples
        path.write_text(json.dumps(record))


def test_qualitative_grid_from_saved_samples(results, tmp_path, monkeypatch):
    """The grid is drawn by the records' task (`Task.draw_prediction`): ground truth, reference, method."""
    from tasks.pose.task import PoseTask

    drawn = []
    original = PoseTask.draw_prediction

    def spy(self, image, prediction):
        drawn.append((prediction["ground_truth"], prediction["keypoints"][2::3][-1]))
        return original(self, image, prediction)

    monkeypatch.setattr(PoseTask, "draw_prediction", spy)
    _add_showcase(results, tmp_path)
    summary = generate_report(results, formats=["md"])
    assert drawn == [(True, 0.0), (False, 0.9), (False, 0.9)]  # one row (ann 2): GT with an unlabelled joint
    stem = results / "figures" / "qualitative_pose_synthetic_hrnet_w32"
    assert stem.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert stem.with_suffix(".pdf").read_bytes()[:4] == b"%PDF"
    assert not any("qualitative" in note for note in summary.notes)
    (tmp_path / "person.png").unlink()
    summary = generate_report(results, tmp_path / "again", ["md"])
    assert any("sample images are not on this machine" in note for note in summary.notes)


def test_severity_curve_needs_two_severities(tmp_path):
    records = []
    for severity, ap in ((0.2, 0.6), (0.4, 0.5), (0.6, 0.3)):
        for method, network in (("clean", "net"), ("dslope", "enet")):
            record = _record(f"{method}-{severity}", method, network, "occluded_val", {"AP": ap}, 0)
            record["config"]["occlusion"]["severity"] = severity
            records.append(record)
    _write(tmp_path / "results", records)
    summary = generate_report(tmp_path / "results", formats=["md"])
    assert (tmp_path / "results" / "figures" / "severity_pose_synthetic.png").read_bytes()[:4] == b"\x89PNG"
    assert not any("severity" in note for note in summary.notes)


def test_ablation_rows_by_differing_switches_and_variant_column(tmp_path):
    records = []
    for seed in range(2):
        for feature_loss, ap in ((True, 0.5 + seed / 100), (False, 0.4 + seed / 100)):
            record = _record(f"abl-{feature_loss}-{seed}", "dslope", "enet", "occluded_val", {"AP": ap}, seed)
            record["config"] = _config("dslope", seed, feature_loss=feature_loss)
            records.append(record)
    _write(tmp_path / "results", records)
    generate_report(tmp_path / "results", formats=["csv", "tex"])
    tables = tmp_path / "results" / "tables"
    ablation = pd.read_csv(tables / "ablation.csv")
    assert list(ablation.feature_loss) == [False, True]
    assert list(ablation["occluded_val/AP/mean"]) == pytest.approx([0.405, 0.505])
    assert list(ablation["occluded_val/AP/n"]) == [2, 2]
    _tabular_ok((tables / "ablation.tex").read_text())
    pose = pd.read_csv(tables / "pose.csv")  # same method and backbone, different configs: never pooled
    # Two arms, one each: no majority, so both name their value, by the key's shortest unambiguous suffix.
    assert list(pose.config) == ["feature_loss=false", "feature_loss=true"]


def test_report_prints_tables_and_a_paired_verdict_computed_from_the_records(tmp_path):
    from scipy.stats import ttest_rel

    _write(tmp_path, _pose_records())
    result = runner.invoke(app, ["report", "--results", str(tmp_path)])
    assert result.exit_code == 0, result.output
    diffs = [d - c for d, c in zip(DSLOPE_AP["occluded_val"], CLEAN_AP["occluded_val"], strict=True)]
    p = ttest_rel(DSLOPE_AP["occluded_val"], CLEAN_AP["occluded_val"]).pvalue
    expected = (
        f"pose/synthetic/hrnet_w32: dslope − clean on occluded_val AP: {statistics.mean(diffs):+.3f} ± "
        f"{statistics.stdev(diffs):.3f} (paired over 3 seeds; dslope better, p={p:.3f})"
    )
    assert expected in result.output
    assert "± " in result.output.split("Verdicts")[0]  # the mean ± std table is printed first
    clean_line = next(line for line in result.output.splitlines() if "on clean_val AP" in line)
    assert "no significant difference" in clean_line
    assert expected in (tmp_path / "tables" / "verdicts.md").read_text()


def test_verdict_respects_lower_is_better_and_single_seeds():
    from harness.report.verdict import paired_verdicts

    records = [
        _record(
            f"{m}-s{s}",
            m,
            "enet" if m == "dslope" else "net",
            "occluded_val",
            {"NME": v},
            s,
            task="face_alignment",
        )
        for m, values in (("dslope", [4.0, 4.1, 3.9]), ("occ_aug", [5.0, 5.3, 5.1]))
        for s, v in enumerate(values)
    ]
    (verdict,) = paired_verdicts(records, lambda r: True, lambda r: {})
    assert verdict.baseline == "occ_aug" and verdict.mean == pytest.approx(-1.133333, abs=1e-5)
    assert "dslope better" in verdict.text()
    (single,) = paired_verdicts(records[:1] + records[3:4], lambda r: True, lambda r: {})
    assert single.text().endswith("paired over 1 seed; too few seeds to judge)")


def test_declared_primary_metric_wins_over_the_first_listed():
    """Records are written with sorted keys, so a face alignment record lists AUC@0.1 before NME; the record's
    `primary_metric` (its task's) decides what verdicts and figures use."""
    from harness.report import _declared_primary, _primary_metric
    from harness.report.verdict import paired_verdicts

    metrics = {"AUC@0.1": 0.6, "FR@0.1": 0.1, "NME": 0.05}
    assert _primary_metric(metrics) == "AUC@0.1"  # a record predating the field: the first one
    assert _primary_metric(metrics, "NME") == "NME"
    records = [
        _record(
            f"{m}-s{s}",
            m,
            "enet" if m == "dslope" else "net",
            "occluded_val",
            {"AUC@0.1": 0.5, "NME": v},
            s,
            task="face_alignment",
            primary_metric="NME",
        )
        for m, values in (("dslope", [0.040, 0.041, 0.039]), ("clean", [0.050, 0.053, 0.051]))
        for s, v in enumerate(values)
    ]
    assert _declared_primary(records) == "NME"
    assert _declared_primary([*records, _record("x", "clean", "net", "clean_val", {"AP": 1.0})]) == "NME"
    assert _declared_primary([records[0], {**records[1], "primary_metric": "AUC@0.1"}]) is None
    (verdict,) = paired_verdicts(records, lambda r: True, lambda r: {})
    assert verdict.metric == "NME" and "dslope better" in verdict.text()


def test_verdicts_keep_dslope_variants_apart():
    """D-Slope runs with other imitation weights are another arm, each compared with the same baselines."""
    from harness.report.verdict import paired_verdicts

    records = []
    for seed, (paper, light, clean) in enumerate(
        ((0.40, 0.52, 0.50), (0.42, 0.55, 0.51), (0.41, 0.54, 0.49))
    ):
        for method, value, weight in (
            ("dslope", paper, 1e-3),
            ("dslope", light, 1e-4),
            ("clean", clean, None),
        ):
            record = _record(f"{method}{weight}-s{seed}", method, "enet", "occluded_val", {"AP": value}, seed)
            if weight is not None:
                record["config"]["method_args"]["dslope"]["enet_weight"] = weight
            records.append(record)
    verdicts = {v.candidate: v for v in paired_verdicts(records, lambda r: True, lambda r: {})}
    assert set(verdicts) == {"dslope[enet_weight=0.001]", "dslope[enet_weight=0.0001]"}
    assert verdicts["dslope[enet_weight=0.001]"].mean == pytest.approx(-0.09)
    assert verdicts["dslope[enet_weight=0.0001]"].mean == pytest.approx((0.02 + 0.04 + 0.05) / 3)


def _roles(record: dict, evaluated: bool, split_role: str, method_role: str) -> dict:
    return {**record, "evaluated": evaluated, "split_role": split_role, "method_role": method_role}


def test_report_reads_roles_from_records_not_names(tmp_path):
    """Methods named neither dslope nor clean: the record fields say who is studied and which network counts.

    `mine` evaluates `student`, scored on the clean split only, while `helper` is scored on both splits: the
    old split-count guess would pick `helper`, the records say `student`. Its split `zz_clean` is the clean
    role, so it comes first although it sorts last by name.
    """
    records = []
    for seed, (mine, other) in enumerate(((0.50, 0.40), (0.52, 0.41), (0.55, 0.43))):
        records.append(
            _roles(
                _record(f"m-s{seed}", "mine", "student", "zz_clean", {"AP": mine}, seed),
                True,
                "clean",
                "method",
            )
        )
        for split in ("zz_clean", "hard"):
            records.append(
                _roles(
                    _record(f"m-s{seed}", "mine", "helper", split, {"AP": 0.9}, seed),
                    False,
                    "clean" if split == "zz_clean" else "extra",
                    "method",
                )
            )
        records.append(
            _roles(
                _record(f"o-s{seed}", "other", "net", "zz_clean", {"AP": other}, seed),
                True,
                "clean",
                "baseline",
            )
        )
    _write(tmp_path, records)
    summary = generate_report(tmp_path, formats=["csv"])
    frame = pd.read_csv(tmp_path / "tables" / "pose.csv")
    assert list(frame.method) == ["mine", "mine (helper)", "other"]  # helper: a reference row
    assert [c for c in frame.columns if c.endswith("/mean")] == ["zz_clean/AP/mean", "hard/AP/mean"]
    (verdict,) = summary.verdicts
    assert verdict.startswith("pose/synthetic/hrnet_w32: mine − other on zz_clean AP: +0.110 ± 0.010")
    assert "mine better" in verdict
    assert any("table ablation: the mine runs do not differ in method_args.mine" in n for n in summary.notes)


def test_old_records_get_their_roles_in_one_place():
    from harness.core.roles import complete_records

    old = [
        _record("d", "dslope", "enet", "clean_val", {"AP": 0.5}),
        _record("d", "dslope", "enet", "occluded_val", {"AP": 0.4}),
        _record("d", "dslope", "gnet", "clean_val", {"AP": 0.6}),
        _record("c", "clean", "net", "occluded_val", {"AP": 0.3}),
        _record("g", "gone", "net", "extra_val", {"AP": 0.3}),
    ]
    new = _roles(_record("n", "occ_aug", "net", "clean_val", {"AP": 0.5}), False, "extra", "method")
    done = complete_records([*old, new])
    assert [(r["evaluated"], r["split_role"], r["method_role"]) for r in done] == [
        (True, "clean", "method"),
        (True, "occluded", "method"),
        (False, "clean", "method"),
        (True, "occluded", "reference"),
        (True, "extra", None),  # a method no longer registered has no role
        (False, "extra", "method"),  # fields a record carries are kept as they are
    ]


def test_report_policy_file_decides_tables_and_a_bad_one_is_named(tmp_path):
    _write(tmp_path, _pose_records())
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "tables:\n  - {name: mine, title: Mine, where: {method: [clean]}}\n"
        "ablation: {name: abl, title: 'Ablation of {method}'}\n"
    )
    summary = generate_report(tmp_path, tmp_path / "out", ["csv"], policy=policy)
    names = sorted(p.name for p in summary.tables)
    # clean records in `mine`; the dslope records no table takes get their task's table.
    tables = ["mine.csv", "mine_provenance.csv", "pose.csv", "pose_provenance.csv"]
    assert names == ["failed_runs.csv", *tables, "verdicts.md"]
    assert set(pd.read_csv(tmp_path / "out" / "tables" / "mine.csv").method) == {"clean"}
    assert "dslope" in set(pd.read_csv(tmp_path / "out" / "tables" / "pose.csv").method)
    policy.write_text("tables:\n  - {name: x, title: X, wher: {task: [pose]}}\n")
    with pytest.raises(ConfigError, match=r"policy.yaml: tables\.0\.wher: Extra inputs are not permitted"):
        generate_report(tmp_path, tmp_path / "out", ["csv"], policy=policy)


def test_verdict_without_a_declared_direction_does_not_say_better():
    from harness.report.verdict import paired_verdicts

    records = [
        _record(f"{m}-s{s}", m, "net", "occluded_val", {"score": v}, s, higher_is_better={})
        for m, values in (("dslope", [4.0, 4.1, 3.9]), ("clean", [5.0, 5.3, 5.1]))
        for s, v in enumerate(values)
    ]
    (verdict,) = paired_verdicts(records, lambda r: True, lambda r: {})
    assert verdict.higher_is_better is None
    assert "significant difference (the metric declares no direction)" in verdict.text()
    assert "better" not in verdict.text() and "worse" not in verdict.text()


def test_runs_pool_across_their_per_seed_prerequisite_pointer():
    """A distillation run's teacher dir differs per seed; it must not split the runs into n=1 rows."""
    from harness.core.roles import complete_records
    from harness.report.interpret import _variant

    def record(seed, teacher, key="method_args.distill.teacher"):
        config = {"seed": seed, "method": "distill", "method_args": {"distill": {"teacher": teacher, "x": 1}}}
        return {"method": "distill", "seed": seed, "config": config, "prerequisite_key": key}

    a, b = record(0, "/w/clean_s0"), record(1, "/w/clean_s1")
    assert _variant(a) == _variant(b) == {"method": "distill", "method_args.distill.x": 1}
    old = [{k: v for k, v in r.items() if k != "prerequisite_key"} for r in (a, b)]
    complete_records(old)  # records written before the field get it from the registered method
    assert old[0]["prerequisite_key"] == "method_args.distill.teacher"
    assert _variant(old[0]) == _variant(old[1])
