"""mmpose backbones (`mmpose:<name>`): the paper's LiteHRNet and HRFormer, the authors' pose HRNet, RTMPose's
CSPNeXt and Swin, built from mmpose 1.3.2 config dicts (the optional extra: `make setup-mmpose`).

Each architecture declares in one place, as the timm families do in `harness.models.backbones`, what the head
reads (one stride-4 or stride-32 feature, with its channels) and which modules D-Slope's mutual loss hooks.
The multi-resolution nets (HRNet, HRFormer, LiteHRNet) tap their stage modules, whose outputs are the lists of
branch tensors (the authors' `mutual_learning` averages the MSE over a stage's branches). CSPNeXt taps its
four stages; Swin the last block of each of its four stages (token tensors, batch × tokens × channels).

The config dicts are written here from the published architecture hyper-parameters of mmpose's COCO
top-down configs (widths, depths, heads, windows, drop-path rates), with two deliberate changes: plain BN
instead of SyncBN (one process; DDP converts), and no `init_cfg` in the dict: the weights start from each
backbone's own `init_weights()`, as mmpose's runner does, and then from `model.pretrained`. Each `Arch`
names the mmpose config it follows (`reference`) and the checkpoint URL that config's `init_cfg` names,
which `model.pretrained: imagenet` fetches into mmengine's cache (harness/models/weights.py; a test checks
every URL against the installed mmpose's configs). The names are registered even without the extra, so
`harness list` shows them; building one without it is a one-line ConfigError.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from harness.core.errors import ConfigError
from harness.core.registry import BACKBONES
from harness.models.mmpose_imports import import_mmpose_models, quiet_mmengine
from harness.models.weight_files import load_backbone_weights
from harness.models.weights import NoWeights, UrlWeights, declare_imagenet

OPENMMLAB = "https://download.openmmlab.com"


@dataclass(frozen=True)
class Tap:
    """A hooked module and the (channels, stride) of each tensor it outputs, in output order."""

    name: str
    branches: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Arch:
    """One mmpose backbone: its config dict, what the head reads and what the mutual loss taps."""

    config: dict
    out_channels: int
    out_stride: int
    taps: tuple[Tap, ...]
    reference: str  # the mmpose 1.3.2 config (under configs/body_2d_keypoint/) whose backbone this is
    imagenet: UrlWeights | NoWeights  # the checkpoint that config's init_cfg names, or why there is none
    tokens: bool = False  # taps output batch × (H·W) × C tokens instead of batch × C × H × W
    convert: str | None = None  # the naming of the ImageNet release when it is not mmpose's: "swin"
    keep_initialised: tuple[str, ...] = ()  # key prefixes mmpose's loader leaves initialised too


def _branches(channels: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """HRNet-style branches: stride 4, 8, 16, 32 with the given widths."""
    return tuple((c, 4 * 2**i) for i, c in enumerate(channels))


def _litehrnet(modules: tuple[int, int, int]) -> Arch:
    """LiteHRNet-18 / -30 (Yu et al., CVPR 2021): widths 40-320, modules (2, 4, 2) or (3, 8, 3)."""
    widths = ((40, 80), (40, 80, 160), (40, 80, 160, 320))
    config = dict(
        type="LiteHRNet",
        in_channels=3,
        extra=dict(
            stem=dict(stem_channels=32, out_channels=32, expand_ratio=1),
            num_stages=3,
            stages_spec=dict(
                num_modules=modules,
                num_branches=(2, 3, 4),
                num_blocks=(2, 2, 2),
                module_type=("LITE", "LITE", "LITE"),
                with_fuse=(True, True, True),
                reduce_ratios=(8, 8, 8),
                num_channels=widths,
            ),
            with_head=True,  # the iterative head fuses the branches into the stride-4, 40-channel output
        ),
    )
    taps = tuple(Tap(f"stage{i}", _branches(w)) for i, w in enumerate(widths))
    depth = 18 if modules == (2, 4, 2) else 30
    none = NoWeights(
        "mmpose's LiteHRNet configs name no init_cfg checkpoint: LiteHRNet trains from scratch (Yu et al.)"
    )
    reference = f"topdown_heatmap/coco/td-hm_litehrnet-{depth}_8xb64-210e_coco-256x192.py"
    return Arch(config, out_channels=40, out_stride=4, taps=taps, reference=reference, imagenet=none)


def _hrnet_stages(
    block: str, width: int, blocks: int, *, stem_blocks: int, modules=(1, 4, 3), **per_stage
) -> dict:
    """HRNet's four-stage `extra`: stage 1 is `stem_blocks` bottlenecks at 64 channels; stages 2-4 have
    2-4 branches of `blocks` blocks each, `modules` modules per stage, and any `per_stage` list (heads,
    windows) cut to the stage's branch count."""
    widths = tuple(width * 2**i for i in range(4))
    extra = {
        "stage1": dict(
            num_modules=1, num_branches=1, block="BOTTLENECK", num_blocks=(stem_blocks,), num_channels=(64,)
        )
    }
    for stage, (branches, count) in enumerate(zip((2, 3, 4), modules, strict=True), start=2):
        extra[f"stage{stage}"] = dict(
            num_modules=count,
            num_branches=branches,
            block=block,
            num_blocks=(blocks,) * branches,
            num_channels=widths[:branches],
            **{key: list(values[:branches]) for key, values in per_stage.items()},
        )
    return extra


