"""The paper's table: a headline of the columns the policy names, row labels that say only what sets a row
apart, and a split figure that stays legible for many arms."""

import json
import re
import statistics
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.report import generate_report

ROOT = Path(__file__).resolve().parents[2]
HEADLINE = ["clean AP", "occluded AP", "occluded AP_occluded", "occluded kOKS_occluded"]


def _record(run_id, method, network, split, metrics, seed, config, **extra) -> dict:
    record = {
        "run_id": run_id, "task": "pose", "method": method, "backbone": "hrnet_w18_small",
        "dataset": "synthetic-coco", "split": split, "network": network, "status": "ok", "metrics": metrics,
        "higher_is_better": dict.fromkeys(metrics, True), "primary_metric": "AP", "seed": seed,
        "config": config, "config_hash": "h", "data": {}, "training": {}, "curves": [], "samples": [],
        "evaluated": network != "gnet", "split_role": split.removesuffix("_val"),
        "method_role": {"dslope": "method", "clean": "reference"}.get(method, "baseline"),
    }  # fmt: skip
    record.update(extra)
    return record


def _config(method: str, seed: int, pretrained="embedded", **dslope) -> dict:
    """A run config as records carry it: the `pretrain` section exists only with `model.pretrained: embedded`
    (RunConfig.to_dict), so a from-scratch arm lacks six keys the others have."""
    config = {
        "task": "pose", "method": method, "seed": seed, "model": {"backbone": "hrnet_w18_small",
        "pretrained": pretrained}, "method_args": {"dslope": {"independent_init": False, **dslope}},
        "output": {"results_dir": "/x"},
    }  # fmt: skip
    if pretrained == "embedded":
        config["pretrain"] = {"steps": 400, "images": 1500, "batch_size": 32, "lr": 0.002, "seed": 1000}
    return config


def _metrics(base: float, split: str) -> dict:
    metrics = {"AP": base, "AP50": base + 0.2, "AR": base + 0.05}
    if split == "occluded_val":
        metrics |= {"AP_occluded": base / 2, "kOKS_occluded": base + 0.1}
    return metrics


ARMS = {  # name -> (method, network, config kwargs, AP on clean val per seed)
    "clean": ("clean", "net", {}, [0.70, 0.69, 0.71]),
    "dslope": ("dslope", "enet", {}, [0.66, 0.67, 0.68]),
    "scratch": ("dslope", "enet", {"pretrained": None}, [0.08, 0.07, 0.09]),
    "indep": ("dslope", "enet", {"independent_init": True}, [0.67, 0.68, 0.66]),
}


def _records() -> list[dict]:
    records = []
    for arm, (method, network, kwargs, aps) in ARMS.items():
        for seed, ap in enumerate(aps):
            for split, delta in (("clean_val", 0.0), ("occluded_val", -0.1)):
                config = _config(method, seed, **kwargs)
                records.append(_record(f"{arm}-s{seed}", method, network, split, _metrics(ap + delta, split),
                                       seed, config))  # fmt: skip
            if method == "dslope":
                records.append(_record(f"{arm}-s{seed}", method, "gnet", "clean_val", {"AP": ap + 0.03}, seed,
                                       _config(method, seed, **kwargs)))  # fmt: skip
    return records


def _write(results: Path, records: list[dict]) -> None:
    (results / "runs").mkdir(parents=True, exist_ok=True)
    for r in records:
        (results / "runs" / f"{r['run_id']}__{r['network']}__{r['split']}.json").write_text(json.dumps(r))


