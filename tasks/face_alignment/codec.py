"""Face crop geometry and the landmark heatmap codec.

Conventions (pixel centres at integer coordinates everywhere):
- A face is cropped around a centre with a (w, h) size in image pixels; `crop_affine` maps image pixels to
  input pixels, with rotation and a horizontal flip folded into the one matrix, so the clean image and its
  occluded twin go through the very same warp.
- heatmap coordinate = (input coordinate + 0.5) / stride - 0.5, which makes flipping a heatmap exact.
- Decoding refines the argmax with DARK's second-order Taylor step on the log heatmap: at a stride of 4 and
  64-pixel inputs the argmax alone would be quantised to a tenth of the inter-pupil distance.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# The crop geometry is pose's (same pixel-centre convention, same affine with the flip folded in): one copy,
# re-exported here so face alignment code reads `codec.crop_affine` like pose does.
from tasks.pose.codec import (  # noqa: F401
    PADDING,
    apply_affine,
    crop_affine,
    flip_heatmaps,
    heatmap_to_input,
    input_to_heatmap,
    invert_affine,
)
from tasks.pose.codec import box_to_center_scale as box_to_center_size  # noqa: F401

# The crop geometry is pose's (same pixel-centre convention, same affine with flip folded in): one copy.

PIXEL_STD = 200.0  # mmpose / HRNet store a face's `scale` in units of 200 pixels


def center_scale_to_box(center, scale: float) -> np.ndarray:
    """mmpose's `center` + `scale` (side = scale * 200 px, a square) -> box [x, y, w, h]."""
    side = float(scale) * PIXEL_STD
    cx, cy = (float(v) for v in center)
    return np.array([cx - side / 2, cy - side / 2, side, side], dtype=np.float64)


def encode_heatmaps(
    points: np.ndarray, weight: np.ndarray, heatmap_size: tuple[int, int], sigma: float
) -> tuple[np.ndarray, np.ndarray]:
    """Unnormalised Gaussians (peak 1) at sub-pixel positions given in heatmap coordinates.

    Args:
        points: (K, 2) landmark positions in heatmap coordinates.
        weight: (K,) 1 for labelled landmarks, 0 otherwise.
        heatmap_size: (h, w).
        sigma: standard deviation in heatmap pixels.

    Returns:
        heatmaps (K, h, w) float32 and target weights (K,) float32: 0 for unlabelled landmarks and for those
        whose centre falls outside the heatmap.
    """
    h, w = heatmap_size
    xs = np.arange(w, dtype=np.float32)
    ys = np.arange(h, dtype=np.float32)
    kx = points[:, 0:1].astype(np.float32)
    ky = points[:, 1:2].astype(np.float32)
    gx = np.exp(-((xs[None, :] - kx) ** 2) / (2 * sigma**2))
    gy = np.exp(-((ys[None, :] - ky) ** 2) / (2 * sigma**2))
    heatmaps = gy[:, :, None] * gx[:, None, :]
    inside = (kx[:, 0] >= -0.5) & (kx[:, 0] < w - 0.5) & (ky[:, 0] >= -0.5) & (ky[:, 0] < h - 0.5)
    weights = ((np.asarray(weight) > 0) & inside).astype(np.float32)
    heatmaps *= weights[:, None, None]
    return heatmaps.astype(np.float32), weights


def decode_heatmaps(heatmaps: torch.Tensor, blur_sigma: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Sub-pixel maxima: argmax, then one Newton step on the log of the (lightly blurred) heatmap (DARK).

    Args:
        heatmaps: (N, K, h, w).
        blur_sigma: Gaussian smoothing before the Taylor step (DARK's "modulation"); 0 disables it.

    Returns:
        coordinates (N, K, 2) in heatmap pixels and the maximum values (N, K) of the raw heatmaps.
    """
    n, k, h, w = heatmaps.shape
    heatmaps = heatmaps.float()
    maxvals, index = heatmaps.reshape(n, k, -1).max(dim=-1)
    x = (index % w).float()
    y = torch.div(index, w, rounding_mode="floor").float()
    smooth = heatmaps
    if blur_sigma > 0:
        radius = max(1, int(round(3 * blur_sigma)))
        taps = torch.arange(-radius, radius + 1, dtype=torch.float32, device=heatmaps.device)
        kernel = torch.exp(-(taps**2) / (2 * blur_sigma**2))
        kernel = kernel / kernel.sum()
        flat = heatmaps.reshape(n * k, 1, h, w)
        flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
        flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))
        smooth = flat.reshape(n, k, h, w)
    # Keep the blurred map's shape but its own scale: log of a positive map.
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
