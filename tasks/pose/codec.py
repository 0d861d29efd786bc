"""Crop geometry and the heatmap codec.

Conventions (pixel centres at integer coordinates everywhere):
- `box_to_center_scale` turns a box into a centre and a (w, h) size with the input's aspect ratio and
  25 % padding, as the top-down pose literature does.
- `crop_affine` maps image pixels to input-crop pixels; a horizontal flip is folded into the matrix,
  so clean image and occluded twin go through the very same warp.
- heatmap coordinate = (input coordinate + 0.5) / stride - 0.5, which makes flipping a heatmap exact.
"""

from __future__ import annotations

import numpy as np
import torch

PADDING = 1.25


def box_to_center_scale(box, aspect_ratio: float, padding: float = PADDING) -> tuple[np.ndarray, np.ndarray]:
    """Box [x, y, w, h] -> centre (2,) and size (2,) in pixels with aspect ratio w/h = `aspect_ratio`."""
    x, y, w, h = (float(v) for v in box)
    center = np.array([x + w * 0.5, y + h * 0.5], dtype=np.float64)
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    else:
        w = h * aspect_ratio
    return center, np.array([w, h], dtype=np.float64) * padding


def crop_affine(
    center: np.ndarray, size: np.ndarray, rotation: float, output_size: tuple[int, int], flip: bool = False
) -> np.ndarray:
    """2x3 matrix mapping image pixels to a (h, w) crop of `size` around `center`, rotated by `rotation`°."""
    out_h, out_w = output_size
    scale = out_w / float(size[0])
    theta = np.deg2rad(rotation)
    cos, sin = np.cos(theta) * scale, np.sin(theta) * scale
    # Rotate counter-clockwise in the image (y points down), centre goes to the crop centre.
    linear = np.array([[cos, sin], [-sin, cos]])
    out_center = np.array([(out_w - 1) * 0.5, (out_h - 1) * 0.5])
    matrix = np.hstack([linear, (out_center - linear @ center)[:, None]])
    if flip:
        matrix = np.array([[-1.0, 0.0, out_w - 1.0], [0.0, 1.0, 0.0]]) @ np.vstack([matrix, [0, 0, 1]])
    return matrix


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    full = np.vstack([matrix, [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def apply_affine(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Transform (..., 2) points by a 2x3 matrix."""
    return points @ matrix[:, :2].T + matrix[:, 2]


def input_to_heatmap(points: np.ndarray, stride: int) -> np.ndarray:
    return (points + 0.5) / stride - 0.5


def heatmap_to_input(points, stride: int):
    return (points + 0.5) * stride - 0.5


def encode_heatmaps(
    keypoints: np.ndarray, visible: np.ndarray, heatmap_size: tuple[int, int], sigma: float
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian heatmaps centred at sub-pixel keypoints (heatmap coordinates).

    Args:
        keypoints: (K, 2) positions in heatmap coordinates.
        visible: (K,) bool, whether the keypoint is labelled.
        heatmap_size: (h, w).
        sigma: Gaussian standard deviation in heatmap pixels.

    Returns:
        heatmaps (K, h, w) float32 with peak 1, and target weights (K,) float32: 0 for unlabelled
        keypoints and for those whose centre falls outside the heatmap.
    """
    h, w = heatmap_size
    xs = np.arange(w, dtype=np.float32)
    ys = np.arange(h, dtype=np.float32)
    kx = keypoints[:, 0:1].astype(np.float32)
    ky = keypoints[:, 1:2].astype(np.float32)
    gx = np.exp(-((xs[None, :] - kx) ** 2) / (2 * sigma**2))  # (K, w)
    gy = np.exp(-((ys[None, :] - ky) ** 2) / (2 * sigma**2))  # (K, h)
    heatmaps = gy[:, :, None] * gx[:, None, :]
    inside = (kx[:, 0] >= -0.5) & (kx[:, 0] < w - 0.5) & (ky[:, 0] >= -0.5) & (ky[:, 0] < h - 0.5)
    weights = (visible.astype(bool) & inside).astype(np.float32)
    heatmaps *= weights[:, None, None]
    return heatmaps.astype(np.float32), weights


def decode_heatmaps(heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Argmax with a quarter-pixel shift towards the higher neighbour.

    Args:
        heatmaps: (N, K, h, w).

    Returns:
        coordinates (N, K, 2) in heatmap pixels and max values (N, K).
    """
    n, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(n, k, -1)
    maxvals, index = flat.max(dim=-1)
    x = (index % w).long()
    y = torch.div(index, w, rounding_mode="floor").long()
    hm = heatmaps.reshape(n * k, h, w)
    rows = torch.arange(n * k, device=heatmaps.device)
    xf, yf = x.reshape(-1), y.reshape(-1)
    right = hm[rows, yf, (xf + 1).clamp(max=w - 1)]
    left = hm[rows, yf, (xf - 1).clamp(min=0)]
    down = hm[rows, (yf + 1).clamp(max=h - 1), xf]
    up = hm[rows, (yf - 1).clamp(min=0), xf]
    inner_x = ((xf > 0) & (xf < w - 1)).float()
    inner_y = ((yf > 0) & (yf < h - 1)).float()
    dx = torch.sign(right - left) * 0.25 * inner_x
    dy = torch.sign(down - up) * 0.25 * inner_y
    coords = torch.stack([xf.float() + dx, yf.float() + dy], dim=-1).reshape(n, k, 2)
    return coords, maxvals


def flip_heatmaps(heatmaps: torch.Tensor, flip_pairs) -> torch.Tensor:
    """Mirror (N, K, h, w) heatmaps of a flipped input back, swapping left/right channels."""
    flipped = heatmaps.flip(-1)
    order = list(range(heatmaps.shape[1]))
    for a, b in flip_pairs:
        order[a], order[b] = b, a
    return flipped[:, order]
