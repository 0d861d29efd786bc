"""Conformance over the registries, not over chosen names: every registered task runs every registered
method end to end (2 steps on its `configs/<task>/tiny.yaml`), and every registered backbone's declared
output channels, stride and stage taps match what it really computes. A new task, method or backbone is
covered without editing this file."""

import importlib.util
import math

import pytest
import torch

from harness.core.config import CONFIG_ROOT, load_config
from harness.core.registry import BACKBONES, METHODS, TASKS
from harness.core.roles import METHOD_ROLES
from harness.models.backbones import create_backbone
from harness.models.task_model import _flatten
from harness.run.experiment import run_experiment
from harness.run.method_order import run_order

# (H, W): divisible by 32 (HRNet, mmpose) and 64 (FAN), not square so each axis's stride is checked apart.
H, W = 128, 64


@pytest.mark.parametrize("method", run_order(METHODS.names()))
@pytest.mark.parametrize("task", TASKS.names())
def test_every_task_runs_every_method_and_writes_records_with_declared_directions(task, method, tmp_path):
    tiny = CONFIG_ROOT / task / "tiny.yaml"
    assert tiny.is_file(), f"task {task} ships no {tiny.relative_to(CONFIG_ROOT.parent)} for conformance runs"
    sets = [
        f"method={method}",
        f"output.work_dir={tmp_path / 'work'}",
        f"output.results_dir={tmp_path / 'res'}",
    ]
    cfg = load_config(tiny, sets)
    outcome = run_experiment(cfg)
    task_cls, method_cls = TASKS.get(task), METHODS.get(method)

    assert outcome.steps == 2
    assert method_cls.role in METHOD_ROLES
    records = outcome.records
    evaluated = [r for r in records if r.evaluated]
    assert {r.network for r in evaluated} == {evaluated[0].network}  # one evaluated network ...
    assert {r.split_role for r in evaluated} >= {"clean", "occluded"}  # ... scored on clean and occluded val
    for r in records:
        assert r.status == "ok" and r.task == task and r.method == method and r.method_role == method_cls.role
        assert r.split_role == (
            "clean"
            if r.split == task_cls.clean_split
            else "occluded"
            if r.split == task_cls.occluded_split
            else "extra"
        )
        assert r.metrics, f"{r.network} on {r.split}: no metric"
        assert set(r.higher_is_better) >= set(r.metrics)  # every metric declares its direction ...
        assert all(isinstance(d, bool) for d in r.higher_is_better.values())
        assert r.primary_metric in r.metrics  # ... and the headline one is among them
        assert any(math.isfinite(v) for v in r.metrics.values() if isinstance(v, (int, float)))
    written = sorted(p.name for p in (tmp_path / "res" / "runs").glob(f"{outcome.run_id}__*.json"))
    assert written == sorted(r.filename for r in records)


def _needs_missing_extra(name: str) -> str | None:
    """Backbones of an optional extra (`mmpose:*`) are registered always; without the package, say which."""
    package = name.split(":", 1)[0] if ":" in name else None
    if package and importlib.util.find_spec(package) is None:
        return f"the {package} extra is not installed (pip install -e '.[{package}]')"
    return None


@pytest.mark.parametrize("name", BACKBONES.names())
def test_every_backbone_computes_what_it_declares(name):
    missing = _needs_missing_extra(name)
    if missing:
        pytest.skip(missing)
    torch.manual_seed(0)
    backbone = create_backbone(name, None, input_size=(H, W)).eval()
    modules = dict(backbone.body.named_modules())
    assert backbone.tap_names, f"{name} declares no taps for the mutual loss"
    captured: dict[str, list[torch.Tensor]] = {}
    for tap in backbone.tap_names:
        assert tap in modules, f"{name}: tap {tap} is not a module of its body"
        modules[tap].register_forward_hook(
            lambda _m, _i, out, tap=tap: captured.__setitem__(tap, _flatten(out))
        )
    with torch.no_grad():
        out = backbone(torch.zeros(1, 3, H, W))
    assert out.shape == (1, backbone.out_channels, H // backbone.out_stride, W // backbone.out_stride)
    for tap in backbone.tap_names:
        assert captured.get(tap), f"{name}: tap {tap} produced no tensor"
        assert all(t.shape[0] == 1 and t.ndim >= 3 for t in captured[tap])
