"""HRNetV2, FAN and a generic timm backbone with the landmark head: declared shapes, taps, D-Slope steps."""

import pytest
import torch

from harness.core.errors import ConfigError
from harness.methods.dslope import DSlope
from harness.models.backbones import create_backbone
from harness.models.task_model import TaskModel
from tasks.face_alignment.task import FaceAlignmentSettings, FaceAlignmentTask
from tests.dslope_steps import random_heatmap_batch, two_dslope_steps

SIZE = 64


@pytest.mark.parametrize(
    ("name", "channels", "min_taps"),
    [("hrnetv2_w18", 18 + 36 + 72 + 144, 3), ("fan", 256, 3), ("timm:mobilenetv3_small_050", None, 3)],
)
def test_two_dslope_steps_with_each_backbone(name, channels, min_taps):
    task = FaceAlignmentTask(FaceAlignmentSettings(input_size=(SIZE, SIZE)))

    def build():
        backbone = create_backbone(name, input_size=task.input_size)
        return TaskModel(backbone, task.head(backbone.out_channels, backbone.out_stride))

    torch.manual_seed(0)
    method = DSlope(build, task.loss)
    backbone = method.enet.backbone
    with torch.no_grad():
        feature = backbone(torch.randn(2, 3, SIZE, SIZE))  # batch 2: FAN's 1x1 hourglass bottom has BN
    assert feature.shape[1] == backbone.out_channels and SIZE // feature.shape[-1] == backbone.out_stride
    if channels is not None:
        assert (backbone.out_channels, backbone.out_stride) == (channels, 4)
    batch = random_heatmap_batch((SIZE, SIZE), 29)

    def stage_features_are_tapped():  # exposed to the mutual loss through forward hooks
        assert len(method.enet.features) >= min_taps
        assert all(f.shape[0] == 2 for f in method.enet.features)

    two_dslope_steps(method, batch, after_step=stage_features_are_tapped)
    assert method.enet(batch["image"]).shape == (2, 29, SIZE // 4, SIZE // 4)


def test_hrnetv2_concatenates_every_branch_at_stride_4():
    plain = create_backbone("hrnet_w18_small")
    v2 = create_backbone("hrnetv2_w18_small")
    assert (plain.out_channels, v2.out_channels) == (16, 16 + 32 + 64 + 128)
    assert v2.tap_names == ("stage2", "stage3", "stage4")
    with torch.no_grad():
        out = v2(torch.randn(1, 3, 64, 96))
    assert out.shape == (1, 240, 16, 24)


def test_fan_is_face_alignments_network_with_the_task_head_as_output_layer():
    from face_alignment.models import FAN

    backbone = create_backbone("fan4", input_size=(64, 64))
    assert isinstance(backbone.body, FAN) and backbone.body.num_modules == 4
    assert isinstance(backbone.body.l3, torch.nn.Identity)  # the last 68-map layer is the task head now
    assert backbone.tap_names == ("conv2", "conv4", "m0", "m1", "m2", "m3")
    with pytest.raises(ConfigError, match="FAN needs sides divisible by 64"):
        create_backbone("fan", input_size=(96, 96))
