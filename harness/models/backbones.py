"""Backbones: timm models with `features_only=True`, one feature map out, named stage taps for D-Slope.

A backbone family declares, in one place, which feature the head reads, which modules are tapped
for the mutual feature loss and which of timm's pretrained tags `model.pretrained: imagenet` loads. Any
other timm model works through `timm:<name>`: it falls back to its deepest `features_only` output, taps
every feature module and starts from timm's default tag.

Starting weights (ImageNet, or any local file) are loaded all or nothing: a file that lacks a tensor the
backbone has, or holds one of another shape, is refused with the first such key before anything is loaded.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import timm
import torch
from torch import nn

from harness.core.errors import CheckpointError, ConfigError
from harness.core.registry import BACKBONES
from harness.models.weight_files import backbone_part, check_complete, read_weights
from harness.models.weights import declare_imagenet, timm_weights


@dataclass(frozen=True)
class Family:
    """How to read a timm model family."""

    taps: tuple[str, ...] | None  # module names hooked for the mutual loss; None = feature modules
    head_stride: int | None = None  # take the feature of this stride; None = the deepest
    timm_kwargs: dict = field(default_factory=dict)
    fixed_input: bool = False  # built for one input size (ViT position embeddings): pass img_size
    imagenet_tag: str | None = None  # timm's pretrained tag `imagenet` loads; None: timm's default tag


FAMILIES: dict[str, Family] = {
    # HRNet: the fused stride-4 branch feeds the head (as in the original pose HRNet); the three
    # multi-resolution stages are the taps. feature_location="" skips the classification incre-modules.
    # ImageNet: ms_in1k, the HRNet authors' own ImageNet weights (HRNet-Image-Classification), which the
    # pose and facial-landmark HRNet repos start from.
    "hrnet": Family(
        taps=("stage2", "stage3", "stage4"),
        head_stride=4,
        timm_kwargs={"feature_location": ""},
        imagenet_tag="ms_in1k",
    ),  # fmt: skip
    # SimpleBaseline: the deepest ResNet feature, deconvolved by the head; taps on the four stages.
    # ImageNet: tv_in1k, torchvision's weights (resnet50-19c8e357.pth), which SimpleBaseline and the HRNet
    # repo start from (timm's default a1_in1k is a later recipe).
    "resnet": Family(taps=("layer1", "layer2", "layer3", "layer4"), imagenet_tag="tv_in1k"),
    # The same ResNet built only up to its stride-8 stage (layer2; timm drops the later stages), read by a
    # one-deconvolution head. From random weights the stride-32 SimpleBaseline stays at the all-zero heatmap
    # within the embedded pretraining budget (README, validity v3 backbones); this plain CNN learns in it.
    "resnet_stride8": Family(
        taps=("layer1", "layer2"), timm_kwargs={"out_indices": (1, 2)}, imagenet_tag="tv_in1k"
    ),
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
        if pretrained:
            # Through timm's own loader, which adapts what differs by design (ViT position embeddings
            # resampled to this input size, the classifier dropped); completeness is checked first.
            self.body = _timm_features_with_weights(
                timm_name, kwargs, self.body, Path(pretrained), adapts_shapes=family.fixed_input
            )
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)[self.out_index]


def _features_name(key: str) -> str:
    """The full model's name of a features_only key (timm's FeatureGetterNet wraps the model as `model`)."""
    return key.removeprefix("model.")


@contextlib.contextmanager
def _quiet_timm_loader() -> Iterator[None]:
    """timm warns about every classifier tensor a features_only backbone does not use: expected here."""
    logger = logging.getLogger("timm.models._builder")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _timm_features_with_weights(
    timm_name: str, kwargs: dict, body: nn.Module, path: Path, *, adapts_shapes: bool
) -> nn.Module:
    """`body` rebuilt by timm from the file's tensors, after checking the file holds all of them
    (`adapts_shapes`: timm resamples position embeddings to the input size, so shapes are its to check)."""
    state = backbone_part(read_weights(path), body.state_dict(), _features_name)
    check_complete(body.state_dict(), state, path, name=_features_name, shapes=not adapts_shapes)
    try:
        with _quiet_timm_loader():
            return timm.create_model(
                timm_name, pretrained=True, features_only=True, pretrained_cfg_overlay={"state_dict": state},
                **kwargs,
            )  # fmt: skip
    except RuntimeError as err:  # torch's "size mismatch for <key>: ..." after timm's adaptation
        lines = [line.strip() for line in str(err).splitlines() if "size mismatch" in line] or [str(err)]
        raise CheckpointError(f"model.pretrained: {path} does not fit the backbone: {lines[0]}") from None


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


def _register(name: str, family: str, timm_name: str | None = None) -> None:
    timm_name = timm_name or name

    def factory(pretrained: str | None = None, input_size: tuple[int, int] | None = None) -> Backbone:
        return Backbone(timm_name, FAMILIES[family], pretrained, input_size)

    factory.__doc__ = f"timm '{timm_name}' read as the {family} family."
    declare_imagenet(factory, partial(timm_weights, timm_name, FAMILIES[family].imagenet_tag))
    BACKBONES.register(name)(factory)


for _name in ("hrnet_w18_small", "hrnet_w18_small_v2", "hrnet_w18", "hrnet_w32", "hrnet_w48"):
    _register(_name, "hrnet")
for _name in ("resnet18", "resnet50", "resnet101", "resnet152"):
    _register(_name, "resnet")
_register("resnet18_stride8", "resnet_stride8", timm_name="resnet18")
for _name in ("vit_tiny_patch16_224", "vit_small_patch16_224", "vit_base_patch16_224"):
    _register(_name, "vit")
for _name in ("mobilenetv3_large_100", "mobilenetv3_small_100"):
    _register(_name, "mobilenetv3")
for _name in ("efficientnet_b0",):
    _register(_name, "efficientnet")
