"""Data-parallel training of one run on several processes (ranks): setup, the DDP step, sharding, gathering.

A run launched by `torchrun` (or `harness run --nproc N`, which starts torchrun's elastic launcher) or by a
Ray Train `TorchTrainer` worker finds a `torch.distributed` environment; everything here then makes the one
trainer data-parallel without touching methods or tasks:

- the method's whole training step runs inside one `DistributedDataParallel` wrapper, so every network it
  trains (D-Slope's two) has its gradients averaged across ranks, while the method itself still calls its
  `TaskModel`s directly (their forward hooks, `features` and `imitation_target` are untouched);
- the logged loss terms and a pending stop request are agreed on by all ranks after every step, so a NaN or
  a signal on any rank stops every rank after the same step;
- evaluation is sharded (rank r scores samples r, r+N, ...), the predictions are gathered back into dataset
  order and the metric is computed once, on rank 0, then shared;
- rank 0 alone writes (run dir, checkpoints, metrics, TensorBoard, records, progress).

At world size 1 every helper is a no-op, so a single-process run takes exactly the path it always did.
"""

from __future__ import annotations

import atexit
import inspect
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from harness.core.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class Context:
    """Where this process sits in the run: its rank, how many ranks train together, its rank on the node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files and shows progress."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def current() -> Context:
    """The context of an initialised process group, or a single process."""
    if not (dist.is_available() and dist.is_initialized()):
        return Context()
    return Context(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def launched_world_size() -> int:
    """Processes of this launch as torchrun (or Ray Train) announces them; 1 outside a launch."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def setup(device: torch.device) -> tuple[Context, torch.device]:
    """Join the process group of this launch (once per process) and pick this rank's device.

    torchrun sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT; Ray Train initialises the group
    itself before the worker function runs. NCCL is used on CUDA, gloo on the CPU. On CUDA each rank trains on
    `cuda:<local rank>`.
    """
    if launched_world_size() <= 1:
        return Context(), device
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(_destroy)
    return current(), device


def _destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def check_world_size(configured: int, ctx: Context, resumed: bool) -> None:
    """A run keeps one world size: the global batch (and so every number) depends on it.

    Raises:
        ConfigError: `--resume` under another world size than the run was trained with, or a config that
            asks for a world size this launch does not have.
    """
    if configured == ctx.world_size:
        return
    if resumed:
        raise ConfigError(
            f"--resume: the run was trained with world size {configured} (train.world_size), this launch has "
            f"world size {ctx.world_size}; resume it with `harness run --nproc {configured} --resume ...` "
            "(the per-rank batch, the data shards and so every number depend on it)"
        )
    if configured != 1:
        raise ConfigError(
            f"train.world_size={configured} but this launch has world size {ctx.world_size}; start it with "
            f"`harness run --nproc {configured}` or torchrun --nproc-per-node {configured}"
        )


def barrier(ctx: Context) -> None:
    if ctx.active:
        dist.barrier()


@contextmanager
def main_first(ctx: Context) -> Iterator[None]:
    """Rank 0 runs the block first (e.g. generating the embedded data into the cache), the others after it.

    Rank 0 reaches the barrier even when the block fails, so the others run the block too and fail with
    the same one-line error instead of waiting forever.
    """
    if ctx.active and not ctx.is_main:
        dist.barrier()
    try:
        yield
    finally:
        if ctx.active and ctx.is_main:
            dist.barrier()


def broadcast(value: T, ctx: Context) -> T:
    """Rank 0's `value` on every rank (small picklable objects: a run dir, a metrics dict)."""
    if not ctx.active:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0, device=_comm_device())
    return box[0]


def from_main(make: Callable[[], T], ctx: Context) -> T:
    """`make()` on rank 0 only, its result on every rank (e.g. claiming the run dir)."""
    return broadcast(make() if ctx.is_main else None, ctx)


def any_rank(flag: bool, ctx: Context) -> bool:
    """Whether `flag` is true on any rank; every rank gets the same answer (so all of them stop together)."""
    if not ctx.active:
        return flag
    value = torch.tensor([int(flag)], device=_comm_device() or torch.device("cpu"))
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def _comm_device() -> torch.device | None:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None


class _Step(nn.Module):
    """The method's training step as a module's forward, so one DDP wrapper covers every trained network."""

    def __init__(self, method: nn.Module):
        super().__init__()
        self.method = method

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return self.method.training_step(batch)


def buffer_sync_option(ddp_init) -> dict[str, bool]:
    """DDP's option that broadcasts rank 0's buffers before every forward: `forward_sync_buffers` since torch
    2.14 (which deprecates the other), `broadcast_buffers` before it (e.g. a GPU image's torch 2.11)."""
    known = inspect.signature(ddp_init).parameters
    return {"forward_sync_buffers": True} if "forward_sync_buffers" in known else {"broadcast_buffers": True}


