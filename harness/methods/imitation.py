"""The imitation term shared by mutual learning (D-Slope) and one-way distillation.

A network imitates a partner's tapped stage features and its output through MSE. Taps are grouped per
hooked module: an HRNet stage returns one tensor per resolution branch. The authors' code
(zhanghao5201/MoEPose, `lib/core/function.py`, `mutual_learning`) averages the MSEs over a stage's branch
tensors and sums the stage means (`reduction="mean"`, the default); `reduction="sum"` adds every branch
tensor on its own, which weighs a 3-branch stage three times as much (kept as an ablation). A module with
one output tensor is its own mean, so for single-tensor taps both reductions agree.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

FeatureReduction = Literal["mean", "sum"]


def feature_imitation(
    own: list[list[torch.Tensor]],
    partner: list[list[torch.Tensor]],
    *,
    reduction: FeatureReduction = "mean",
    detach_partner: bool = True,
) -> torch.Tensor:
    """Sum over tapped modules of the (mean or sum over branch tensors of the) MSE to the partner.

    Args:
        own: per tapped module, its branch tensors (TaskModel.feature_groups).
        partner: the partner network's groups, same structure.
        reduction: how a module's branch MSEs combine: "mean" (the authors' code) or "sum".
        detach_partner: stop gradients into the partner (the paper).

    Raises:
        ValueError: the two networks' taps differ in structure.
    """
    if len(own) != len(partner):
        raise ValueError(f"tap count differs: {len(own)} vs {len(partner)}")
    stage_terms = []
    for mine, theirs in zip(own, partner, strict=True):
        if len(mine) != len(theirs):
            raise ValueError(f"branch count of a tap differs: {len(mine)} vs {len(theirs)}")
        if not mine:
            continue
        branch = torch.stack(
            [F.mse_loss(a, b.detach() if detach_partner else b) for a, b in zip(mine, theirs, strict=True)]
        )
        stage_terms.append(branch.mean() if reduction == "mean" else branch.sum())
    if not stage_terms:
        return own[0][0].new_zeros(()) if own and own[0] else torch.zeros(())
    return torch.stack(stage_terms).sum()


def output_imitation(
    own: torch.Tensor, partner: torch.Tensor, *, detach_partner: bool = True
) -> torch.Tensor:
    """MSE between own output (heatmaps, or a normalised embedding) and the partner's."""
    return F.mse_loss(own, partner.detach() if detach_partner else partner)


def imitation_loss(
    own_features: list[list[torch.Tensor]],
    own_output: torch.Tensor,
    partner_features: list[list[torch.Tensor]],
    partner_output: torch.Tensor,
    *,
    use_features: bool = True,
    use_output: bool = True,
    detach_partner: bool = True,
    reduction: FeatureReduction = "mean",
) -> torch.Tensor:
    """`sum_j reduce_k MSE(F[j][k], sg F'[j][k]) + MSE(H, sg H')`, either part switchable off."""
    total = own_output.new_zeros((), dtype=torch.float32)
    if use_features:
        total = total + feature_imitation(
            own_features, partner_features, reduction=reduction, detach_partner=detach_partner
        )
    if use_output:
        total = total + output_imitation(own_output, partner_output, detach_partner=detach_partner)
    return total
