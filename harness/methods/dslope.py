"""D-Slope: dual-sample learning with a clean GNet and an occluded-input ENet that imitate each other.

Exactly as the paper (and ../shared/design.md) states: two separate, identically built networks; GNet
sees the clean crop, ENet its pixel-aligned occluded twin; both are supervised by the clean targets;
each imitates the *detached* partner through MSE on tapped stage features and on outputs, weighted
1e-3 for ENet's imitation of GNet and 1e-5 for GNet's imitation of ENet. Each network has its own
optimizer. Because the partner is detached, back-propagating the sum of both losses gives each
network exactly the gradient of its own loss, so the trainer's single backward is one step each.

The output term imitates `TaskModel.imitation_target(outputs)`: the outputs themselves for a heatmap
head, the L2-normalised embedding for an embedding head whose outputs also carry margin logits. That is
the head's business, so this method holds no task-specific code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict

from harness.methods.base import Batch, Method
from harness.registry import METHODS


class DSlopeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enet_weight: float = 1e-3  # ENet imitating GNet
    gnet_weight: float = 1e-5  # GNet imitating ENet
    feature_loss: bool = True  # imitate tapped stage features
    output_loss: bool = True  # imitate outputs (heatmaps / embeddings)
    stop_gradient: bool = True  # detach the partner's tensors (the paper); False lets gradients cross
    shared_optimizer: bool = False  # one optimizer over both networks instead of one each (ablation)


def mimic_loss(
    own_features: list[torch.Tensor],
    own_output: torch.Tensor,
    partner_features: list[torch.Tensor],
    partner_output: torch.Tensor,
    *,
    use_features: bool = True,
    use_output: bool = True,
    detach_partner: bool = True,
) -> torch.Tensor:
    """Sum of MSEs between own tensors and the partner's (detached) ones (feature taps, then output)."""

    def partner(t: torch.Tensor) -> torch.Tensor:
        return t.detach() if detach_partner else t

    terms = []
    if use_features:
        terms += [F.mse_loss(own, partner(o)) for own, o in zip(own_features, partner_features, strict=True)]
    if use_output:
        terms.append(F.mse_loss(own_output, partner(partner_output)))
    return torch.stack(terms).sum() if terms else own_output.new_zeros(())


@METHODS.register("dslope")
class DSlope(Method):
    """GNet on clean images, ENet on occluded twins, mutual imitation. ENet is evaluated."""

    Settings = DSlopeSettings
    needs_twin = True

    def __init__(self, build_model, supervised_loss, settings=None):
        super().__init__(build_model, supervised_loss, settings)
        self.enet = build_model()
        self.gnet = build_model()

    def networks(self):
        return {"enet": self.enet, "gnet": self.gnet}

    def optimizer_groups(self):
        if self.settings.shared_optimizer:
            return {"shared": [*self.enet.parameters(), *self.gnet.parameters()]}
        return super().optimizer_groups()

    @property
    def also_evaluated(self) -> tuple[str, ...]:
        return ("gnet",)

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        s = self.settings
        out_g = self.gnet(batch["image"])
        feat_g = self.gnet.features
        out_e = self.enet(batch["twin"])
        feat_e = self.enet.features
        sup_g = self.supervised_loss(out_g, batch)
        sup_e = self.supervised_loss(out_e, batch)
        flags = {
            "use_features": s.feature_loss,
            "use_output": s.output_loss,
            "detach_partner": s.stop_gradient,
        }
        imit_g = self.gnet.imitation_target(out_g)
        imit_e = self.enet.imitation_target(out_e)
        mimic_g = mimic_loss(feat_g, imit_g, feat_e, imit_e, **flags)
        mimic_e = mimic_loss(feat_e, imit_e, feat_g, imit_g, **flags)
        loss_g = sup_g + s.gnet_weight * mimic_g
        loss_e = sup_e + s.enet_weight * mimic_e
        return {
            "loss": loss_g + loss_e,
            "loss_gnet": loss_g.detach(),
            "loss_enet": loss_e.detach(),
            "sup_gnet": sup_g.detach(),
            "sup_enet": sup_e.detach(),
            "mimic_gnet": mimic_g.detach(),
            "mimic_enet": mimic_e.detach(),
        }
