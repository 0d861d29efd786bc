"""D-Slope: dual-sample learning with a clean GNet and an occluded-input ENet that imitate each other.

As the authors' code does it (zhanghao5201/MoEPose, `lib/core/function.py` `mutual_learning`, and
`lib/models/pose_hrnet_kd*.py` `init_weights`): two separate networks that start from the same weights
(ENet is a copy of GNet at construction); GNet sees the clean crop, ENet its pixel-aligned occluded twin;
both are supervised by the clean targets; each imitates the *detached* partner through MSE on tapped stage
features (per stage the mean over its branch tensors, summed over stages; harness/methods/imitation.py) and on
outputs, weighted 1e-3 for ENet's imitation of GNet and 1e-5 for GNet's imitation of ENet. Each network has
its own optimizer. Because the partner is detached, back-propagating the sum of both losses gives each
network exactly the gradient of its own loss, so the trainer's single backward is one step each.

The output term imitates `TaskModel.imitation_target(outputs)`: the outputs themselves for a heatmap
head, the L2-normalised embedding for an embedding head whose outputs also carry margin logits. That is
the head's business, so this method holds no task-specific code.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict

from harness.core.registry import METHODS
from harness.methods.base import Batch, Method
from harness.methods.imitation import FeatureReduction, imitation_loss


class DSlopeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enet_weight: float = 1e-3  # ENet imitating GNet
    gnet_weight: float = 1e-5  # GNet imitating ENet
    feature_loss: bool = True  # imitate tapped stage features
    output_loss: bool = True  # imitate outputs (heatmaps / embeddings)
    stop_gradient: bool = True  # detach the partner's tensors (the paper); False lets gradients cross
    shared_optimizer: bool = False  # one optimizer over both networks instead of one each (ablation)
    # The authors' networks start from one checkpoint, so their stage features correspond channel by
    # channel: ENet starts as an exact copy of GNet. True draws ENet independently (ablation).
    independent_init: bool = False
    # Per tapped stage, the mean of the MSEs over its branch tensors (authors' code); "sum" adds every
    # branch tensor on its own (ablation; ~3x heavier imitation for HRNet's 2-4-branch stages).
    feature_reduction: FeatureReduction = "mean"


@METHODS.register("dslope")
class DSlope(Method):
    """GNet on clean images, ENet on occluded twins, mutual imitation. ENet is evaluated."""

    Settings = DSlopeSettings
    needs_twin = True
    role = "method"
    clean_network = "gnet"

    def __init__(self, build_model, supervised_loss, settings=None):
        super().__init__(build_model, supervised_loss, settings)
        self.gnet = build_model()
        self.enet = build_model()
        if not self.settings.independent_init:
            # A fresh build then a state copy (not deepcopy): each TaskModel keeps its own forward hooks.
            self.enet.load_state_dict(self.gnet.state_dict())

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
        feat_g = self.gnet.feature_groups
        out_e = self.enet(batch["twin"])
        feat_e = self.enet.feature_groups
        sup_g = self.supervised_loss(out_g, batch)
        sup_e = self.supervised_loss(out_e, batch)
        flags = {
            "use_features": s.feature_loss,
            "use_output": s.output_loss,
            "detach_partner": s.stop_gradient,
            "reduction": s.feature_reduction,
        }
        imit_g = self.gnet.imitation_target(out_g)
        imit_e = self.enet.imitation_target(out_e)
        mimic_g = imitation_loss(feat_g, imit_g, feat_e, imit_e, **flags)
        mimic_e = imitation_loss(feat_e, imit_e, feat_g, imit_g, **flags)
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
