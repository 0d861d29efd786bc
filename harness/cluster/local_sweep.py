"""`harness sweep --local`: a sweep's trials as processes of this one machine, without Ray.

For one GPU box or a container where Ray is absent or unwanted. Each trial is the same `run_experiment` a Tune
trial runs, in a child process of its own (`python -m harness.cluster.local_sweep BASE OVERRIDES_JSON`),
`max_concurrent` at a time in grid order, each with `OMP_NUM_THREADS` = its CPUs (as Ray Tune sets it). With
GPUs per trial > 0 the trials take the visible GPUs in turn (`CUDA_VISIBLE_DEVICES`), several sharing one when
GPUs per trial < 1. A trial whose method needs another trial's run (distillation's clean teacher, same
settings) starts once that trial has ended, so it finds the finished run instead of training its own. Each
trial's output goes to `<sweep state folder>/local/trial_NNN.log`. SIGINT / SIGTERM stops every running trial
(each writes its `interrupted` record) and ends the sweep; `--resume` then runs the trials without ok records.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.cluster.finished_trials import settings_hash
from harness.core.config import RunConfig
from harness.core.errors import ConfigError
from harness.core.progress import make_progress
from harness.core.registry import METHODS

POLL_SECONDS = 0.5
STOP_GRACE_SECONDS = 60  # a stopped trial finishes its step and writes its interrupted record


def prerequisite_trials(configs: list[RunConfig]) -> dict[int, int]:
    """Trial index -> the index of the trial whose run it needs (same settings, the prerequisite method)."""
    by_hash = {settings_hash(cfg): i for i, cfg in enumerate(configs)}
    waits = {}
    for i, cfg in enumerate(configs):
        method = METHODS.get(cfg.method)
        if not method.prerequisite:
            continue
        needed, field_name = method.prerequisite
        if cfg.method_args.get(cfg.method, {}).get(field_name):  # the config names its run already
            continue
        found = by_hash.get(settings_hash(cfg.model_copy(update={"method": needed}, deep=True)))
        if found is not None:
            waits[i] = found
    return waits


def gpu_slots(gpus_per_trial: float) -> list[str]:
    """The GPU ids trials are placed on (empty: none asked for).

    Raises:
        ConfigError: GPUs per trial > 0 and no GPU is visible.
    """
    if gpus_per_trial <= 0:
        return []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        return [g.strip() for g in visible.split(",") if g.strip()]
    import torch

    slots = [str(i) for i in range(torch.cuda.device_count())]
    if not slots:
        raise ConfigError(f"--local with {gpus_per_trial} GPUs per trial, but no GPU is visible")
    return slots


def default_concurrency(cpus_per_trial: float, gpus_per_trial: float, slots: list[str]) -> int:
    """As many trials as the CPUs (and, with GPUs per trial, the GPUs) hold."""
    by_cpu = int((os.cpu_count() or 1) // max(cpus_per_trial, 1e-9))
    by_gpu = int(len(slots) / gpus_per_trial) if gpus_per_trial > 0 else by_cpu
    return max(1, min(by_cpu, by_gpu))


@dataclass
class _Running:
    process: subprocess.Popen
    gpu: str | None
    log: object = field(repr=False)


def _stop(running: dict[int, _Running]) -> None:
    """SIGTERM to every running trial's process group; SIGKILL to those still alive after the grace time."""
    for trial in running.values():
        try:
            os.killpg(trial.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for trial in running.values():
        try:
            trial.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(trial.process.pid, signal.SIGKILL)
            trial.process.wait()
        trial.log.close()


def _raise_interrupt(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def run_local(
    base: Path,
    trials: list[list[str]],
    configs: list[RunConfig],
    todo: list[int],
    *,
    log_dir: Path,
    cpus_per_trial: float,
    gpus_per_trial: float,
    slots: list[str],
    max_concurrent: int | None,
) -> dict[int, tuple[int, str]]:
    """Run the trials `todo` (indices into `trials`) on the GPUs `slots` (`gpu_slots`); returns index ->
    (exit code, last lines of its log).

    Raises:
        KeyboardInterrupt: SIGINT or SIGTERM; the running trials were stopped first.
    """
    limit = max_concurrent or default_concurrency(cpus_per_trial, gpus_per_trial, slots)
    waits = {i: j for i, j in prerequisite_trials(configs).items() if j in todo}
    log_dir.mkdir(parents=True, exist_ok=True)
    pending, running, ended = list(todo), {}, {}
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    threads = str(max(1, int(cpus_per_trial)))
    try:
        with make_progress() as progress:
            bar = progress.add_task(f"sweep ({limit} at a time)", total=len(todo), info="")
            while pending or running:
                for i in [i for i in pending if waits.get(i) is None or waits[i] in ended]:
                    if len(running) >= limit:
                        break
                    pending.remove(i)
                    log = log_dir / f"trial_{i:03d}.log"
                    running[i] = _start(base, trials[i], log, threads, slots, running)
                for i, trial in list(running.items()):
                    if trial.process.poll() is not None:
                        trial.log.close()
                        del running[i]
                        ended[i] = (trial.process.returncode, _tail(log_dir / f"trial_{i:03d}.log"))
                        progress.advance(bar)
                failed = sum(code != 0 for code, _ in ended.values())
                progress.update(bar, info=f"{len(running)} running, {failed} failed")
                time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        _stop(running)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    return ended


def _start(
    base: Path, overrides: list[str], log: Path, threads: str, slots: list[str], running: dict[int, _Running]
) -> _Running:
    env = {**os.environ, "OMP_NUM_THREADS": threads, "PYTHONUNBUFFERED": "1"}
    gpu = None
    if slots:  # the GPU with the fewest running trials
        gpu = min(slots, key=lambda g: sum(t.gpu == g for t in running.values()))
        env["CUDA_VISIBLE_DEVICES"] = gpu
    sink = open(log, "w")  # noqa: SIM115 - closed when the trial ends
    command = [sys.executable, "-m", "harness.cluster.local_sweep", str(base), json.dumps(overrides)]
    process = subprocess.Popen(
        command, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=_end_with_parent,
    )  # fmt: skip
    return _Running(process, gpu, sink)


def _end_with_parent() -> None:
    """In the child before exec: SIGTERM it when the sweep's process dies, even by SIGKILL (Linux)."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _tail(log: Path, lines: int = 3) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def _trial_main(base: str, overrides_json: str) -> int:
    """One trial in its own process: the ordinary run of the trial's config."""
    from rich.console import Console

    from harness.core.config import load_config
    from harness.core.errors import HarnessError
    from harness.run.experiment import run_experiment

    try:
        outcome = run_experiment(load_config(Path(base), json.loads(overrides_json)), console=Console())
    except HarnessError as err:
        print(f"error: {err}", flush=True)
        return 2
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        return 143
    print(f"run {outcome.run_id} finished", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(_trial_main(*sys.argv[1:3]))
