"""A built backbone checkpoint of the embedded pretraining stage: what it is (path and metadata, for every
record's provenance) and how it loads into a freshly built backbone, all tensors or nothing.

Apart from the stage that trains it (harness/train/pretraining.py), so building a run's networks
(harness/models/factory.py) needs no trainer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from harness.core.errors import CheckpointError
from harness.core.io import safe_torch_load
from harness.models.backbones import Backbone

EMBEDDED = "embedded"  # the `model.pretrained` value that asks for the pretraining stage


@dataclass(frozen=True)
class PretrainedBackbone:
    """A built checkpoint: where it is and what it is, for loading and for every record's provenance."""

    path: Path
    meta: dict[str, Any]

    def provenance(self) -> dict[str, Any]:
        return {"source": EMBEDDED, **{k: self.meta[k] for k in sorted(self.meta)}}


def load_embedded(backbone: Backbone | nn.Module, checkpoint: PretrainedBackbone) -> None:
    """Load the checkpoint into a freshly built backbone, all tensors or nothing (never in part)."""
    state = safe_torch_load(checkpoint.path, "model.pretrained")
    body = backbone.body
    own = body.state_dict()
    mismatch = sorted(set(own) ^ set(state)) or [
        k for k in own if tuple(own[k].shape) != tuple(state[k].shape)
    ]
    if mismatch:
        raise CheckpointError(
            f"model.pretrained: {checkpoint.path} does not fit backbone {checkpoint.meta.get('backbone')} "
            f"as built here ({len(mismatch)} tensors differ, first: {mismatch[0]})"
        )
    body.load_state_dict(state, strict=True)