def _markdown_rows(text: str) -> list[list[str]]:
    return [
        [c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("|")
    ]


def test_headline_has_the_policy_columns_and_the_full_table_stays_as_appendix_and_csv(tmp_path):
    _write(tmp_path, _records())
    generate_report(tmp_path)
    markdown = (tmp_path / "tables" / "pose.md").read_text()
    headline, appendix = markdown.split("### Appendix: every metric")
    rows = _markdown_rows(headline)
    assert rows[0] == ["method (network)", "config", *HEADLINE]
    assert "All rows: dataset synthetic-coco, backbone hrnet_w18_small." in headline
    by_label = {(r[0], r[1]): r[2:] for r in rows[2:]}
    clean = [0.70, 0.69, 0.71]
    assert (
        by_label["clean (net)", ""][0]
        == f"**{statistics.mean(clean):.3f} ± {statistics.stdev(clean):.3f} (n=3)**"
    )
    occluded_kOKS = [a - 0.1 + 0.1 for a in clean]
    assert by_label["clean (net)", ""][3].strip("*") == (
        f"{statistics.mean(occluded_kOKS):.3f} ± {statistics.stdev(occluded_kOKS):.3f} (n=3)"
    )
    assert by_label["dslope (gnet), reference", ""][1:] == ["–", "–", "–"]  # clean val only, last, unranked
    assert list(by_label)[-1][0].endswith("reference")
    assert "AR" not in headline and "clean_val AR" in appendix and "clean_val AP50" in appendix
    full = pd.read_csv(tmp_path / "tables" / "pose.csv")  # every metric, full precision
    assert {"clean_val/AR/mean", "occluded_val/AP50/mean"} <= set(full.columns)
    short = pd.read_csv(tmp_path / "tables" / "pose_headline.csv")
    assert [c.removesuffix("/mean") for c in short.columns if c.endswith("/mean")] == [
        "clean_val/AP", "occluded_val/AP", "occluded_val/AP_occluded", "occluded_val/kOKS_occluded",
    ]  # fmt: skip
    row = short[short["method (network)"] == "clean (net)"].iloc[0]
    assert row["clean_val/AP/mean"] == pytest.approx(statistics.mean(clean), abs=1e-12)
    tex = (tmp_path / "tables" / "pose.tex").read_text()
    assert "\\label{tab:pose}" in tex and "\\label{tab:pose\\_full}" in tex
    assert "clean AP & occluded AP & occluded AP\\_occluded & occluded kOKS\\_occluded \\\\" in tex


def test_terminal_shows_the_headline_only(tmp_path):
    _write(tmp_path, _records())
    result = CliRunner().invoke(app, ["report", "--results", str(tmp_path), "--format", "csv"])
    assert result.exit_code == 0, result.output
    pose = result.output.split("## Pose estimation")[1].split("\n## ")[0]
    assert "| method (network) | config | clean AP | occluded AP |" in pose and "AR" not in pose


def test_row_labels_name_only_what_sets_a_row_apart_with_derived_keys_collapsed(tmp_path):
    _write(tmp_path, _records())
    generate_report(tmp_path, formats=["csv"])
    frame = pd.read_csv(tmp_path / "tables" / "pose_headline.csv", keep_default_na=False)
    labels = list(zip(frame["method (network)"], frame["config"], strict=True))
    # The common D-Slope arm reads plain; each other arm names its one change; `pretrain.*` (present only
    # while pretrained=embedded) collapses into pretrained=null; no dotted prefixes.
    assert labels == [
        ("clean (net)", ""),
        ("dslope (enet)", ""),
        ("dslope (enet)", "independent_init=true"),
        ("dslope (enet)", "pretrained=null"),
        ("dslope (gnet), reference", ""),
        ("dslope (gnet), reference", "independent_init=true"),
        ("dslope (gnet), reference", "pretrained=null"),
    ]
    full = pd.read_csv(tmp_path / "tables" / "pose.csv", keep_default_na=False)
    assert not any("pretrain." in c or "method_args" in c for c in full["config"])


def test_headline_columns_come_from_the_policy_not_the_engine(tmp_path):
    """A policy naming other columns gets those; the engine's source names no metric or split."""
    _write(tmp_path, _records())
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "tables:\n  - name: mine\n    title: Mine\n    where: {task: [pose]}\n"
        "    headline: [{split: occluded, metric: AR, label: occluded recall},\n"
        "               {split: clean_val, metric: AP50}]\n"
    )
    generate_report(tmp_path, tmp_path / "out", ["md"], policy=policy)
    rows = _markdown_rows((tmp_path / "out" / "tables" / "mine.md").read_text().split("### Appendix")[0])
    assert rows[0] == ["method (network)", "config", "occluded recall", "clean AP50"]
    engine = "\n".join(p.read_text() for p in (ROOT / "harness" / "report").glob("*.py"))
    for name in ("kOKS", "AP_occluded", "NME_occluded", "tar_far", "occluded_val"):
        assert name not in engine, name


def test_split_figure_stays_legible_for_many_arms(tmp_path):
    """12 arms, each a one-key change: one label line per arm, the figure grows by a row height per arm."""
    from PIL import Image

    records = []
    for arm in range(12):
        for seed in range(2):
            config = _config("dslope", seed, enet_weight=10.0 ** -(arm + 1))
            for split in ("clean_val", "occluded_val"):
                records.append(_record(f"a{arm}-s{seed}", "dslope", "enet", split,
                                       _metrics(0.5 + arm / 100, split), seed, config))  # fmt: skip
    _write(tmp_path, records)
    generate_report(tmp_path, formats=["csv"])
    labels = pd.read_csv(tmp_path / "tables" / "pose.csv", keep_default_na=False)["config"]
    assert len(labels) == 12 and all(re.fullmatch(r"enet_weight=[0-9.e-]+", label) for label in labels)
    width, height = Image.open(tmp_path / "figures" / "pose_splits.png").size
    assert width == 900 and 12 * 0.32 * 150 < height < 0.9 * 150 + 12 * 0.45 * 150  # ~one text line per arm


def test_a_role_several_splits_play_gets_one_column_per_split(tmp_path):
    """A verification suite (lfw and cfp_fp, each with its masked twin): labelled columns stay unambiguous."""
    records = []
    for seed in range(2):
        for split, role, acc in (("lfw", "clean", 0.99), ("lfw_masked", "occluded", 0.9),
                                 ("cfp_fp", "extra", 0.95), ("cfp_fp_masked", "occluded", 0.8)):  # fmt: skip
            record = _record(f"r{seed}", "clean", "net", split, {"accuracy": acc + seed / 100}, seed,
                             _config("clean", seed), split_role=role, task="face_recognition")  # fmt: skip
            records.append(record)
    _write(tmp_path, records)
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "tables:\n  - name: fr\n    title: FR\n    where: {task: [face_recognition]}\n"
        "    headline: [{split: clean, metric: accuracy},\n"
        "               {split: occluded, metric: accuracy, label: masked}]\n"
    )
    generate_report(tmp_path, tmp_path / "out", ["md"], policy=policy)
    rows = _markdown_rows((tmp_path / "out" / "tables" / "fr.md").read_text().split("### Appendix")[0])
    assert rows[0] == ["method (network)", "lfw accuracy", "cfp_fp_masked masked", "lfw_masked masked"]
    assert rows[2][1:] == ["0.995 ± 0.007 (n=2)", "0.805 ± 0.007 (n=2)", "0.905 ± 0.007 (n=2)"]
