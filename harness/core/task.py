"""The task contract: the only thing the engine knows about a task.

A task adapts one kind of data (human pose, face landmarks, face identity) to the single trainer:
datasets with clean images and their occluded twins, a head, the supervised loss, prediction and the
metric. Methods and the trainer are written once against this class and never import a task.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel
from torch import nn
from torch.utils.data import Dataset

from harness.core.errors import ConfigError
from harness.core.external import ExternalModel, ModelSpec, unsupported
from harness.core.occlusion import OcclusionSettings


@dataclass(frozen=True)
class Metric:
    """A metric name and its direction, so results, sweeps and reports need no task knowledge."""

    name: str
    higher_is_better: bool = True


@dataclass(frozen=True)
class OcclusionPlan:
    """How the occluded twins are made for training and for the frozen occluded val split.

    Attributes:
        train: twin settings for training samples, or None when no method needs twins.
        val: settings of the frozen occluded val split (built once per `val_seed`, cached).
        val_seed: seed of the frozen occluded val split; every method sees the same images.
        max_patches: size of the body-part patch library.
        val_severity: build the occluded val at this level of the task's severity ladder
            (`Task.severity_levels`) instead of with `val`; None: with `val`.
    """

    train: OcclusionSettings | None
    val: OcclusionSettings
    val_seed: int = 0
    max_patches: int = 500
    val_severity: int | None = None


def default_cache_dir() -> Path:
    """Where embedded datasets and frozen splits are generated: $HARNESS_CACHE or ~/.cache/dslope-harness."""
    return Path(os.environ.get("HARNESS_CACHE", Path.home() / ".cache" / "dslope-harness"))


class Task(ABC):
    """Base class of every task. Subclasses are registered with `@TASKS.register(name)`.

    Batches are dicts: `image` (clean input), `twin` (occluded input, when requested), the task's
    targets, and `meta` (whatever `predict` needs to map outputs back to the source data).
    """

    Settings: type[BaseModel]
    metrics: tuple[Metric, ...]
    primary_metric: str
    clean_split = "clean_val"
    occluded_split = "occluded_val"
    # Levels of the task's occlusion-severity ladder (`occlusion.val_severity`); empty: no ladder.
    severity_levels: tuple[int, ...] = ()
    # occlusion.* keys this task's occluders do not read: setting them is an error, never silently dropped.
    ignored_occlusion_keys: tuple[str, ...] = ()
    # The extension of the prediction files `write_predictions` writes (json, csv).
    prediction_format: str = "json"
    # Spec kinds of models from other libraries this task scores (`harness eval --model KIND:...`).
    external_kinds: tuple[str, ...] = ()

    def __init__(self, settings: BaseModel, cache_dir: Path | None = None):
        self.settings = settings
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()

    @property
    @abstractmethod
    def dataset_name(self) -> str:
        """Name of the data source, for result records (e.g. 'synthetic-coco', 'coco')."""

    @property
    def input_size(self) -> tuple[int, int] | None:
        """(h, w) of the network input, for backbones built for one size (ViT); None if free."""
        return None

    @abstractmethod
    def datasets(self, *, seed: int, occlusion: OcclusionPlan) -> tuple[Dataset, dict[str, Dataset]]:
        """Return the training set and the eval splits (at least `clean_val` and `occluded_val`)."""

    def pretraining_set(self, *, seed: int, images: int) -> Dataset:
        """Clean training samples of the task's embedded *pretraining split* (`model.pretrained: embedded`).

        Its images are drawn apart from the benchmark's train and val images (none shared), so a backbone
        pretrained on it stands in for ImageNet weights without seeing the benchmark.

        Raises:
            ConfigError: the task (or its configured dataset) has no embedded pretraining split.
        """
        raise ConfigError(
            f"model.pretrained: embedded: task {type(self).__name__} has no embedded pretraining split; "
            "give a local checkpoint path instead"
        )

    def pretraining_head(self, in_channels: int, in_stride: int) -> nn.Module:
        """The head trained with the backbone on the pretraining split (only the backbone is kept)."""
        return self.head(in_channels, in_stride)

    @abstractmethod
    def head(self, in_channels: int, in_stride: int) -> nn.Module:
        """The task head, sized from the backbone's output channels and stride.

        It returns one tensor, or a dict of tensors together with an `imitation_target(outputs)` method
        naming the tensor methods imitate (see `harness.models.task_model.TaskModel`): parameters the
        supervised loss needs, such as ArcFace's class weights, belong in the head so each network's
        optimizer trains them.
        """

    @abstractmethod
    def loss(self, outputs: torch.Tensor | dict[str, torch.Tensor], batch: dict[str, Any]) -> torch.Tensor:
        """The supervised loss only (imitation terms belong to methods); `outputs` is the head's output."""

    @abstractmethod
    def predict(self, model: nn.Module, batch: dict[str, Any]) -> list[dict[str, Any]]:
        """Run the model (with any test-time augmentation) and decode to predictions in source coordinates."""

    @abstractmethod
    def evaluate(self, predictions: list[dict[str, Any]], dataset: Dataset) -> dict[str, float]:
        """Score predictions of one eval split."""

    def showcase(self, predictions: list[dict[str, Any]], dataset: Dataset, count: int = 8) -> list[dict]:
        """A fixed, small set of predictions with their inputs and ground truth, for qualitative figures."""
        return []

    def deployable(self, model: nn.Module) -> tuple[nn.Module, torch.Tensor]:
        """What `harness export` writes to ONNX: a module taking one image batch, and an example input.

        By default the trained network itself at the task's input size. A task overrides this when the
        deployed graph differs from the trained one (e.g. face recognition: the embedding only, at the
        112x112 input that insightface expects).

        Raises:
            ConfigError: the task has no fixed input size to export at.
        """
        if self.input_size is None:
            raise ConfigError(f"task {type(self).__name__} has no fixed input size to export at")
        return model, torch.zeros(1, 3, *self.input_size)

    def provenance(self) -> dict[str, Any]:
        """Digests and sources of the data used, for result records."""
        return {}

    def data_warnings(self) -> list[str]:
        """One line per thing `datasets` skipped or repaired (e.g. boxes of zero size), shown once per run."""
        return []

    @classmethod
    def unused_data_keys(cls, settings: BaseModel) -> dict[str, str]:
        """data.* keys set to a value these settings cannot use, each with the reason (e.g. a dataset
        root while the data is the embedded synthetic set); `load_config` refuses them."""
        return {}

    def write_predictions(self, predictions: list[dict[str, Any]], dataset: Dataset, path: Path) -> str:
        """Write one split's predictions to `path` in the field's standard format; return the format's name.

        Called after every evaluation (training time and `harness eval`), so what a metric was computed
        from can be scored again by the field's own tools. Tasks without a standard format write nothing
        and return "".
        """
        return ""

    def inference_dataset(self, images: list[Path], boxes: dict[Path, list[list[float]]]) -> Dataset:
        """Samples for `harness predict`: one per box in `boxes[image]` ([x, y, w, h]) or, for an image
        without boxes, the whole image as one box. Tasks that cannot predict on raw images raise."""
        raise ConfigError(f"harness predict: task {type(self).__name__} does not predict on raw images")

    def draw_prediction(self, image, prediction: dict[str, Any]):
        """Draw one prediction of `inference_dataset` onto a BGR uint8 image (in place) and return it."""
        return image

    def external_model(self, spec: ModelSpec, checkpoint: Path | None) -> ExternalModel:
        """A model of another library (`--model KIND:TARGET`, weights `checkpoint`), loaded and checked
        against this task's data (input, layout), ready to score its splits.

        Raises:
            ConfigError, CheckpointError: a kind the task does not score, a missing extra, a model that does
                not fit the data (layout, input size), weights that do not fit the model.
        """
        raise unsupported(type(self).__name__, spec, self.external_kinds)

    def metric(self, name: str) -> Metric:
        """The metric called `name` (tasks whose metrics depend on the dataset set `self.metrics`)."""
        return next(m for m in self.metrics if m.name == name)
