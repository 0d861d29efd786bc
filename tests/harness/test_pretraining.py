"""The embedded pretraining stage: built once, deterministic, disjoint data, refused when it does not fit."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from rich.console import Console

from harness.core.config import CONFIG_ROOT, load_config
from harness.core.errors import CheckpointError, ConfigError
from harness.core.precision import Precision
from harness.methods.dslope import DSlope
from harness.models.backbones import create_backbone
from harness.models.pretrained import load_embedded
from harness.models.task_model import TaskModel
from harness.train.pretraining import PretrainSettings, embedded_backbone
from tasks.pose.task import PoseSettings, PoseTask

TINY = PretrainSettings(steps=2, images=6, batch_size=4, lr=1e-3, seed=7)
DATA = {"synthetic_train_images": 6, "synthetic_val_images": 4, "input_size": [64, 64]}


def build(cache: Path, settings: PretrainSettings = TINY, backbone: str = "hrnet_w18_small", console=None):
    task = PoseTask(PoseSettings(**DATA), cache_dir=cache)
    cpu = torch.device("cpu")
    return task, embedded_backbone(
        task, task_name="pose", data=DATA, backbone=backbone, settings=settings, device=cpu,
        precision=Precision.full(cpu), console=console or Console(quiet=True),
    )  # fmt: skip


def test_built_once_then_reused_and_deterministic_across_caches(tmp_path):
    _, first = build(tmp_path / "a")
    mtime = first.path.stat().st_mtime_ns
    _, again = build(tmp_path / "a")
    assert again.path == first.path and again.path.stat().st_mtime_ns == mtime  # not rebuilt
    _, elsewhere = build(tmp_path / "b")
    assert elsewhere.meta["sha256"] == first.meta["sha256"]  # same seed, same weights
    assert first.meta["sha256"] == hashlib.sha256(first.path.read_bytes()).hexdigest()
    assert first.meta["steps"] == 2 and first.meta["backbone"] == "hrnet_w18_small"
    _, other_seed = build(tmp_path / "a", PretrainSettings(**{**TINY.__dict__, "seed": 8}))
    assert other_seed.path != first.path and other_seed.meta["sha256"] != first.meta["sha256"]


def test_pretraining_split_shares_no_image_with_train_or_val(tmp_path):
    task, _ = build(tmp_path)
    pretrain = task.pretraining_set(seed=0, images=6)
    train, splits = task.datasets(seed=0, occlusion=_plan())

    def digests(dataset):
        return {hashlib.sha256(Path(r.image_path).read_bytes()).hexdigest() for r in dataset.records}

    seen = digests(pretrain)
    assert seen and not seen & digests(train) and not seen & digests(splits["clean_val"])


def test_a_cache_that_does_not_fit_is_refused_in_one_line(tmp_path):
    _, built = build(tmp_path)
    meta_path = built.path.parent / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "format_version": 0}))
    with pytest.raises(CheckpointError, match="format_version=0.*delete") as err:
        build(tmp_path)
    assert "\n" not in str(err.value)
    meta_path.write_text(json.dumps(meta))
    built.path.write_bytes(built.path.read_bytes()[:-8] + b"12345678")
    with pytest.raises(CheckpointError, match="sha256 differs"):
        build(tmp_path)


def test_loading_into_another_backbone_is_refused_never_partial(tmp_path):
    _, built = build(tmp_path)
    other = create_backbone("resnet18")
    before = {k: v.clone() for k, v in other.body.state_dict().items()}
    with pytest.raises(CheckpointError, match="does not fit backbone hrnet_w18_small"):
        load_embedded(other, built)
    assert all(torch.equal(v, other.body.state_dict()[k]) for k, v in before.items())


def test_dslope_networks_start_equal_and_from_the_pretrained_backbone(tmp_path):
    task, built = build(tmp_path)
    state = torch.load(built.path, weights_only=True)

    def build_model():
        backbone = create_backbone("hrnet_w18_small", input_size=(64, 64))
        load_embedded(backbone, built)
        return TaskModel(backbone, task.head(backbone.out_channels, backbone.out_stride))

    method = DSlope(build_model, task.loss)
    for name, tensor in state.items():
        assert torch.equal(method.gnet.backbone.body.state_dict()[name], tensor), name
    for (name, g), e in zip(method.gnet.state_dict().items(), method.enet.state_dict().values(), strict=True):
        assert torch.equal(g, e), name


def test_pretrain_keys_without_embedded_are_named_as_unused():
    cfg = load_config(CONFIG_ROOT / "pose/default.yaml", ["model.pretrained=null", "pretrain.seed=5"])
    assert "pretrain.seed" in cfg.unused_pretrain_keys()
    assert "pretrain" not in cfg.to_dict()  # unused section: absent from the saved config and its hash
    assert load_config(CONFIG_ROOT / "pose/default.yaml").unused_pretrain_keys() == []


def test_real_data_has_no_embedded_pretraining_split(tmp_path):
    task = PoseTask(PoseSettings(dataset="coco", root=str(tmp_path)), cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="local .*checkpoint"):
        task.pretraining_set(seed=0, images=4)


def _plan():
    from harness.core.occlusion import OcclusionSettings
    from harness.core.task import OcclusionPlan

    return OcclusionPlan(train=None, val=OcclusionSettings(clean_fraction=0.0), max_patches=20)


def test_run_seed_does_not_change_the_benchmark_but_data_seed_does(tmp_path):
    task = PoseTask(PoseSettings(**DATA), cache_dir=tmp_path)
    first = task.datasets(seed=0, occlusion=_plan())
    second = task.datasets(seed=3, occlusion=_plan())
    assert first[0].ann_file == second[0].ann_file  # same training images whatever the run seed
    assert first[1]["clean_val"].ann_file == second[1]["clean_val"].ann_file
    other_task = PoseTask(PoseSettings(**DATA, data_seed=1), cache_dir=tmp_path)
    other = other_task.datasets(seed=0, occlusion=_plan())
    assert other[1]["clean_val"].ann_file.read_bytes() != first[1]["clean_val"].ann_file.read_bytes()


def test_a_heavier_backbone_than_the_budget_was_sized_for_is_named(tmp_path):
    from io import StringIO

    from harness.run.setup import warn_step_budget

    out = StringIO()
    cfg = load_config(CONFIG_ROOT / "pose/default.yaml", ["model.backbone=hrnet_w18"])
    task = PoseTask(PoseSettings(**cfg.data), cache_dir=tmp_path)
    warn_step_budget(cfg, task, Console(file=out, width=400))
    text = out.getvalue()
    assert "sized for hrnet_w18_small" in text and "hrnet_w18 has" in text and "raise train.max_steps" in text
    quiet = StringIO()
    warn_step_budget(load_config(CONFIG_ROOT / "pose/default.yaml"), task, Console(file=quiet))
    assert quiet.getvalue() == ""
