"""The shipped real-data configs and the paper sweep start from ImageNet weights (or say on purpose that they
do not), and a run whose weights cannot be fetched stops with one line before any training. Nothing is
downloaded: the hub runs offline over an empty temporary cache."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.core.config import CONFIG_ROOT, load_config
from harness.models.weights import describe_start

REAL_DATA = sorted(
    path
    for task in ("pose", "face_alignment", "face_recognition")
    for path in (CONFIG_ROOT / task).glob("*.yaml")
    if load_config(path).data.get("dataset") != "synthetic"
)
# Real-data configs that train from scratch on purpose, as the recipe they follow does.
FROM_SCRATCH = {
    "coco_litehrnet-18_256x192.yaml", "coco_litehrnet-30_256x192.yaml",  # mmpose / Yu et al.
    "c-coco_litehrnet-18_256x192.yaml", "c-coco_litehrnet-30_256x192.yaml",
    "folder_lfw_resnet50.yaml", "ms1mv3_r50_bins_ijbc.yaml",  # insightface's arcface_torch
}  # fmt: skip


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return tmp_path / "hub"


def test_every_real_data_config_starts_from_imagenet_unless_it_says_otherwise():
    assert len(REAL_DATA) >= 20  # pose (COCO, C-COCO, MPII, C-MPII, CrowdPose, OCHuman), faces
    for path in REAL_DATA:
        cfg = load_config(path)
        expected = "from_scratch" if path.name in FROM_SCRATCH else "imagenet"
        assert cfg.model.pretrained == expected, path.name
        start = describe_start(cfg.model.pretrained, cfg.model.backbone)  # resolves, fetches nothing
        if expected == "from_scratch":
            assert start == "from scratch", path.name
        elif cfg.model.backbone.startswith("mmpose:"):
            assert start.startswith("imagenet: mmengine https://"), path.name
        else:
            assert start.startswith("imagenet: timm "), path.name


def test_the_paper_sweep_dry_run_shows_each_backbones_imagenet_weights():
    result = CliRunner(env={"COLUMNS": "250"}).invoke(
        app, ["sweep", str(CONFIG_ROOT / "sweeps" / "paper_pose.yaml"), "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert "108 trials (dry run" in result.output
    for weights in ("hrnet_w32.ms_in1k", "hrnet_w48.ms_in1k", "resnet50.tv_in1k"):
        assert result.output.count(f"imagenet: timm {weights} (hf-hub:timm/{weights})") == 36, weights


def test_imagenet_for_a_backbone_without_weights_fails_the_dry_run(tmp_path):
    sweep = tmp_path / "sweep.yaml"
    base = CONFIG_ROOT / "pose" / "coco_hrnet-w32_256x192.yaml"
    sweep.write_text(f"base: {base}\ngrid:\n  model.backbone: [hrnet_w32, mmpose:litehrnet_18]\n")
    result = CliRunner().invoke(app, ["sweep", str(sweep), "--dry-run"])
    assert result.exit_code == 2
    assert "model.pretrained: imagenet: mmpose:litehrnet_18 has no ImageNet weights" in result.output


def test_a_run_without_its_imagenet_weights_stops_before_training_in_one_line(
    offline_hub, coco_root, tmp_path
):
    overrides = [
        f"data.root={coco_root}", "data.train_split=val2017", "data.input_size=[64,48]",
        "model.backbone=hrnet_w18_small", "train.max_steps=1", "train.num_workers=0",
        f"output.work_dir={tmp_path / 'work'}", f"output.results_dir={tmp_path / 'results'}",
    ]  # fmt: skip
    args = ["run", "--config", str(CONFIG_ROOT / "pose" / "coco_hrnet-w32_256x192.yaml"), "--method", "clean"]
    for item in overrides:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 2 and "pose · clean · hrnet_w18_small" in lines[0]  # the run's header, then why not
    assert lines[1].startswith("error: model.pretrained: imagenet: timm's")
    assert "hrnet_w18_small.ms_in1k" in lines[1] and "model.pretrained=/path/to/model.safetensors" in lines[1]
    assert not list((tmp_path / "work").glob("*")) and not list((tmp_path / "results").rglob("*.json"))


def test_a_run_from_imagenet_weights_records_their_source_file_and_digest(offline_hub, tiny_pose_overrides):
    """End to end: `imagenet` found in the hub cache and loaded before training; every record states it."""
    import timm
    import torch
    from safetensors.torch import save_file

    from harness.core.cache import file_digest
    from harness.core.config import load_config
    from harness.run.experiment import run_experiment

    snapshot = offline_hub / "models--timm--hrnet_w18_small.ms_in1k" / "snapshots" / ("b" * 40)
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("b" * 40)
    torch.manual_seed(0)
    state = timm.create_model("hrnet_w18_small").state_dict()
    save_file(state, snapshot / "model.safetensors")
    overrides = [*tiny_pose_overrides, "model.pretrained=imagenet", "method=dslope"]
    outcome = run_experiment(load_config(CONFIG_ROOT / "pose" / "tiny.yaml", overrides))
    assert len(outcome.records) == 3  # ENet on both splits, GNet on clean
    for record in outcome.records:
        assert record.data["pretrained"] == {
            "source": "imagenet", "library": "timm", "tag": "hrnet_w18_small.ms_in1k",
            "url": "https://huggingface.co/timm/hrnet_w18_small.ms_in1k", "file": "model.safetensors",
            "sha256": file_digest(snapshot / "model.safetensors"),
        }  # fmt: skip
