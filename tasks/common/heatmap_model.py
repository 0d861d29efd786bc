"""What a keypoint-heatmap task does around the backbone: the head, the loss, prediction (flip test, decode,
back to image pixels) and the showcase of fixed samples for the report's qualitative figure."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from tasks.common import heatmap


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

    log2(in_stride / 4) deconvolution layers bring a deeper feature to stride 4 (SimpleBaseline); with
    `refine`, a 1x1 conv + BN + ReLU at that width follows (HRNetV2's facial-landmark head); then the 1x1
    conv to K maps (HRNet).

    Args:
        in_channels: channels of the backbone feature.
        in_stride: its stride.
        num_keypoints: output channels.
        deconv_channels: width of the deconvolution layers (256 in SimpleBaseline).
        refine: add HRNetV2's 1x1 conv + BN + ReLU before the output.
    """

    out_stride = 4

    def __init__(
        self, in_channels: int, in_stride: int, num_keypoints: int, deconv_channels: int = 256,
        refine: bool = False,
    ):  # fmt: skip
        super().__init__()
        layers = deconv_layers(in_channels, in_stride, deconv_channels, self.out_stride)
        channels = deconv_channels if layers else in_channels
        if refine:
            layers += [nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(True)]
        self.upsample = nn.Sequential(*layers)
        self.final = heatmap_output(channels, num_keypoints)
        self._register_load_state_dict_pre_hook(_rename_legacy_keys)

    def forward(self, x):
        return self.final(self.upsample(x))


def _rename_legacy_keys(state_dict, prefix, *args) -> None:
    """Face alignment checkpoints written before the heatmap head was shared call `upsample` `body`."""
    for key in [k for k in state_dict if k.startswith(prefix + "body.")]:
        state_dict[prefix + "upsample." + key[len(prefix) + 5 :]] = state_dict.pop(key)


def joints_mse(outputs: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """HRNet's JointsMSELoss: 0.5 * mean squared error of weighted heatmaps."""
    w = weight[:, :, None, None]
    return 0.5 * torch.mean((outputs * w - target * w) ** 2)


def predict_keypoints(
    model: nn.Module, batch: dict[str, Any], *, flip_pairs, input_size: tuple[int, int], flip_test: bool,
    decoder: heatmap.Decoder,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Keypoints of a batch of crops in source-image pixels.

    The heatmaps (averaged with those of the mirrored crop under `flip_test`) are decoded, brought from
    heatmap to input pixels, then through the inverse of each sample's crop affine (`meta` center, size,
    rotation).

    Returns:
        points (N, K, 2) float64 in image pixels and the heatmap maxima (N, K) as confidences.
    """
    images = batch["image"]
    heatmaps = model(images).float()
    if flip_test:
        flipped = model(images.flip(-1)).float()
        heatmaps = 0.5 * (heatmaps + heatmap.flip_heatmaps(flipped, flip_pairs))
    coords, maxvals = heatmap.decode_heatmaps(heatmaps, decoder)
    coords = heatmap.heatmap_to_input(coords.cpu().numpy().astype(np.float64), HeatmapHead.out_stride)
    meta = batch["meta"]
    points = np.empty_like(coords)
    for i in range(len(coords)):
        matrix = heatmap.crop_affine(
            meta["center"][i].cpu().numpy(), meta["size"][i].cpu().numpy(), float(meta["rotation"][i]),
            tuple(input_size),
        )  # fmt: skip
        points[i] = heatmap.apply_affine(coords[i], heatmap.invert_affine(matrix))
    return points, maxvals.cpu().numpy()


def keypoint_rows(points: np.ndarray, scores: np.ndarray) -> list[list[float]]:
    """Per sample, the flat [x, y, score] * K list written in prediction files (3 decimals)."""
    rows = np.concatenate([points, scores[..., None]], axis=-1).reshape(len(points), -1)
    return [[round(float(v), 3) for v in row] for row in rows]


def showcase(predictions: list[dict[str, Any]], records, count: int = 8) -> list[dict]:
    """Predictions of the first `count` instances (a fixed set) with image path, box and ground truth."""
    by_ann = {p["ann_id"]: p for p in predictions}
    chosen = []
    for record in records:
        if record.ann_id in by_ann and len(chosen) < count:
            chosen.append(
                {
                    "image": str(record.image_path.resolve()),
                    "image_id": record.image_id,
                    "ann_id": record.ann_id,
                    "box": [round(float(v), 2) for v in record.box],
                    "ground_truth": [round(float(v), 2) for v in record.keypoints.reshape(-1)],
                    "prediction": by_ann[record.ann_id]["keypoints"],
                }
            )
    return chosen
