"""occ_aug and distill against hand computations; D-Slope's ablation switches."""

import pytest
import torch
from torch import nn

from baselines.clean import Clean
from baselines.distill import Distill, DistillSettings
from baselines.occ_aug import OcclusionAugmented
from harness.core.errors import CheckpointError, ConfigError
from harness.core.io import atomic_torch_save
from harness.core.precision import Precision
from harness.methods.dslope import DSlope, DSlopeSettings
from harness.models.task_model import TaskModel


class TinyBackbone(nn.Module):
    out_channels, out_stride = 4, 1
    tap_names = ("stage1", "stage2")

    def __init__(self, width: int = 4):
        super().__init__()
        self.body = nn.Sequential()
        self.body.add_module("stage1", nn.Conv2d(3, width, 3, padding=1))
        self.body.add_module("stage2", nn.Conv2d(width, 4, 3, padding=1))
        self.body.add_module("norm", nn.BatchNorm2d(4))

    def forward(self, x):
        return self.body(x)


def build(width: int = 4):
    return lambda: TaskModel(TinyBackbone(width), nn.Conv2d(4, 2, 1))


def sup_loss(outputs, batch):
    return ((outputs - batch["target"]) ** 2).mean()


def mse(a, b):
    return ((a - b) ** 2).mean()


def make_batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(2, c, 5, 4, generator=g) for k, c in (("image", 3), ("twin", 3), ("target", 2))}


def stages(net, x):
    f1 = net.backbone.body.stage1(x)
    f2 = net.backbone.body.stage2(f1)
    out = net.head(net.backbone.body.norm(f2))
    return [f1, f2], out


def save_run(tmp_path, method) -> "Path":  # noqa: F821
    run_dir = tmp_path / "teacher_run"
    atomic_torch_save(run_dir / "checkpoint.pt", {"method": method.state_dict()})
    return run_dir


def test_occ_aug_trains_on_the_twin():
    torch.manual_seed(0)
    method = OcclusionAugmented(build(), sup_loss)
    b = make_batch()
    method.eval()  # BatchNorm in eval so the hand computation sees the same statistics
    assert method.training_step(b)["loss"].item() == pytest.approx(sup_loss(method.net(b["twin"]), b).item())
    assert method.training_step(b)["loss"].item() != pytest.approx(sup_loss(method.net(b["image"]), b).item())
    assert OcclusionAugmented.needs_twin


def test_distill_loss_matches_hand_computation(tmp_path):
    torch.manual_seed(0)
    teacher_run = save_run(tmp_path, Clean(build(), sup_loss))
    settings = DistillSettings(teacher=str(teacher_run), feature_weight=0.5, output_weight=0.25)
    method = Distill(build(), sup_loss, settings)
    method.eval()
    b = make_batch()
    terms = method.training_step(b)
    ft, ot = stages(method.teacher, b["image"])
    fs, os_ = stages(method.student, b["twin"])
    # TaskModel taps stage1/stage2 outputs; the tiny backbone's features are those two tensors.
    expected = sup_loss(os_, b) + 0.5 * (mse(fs[0], ft[0]) + mse(fs[1], ft[1])) + 0.25 * mse(os_, ot)
    assert terms["loss"].item() == pytest.approx(expected.item(), rel=1e-6)


def test_distill_teacher_is_loaded_frozen_and_stays_in_eval_mode(tmp_path):
    torch.manual_seed(0)
    clean = Clean(build(), sup_loss)
    method = Distill(build(), sup_loss, DistillSettings(teacher=str(save_run(tmp_path, clean))))
    for key, value in clean.net.state_dict().items():
        assert torch.equal(method.teacher.state_dict()[key], value)
    before = {k: v.clone() for k, v in method.teacher.state_dict().items()}
    optimizer = torch.optim.Adam([p for group in method.optimizer_groups().values() for p in group], lr=0.1)
    method.train()
    assert not method.teacher.training and method.student.training
    for seed in range(2):
        optimizer.zero_grad()
        method.training_step(make_batch(seed))["loss"].backward()
        optimizer.step()
    after = method.teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BatchNorm statistics
    assert all(not p.requires_grad for p in method.teacher.parameters())
    assert set(method.networks()) == {"student"}


