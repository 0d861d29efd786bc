"""The clean baseline: one network trained on clean images only."""

from __future__ import annotations

import torch

from harness.core.registry import METHODS
from harness.methods.base import Batch, Method


@METHODS.register("clean")
class Clean(Method):
    """One network, clean images, the task's supervised loss. The reference every method is compared to."""

    role = "reference"
    clean_network = "net"
    input_key = "image"  # which image of the batch the network trains on

    def __init__(self, build_model, supervised_loss, settings=None):
        super().__init__(build_model, supervised_loss, settings)
        self.net = build_model()

    def networks(self):
        return {"net": self.net}

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        loss = self.supervised_loss(self.net(batch[self.input_key]), batch)
        return {"loss": loss, "loss_sup": loss.detach()}
