"""Heatmap head: deconvolutions up to stride 4 (SimpleBaseline), then a 1x1 conv per keypoint (HRNet)."""

from __future__ import annotations

import math

from torch import nn


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
        num_deconv = int(round(math.log2(in_stride / self.out_stride))) if in_stride > 4 else 0
        layers: list[nn.Module] = []
        channels = in_channels
        for _ in range(num_deconv):
            layers += [
                nn.ConvTranspose2d(channels, deconv_channels, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(deconv_channels),
                nn.ReLU(inplace=True),
            ]
            channels = deconv_channels
        self.upsample = nn.Sequential(*layers)
        self.final = nn.Conv2d(channels, num_keypoints, kernel_size=1)
        # Near-zero initial heatmaps (as HRNet and SimpleBaseline do): training starts at the all-zero
        # plateau instead of first spending hundreds of steps shrinking random outputs.
        nn.init.normal_(self.final.weight, std=0.001)
        nn.init.zeros_(self.final.bias)

    def forward(self, x):
        return self.final(self.upsample(x))
