"""What each rank of the 2-process gloo tests runs (a plain module like tiny_pose.py, so spawned children
import it).

`spawn_ranks` starts two CPU processes with a torch.distributed environment (gloo on 127.0.0.1, a free port),
each runs `rank_main`, and the test reads what they wrote under `out`. Children that fail or hang past the
timeout are killed, so a broken collective never hangs the suite.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from harness.methods.dslope import DSlope
from harness.models.task_model import TaskModel
from harness.train.callbacks import Callback
from harness.train.trainer import EpochSampler, Trainer

# --------------------------------------------------------------------------- a tiny D-Slope without BatchNorm


class TinyBackbone(nn.Module):
    """Two convolutions, both tapped: D-Slope's hooks and feature imitation, and no BatchNorm anywhere, so a
    2-rank step with batch b per rank must give the gradients of one process with batch 2b."""

    out_channels, out_stride, tap_names = 8, 2, ("1", "3")

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU()
        )

    def forward(self, x):
        return self.body(x)


class Samples(Dataset):
    """16 fixed samples (image, occluded twin, target), each seeded by its index."""

    def __len__(self):
        return 16

    def __getitem__(self, index):
        g = torch.Generator().manual_seed(index)
        return {
            "image": torch.randn(3, 16, 16, generator=g),
            "twin": torch.randn(3, 16, 16, generator=g),
            "target": torch.rand(4, 8, 8, generator=g),
        }


def tiny_dslope() -> DSlope:
    torch.manual_seed(0)
    return DSlope(
        lambda: TaskModel(TinyBackbone(), nn.Conv2d(8, 4, 1)), lambda out, b: F.mse_loss(out, b["target"])
    )


class Record(Callback):
    """After every step: a digest of every parameter (bitwise), and all gradients after step `grads_at`."""

    def __init__(self, grads_at: int | None = None):
        self.digests: list[str] = []
        self.grads: dict[str, torch.Tensor] = {}
        self.grads_at = grads_at

    def on_step_end(self, trainer, logs):
        digest = hashlib.sha256()
        for name, param in trainer.method.named_parameters():
            digest.update(name.encode() + param.detach().cpu().numpy().tobytes())
            if trainer.state.step == self.grads_at:
                self.grads[name] = param.grad.detach().clone()
        self.digests.append(digest.hexdigest())


def fit_tiny_dslope(batch_size: int, steps: int, rank: int = 0, world_size: int = 1) -> Record:
    """`steps` Adam steps of the tiny D-Slope through the harness Trainer; what `Record` saw."""
    method = tiny_dslope()
    optimizers = {n: torch.optim.Adam(p, lr=1e-2) for n, p in method.optimizer_groups().items()}
    schedulers = {n: torch.optim.lr_scheduler.MultiStepLR(o, [100]) for n, o in optimizers.items()}
    loader = DataLoader(
        Samples(), batch_size=batch_size, sampler=EpochSampler(16, 0, rank, world_size), drop_last=True
    )
    record = Record(grads_at=1)
    trainer = Trainer(
        method, optimizers, schedulers, device=torch.device("cpu"), epochs=2, max_steps=steps,
        callbacks=[record], world_size=world_size,
    )  # fmt: skip
    trainer.fit(loader)
    return record


# --------------------------------------------------------------------------- harness runs on each rank


class StopOnRank(Callback):
    """What SIGTERM to one rank does, at a chosen step: only that rank asks to stop."""

    def __init__(self, rank: int, step: int):
        self.rank, self.step = rank, step

    def on_step_end(self, trainer, logs):
        if torch.distributed.get_rank() == self.rank and trainer.state.step == self.step:
            trainer.request_stop(15)  # SIGTERM


def rank_main(rank: int, port: int, out: str, tiny: list[str], slow: list[str]) -> None:
    """Everything one rank does for tests/harness/test_distributed.py; results saved to out/rank<r>.pt."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    from harness.core.config import CONFIG_ROOT, load_config
    from harness.core.errors import RunInterrupted
    from harness.run.experiment import run_experiment

    result: dict = {}
    # A 2-rank run of the engine's own setup first (it joins the process group once for this process).
    pose = CONFIG_ROOT / "pose/default.yaml"
    work = Path(out)
    reference = Record()
    outputs = [f"output.work_dir={work / 'a'}", f"output.results_dir={work / 'a_results'}"]
    outcome = run_experiment(load_config(pose, [*tiny, *slow, *outputs]), callbacks=[reference])
    result["a"] = {"run_dir": str(outcome.run_dir), "digests": reference.digests, "steps": outcome.steps}
    result["a"]["metrics"] = [(r.network, r.split, r.metrics) for r in outcome.records]

    # The same run, stopped when rank 1 alone asks (after step 4), then resumed under 2 ranks.
    cfg = load_config(
        pose, [*tiny, *slow, f"output.work_dir={work / 'b'}", f"output.results_dir={work / 'b_results'}"]
    )
    try:
        run_experiment(cfg, callbacks=[StopOnRank(1, 4)])
        result["b_interrupted"] = None
    except RunInterrupted as err:
        result["b_interrupted"] = (str(err), err.signum)
    run_dir = sorted((work / "b").iterdir())[0]
    result["b_records_after_stop"] = [
        json.loads(p.read_text())["status"] for p in (work / "b_results" / "runs").glob("*.json")
    ]
    resumed = run_experiment(None, resume_dir=run_dir)
    result["b"] = {"run_dir": str(run_dir), "steps": resumed.steps}
    result["b"]["metrics"] = [(r.network, r.split, r.metrics) for r in resumed.records]

    # The trainer alone: tiny D-Slope, batch 4 per rank, 3 steps.
    tiny_run = fit_tiny_dslope(batch_size=4, steps=3, rank=rank, world_size=2)
    result["tiny"] = {"digests": tiny_run.digests, "grads": tiny_run.grads}
    torch.save(result, Path(out) / f"rank{rank}.pt")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn_ranks(out: Path, tiny: list[str], slow: list[str], timeout: float) -> list[dict]:
    """Run `rank_main` on 2 spawned processes; their saved results, or a failure naming what went wrong."""
    import torch.multiprocessing as mp

    context = mp.start_processes(
        rank_main, args=(free_port(), str(out), tiny, slow), nprocs=2, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + timeout
    try:
        while not context.join(timeout=1):
            if time.monotonic() > deadline:
                raise TimeoutError(f"2-rank test processes still running after {timeout:.0f} s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]
