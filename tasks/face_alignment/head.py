"""Landmark heatmap head: HRNetV2's facial-landmark head on a stride-4 feature, deconvolutions before it
for deeper features (SimpleBaseline), so any backbone fits."""

from __future__ import annotations

import math

from torch import nn


class LandmarkHead(nn.Module):
    """Reads a backbone feature of any stride >= 4 and outputs K heatmaps at stride 4.

    On a stride-4 feature (HRNetV2's concatenated branches, FAN's hourglass output) it is HRNetV2's head: a
    1x1 conv + BN + ReLU at the feature's width, then a 1x1 conv to K maps. A deeper feature is first brought
    to stride 4 by log2(stride / 4) deconvolution layers.

    Args:
        in_channels: channels of the backbone feature.
        in_stride: its stride.
        num_landmarks: output channels.
        deconv_channels: width of the deconvolution layers.
    """

    out_stride = 4

    def __init__(self, in_channels: int, in_stride: int, num_landmarks: int, deconv_channels: int = 128):
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
        layers += [
            nn.Conv2d(channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        ]
        self.body = nn.Sequential(*layers)
        self.final = nn.Conv2d(channels, num_landmarks, kernel_size=1)
        # Near-zero initial heatmaps: training starts at the all-zero plateau instead of first spending
        # hundreds of steps shrinking random outputs.
        nn.init.normal_(self.final.weight, std=0.001)
        nn.init.zeros_(self.final.bias)

    def forward(self, x):
        return self.final(self.body(x))
