"""Embedding head (arcface's BN-dropout-FC-BN) and the additive-margin classifiers ArcFace and CosFace.

The class-weight matrix of the margin classifier lives inside the head, hence inside each network, so
every network's own optimizer trains it (D-Slope keeps one optimizer per network). The head returns a
dict: the raw embedding always, the cosine logits between the normalised embedding and the normalised
class weights only in training mode (evaluation and export need the embedding alone).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

MarginType = Literal["arcface", "cosface"]


class EmbeddingHead(nn.Module):
    """Feature map -> `embedding_size`-d embedding, as insightface's 'E' output block.

    BatchNorm2d -> Dropout -> Flatten -> Linear -> BatchNorm1d over a fixed `grid` of the feature map
    (adaptive average pooling to `grid`; the identity at the size the head was built for).

    Args:
        in_channels: channels of the backbone feature.
        grid: (h, w) of the feature map at the training input size.
        embedding_size: output dimension (512 as in arcface).
        dropout: dropout probability before the FC layer.
    """

    def __init__(
        self, in_channels: int, grid: tuple[int, int], embedding_size: int = 512, dropout: float = 0.0
    ):
        super().__init__()
        self.grid = tuple(int(v) for v in grid)
        self.pool = nn.AdaptiveAvgPool2d(self.grid)
        self.bn2d = nn.BatchNorm2d(in_channels)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_channels * self.grid[0] * self.grid[1], embedding_size)
        self.features = nn.BatchNorm1d(embedding_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.bn2d(self.pool(x)))
        return self.features(self.fc(torch.flatten(x, 1)))


def margin_logits(
    cosine: torch.Tensor, labels: torch.Tensor, *, kind: MarginType, scale: float, margin: float
) -> torch.Tensor:
    """Scaled logits with an additive margin on each sample's own class.

    ArcFace: s * cos(theta + m) for the target class (where theta + m would pass pi, insightface's
    fallback cos(theta) - m * sin(m) keeps the logit monotonic), s * cos(theta) elsewhere.
    CosFace: s * (cos(theta) - m) for the target class, s * cos(theta) elsewhere.

    Args:
        cosine: (B, C) cosines between normalised embeddings and normalised class weights.
        labels: (B,) class indices.
        kind: "arcface" or "cosface".
        scale: s.
        margin: m (radians for ArcFace).

    Returns:
        (B, C) logits for cross-entropy.

    Example:
        >>> margin_logits(torch.tensor([[1.0, 0.0]]), torch.tensor([0]), kind="cosface", scale=2, margin=0.5)
        tensor([[1., 0.]])
    """
    cosine = cosine.float().clamp(-1.0, 1.0)
    target = cosine.gather(1, labels[:, None])
    if kind == "arcface":
        sine = torch.sqrt((1.0 - target * target).clamp_min(0.0))
        with_margin = target * math.cos(margin) - sine * math.sin(margin)
        # theta + m > pi: cos(theta + m) would rise again; insightface's linear fallback instead.
        threshold = math.cos(math.pi - margin)
        with_margin = torch.where(
            target > threshold, with_margin, target - math.sin(math.pi - margin) * margin
        )
    elif kind == "cosface":
        with_margin = target - margin
    else:
        raise ValueError(f"margin kind: expected 'arcface' or 'cosface', got {kind!r}")
    return scale * cosine.scatter(1, labels[:, None], with_margin)


class RecognitionHead(nn.Module):
    """Embedding head + the margin classifier's class weights.

    Returns `{"embedding": (B, D)}`, plus `"cosine": (B, C)` in training mode. With Partial FC
    (`sample_rate` < 1) training returns the class weights themselves as `"class_weight"` instead of the
    cosines: which centres to keep depends on the batch's labels, so the loss samples them
    (`partial_fc.sampled_cosine`) and the full (B, C) matrix is never built. `imitation_target` is the
    L2-normalised embedding: what a partner network imitates (never the logits over training identities).

    Args:
        in_channels: channels of the backbone feature.
        grid: (h, w) of the feature map at the training input size.
        num_classes: training identities.
        embedding_size: embedding dimension.
        dropout: dropout before the FC layer.
        sample_rate: Partial FC's fraction of class centres per batch (1.0: all, the plain softmax).
    """

    def __init__(
        self, in_channels: int, grid: tuple[int, int], num_classes: int, embedding_size: int = 512,
        dropout: float = 0.0, sample_rate: float = 1.0,
    ):  # fmt: skip
        super().__init__()
        self.sample_rate = sample_rate
        self.embedding = EmbeddingHead(in_channels, grid, embedding_size, dropout)
        self.class_weight = nn.Parameter(torch.empty(num_classes, embedding_size))
        nn.init.normal_(self.class_weight, std=0.01)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        embedding = self.embedding(x)
        if not self.training:
            return {"embedding": embedding}
        if self.sample_rate < 1.0:
            return {"embedding": embedding, "class_weight": self.class_weight}
        cosine = F.linear(F.normalize(embedding.float()), F.normalize(self.class_weight.float()))
        return {"embedding": embedding, "cosine": cosine}

    @staticmethod
    def imitation_target(outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.normalize(outputs["embedding"].float())
