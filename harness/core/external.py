"""Models the harness did not train (`harness eval --model KIND:TARGET`): the spec and the adapter contract.

A researcher's first question of an occlusion benchmark is how robust the models they already have are: an
mmpose model-zoo checkpoint, an insightface ONNX recognition model, a face-alignment FAN. Such a model keeps
its own preprocessing, test-time augmentation and decoding, so the harness scores it as its authors do; only
the data (every split of the task, the severity ladder) and the metric are the harness's.

The engine names no library: a task says which spec kinds it scores (`Task.external_kinds`) and builds the
adapter (`Task.external_model`), which lives with the task that knows its data (e.g.
`tasks/pose/external_mmpose.py`). `run:<RUN_DIR>` is a trained run of this harness and never reaches a task.

Example:
    >>> ModelSpec.parse("mmpose:td-hm_hrnet-w32_8xb64-210e_coco-256x192").kind
    'mmpose'
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from harness.core.errors import ConfigError

RUN_KIND = "run"
_KIND = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class ModelSpec:
    """`KIND:TARGET` as given to `--model`: which library's model (`kind`) and which one (`target`)."""

    kind: str
    target: str

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        """Split `KIND:TARGET`.

        Raises:
            ConfigError: no `:`, an empty part, or a kind that is not a lower-case name.
        """
        kind, sep, target = text.partition(":")
        if not sep or not target.strip() or not _KIND.match(kind):
            raise ConfigError(
                f"--model: '{text}' is not a model spec; expected KIND:TARGET such as run:<RUN_DIR>, "
                "mmpose:<config name or .py>, onnx:<file>, face_alignment:<2D-FAN variant>"
            )
        return cls(kind, target.strip())

    @property
    def text(self) -> str:
        return f"{self.kind}:{self.target}"

    @property
    def portable(self) -> str:
        """The spec as records write it: a path target becomes its file name (no machine path in a record)."""
        target = self.target
        if "/" in target or "\\" in target:
            target = Path(target).name
        return f"{self.kind}:{target}"


def file_label(path: Path | None, root: Path | None = None) -> str | None:
    """`path` relative to `root` (default: the working directory) when inside it, else its file name alone:
    what a record may say about a local file without naming this machine's folders."""
    if path is None:
        return None
    path = Path(path).resolve()
    root = Path(root or Path.cwd()).resolve()
    return str(path.relative_to(root)) if path.is_relative_to(root) else path.name


Progress = Callable[[int], None]  # called with the number of samples just predicted


class ExternalModel(ABC):
    """A model from another library, ready to predict a task's eval splits in the task's prediction format.

    Subclasses load and check everything in `__init__` (config, weights, input size, keypoint layout), so a
    model that cannot be scored fails with one line before any split is built or any record written.

    Attributes:
        spec: what `--model` named.
        checkpoint: the local weights file, or None where the spec's target is itself the weights (ONNX).
    """

    spec: ModelSpec
    checkpoint: Path | None = None

    @abstractmethod
    def predict_split(
        self, dataset: Dataset, *, device: torch.device, batch_size: int, progress: Progress
    ) -> list[dict[str, Any]]:
        """Predictions of every sample of `dataset`, exactly what the task's `evaluate` and
        `write_predictions` take for a network the harness trained."""

    def weights_file(self) -> Path:
        """The file whose sha256 identifies the scored weights."""
        if self.checkpoint is None:
            raise ConfigError(f"--model {self.spec.text}: no weights file")
        return self.checkpoint

    def describe(self) -> dict[str, Any]:
        """What a record says about the model besides the spec (library version, input size, test-time
        augmentation), so two scores of one model are comparable."""
        return {}


def unsupported(task_name: str, spec: ModelSpec, kinds: tuple[str, ...]) -> ConfigError:
    """The one-line error for a spec kind the task cannot score."""
    known = ", ".join(f"{k}:" for k in (RUN_KIND, *kinds))
    return ConfigError(
        f"--model {spec.text}: task {task_name} scores no {spec.kind}: models (it scores {known})"
    )
