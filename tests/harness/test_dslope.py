"""D-Slope's loss against a hand computation on tiny tensors, and the stop-gradient on partners."""

import pytest
import torch
from torch import nn

from baselines.clean import Clean
from harness.methods.dslope import DSlope, DSlopeSettings
from harness.methods.imitation import feature_imitation, imitation_loss


class TinyBackbone(nn.Module):
    """Two conv stages; `body` exposes them by name like a timm feature model."""

    out_channels, out_stride = 4, 1
    tap_names = ("stage1", "stage2")

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential()
        self.body.add_module("stage1", nn.Conv2d(3, 4, 3, padding=1))
        self.body.add_module("stage2", nn.Conv2d(4, 4, 3, padding=1))

    def forward(self, x):
        return self.body(x)


def build():
    from harness.models.task_model import TaskModel

    return TaskModel(TinyBackbone(), nn.Conv2d(4, 2, 1))


def sup_loss(outputs, batch):
    return ((outputs - batch["target"]) ** 2).mean()


def batch():
    g = torch.Generator().manual_seed(0)
    return {
        "image": torch.randn(2, 3, 5, 4, generator=g),
        "twin": torch.randn(2, 3, 5, 4, generator=g),
        "target": torch.randn(2, 2, 5, 4, generator=g),
    }


def test_imitation_loss_is_sum_of_mses_for_single_tensor_taps():
    a, b = [[torch.ones(2, 3)]], [[torch.zeros(2, 3)]]
    out_a, out_b = torch.full((2, 2), 2.0), torch.zeros(2, 2)
    assert imitation_loss(a, out_a, b, out_b).item() == pytest.approx(1.0 + 4.0)
    assert imitation_loss(a, out_a, b, out_b, use_features=False).item() == pytest.approx(4.0)
    assert imitation_loss(a, out_a, b, out_b, use_output=False).item() == pytest.approx(1.0)


def test_feature_term_is_per_stage_mean_of_branch_mses_summed_over_stages():
    """Hand computation: a 2-branch stage with branch MSEs 1 and 9, a 3-branch stage with 4, 16, 1.

    The authors' reduction: (1 + 9) / 2 + (4 + 16 + 1) / 3 = 5 + 7 = 12; summing every branch gives 31.
    """
    own = [
        [torch.full((1, 2, 2, 2), 1.0), torch.full((1, 2, 1, 1), 3.0)],
        [torch.full((1, 1, 4, 4), 2.0), torch.full((1, 1, 2, 2), 4.0), torch.full((1, 1, 1, 1), -1.0)],
    ]
    partner = [[torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 1, 1)],
               [torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 1, 1)]]  # fmt: skip
    assert feature_imitation(own, partner).item() == pytest.approx(12.0)
    assert feature_imitation(own, partner, reduction="sum").item() == pytest.approx(31.0)
    heat_own, heat_partner = torch.full((1, 3, 2, 2), 0.5), torch.zeros(1, 3, 2, 2)
    total = imitation_loss(own, heat_own, partner, heat_partner)
    assert total.item() == pytest.approx(12.0 + 0.25)


def test_feature_term_refuses_mismatched_taps():
    with pytest.raises(ValueError, match="branch count"):
        feature_imitation([[torch.zeros(1)]], [[torch.zeros(1), torch.zeros(1)]])


def test_dslope_step_gradients_match_two_separate_losses():
    """The trainer's one backward of the summed loss moves each network as its own loss alone would."""
    torch.manual_seed(0)
    method = DSlope(build, sup_loss, DSlopeSettings(enet_weight=0.5, gnet_weight=0.05))
    b = batch()
    method.training_step(b)["loss"].backward()
    got = [p.grad.clone() for p in [*method.gnet.parameters(), *method.enet.parameters()]]
    for p in [*method.gnet.parameters(), *method.enet.parameters()]:
        p.grad = None
    out_g, out_e = method.gnet(b["image"]), method.enet(b["twin"])
    feat_g, feat_e = method.gnet.feature_groups, method.enet.feature_groups
    loss_g = sup_loss(out_g, b) + 0.05 * imitation_loss(feat_g, out_g, feat_e, out_e)
    loss_e = sup_loss(out_e, b) + 0.5 * imitation_loss(feat_e, out_e, feat_g, out_g)
    (loss_g + loss_e).backward()
    want = [p.grad for p in [*method.gnet.parameters(), *method.enet.parameters()]]
    for have, expected in zip(got, want, strict=True):
        torch.testing.assert_close(have, expected, rtol=1e-5, atol=1e-7)


