"""The mmpose extra seen from an install without it: names registered, one-line errors, the stub guard.

These run everywhere; tests/harness/test_backbones_mmpose.py builds the backbones where the extra is
installed.
"""

import pytest
import torch
from typer.testing import CliRunner

from harness.cli import app
from harness.core.errors import ConfigError
from harness.core.registry import BACKBONES
from harness.models import mmpose_imports
from harness.models.backbones import create_backbone

NAMES = (
    "litehrnet_18",
    "litehrnet_30",
    "hrformer_small",
    "hrformer_base",
    "hrnet_w32",
    "cspnext_m",
    "swin_t",
)


@pytest.fixture
def extra_missing(monkeypatch):
    """Behave as an install without mmpose (whatever this one has)."""
    monkeypatch.setattr(mmpose_imports, "extra_status", lambda: "mmpose is not installed")


def test_every_mmpose_backbone_is_registered_without_the_extra():
    assert {f"mmpose:{name}" for name in NAMES} <= set(BACKBONES.names())


def test_building_without_the_extra_is_a_config_error_naming_the_install_step(extra_missing):
    with pytest.raises(ConfigError, match=r"model.backbone: .*mmpose is not installed.*make setup-mmpose"):
        create_backbone("mmpose:litehrnet_18")


def test_run_without_the_extra_is_one_line_and_writes_nothing(extra_missing, tiny_pose_overrides, tmp_path):
    sets = [x for o in tiny_pose_overrides for x in ("--set", o)]
    result = CliRunner().invoke(app, ["run", "--task", "pose", "--backbone", "mmpose:litehrnet_18", *sets])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "mmpose is not installed" in errors[0] and "make setup-mmpose" in errors[0]
    assert not list((tmp_path / "results").rglob("*.json"))


def test_list_shows_the_names_and_says_the_extra_is_missing(extra_missing, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # one table row per line
    result = CliRunner().invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    assert "mmpose:litehrnet_18" in result.output and "mmpose:swin_t" in result.output
    line = next(line for line in result.output.splitlines() if "mmpose extra" in line)
    assert "not installed (mmpose is not installed)" in line and "make setup-mmpose" in line


def test_a_stubbed_class_refuses_to_be_built():
    stub = mmpose_imports._stub_class("MultiScaleDeformableAttention", "mmcv's compiled ops")
    with pytest.raises(mmpose_imports.MMPoseStubError, match="MultiScaleDeformableAttention is a stand-in"):
        stub(embed_dims=256)


def test_whole_model_checkpoints_load_with_their_backbone_prefix(tmp_path):
    """mmpose/mmpretrain checkpoints name backbone tensors `backbone.<name>` beside head tensors."""
    source = create_backbone("hrnet_w18_small")
    state = {f"backbone.{k}": v for k, v in source.body.state_dict().items()}
    state["head.final_layer.weight"] = torch.zeros(17, 16, 1, 1)
    path = tmp_path / "whole_model.pth"
    torch.save({"state_dict": state}, path)
    loaded = create_backbone("hrnet_w18_small", pretrained=str(path))
    for key, value in source.body.state_dict().items():
        assert torch.equal(value, loaded.body.state_dict()[key]), key


def test_eval_of_an_mmpose_model_without_the_extra_is_one_line(extra_missing, tmp_path):
    weights = tmp_path / "model.pth"
    weights.write_bytes(b"weights")
    results = tmp_path / "results"
    result = CliRunner().invoke(
        app, ["eval", "--model", "mmpose:rtmpose-m_8xb256-420e_coco-256x192", "--checkpoint", str(weights),
              "--task", "pose", "--set", f"output.results_dir={results}"],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "mmpose is not installed" in errors[0] and "make setup-mmpose" in errors[0]
    assert not list(results.rglob("*.json"))