class DataParallelStep:
    """`method.training_step` under DistributedDataParallel, plus the per-step agreement of all ranks.

    One wrapper over the whole step rather than one per network: the method keeps calling its own networks
    (hooks, `features`, `imitation_target` work as in one process), its checkpoint keys do not change, and
    every parameter that needs a gradient (GNet's and ENet's; not a frozen teacher's) is averaged in one
    reducer. Buffers (BatchNorm statistics) are broadcast from rank 0 before every forward, as DDP does.
    """

    def __init__(self, method: nn.Module, device: torch.device):
        self.ddp = DistributedDataParallel(
            _Step(method),
            device_ids=[device.index] if device.type == "cuda" else None,
            **buffer_sync_option(DistributedDataParallel.__init__),
            # The same parameters take part in every step, but not all of them: a head reads one stage's
            # output, so e.g. HRNet's other final branches get no gradient. A static graph finds them once.
            static_graph=True,
        )
        self.device = device if device.type == "cuda" else torch.device("cpu")

    def __call__(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return self.ddp(batch)

    def agree(self, logs: dict[str, float], stop_signal: int | None) -> tuple[dict[str, float], int | None]:
        """Loss terms averaged over ranks (the global batch's), and the stop signal of any rank.

        Every rank gets the same answer, so a non-finite loss or a SIGINT/SIGTERM on one rank stops all of
        them after this same step.
        """
        values = torch.tensor(list(logs.values()), dtype=torch.float64, device=self.device)
        dist.all_reduce(values)
        stop = torch.tensor([stop_signal or 0], dtype=torch.int64, device=self.device)
        dist.all_reduce(stop, op=dist.ReduceOp.MAX)
        means = (values / dist.get_world_size()).tolist()
        return dict(zip(logs, means, strict=True)), (int(stop.item()) or None)


def convert_sync_bn(method: nn.Module, enabled: bool, device: torch.device, ctx: Context) -> nn.Module:
    """`train.sync_bn`: BatchNorm statistics over the global batch (SyncBatchNorm), multi-rank CUDA only.

    Run before the optimizers are built; the parameters themselves are kept (the new modules reuse them),
    and forward hooks on the tapped stages stay where they are (only BatchNorm leaves are replaced).

    Raises:
        ConfigError: asked for on the CPU with several ranks (torch has no CPU kernel for SyncBatchNorm).
    """
    if not (enabled and ctx.active):
        return method
    if device.type != "cuda":
        raise ConfigError(
            f"train.sync_bn=true needs CUDA devices (SyncBatchNorm has no CPU kernel); this run is on "
            f"{device}"
        )
    return nn.SyncBatchNorm.convert_sync_batchnorm(method)


def sync_buffers(model: nn.Module, ctx: Context) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank before a sharded evaluation.

    DDP broadcasts them at the start of each forward, so after the last step each rank holds statistics
    updated by its own batch; evaluation must score every shard with the one network rank 0 checkpoints.
    """
    if not ctx.active:
        return
    for buffer in model.buffers():
        if buffer.is_floating_point() or buffer.dtype in (torch.int64, torch.int32):
            dist.broadcast(buffer.data, src=0)


def shard(size: int, ctx: Context) -> range:
    """The dataset indices this rank evaluates: r, r + N, r + 2N, ... (disjoint, together all of them)."""
    return range(ctx.rank, size, ctx.world_size)


def gather_in_order(items: list[T], size: int, ctx: Context) -> list[T]:
    """Every rank's shard results (one per sample, in shard order) back in dataset order, on every rank."""
    if not ctx.active:
        return items
    parts: list[list[T] | None] = [None] * ctx.world_size
    dist.all_gather_object(parts, items)
    merged: list[T] = []
    for index in range(size):
        merged.append(parts[index % ctx.world_size][index // ctx.world_size])
    return merged


def quiet_unless_main(console, ctx: Context):
    """Ranks other than 0 keep their progress and notes to themselves (errors are still raised)."""
    if ctx.is_main:
        return console
    from rich.console import Console

    return Console(stderr=True, quiet=True)


# --------------------------------------------------------------------------- launching


def launch_rank() -> int:
    """This process's rank as its launcher announced it (0 outside a launch), before the group exists."""
    return int(os.environ.get("RANK", "0"))


def in_launch() -> bool:
    """Inside a launch already (a torchrun worker): `--nproc` must not start another launcher."""
    return "TORCHELASTIC_RUN_ID" in os.environ or launched_world_size() > 1


def launch(nproc: int, cli_args: list[str]) -> int:
    """Start `nproc` ranks of `harness <cli_args>` on this machine with torchrun's elastic launcher.

    Returns the exit code to leave with: rank 0's (130/143 after SIGINT/SIGTERM, 2 for bad input), or 128 +
    the signal that stopped the launcher itself (Ctrl-C reaches the launcher; it forwards the signal once to
    each rank, which stop after their current step, and waits for them).
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    # CPU ranks share the machine's cores (torchrun would give each one thread, with a warning banner).
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    args = parse_args(
        [
            "--standalone",  # one node, a free port on localhost: no rendezvous to configure
            f"--nproc-per-node={nproc}",
            "--max-restarts=0",
            "--module",
            "harness.cli",
            *cli_args,
        ]
    )
    try:
        run(args)
    except ChildFailedError as err:
        failure = err.failures.get(0) or next(iter(err.failures.values()))
        code = failure.exitcode
        if code < 0:  # killed by a signal
            code = 128 - code
        if 0 not in err.failures:
            print(
                f"error: rank {failure.local_rank} exited with code {failure.exitcode} (its output is above)",
                file=sys.stderr,
            )
        return code
    except SignalException as err:
        return 128 + int(err.sigval)
    return 0
