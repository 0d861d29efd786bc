"""Face-landmark backbones: HRNetV2 (all HRNet branches upsampled and concatenated) and FAN.

Both register with the harness's backbone registry here, where they are defined (timm's pattern), and both
expose named stage taps, so D-Slope's mutual feature loss hooks them like any other backbone:
- `hrnetv2_w18_small`, `hrnetv2_w18`, `hrnetv2_w32`: timm's HRNet with `features_only`; the four branch
  outputs (strides 4-32) are bilinearly upsampled to stride 4 and concatenated (18+36+72+144 = 270 channels
  for W18), the representation HRNetV2's facial-landmark model feeds its 1x1-conv head. Taps: stage2-4.
- `fan` (one hourglass) and `fan4` (four, the 2D-FAN of Bulat & Tzimiropoulos): `face_alignment.models.FAN`
  built without weights. Its output layer is the task's head: the last stack's 68-landmark conv is replaced by
  an identity and the backbone returns that stack's 256-channel stride-4 feature, so the head emits as many
  landmarks as the dataset has. Intermediate stacks keep their own 68-map layers, which feed the next stack
  (only the final output is supervised). Inputs need sides divisible by 64 (four 2x poolings in each
  hourglass on the stride-4 feature). Taps: conv2, conv4 and each hourglass.
Any other timm model works through `timm:<name>` and the same head.

`model.pretrained: imagenet`: the HRNetV2s start from timm's ms_in1k HRNet weights (the HRNet authors'
ImageNet weights, which HRNet-Facial-Landmark-Detection starts from); FAN has none (see `FAN_IMAGENET`).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from harness.core.errors import ConfigError
from harness.core.registry import BACKBONES
from harness.models.backbones import FAMILIES, Backbone
from harness.models.weight_files import load_backbone_weights
from harness.models.weights import NoWeights, declare_imagenet, timm_weights

FAN_IMAGENET = NoWeights(
    "face_alignment publishes no ImageNet weights for FAN: its 2DFAN-4 file is a finished 68-landmark model "
    "trained on 300W-LP, not an initialisation (FAN itself trains from scratch)"
)


class HRNetV2(Backbone):
    """timm HRNet whose branches at stride >= 4 are upsampled to stride 4 and concatenated."""

    def __init__(self, timm_name: str, pretrained: str | None = None, input_size=None):
        super().__init__(timm_name, FAMILIES["hrnet"], pretrained, input_size)
        info = self.body.feature_info
        self.branches = [i for i, stride in enumerate(info.reduction()) if stride >= 4]
        self.out_channels = sum(info.channels()[i] for i in self.branches)
        self.out_stride = info.reduction()[self.branches[0]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.body(x)
        first = features[self.branches[0]]
        size = first.shape[-2:]
        upsampled = [
            F.interpolate(features[i], size=size, mode="bilinear", align_corners=False)
            for i in self.branches[1:]
        ]
        return torch.cat([first, *upsampled], dim=1)


class FANBackbone(nn.Module):
    """face_alignment's FAN (stacked hourglasses) as a stride-4, 256-channel feature extractor."""

    out_channels = 256
    out_stride = 4

    def __init__(self, num_modules: int = 1, pretrained: str | None = None, input_size=None):
        super().__init__()
        from face_alignment.models import FAN  # imported here: only FAN runs need the package

        if input_size is not None and any(int(side) % 64 for side in input_size):
            raise ConfigError(
                f"data.input_size: FAN needs sides divisible by 64 (e.g. [64, 64] or [256, 256]), "
                f"got {list(input_size)}"
            )
        self.body = FAN(num_modules)
        last = f"l{num_modules - 1}"
        setattr(self.body, last, nn.Identity())  # the task head is the output layer
        self.tap_names = ("conv2", "conv4", *(f"m{i}" for i in range(num_modules)))
        if pretrained:
            load_backbone_weights(self.body, Path(pretrained))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)[-1]


def _register_hrnetv2(name: str, timm_name: str) -> None:
    def factory(pretrained: str | None = None, input_size=None) -> HRNetV2:
        return HRNetV2(timm_name, pretrained, input_size)

    factory.__doc__ = f"HRNetV2 on timm '{timm_name}': all branches upsampled to stride 4 and concatenated."
    declare_imagenet(factory, lambda: timm_weights(timm_name, FAMILIES["hrnet"].imagenet_tag))
    BACKBONES.register(name)(factory)


for _width in ("w18_small", "w18_small_v2", "w18", "w32"):
    _register_hrnetv2(f"hrnetv2_{_width}", f"hrnet_{_width}")


@BACKBONES.register("fan")
@partial(declare_imagenet, source=FAN_IMAGENET)
def fan(pretrained: str | None = None, input_size=None) -> FANBackbone:
    """FAN with one hourglass (fast enough for CPU runs)."""
    return FANBackbone(1, pretrained, input_size)


@BACKBONES.register("fan4")
@partial(declare_imagenet, source=FAN_IMAGENET)
def fan4(pretrained: str | None = None, input_size=None) -> FANBackbone:
    """2D-FAN: four stacked hourglasses, as face_alignment builds it."""
    return FANBackbone(4, pretrained, input_size)
