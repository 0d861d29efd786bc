"""Backbones: timm models with `features_only=True`, one feature map out, named stage taps for D-Slope.

A backbone family declares, in one place, which feature the head reads and which modules are tapped
for the mutual feature loss. Any other timm model works through `timm:<name>`: it falls back to its
deepest `features_only` output and taps every feature module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import timm
import torch
from torch import nn

from harness.core.errors import CheckpointError, ConfigError
from harness.core.io import safe_torch_load
from harness.core.registry import BACKBONES


@dataclass(frozen=True)
class Family:
    """How to read a timm model family."""

    taps: tuple[str, ...] | None  # module names hooked for the mutual loss; None = feature modules
    head_stride: int | None = None  # take the feature of this stride; None = the deepest
    timm_kwargs: dict = field(default_factory=dict)
    fixed_input: bool = False  # built for one input size (ViT position embeddings): pass img_size


FAMILIES: dict[str, Family] = {
    # HRNet: the fused stride-4 branch feeds the head (as in the original pose HRNet); the three
    # multi-resolution stages are the taps. feature_location="" skips the classification incre-modules.
    "hrnet": Family(taps=("stage2", "stage3", "stage4"), head_stride=4, timm_kwargs={"feature_location": ""}),
    # SimpleBaseline: the deepest ResNet feature, deconvolved by the head; taps on the four stages.
    "resnet": Family(taps=("layer1", "layer2", "layer3", "layer4")),
    # Plain ViT, ViTPose-style: the last block's stride-16 tokens, deconvolved twice by the head; taps on
    # the blocks timm exposes as features.
    "vit": Family(taps=None, fixed_input=True),
    # Light CNNs (MobileNetV3, EfficientNet): deepest feature, taps on their feature stages.
    "mobilenetv3": Family(taps=None),
    "efficientnet": Family(taps=None),
}
GENERIC = Family(taps=None)


class Backbone(nn.Module):
    """A timm feature extractor returning one feature map.

    Attributes:
        out_channels: channels of the returned feature map (heads size themselves from it).
        out_stride: its stride relative to the input.
        tap_names: module names (relative to `body`) whose outputs the mutual loss imitates.
    """

    def __init__(
        self,
        timm_name: str,
        family: Family,
        pretrained: str | None = None,
        input_size: tuple[int, int] | None = None,
    ):
        super().__init__()
        kwargs = dict(family.timm_kwargs)
        if family.fixed_input and input_size is not None:
            kwargs["img_size"] = tuple(input_size)
        try:
            self.body = timm.create_model(timm_name, pretrained=False, features_only=True, **kwargs)
        except RuntimeError as err:  # timm's "Unknown model" error
            raise ConfigError(f"model.backbone: timm has no model '{timm_name}' ({err})") from None
        info = self.body.feature_info
        strides = info.reduction()
        index = strides.index(family.head_stride) if family.head_stride in strides else len(strides) - 1
        self.out_index = index
        self.out_channels = info.channels()[index]
        self.out_stride = strides[index]
        modules = dict(self.body.named_modules())
        # FeatureGetterNet (ViT) wraps the model as `model`; its feature_info names are relative to it.
        names = family.taps or tuple(info.module_name())
        self.tap_names = tuple(n if n in modules else f"model.{n}" for n in names)
        missing = [name for name in self.tap_names if name not in modules]
        assert not missing, f"taps {missing} not found in {timm_name}"
        if pretrained:
            load_backbone_weights(self.body, Path(pretrained))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)[self.out_index]


def load_backbone_weights(body: nn.Module, path: Path) -> None:
    """Load local backbone weights (e.g. ImageNet) safely; never downloads."""
    if not path.is_file():
        raise CheckpointError(f"model.pretrained: file not found: {path} (weights are never downloaded)")
    state = safe_torch_load(path, "model.pretrained")
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise CheckpointError(f"model.pretrained: {path} holds a {type(state).__name__}, not a state dict")
    own = body.state_dict()
    # Whole-model checkpoints (mmpose, mmpretrain) name the backbone's tensors "backbone.<name>".
    stripped = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    if len(stripped.keys() & own.keys()) > len(state.keys() & own.keys()):
        state = stripped
    mismatched = [k for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if mismatched:
        first = mismatched[0]
        raise CheckpointError(
            f"model.pretrained: {path} does not fit the backbone: {len(mismatched)} tensors differ in shape "
            f"(first: {first} {tuple(state[first].shape)} vs {tuple(own[first].shape)})"
        )
    result = body.load_state_dict(state, strict=False)
    matched = len(own) - len(result.missing_keys)
    if matched == 0:
        raise CheckpointError(f"model.pretrained: no tensor of {path} matches the backbone")


def create_backbone(
    name: str, pretrained: str | None = None, input_size: tuple[int, int] | None = None
) -> Backbone:
    """Build a registered backbone, or any timm model as `timm:<name>`.

    Example:
        >>> net = create_backbone("hrnet_w18_small")
        >>> net.out_channels, net.out_stride
        (16, 4)
    """
    if name.startswith("timm:"):
        timm_name = name.split(":", 1)[1]
        family = next((f for key, f in FAMILIES.items() if timm_name.startswith(key)), GENERIC)
        return Backbone(timm_name, family, pretrained, input_size)
    return BACKBONES.get(name)(pretrained=pretrained, input_size=input_size)


def _register(name: str, family: str) -> None:
    def factory(pretrained: str | None = None, input_size: tuple[int, int] | None = None) -> Backbone:
        return Backbone(name, FAMILIES[family], pretrained, input_size)

    factory.__doc__ = f"timm '{name}' read as the {family} family."
    BACKBONES.register(name)(factory)


for _name in ("hrnet_w18_small", "hrnet_w18_small_v2", "hrnet_w18", "hrnet_w32", "hrnet_w48"):
    _register(_name, "hrnet")
for _name in ("resnet18", "resnet50", "resnet101", "resnet152"):
    _register(_name, "resnet")
for _name in ("vit_tiny_patch16_224", "vit_small_patch16_224", "vit_base_patch16_224"):
    _register(_name, "vit")
for _name in ("mobilenetv3_large_100", "mobilenetv3_small_100"):
    _register(_name, "mobilenetv3")
for _name in ("efficientnet_b0",):
    _register(_name, "efficientnet")
