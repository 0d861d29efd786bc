"""D-Slope's loss against a hand computation on tiny tensors, and the stop-gradient on partners."""

import pytest
import torch
from torch import nn

from baselines.clean import Clean
from harness.methods.dslope import DSlope, DSlopeSettings, mimic_loss


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
    from harness.model import TaskModel

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


def test_mimic_loss_is_sum_of_mses():
    a, b = [torch.ones(2, 3)], [torch.zeros(2, 3)]
    out_a, out_b = torch.full((2, 2), 2.0), torch.zeros(2, 2)
    assert mimic_loss(a, out_a, b, out_b).item() == pytest.approx(1.0 + 4.0)
    assert mimic_loss(a, out_a, b, out_b, use_features=False).item() == pytest.approx(4.0)
    assert mimic_loss(a, out_a, b, out_b, use_output=False).item() == pytest.approx(1.0)


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
    feat_g, feat_e = method.gnet.features, method.enet.features
    loss_g = sup_loss(out_g, b) + 0.05 * mimic_loss(feat_g, out_g, feat_e, out_e)
    loss_e = sup_loss(out_e, b) + 0.5 * mimic_loss(feat_e, out_e, feat_g, out_g)
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
    feat_g = method.gnet.features
    out_e = method.enet(b["twin"])
    feat_e = method.enet.features
    loss_e = sup_loss(out_e, b) + 10.0 * mimic_loss(feat_e, out_e, feat_g, out_g)
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


def test_networks_are_separate_and_differently_initialised():
    torch.manual_seed(0)
    method = DSlope(build, sup_loss)
    wg = method.gnet.head.weight
    we = method.enet.head.weight
    assert wg.data_ptr() != we.data_ptr() and not torch.equal(wg, we)


def test_clean_baseline_ignores_the_twin():
    torch.manual_seed(0)
    method = Clean(build, sup_loss)
    b = batch()
    assert method.training_step(b)["loss"].item() == pytest.approx(sup_loss(method.net(b["image"]), b).item())
    assert not Clean.needs_twin and DSlope.needs_twin
