"""Mixed precision: which dtype applies where, that the trainer really autocasts, and the run records it."""

import json

import pytest
import torch

from harness.core.config import CONFIG_ROOT, load_config
from harness.core.errors import ConfigError
from harness.core.precision import Precision
from harness.run.experiment import run_experiment
from harness.train.trainer import Trainer
from tests.harness.test_dslope import batch, build, sup_loss

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize(
    "amp,dtype,device,expected,scaler",
    [
        (False, "bfloat16", CPU, None, False),
        (True, "bfloat16", CPU, torch.bfloat16, False),
        (True, "float16", CPU, None, False),  # float16 autocast is a CUDA feature here
        (True, "float16", CUDA, torch.float16, True),
        (True, "bfloat16", CUDA, torch.bfloat16, False),
    ],
)
def test_resolve(amp, dtype, device, expected, scaler):
    precision = Precision.resolve(amp, dtype, device)
    assert precision.dtype is expected and precision.needs_scaler is scaler
    assert precision.name == ("float32" if expected is None else f"amp-{dtype}")


def test_bfloat16_step_runs_convolutions_in_bfloat16_and_keeps_float32_weights():
    from harness.methods.dslope import DSlope

    torch.manual_seed(0)
    method = DSlope(build, sup_loss)
    seen = []
    method.enet.head.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    optimizers = {k: torch.optim.Adam(p, lr=1e-3) for k, p in method.optimizer_groups().items()}
    before = method.enet.head.weight.detach().clone()
    bf16 = Precision("cpu", torch.bfloat16)
    trainer = Trainer(method, optimizers, {}, device=CPU, epochs=1, precision=bf16)
    logs = trainer._step(batch())
    assert seen == [torch.bfloat16]
    assert method.enet.head.weight.dtype is torch.float32 and not torch.equal(method.enet.head.weight, before)
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())


def test_run_records_the_precision_used(tiny_pose_overrides, tmp_path):
    overrides = [*tiny_pose_overrides, "method=dslope", "train.amp=true", "train.amp_dtype=bfloat16"]
    run_experiment(load_config(CONFIG_ROOT / "pose/default.yaml", overrides))
    records = [json.loads(p.read_text()) for p in (tmp_path / "results" / "runs").glob("*.json")]
    assert records and {r["training"]["precision"] for r in records} == {"amp-bfloat16"}
    assert all(r["status"] == "ok" and r["metrics"]["AP"] >= 0 for r in records)


def test_unknown_amp_dtype_is_a_config_error():
    with pytest.raises(ConfigError, match="amp_dtype"):
        load_config(CONFIG_ROOT / "pose/default.yaml", ["train.amp_dtype=float8"])