def _hrnet_taps(width: int) -> tuple[Tap, ...]:
    """stage2 and stage3 output all their branches; stage4 (multiscale_output off) only the stride-4 one."""
    widths = tuple(width * 2**i for i in range(4))
    return (
        Tap("stage2", _branches(widths[:2])),
        Tap("stage3", _branches(widths[:3])),
        Tap("stage4", _branches(widths[:1])),
    )


def _hrnet_w32() -> Arch:
    """The pose HRNet-W32 of Sun et al. (CVPR 2019), the D-Slope paper's main backbone: 4 blocks per branch,
    modules (1, 4, 3), the stride-4 branch of stage 4 to the head."""
    config = dict(type="HRNet", in_channels=3, extra=_hrnet_stages("BASIC", 32, 4, stem_blocks=4))
    return Arch(
        config, out_channels=32, out_stride=4, taps=_hrnet_taps(32),
        reference="topdown_heatmap/coco/td-hm_hrnet-w32_8xb64-210e_coco-256x192.py",
        imagenet=UrlWeights(f"{OPENMMLAB}/mmpose/pretrain_models/hrnet_w32-36af842e.pth"),
    )  # fmt: skip


def _hrformer(width: int, heads: tuple[int, ...], drop_path: float, size: str, checkpoint: str) -> Arch:
    """HRFormer-small / -base (Yuan et al., NeurIPS 2021): HRNet's layout with local-window transformer
    blocks (window 7, MLP ratio 4) in stages 2-4, modules (1, 4, 2), two blocks per branch."""
    extra = _hrnet_stages(
        "HRFORMERBLOCK",
        width,
        2,
        modules=(1, 4, 2),
        stem_blocks=2,
        num_heads=heads,
        mlp_ratios=(4, 4, 4, 4),
        window_sizes=(7, 7, 7, 7),
    )
    extra.update(drop_path_rate=drop_path, with_rpe=True)
    config = dict(type="HRFormer", in_channels=3, norm_cfg=dict(type="BN", requires_grad=True), extra=extra)
    return Arch(
        config, out_channels=width, out_stride=4, taps=_hrnet_taps(width),
        reference=f"topdown_heatmap/coco/td-hm_hrformer-{size}_8xb32-210e_coco-256x192.py",
        imagenet=UrlWeights(f"{OPENMMLAB}/mmpose/pretrain_models/{checkpoint}"),
    )  # fmt: skip


def _cspnext_m() -> Arch:
    """CSPNeXt-m, RTMPose-m's backbone (Jiang et al., 2023): P5, deepen 0.67, widen 0.75, channel attention.
    The head reads the stride-32, 768-channel stage 4 (RTMPose's SimCC head is replaced by the task's).
    ImageNet: RTMDet's CSPNeXt-m (the one mmpose's heatmap CSPNeXt config starts from; RTMPose's own configs
    start from a backbone already trained for pose on COCO + AIC, not an ImageNet initialisation)."""
    config = dict(
        type="CSPNeXt",
        arch="P5",
        expand_ratio=0.5,
        deepen_factor=0.67,
        widen_factor=0.75,
        out_indices=(4,),
        channel_attention=True,
        norm_cfg=dict(type="BN"),
        act_cfg=dict(type="SiLU"),
    )
    taps = tuple(Tap(f"stage{i + 1}", ((c, 4 * 2**i),)) for i, c in enumerate((96, 192, 384, 768)))
    checkpoint = "mmdetection/v3.0/rtmdet/cspnext_rsb_pretrain/cspnext-m_8xb256-rsb-a1-600e_in1k-ecb3bbd9.pth"
    return Arch(
        config, out_channels=768, out_stride=32, taps=taps,
        reference="topdown_heatmap/coco/cspnext-m_udp_8xb256-210e_coco-256x192.py",
        imagenet=UrlWeights(f"{OPENMMLAB}/{checkpoint}"),
    )  # fmt: skip


