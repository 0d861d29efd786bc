"""Sweep trials whose run has several data-parallel workers: Ray Train's `TorchTrainer` runs each rank.

Apart from `harness.core.distributed` (the rank context every run uses) so that module never imports the run
it serves: this one sits above both.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.core.config import load_config
from harness.run.experiment import run_experiment
from harness.train.callbacks import Callback

# A trial whose run has several workers is only their driver: it waits for Ray Train's workers, which ask
# for the trial's CPUs and GPUs themselves. Tune needs a non-empty request for it; a hundredth of a CPU.
DRIVER_CPUS = 0.01


def trial_resources(workers: int, cpus: float, gpus: float):
    """What Ray Tune reserves for one trial: the whole run (one process), or only its driver (Ray Train)."""
    from ray import tune

    bundle = {"CPU": cpus, "GPU": gpus} if workers == 1 else {"CPU": DRIVER_CPUS}
    return tune.PlacementGroupFactory([bundle])


def ray_train_trial(config: dict[str, Any], workers: int, final_metrics: Callable[[Any], dict]) -> None:
    """Run one sweep trial as a Ray Train `TorchTrainer` on `workers` workers (called inside the Tune trial).

    Each worker runs the same `run_experiment` under the process group Ray Train set up (gloo on the CPU,
    NCCL with GPUs); every worker reports its epoch logs and final metrics, Ray Train forwards rank 0's to
    Tune. A failing worker fails the trial, which Tune then retries (`max_failures`) or records as failed.
    """
    import uuid

    import ray.train
    from ray import tune
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    per_worker = {"CPU": config["cpus"], "GPU": config["gpus"]}
    trainer = TorchTrainer(
        _ray_worker,
        train_loop_config={**config, "final_metrics": final_metrics},
        scaling_config=ray.train.ScalingConfig(
            num_workers=workers, use_gpu=config["gpus"] > 0, resources_per_worker=per_worker
        ),
        run_config=ray.train.RunConfig(
            name=f"{tune.get_context().get_trial_id()}_{uuid.uuid4().hex[:6]}",  # a retry starts afresh
            storage_path=config["storage"],
            callbacks=[TuneReportCallback()],
            failure_config=ray.train.FailureConfig(max_failures=0),  # retries are Tune's (max_failures)
        ),
    )
    trainer.fit()


class _TrainReport(Callback):
    """Trainer callback in a Ray Train worker: every rank reports each epoch's logs (Ray Train's report is
    collective; it forwards rank 0's)."""

    def on_epoch_end(self, trainer, logs):
        import ray.train

        ray.train.report({"epoch": trainer.state.epoch, "step": trainer.state.step, **logs})


def _ray_worker(config: dict[str, Any]) -> None:
    """One Ray Train worker: the trial's ordinary run as one rank of it."""

    import ray.train

    cfg = load_config(Path(config["base"]), config["overrides"])
    outcome = run_experiment(cfg, callbacks=[_TrainReport()])
    ray.train.report(config["final_metrics"](outcome))