def test_dslope_terms_match_hand_computation():
    torch.manual_seed(0)
    method = DSlope(build, sup_loss, DSlopeSettings(enet_weight=1e-3, gnet_weight=1e-5))
    b = batch()
    terms = method.training_step(b)

    # Recompute by hand from the two networks' own layers.
    def run(net, x):
        f1 = net.backbone.body.stage1(x)
        f2 = net.backbone.body.stage2(f1)
        return [f1, f2], net.head(f2)

    fg, og = run(method.gnet, b["image"])
    fe, oe = run(method.enet, b["twin"])
    mse = lambda x, y: ((x - y) ** 2).mean()  # noqa: E731
    mimic = mse(fg[0], fe[0]) + mse(fg[1], fe[1]) + mse(og, oe)  # symmetric, so equal for both
    expect_g = mse(og, b["target"]) + 1e-5 * mimic
    expect_e = mse(oe, b["target"]) + 1e-3 * mimic
    assert terms["loss_gnet"].item() == pytest.approx(expect_g.item(), rel=1e-6)
    assert terms["loss_enet"].item() == pytest.approx(expect_e.item(), rel=1e-6)
    assert terms["loss"].item() == pytest.approx((expect_g + expect_e).item(), rel=1e-6)
    assert terms["mimic_enet"].item() == pytest.approx(mimic.item(), rel=1e-6)


def test_partner_tensors_get_no_gradient():
    """ENet's loss must not move GNet and vice versa: partners are detached."""
    torch.manual_seed(0)
    method = DSlope(build, sup_loss, DSlopeSettings(enet_weight=10.0, gnet_weight=10.0))
    b = batch()
    out_g = method.gnet(b["image"])
    feat_g = method.gnet.feature_groups
    out_e = method.enet(b["twin"])
    feat_e = method.enet.feature_groups
    loss_e = sup_loss(out_e, b) + 10.0 * imitation_loss(feat_e, out_e, feat_g, out_g)
    loss_e.backward()
    assert all(p.grad is None for p in method.gnet.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in method.enet.parameters())


def test_enet_sees_the_twin_and_gnet_the_clean_image():
    torch.manual_seed(0)
    method = DSlope(build, sup_loss)
    b = batch()
    method.training_step(b)
    assert torch.equal(method.enet.features[0], method.enet.backbone.body.stage1(b["twin"]))
    assert torch.equal(method.gnet.features[0], method.gnet.backbone.body.stage1(b["image"]))
    assert method.evaluated == "enet" and method.also_evaluated == ("gnet",)


def test_enet_starts_as_an_exact_copy_of_gnet_in_separate_storage():
    """The authors' two networks start from one checkpoint: identical state dicts, no shared tensors."""
    torch.manual_seed(0)
    method = DSlope(build, sup_loss)
    sg, se = method.gnet.state_dict(), method.enet.state_dict()
    assert sg.keys() == se.keys()
    for key in sg:
        assert torch.equal(sg[key], se[key]), key
        assert sg[key].data_ptr() != se[key].data_ptr(), key
    # Separate hooks: ENet's forward fills ENet's taps only.
    method.enet(batch()["twin"])
    assert method.gnet.feature_groups == [[], []] and len(method.enet.feature_groups[0]) == 1


def test_independent_init_ablation_draws_enet_afresh():
    torch.manual_seed(0)
    method = DSlope(build, sup_loss, DSlopeSettings(independent_init=True))
    wg = method.gnet.head.weight
    we = method.enet.head.weight
    assert wg.data_ptr() != we.data_ptr() and not torch.equal(wg, we)


def test_feature_reduction_switch_reaches_the_step():
    """A 2-branch tap: with `sum` the logged feature term is the sum of the branch MSEs, else their mean."""

    class TwoBranch(nn.Module):
        def forward(self, x):
            return [x, 2 * x]

    class Backbone2(nn.Module):
        out_channels, out_stride = 3, 1
        tap_names = ("split",)

        def __init__(self):
            super().__init__()
            self.body = nn.Sequential()
            self.body.add_module("split", TwoBranch())

        def forward(self, x):
            return self.body(x)[0]

    from harness.models.task_model import TaskModel

    def build2():
        return TaskModel(Backbone2(), nn.Conv2d(3, 2, 1))

    b = batch()
    mse = lambda x, y: ((x - y) ** 2).mean()  # noqa: E731
    d = mse(b["twin"], b["image"])
    settings = {"output_loss": False}
    mean = DSlope(build2, sup_loss, DSlopeSettings(**settings)).training_step(b)["mimic_enet"]
    total = DSlope(build2, sup_loss, DSlopeSettings(feature_reduction="sum", **settings)).training_step(b)
    assert mean.item() == pytest.approx(((d + 4 * d) / 2).item(), rel=1e-6)
    assert total["mimic_enet"].item() == pytest.approx((d + 4 * d).item(), rel=1e-6)


def test_clean_baseline_ignores_the_twin():
    torch.manual_seed(0)
    method = Clean(build, sup_loss)
    b = batch()
    assert method.training_step(b)["loss"].item() == pytest.approx(sup_loss(method.net(b["image"]), b).item())
    assert not Clean.needs_twin and DSlope.needs_twin
