"""Landmark heatmap head: HRNetV2's facial-landmark head on a stride-4 feature, deconvolutions before it
for deeper features (SimpleBaseline), so any backbone fits."""

from __future__ import annotations

from torch import nn

from tasks.pose.head import deconv_layers, heatmap_output


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
        layers = deconv_layers(in_channels, in_stride, deconv_channels, self.out_stride)
        channels = deconv_channels if layers else in_channels
        layers += [nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(True)]
        self.body = nn.Sequential(*layers)
        self.final = heatmap_output(channels, num_landmarks)

    def forward(self, x):
        return self.final(self.body(x))
