"""Backbone + task head as one network, with forward hooks that expose the tapped stage features."""

from __future__ import annotations

import torch
from torch import nn

from harness.models.backbones import Backbone


def _flatten(output) -> list[torch.Tensor]:
    """A hooked module may return a tensor or (HRNet) a list of branch tensors."""
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, (list, tuple)):
        return [t for item in output for t in _flatten(item)]
    return []


class TaskModel(nn.Module):
    """`head(backbone(x))`; after each forward, `features` holds the tapped stage outputs in tap order.

    The head's output is usually one tensor (heatmaps). A head may instead return a dict of tensors when
    its supervised loss needs more than what is imitated or deployed: an ArcFace head returns the embedding
    and, in training, the margin classifier's cosine logits, so the class-weight matrix lives inside the
    network and is trained by that network's own optimizer (D-Slope gives each network one). Such a head
    defines `imitation_target(outputs) -> Tensor`, and methods imitate that (via `imitation_target` below)
    instead of the raw output: a classifier's logits over training identities are not what a partner
    network should copy, the L2-normalised embedding is.
    """

    def __init__(self, backbone: Backbone, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self._captured: dict[str, list[torch.Tensor]] = {}
        modules = dict(backbone.body.named_modules())
        for name in backbone.tap_names:
            modules[name].register_forward_hook(self._make_hook(name))

    def _make_hook(self, name: str):
        def hook(_module, _inputs, output):
            self._captured[name] = _flatten(output)

        return hook

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        self._captured = {}
        return self.head(self.backbone(x))

    def imitation_target(self, outputs):
        """What the mutual loss imitates of `outputs`: the head's `imitation_target(outputs)` when it
        defines one, else the output itself (every heatmap head)."""
        target = getattr(self.head, "imitation_target", None)
        return target(outputs) if target is not None else outputs

    @property
    def feature_groups(self) -> list[list[torch.Tensor]]:
        """Tapped features of the last forward, one list of branch tensors per tapped module, in tap order."""
        return [list(self._captured.get(name, [])) for name in self.backbone.tap_names]

    @property
    def features(self) -> list[torch.Tensor]:
        """Tapped features of the last forward, flattened across taps and branches."""
        return [t for group in self.feature_groups for t in group]