def _swin_t() -> Arch:
    """Swin-T (Liu et al., ICCV 2021): patch 4, window 7, depths (2, 2, 6, 2), heads (3, 6, 12, 24), as in
    mmpose's top-down Swin configs; the head reads the normalised stride-32 feature. ImageNet: the Swin
    authors' release, in their naming (converted with mmpose's `swin_converter`, as `convert_weights=True`
    asks); it has no counterpart of the output norm `norm3`, which stays initialised, as in mmpose."""
    depths = (2, 2, 6, 2)
    config = dict(
        type="SwinTransformer",
        embed_dims=96,
        depths=depths,
        num_heads=(3, 6, 12, 24),
        window_size=7,
        mlp_ratio=4,
        qkv_bias=True,
        qk_scale=None,
        drop_rate=0.0,
        attn_drop_rate=0.0,
        drop_path_rate=0.2,
        patch_norm=True,
        out_indices=(3,),
        with_cp=False,
    )
    taps = tuple(
        Tap(f"stages.{i}.blocks.{depth - 1}", ((96 * 2**i, 4 * 2**i),)) for i, depth in enumerate(depths)
    )
    release = (
        "https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_tiny_patch4_window7_224.pth"
    )
    return Arch(
        config, out_channels=768, out_stride=32, taps=taps, tokens=True,
        reference="topdown_heatmap/coco/td-hm_swin-t-p4-w7_8xb32-210e_coco-256x192.py",
        imagenet=UrlWeights(release), convert="swin", keep_initialised=("norm3.",),
    )  # fmt: skip


ARCHS: dict[str, Arch] = {
    "litehrnet_18": _litehrnet((2, 4, 2)),
    "litehrnet_30": _litehrnet((3, 8, 3)),
    "hrformer_small": _hrformer(32, (1, 2, 4, 8), 0.1, "small", "hrformer_small-09516375_20220226.pth"),
    "hrformer_base": _hrformer(78, (2, 4, 8, 16), 0.2, "base", "hrformer_base-32815020_20220226.pth"),
    "hrnet_w32": _hrnet_w32(),
    "cspnext_m": _cspnext_m(),
    "swin_t": _swin_t(),
}


class MMPoseBackbone(nn.Module):
    """An mmpose backbone returning one feature map, with named stage taps (the harness's backbone contract).

    Attributes:
        body: the mmpose module; `tap_names` are relative to it.
        out_channels / out_stride: of the returned feature (heads size themselves from them).
        tap_names: modules whose outputs (a tensor, or a list of branch tensors) the mutual loss imitates.
        arch: the declaration, with each tap's expected (channels, stride) per tensor.
    """

    def __init__(
        self,
        name: str,
        arch: Arch,
        pretrained: str | None = None,
        input_size: tuple[int, int] | None = None,
    ):
        super().__init__()
        if input_size is not None and any(int(side) % 32 for side in input_size):
            raise ConfigError(
                f"data.input_size: mmpose:{name} needs sides divisible by 32 (e.g. [256, 192] or [128, 96]), "
                f"got {list(input_size)}"
            )
        import_mmpose_models()
        from mmpose.registry import MODELS

        self.arch = arch
        self.body = MODELS.build(copy.deepcopy(arch.config))  # HRFormer writes into its `extra`
        with quiet_mmengine():
            self.body.init_weights()  # as mmpose's runner does: each paper's initialisation (init_cfg)
        self.out_channels = arch.out_channels
        self.out_stride = arch.out_stride
        self.tap_names = tuple(tap.name for tap in arch.taps)
        modules = dict(self.body.named_modules())
        missing = [tap for tap in self.tap_names if tap not in modules]
        assert not missing, f"taps {missing} not found in mmpose:{name}"
        if pretrained:
            convert = _from_swin_release if arch.convert == "swin" else None
            load_backbone_weights(
                self.body, Path(pretrained), convert=convert, keep_initialised=arch.keep_initialised
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)[-1]  # every config above outputs exactly one feature


def _from_swin_release(state: dict) -> dict:
    """The Swin authors' naming (`layers.*`, `patch_embed.proj`) turned into mmpose's with mmpose's own
    converter; a file already in mmpose's naming is returned as it is."""
    if not any(key.startswith("layers.") for key in state):
        return state
    from mmpose.models.backbones.utils.ckpt_convert import swin_converter

    return dict(swin_converter(state))  # keys `backbone.<mmpose name>`, which the loader strips


def _register(name: str, arch: Arch) -> None:
    def factory(pretrained: str | None = None, input_size: tuple[int, int] | None = None) -> MMPoseBackbone:
        return MMPoseBackbone(name, arch, pretrained, input_size)

    factory.__doc__ = f"mmpose {arch.config['type']} as `mmpose:{name}` (needs the mmpose extra)."
    declare_imagenet(factory, arch.imagenet)
    BACKBONES.register(f"mmpose:{name}")(factory)


for _name, _arch in ARCHS.items():
    _register(_name, _arch)
