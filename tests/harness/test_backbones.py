import pytest
import torch

from harness.core.errors import CheckpointError, ConfigError
from harness.models.backbones import create_backbone
from harness.models.task_model import TaskModel
from tests.dslope_steps import random_heatmap_batch, two_dslope_steps


@pytest.mark.parametrize(
    ("name", "channels", "stride"),
    [
        ("hrnet_w18_small", 16, 4),
        ("hrnet_w32", 32, 4),
        ("resnet50", 2048, 32),
        ("resnet18_stride8", 128, 8),
        ("timm:mobilenetv3_small_050", None, 32),
    ],
)
def test_declared_channels_and_stride_match_real_output(name, channels, stride):
    net = create_backbone(name).eval()
    with torch.no_grad():
        out = net(torch.randn(1, 3, 64, 64))
    assert out.shape[1] == net.out_channels
    assert (64 // out.shape[2], 64 // out.shape[3]) == (net.out_stride, net.out_stride) == (stride, stride)
    if channels is not None:
        assert net.out_channels == channels


@pytest.mark.parametrize("name", ["hrnet_w18_small", "resnet50", "timm:mobilenetv3_small_050"])
def test_taps_capture_stage_features(name):
    backbone = create_backbone(name)
    model = TaskModel(backbone, torch.nn.Conv2d(backbone.out_channels, 3, 1))
    model(torch.randn(2, 3, 64, 64))
    first = [t.shape for t in model.features]
    assert len(first) >= len(backbone.tap_names) >= 3
    assert all(shape[0] == 2 for shape in first)
    model(torch.randn(2, 3, 64, 64))
    assert [t.shape for t in model.features] == first  # refreshed, not accumulated


def test_hrnet_taps_are_the_declared_stages():
    assert create_backbone("hrnet_w32").tap_names == ("stage2", "stage3", "stage4")


def test_resnet18_stride8_is_built_only_up_to_its_stride_8_stage():
    """Its later stages are not built (no parameters, no compute): stem, layer1 and layer2 of ResNet-18."""
    backbone = create_backbone("resnet18_stride8")
    assert backbone.tap_names == ("layer1", "layer2")
    assert [name for name, _ in backbone.body.named_children()] == [
        "conv1",
        "bn1",
        "act1",
        "maxpool",
        "layer1",
        "layer2",
    ]
    full = create_backbone("resnet18").body.state_dict()
    own = backbone.body.state_dict()
    assert set(own) == {k for k in full if not k.startswith(("layer3.", "layer4."))}


def test_unknown_timm_model_is_a_config_error():
    with pytest.raises(ConfigError, match="timm has no model 'not_a_model'"):
        create_backbone("timm:not_a_model")


def test_pretrained_path_must_exist(tmp_path):
    with pytest.raises(CheckpointError, match=r"file not found: .*missing\.pth \(expected a weights file or"):
        create_backbone("hrnet_w18_small", pretrained=str(tmp_path / "missing.pth"))


def test_pretrained_weights_load_from_local_file(tmp_path):
    source = create_backbone("hrnet_w18_small")
    path = tmp_path / "w.pth"
    torch.save(source.body.state_dict(), path)
    loaded = create_backbone("hrnet_w18_small", pretrained=str(path))
    key = next(iter(source.body.state_dict()))
    assert torch.equal(source.body.state_dict()[key], loaded.body.state_dict()[key])


@pytest.mark.parametrize(
    "name",
    ["hrnet_w18_small", "resnet50", "resnet18_stride8", "vit_tiny_patch16_224", "mobilenetv3_large_100"],
)
def test_each_family_runs_two_dslope_steps(name, capsys):
    """Every backbone family builds with the pose head, trains two D-Slope steps and reports its size."""
    from harness.methods.dslope import DSlope
    from tasks.pose.task import PoseSettings, PoseTask

    task = PoseTask(PoseSettings(input_size=(128, 96)))

    def build():
        backbone = create_backbone(name, input_size=task.input_size)
        return TaskModel(backbone, task.head(backbone.out_channels, backbone.out_stride))

    torch.manual_seed(0)
    method = DSlope(build, task.loss)
    two_dslope_steps(method, random_heatmap_batch((128, 96), 17))
    params = sum(p.numel() for p in method.enet.parameters())
    print(f"{name}: {params / 1e6:.2f} M parameters per network")
    assert params > 1e6


def test_pretrained_with_other_shapes_is_rejected(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(create_backbone("resnet18").body.state_dict(), path)
    with pytest.raises(CheckpointError, match="does not fit the backbone: .* tensors are not in the file"):
        create_backbone("resnet50", pretrained=str(path))


def test_pretrained_with_a_wrong_shape_is_refused_before_loading(tmp_path):
    state = create_backbone("resnet18").body.state_dict()
    state["layer2.0.conv1.weight"] = torch.zeros(128, 64, 5, 5)
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    fragment = r"1 tensors differ in shape \(first: layer2\.0\.conv1\.weight \(128, 64, 5, 5\) in the file"
    with pytest.raises(CheckpointError, match=fragment):
        create_backbone("resnet18", pretrained=str(path))
