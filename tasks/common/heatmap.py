"""Crop geometry and the keypoint heatmap codec of top-down keypoint tasks (pose, face landmarks).

Conventions (pixel centres at integer coordinates everywhere):
- `box_to_center_size` turns a box into a centre and a (w, h) size with the input's aspect ratio and
  25 % padding, as the top-down literature does.
- `crop_affine` maps image pixels to input-crop pixels; rotation and a horizontal flip are folded into the
  one matrix, so a clean image and its occluded twin go through the very same warp.
- heatmap coordinate = (input coordinate + 0.5) / stride - 0.5, which makes flipping a heatmap exact.
- Two decoders, chosen explicitly by each task: `argmax_quarter` (HRNet's argmax + a quarter-pixel shift
  towards the higher neighbour) and `dark` (DARK's second-order Taylor step on the log heatmap, needed when
  a heatmap pixel is a large share of the error unit, e.g. 64-pixel face crops).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

PADDING = 1.25
Decoder = Literal["argmax_quarter", "dark"]


def box_to_center_size(box, aspect_ratio: float, padding: float = PADDING) -> tuple[np.ndarray, np.ndarray]:
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


def flip_order(num_points: int, flip_pairs) -> list[int]:
    """The permutation that relabels keypoints after a horizontal flip (left <-> right)."""
    order = list(range(num_points))
    for a, b in flip_pairs:
        order[a], order[b] = b, a
    return order


def flip_heatmaps(heatmaps: torch.Tensor, flip_pairs) -> torch.Tensor:
    """Mirror (N, K, h, w) heatmaps of a flipped input back, swapping left/right channels."""
    return heatmaps.flip(-1)[:, flip_order(heatmaps.shape[1], flip_pairs)]


def encode_heatmaps(
    points: np.ndarray, labelled: np.ndarray, heatmap_size: tuple[int, int], sigma: float
) -> tuple[np.ndarray, np.ndarray]:
    """Unnormalised Gaussians (peak 1) centred at sub-pixel keypoints.

    Args:
        points: (K, 2) positions in heatmap coordinates.
        labelled: (K,) truthy for labelled keypoints.
        heatmap_size: (h, w).
        sigma: Gaussian standard deviation in heatmap pixels.

    Returns:
        heatmaps (K, h, w) float32 and target weights (K,) float32: 0 for unlabelled keypoints and for those
        whose centre falls outside the heatmap.
    """
    h, w = heatmap_size
    xs = np.arange(w, dtype=np.float32)
    ys = np.arange(h, dtype=np.float32)
    kx = points[:, 0:1].astype(np.float32)
    ky = points[:, 1:2].astype(np.float32)
    gx = np.exp(-((xs[None, :] - kx) ** 2) / (2 * sigma**2))  # (K, w)
    gy = np.exp(-((ys[None, :] - ky) ** 2) / (2 * sigma**2))  # (K, h)
    heatmaps = gy[:, :, None] * gx[:, None, :]
    inside = (kx[:, 0] >= -0.5) & (kx[:, 0] < w - 0.5) & (ky[:, 0] >= -0.5) & (ky[:, 0] < h - 0.5)
    weights = ((np.asarray(labelled) > 0) & inside).astype(np.float32)
    heatmaps *= weights[:, None, None]
    return heatmaps.astype(np.float32), weights


def decode_heatmaps(
    heatmaps: torch.Tensor, decoder: Decoder = "argmax_quarter"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sub-pixel maxima of (N, K, h, w) heatmaps -> coordinates (N, K, 2) in heatmap pixels and the maximum
    values (N, K) of the raw heatmaps."""
    if decoder == "argmax_quarter":
        return decode_argmax_quarter(heatmaps)
    if decoder == "dark":
        return decode_dark(heatmaps)
    raise ValueError(f"unknown heatmap decoder {decoder!r}, expected 'argmax_quarter' or 'dark'")


def decode_argmax_quarter(heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Argmax with a quarter-pixel shift towards the higher neighbour (HRNet, SimpleBaseline)."""
    n, k, h, w = heatmaps.shape
    maxvals, index = heatmaps.reshape(n, k, -1).max(dim=-1)
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


def _blur(heatmaps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian smoothing with replicated borders (DARK's "modulation")."""
    n, k, h, w = heatmaps.shape
    radius = max(1, int(round(3 * sigma)))
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32, device=heatmaps.device)
    kernel = torch.exp(-(taps**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    flat = heatmaps.reshape(n * k, 1, h, w)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))
    return flat.reshape(n, k, h, w)


def decode_dark(heatmaps: torch.Tensor, blur_sigma: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Argmax, then one Newton step on the log heatmap (DARK), blurred first unless `blur_sigma` is 0."""
    n, k, h, w = heatmaps.shape
    heatmaps = heatmaps.float()
    maxvals, index = heatmaps.reshape(n, k, -1).max(dim=-1)
    x = (index % w).float()
    y = torch.div(index, w, rounding_mode="floor").float()
    smooth = _blur(heatmaps, blur_sigma) if blur_sigma > 0 else heatmaps
    logmap = torch.log(smooth.clamp(min=1e-10))
    padded = F.pad(logmap, (1, 1, 1, 1), mode="replicate").reshape(n * k, h + 2, w + 2)
    rows = torch.arange(n * k, device=heatmaps.device)
    xi = x.reshape(-1).long() + 1
    yi = y.reshape(-1).long() + 1

    def at(dy: int, dx: int) -> torch.Tensor:
        return padded[rows, yi + dy, xi + dx]

    centre = at(0, 0)
    dx = 0.5 * (at(0, 1) - at(0, -1))
    dy = 0.5 * (at(1, 0) - at(-1, 0))
    dxx = at(0, 1) - 2 * centre + at(0, -1)
    dyy = at(1, 0) - 2 * centre + at(-1, 0)
    dxy = 0.25 * (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1))
    det = dxx * dyy - dxy**2
    # A maximum has a negative-definite Hessian; elsewhere (flat or saddle) keep the integer argmax.
    ok = (det > 1e-6) & (dxx < 0)
    safe = torch.where(ok, det, torch.ones_like(det))
    off_x = -(dyy * dx - dxy * dy) / safe
    off_y = -(dxx * dy - dxy * dx) / safe
    off_x = torch.where(ok, off_x.clamp(-1, 1), torch.zeros_like(off_x))
    off_y = torch.where(ok, off_y.clamp(-1, 1), torch.zeros_like(off_y))
    coords = torch.stack([x.reshape(-1) + off_x, y.reshape(-1) + off_y], dim=-1).reshape(n, k, 2)
    return coords, maxvals
