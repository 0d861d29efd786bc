"""Heatmap head: deconvolutions up to stride 4 (SimpleBaseline), then a 1x1 conv per keypoint (HRNet)."""

from __future__ import annotations

import math

from torch import nn


def deconv_layers(in_channels: int, in_stride: int, width: int, out_stride: int = 4) -> list[nn.Module]:
    """log2(in_stride / out_stride) stride-2 deconv + BN + ReLU blocks (SimpleBaseline's upsampling)."""
    count = int(round(math.log2(in_stride / out_stride))) if in_stride > out_stride else 0
    layers: list[nn.Module] = []
    channels = in_channels
    for _ in range(count):
        layers += [
            nn.ConvTranspose2d(channels, width, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        ]
        channels = width
    return layers


def heatmap_output(channels: int, num_maps: int) -> nn.Conv2d:
    """The 1x1 conv to K heatmaps, initialised near zero (as HRNet and SimpleBaseline do): training starts
    at the all-zero plateau instead of first spending hundreds of steps shrinking random outputs."""
    final = nn.Conv2d(channels, num_maps, kernel_size=1)
    nn.init.normal_(final.weight, std=0.001)
    nn.init.zeros_(final.bias)
    return final


class HeatmapHead(nn.Module):
    """Reads a backbone feature of any stride >= 4 and outputs K heatmaps at stride 4.

    Args:
        in_channels: channels of the backbone feature.
        in_stride: its stride; log2(in_stride / 4) deconv layers bring it to stride 4.
        num_keypoints: output channels.
        deconv_channels: width of the deconv layers (256 as in SimpleBaseline).
    """

    out_stride = 4

    def __init__(self, in_channels: int, in_stride: int, num_keypoints: int, deconv_channels: int = 256):
        super().__init__()
        layers = deconv_layers(in_channels, in_stride, deconv_channels, self.out_stride)
        self.upsample = nn.Sequential(*layers)
        self.final = heatmap_output(deconv_channels if layers else in_channels, num_keypoints)

    def forward(self, x):
        return self.final(self.upsample(x))
