"""What a method is: the networks it trains, one training step, and which network is evaluated.

Like a LightningModule, a method says *what* one step computes. The trainer owns *how*: device,
precision, backward, optimizer steps, checkpoints. A method never sees a task's internals: it gets a
model factory and the task's supervised loss as plain callables.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from harness.models.task_model import TaskModel

Batch = dict[str, Any]
SupervisedLoss = Callable[[torch.Tensor, Batch], torch.Tensor]


class NoSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Method(nn.Module):
    """Base class. Subclasses set `Settings` and implement `training_step`.

    Args:
        build_model: returns a fresh TaskModel (each call a new, independently initialised network).
        supervised_loss: the task's loss on (outputs, batch).
        settings: an instance of the subclass's `Settings`.
    """

    Settings: type[BaseModel] = NoSettings
    needs_twin: bool = False  # whether batches must carry the occluded twin
    # What the method is in a comparison (harness/core/roles.py): "method" (under study: ablated, compared
    # against the others), "baseline" (compared against) or "reference" (the plain model everything is
    # compared to).
    role: str = "baseline"
    # (method, settings field): when that field is unset, the run first trains `method` with the same
    # config and puts its run dir there (distillation trains its clean teacher this way).
    prerequisite: tuple[str, str] | None = None
    # The network trained on clean images only, if the method has one (a distillation teacher is read from
    # a finished run's checkpoint by this name).
    clean_network: str | None = None

    def __init__(self, build_model: Callable[[], TaskModel], supervised_loss: SupervisedLoss, settings=None):
        super().__init__()
        self.supervised_loss = supervised_loss
        self.settings = settings if settings is not None else self.Settings()

    def networks(self) -> dict[str, nn.Module]:
        """Trained networks by name; the trainer builds one optimizer per entry."""
        raise NotImplementedError

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters per optimizer; by default one optimizer per trained network."""
        return {name: list(net.parameters()) for name, net in self.networks().items()}

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Return named loss terms; `loss` is back-propagated, the rest are logged."""
        raise NotImplementedError

    @property
    def evaluated(self) -> str:
        """Name of the network that is evaluated on every split and deployed."""
        return next(iter(self.networks()))

    @property
    def also_evaluated(self) -> tuple[str, ...]:
        """Other networks scored on the clean split only, for the record."""
        return ()
