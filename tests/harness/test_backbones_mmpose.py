"""mmpose backbones (the optional extra): declared outputs and taps against real outputs, sizes against the
papers, two D-Slope steps each, local checkpoints, and the import shim leaving no trace.

Skipped, with the reason shown, where the extra is not installed; CI installs it (`make setup-mmpose`).
"""

import sys

import pytest
import torch

pytest.importorskip(
    "mmpose", reason="the mmpose extra is not installed: `make setup-mmpose` (CI installs it)"
)

from harness.core.errors import CheckpointError, ConfigError  # noqa: E402
from harness.models.backbones import create_backbone  # noqa: E402
from harness.models.mmpose_backbones import ARCHS  # noqa: E402
from harness.models.task_model import TaskModel  # noqa: E402
from tests.dslope_steps import random_heatmap_batch, two_dslope_steps  # noqa: E402

# Parameters of the backbone alone, in millions, as the papers / model zoos publish them (one decimal).
PUBLISHED_PARAMS_M = {
    "litehrnet_18": 1.1,  # Lite-HRNet paper, table 1 (with the 1x1 heatmap layer: +0.7k)
    "litehrnet_30": 1.8,
    "hrformer_small": 7.8,  # HRFormer paper, table 3 (pose, with head)
    "hrformer_base": 43.2,
    "hrnet_w32": 28.5,  # HRNet paper, table 1 (with head)
    "swin_t": 27.5,  # Swin-T's 28.3 M minus its 0.77 M ImageNet classifier
}
SIZE = (96, 64)  # not square, so a swapped height and width would show
# CSPNeXt calls the deprecated torch.cuda.amp.autocast (mmpose's to fix; the harness filters it at import).
pytestmark = pytest.mark.filterwarnings("ignore:.*torch.cuda.amp.autocast:FutureWarning")


def _expected_shape(batch: int, channels: int, stride: int, tokens: bool) -> tuple[int, ...]:
    h, w = SIZE[0] // stride, SIZE[1] // stride
    return (batch, h * w, channels) if tokens else (batch, channels, h, w)


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_declared_output_and_taps_match_real_outputs(name):
    arch = ARCHS[name]
    backbone = create_backbone(f"mmpose:{name}", input_size=SIZE)
    model = TaskModel(backbone, torch.nn.Identity())
    seen_at_hook = []  # a copy taken when each tap fires: nothing later may change a tapped tensor in place

    def copy_output(_module, _inputs, out):
        seen_at_hook.append([t.clone() for t in (out if isinstance(out, (list, tuple)) else [out])])

    modules = dict(backbone.body.named_modules())
    for tap in backbone.tap_names:
        modules[tap].register_forward_hook(copy_output)
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, *SIZE))
    assert tuple(out.shape) == _expected_shape(2, arch.out_channels, arch.out_stride, tokens=False)
    assert (backbone.out_channels, backbone.out_stride) == (arch.out_channels, arch.out_stride)
    groups = model.feature_groups
    assert backbone.tap_names == tuple(tap.name for tap in arch.taps)
    assert len(groups) == len(arch.taps) == len(seen_at_hook)
    for tap, group, copies in zip(arch.taps, groups, seen_at_hook, strict=True):
        shapes = [tuple(t.shape) for t in group]
        assert shapes == [_expected_shape(2, c, s, arch.tokens) for c, s in tap.branches], tap.name
        assert all(torch.equal(t, c) for t, c in zip(group, copies, strict=True)), f"{tap.name} changed later"
    params = sum(p.numel() for p in backbone.parameters()) / 1e6
    print(f"mmpose:{name}: {params:.2f} M parameters, out {list(out.shape[1:])} at {SIZE}")
    if name in PUBLISHED_PARAMS_M:
        assert params == pytest.approx(PUBLISHED_PARAMS_M[name], rel=0.05)


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_two_dslope_steps_on_each_backbone(name):
    from harness.methods.dslope import DSlope
    from tasks.pose.task import PoseSettings, PoseTask

    task = PoseTask(PoseSettings(input_size=SIZE))

    def build():
        backbone = create_backbone(f"mmpose:{name}", input_size=task.input_size)
        return TaskModel(backbone, task.head(backbone.out_channels, backbone.out_stride))

    torch.manual_seed(0)
    method = DSlope(build, task.loss)
    branches = [len(tap.branches) for tap in ARCHS[name].taps]

    def every_tap_imitated():
        assert [len(group) for group in method.enet.feature_groups] == branches
        assert [len(group) for group in method.gnet.feature_groups] == branches

    two_dslope_steps(method, random_heatmap_batch(SIZE, 17), after_step=every_tap_imitated)


def test_local_mmpose_checkpoint_loads_into_the_backbone(tmp_path):
    source = create_backbone("mmpose:litehrnet_18")
    state = {f"backbone.{k}": v for k, v in source.body.state_dict().items()}
    state["head.final_layer.weight"] = torch.zeros(17, 40, 1, 1)  # a whole-model checkpoint has a head too
    path = tmp_path / "litehrnet_18_coco.pth"
    torch.save({"state_dict": state}, path)
    torch.manual_seed(1)
    loaded = create_backbone("mmpose:litehrnet_18", pretrained=str(path))
    for key, value in source.body.state_dict().items():
        assert torch.equal(value, loaded.body.state_dict()[key]), key


def test_checkpoint_of_another_backbone_is_refused(tmp_path):
    path = tmp_path / "hrformer.pth"
    torch.save(create_backbone("mmpose:hrformer_small").body.state_dict(), path)
    with pytest.raises(CheckpointError, match="model.pretrained: .*(does not fit|no tensor)"):
        create_backbone("mmpose:litehrnet_18", pretrained=str(path))


def test_input_sides_must_be_divisible_by_32():
    with pytest.raises(ConfigError, match=r"data.input_size: mmpose:hrnet_w32 needs sides divisible by 32"):
        create_backbone("mmpose:hrnet_w32", input_size=(100, 75))


def test_the_shim_leaves_no_stand_in_behind():
    from harness.models.mmpose_imports import MMPoseStubError, import_mmpose_models

    import_mmpose_models()
    assert "mmdet" not in sys.modules or hasattr(sys.modules["mmdet"], "__file__")  # a real mmdet only
    from mmpose.models.heads.transformer_heads import edpose_head

    if edpose_head.MultiScaleDeformableAttention.__module__ == "harness.models.mmpose_imports":
        with pytest.raises(MMPoseStubError, match="needs mmcv's compiled ops"):
            edpose_head.MultiScaleDeformableAttention(embed_dims=256)
