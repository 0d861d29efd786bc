"""Two D-Slope optimizer steps on a random heatmap batch, shared by the backbone tests of pose and faces
(a plain module, like tiny_pose.py)."""

from collections.abc import Callable

import torch

from harness.methods.dslope import DSlope


def random_heatmap_batch(size: tuple[int, int], keypoints: int, n: int = 2) -> dict[str, torch.Tensor]:
    """Clean image, twin, stride-4 heatmap targets and unit weights, seeded."""
    g = torch.Generator().manual_seed(0)
    h, w = size
    return {
        "image": torch.randn(n, 3, h, w, generator=g),
        "twin": torch.randn(n, 3, h, w, generator=g),
        "target": torch.rand(n, keypoints, h // 4, w // 4, generator=g),
        "target_weight": torch.ones(n, keypoints),
    }


def two_dslope_steps(method: DSlope, batch: dict, after_step: Callable[[], None] = lambda: None) -> None:
    """Two Adam steps through `method.training_step`: finite loss, imitation active, ENet's head moves."""
    optimizers = [torch.optim.Adam(p, lr=1e-3) for p in method.optimizer_groups().values()]
    before = method.enet.head.final.weight.detach().clone()
    for _ in range(2):
        for opt in optimizers:
            opt.zero_grad()
        terms = method.training_step(batch)
        terms["loss"].backward()
        for opt in optimizers:
            opt.step()
        assert torch.isfinite(terms["loss"]) and terms["mimic_enet"] > 0
        after_step()
    assert not torch.equal(before, method.enet.head.final.weight)