def test_distill_teacher_beyond_float16_range_still_gives_a_finite_loss_under_float16(tmp_path):
    """A frozen teacher whose eval-mode activations pass float16's 65504 (finite in float32): float16
    autocast must not turn its targets into inf (a NaN loss at step 1, that no grad scaler skips); seen on
    the H200 with a 2-step random-init HRNet-W32 teacher."""
    torch.manual_seed(0)
    clean = Clean(build(), sup_loss)
    with torch.no_grad():  # activations ~1e5 at stage2: finite in float32, inf in float16
        for conv in (clean.net.backbone.body.stage1, clean.net.backbone.body.stage2):
            conv.weight.mul_(300.0)
    method = Distill(build(), sup_loss, DistillSettings(teacher=str(save_run(tmp_path, clean))))
    method.train()
    with Precision("cpu", torch.float16).autocast():
        terms = method.training_step(make_batch())
    assert method.student.feature_groups[0][0].dtype is torch.float16  # the student did run in float16
    assert all(torch.isfinite(t).all() for t in terms.values())


def test_distill_teacher_from_a_dslope_run_uses_gnet(tmp_path):
    torch.manual_seed(0)
    dslope = DSlope(build(), sup_loss)
    method = Distill(build(), sup_loss, DistillSettings(teacher=str(save_run(tmp_path, dslope))))
    key = "head.weight"
    assert torch.equal(method.teacher.state_dict()[key], dslope.gnet.state_dict()[key])


def test_distill_errors_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="method_args.distill.teacher"):
        Distill(build(), sup_loss, DistillSettings())
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        Distill(build(), sup_loss, DistillSettings(teacher=str(tmp_path / "nowhere")))
    other = save_run(tmp_path, Clean(build(width=6), sup_loss))
    with pytest.raises(CheckpointError, match="does not fit this backbone"):
        Distill(build(), sup_loss, DistillSettings(teacher=str(other)))


def test_dslope_without_stop_gradient_lets_gradients_cross():
    """With stop_gradient=False, ENet's imitation term also moves GNet: GNet's gradient changes."""

    def gnet_head_grad(stop_gradient: bool) -> torch.Tensor:
        torch.manual_seed(0)
        method = DSlope(build(), sup_loss, DSlopeSettings(stop_gradient=stop_gradient, enet_weight=1.0))
        method.training_step(make_batch())["loss"].backward()
        return method.gnet.head.weight.grad.clone()

    assert not torch.allclose(gnet_head_grad(True), gnet_head_grad(False))


def test_dslope_feature_and_output_switches():
    torch.manual_seed(0)
    b = make_batch()
    full = DSlope(build(), sup_loss)
    torch.manual_seed(0)
    out_only = DSlope(build(), sup_loss, DSlopeSettings(feature_loss=False))
    torch.manual_seed(0)
    neither = DSlope(build(), sup_loss, DSlopeSettings(feature_loss=False, output_loss=False))
    for m in (full, out_only, neither):
        m.eval()
    t_full, t_out, t_none = (m.training_step(b) for m in (full, out_only, neither))
    fe, oe = stages(full.enet, b["twin"])
    fg, og = stages(full.gnet, b["image"])
    assert t_out["mimic_enet"].item() == pytest.approx(mse(oe, og).item(), rel=1e-6)
    assert t_full["mimic_enet"].item() == pytest.approx(
        (mse(fe[0], fg[0]) + mse(fe[1], fg[1]) + mse(oe, og)).item(), rel=1e-6
    )
    assert t_none["mimic_enet"].item() == 0.0


def test_dslope_shared_optimizer_groups_both_networks():
    method = DSlope(build(), sup_loss, DSlopeSettings(shared_optimizer=True))
    groups = method.optimizer_groups()
    assert list(groups) == ["shared"]
    assert len(groups["shared"]) == len(list(method.enet.parameters())) + len(list(method.gnet.parameters()))
    assert list(DSlope(build(), sup_loss).optimizer_groups()) == ["enet", "gnet"]
