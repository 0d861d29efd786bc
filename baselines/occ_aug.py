"""Occlusion-augmented baseline: one network trained on D-Slope's own occluded twins.

The fair ablation of D-Slope: the same patches, the same placement and the same share of clean pairs
(`occlusion.clean_fraction`), but a single network and no mutual learning. If D-Slope beats this, the
gain comes from dual-sample learning, not from seeing occluded images.
"""

from __future__ import annotations

import torch

from harness.methods.base import Batch, Method
from harness.registry import METHODS


@METHODS.register("occ_aug")
class OcclusionAugmented(Method):
    """One network; its input is the twin (which is the clean image for about a third of pairs)."""

    needs_twin = True

    def __init__(self, build_model, supervised_loss, settings=None):
        super().__init__(build_model, supervised_loss, settings)
        self.net = build_model()

    def networks(self):
        return {"net": self.net}

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        loss = self.supervised_loss(self.net(batch["twin"]), batch)
        return {"loss": loss, "loss_sup": loss.detach()}
