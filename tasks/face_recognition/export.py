"""The deployed face embedding graph: what `harness export` writes for insightface.

insightface's `ArcFaceONNX` (picked by `insightface.model_zoo.get_model` for a square input of at least 112
pixels, a multiple of 16) feeds aligned 112x112 crops as RGB NCHW float32 normalised as
(x - 127.5) / 127.5, unless the graph's first nodes are named Sub and Mul (old mxnet models, fed raw
pixels). Training uses exactly that normalisation, so the graph needs no normalisation node: it only
area-averages 112 -> the training size (an exact k x k mean, the resize the training data went through)
and returns the embedding, without the margin classifier.
"""

from __future__ import annotations

import torch
from torch import nn

from tasks.face_recognition.data import ALIGNED_SIZE


class EmbeddingModel(nn.Module):
    """(B, 3, 112, 112) normalised RGB aligned crops -> (B, D) embeddings of a trained network.

    Args:
        model: the trained `TaskModel` with a `RecognitionHead` (put in eval mode here).
        input_size: the training input side; 112 must be a multiple of it.
    """

    def __init__(self, model: nn.Module, input_size: int):
        super().__init__()
        factor = ALIGNED_SIZE // input_size
        assert factor * input_size == ALIGNED_SIZE, "the settings validator guarantees this"
        self.model = model.eval()
        self.resize = nn.AvgPool2d(factor) if factor > 1 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.resize(x))["embedding"]
