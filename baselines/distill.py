"""Frozen-teacher distillation: a clean-trained teacher, a student on occluded twins.

The one-way counterpart of D-Slope's mutual learning: the teacher (a clean baseline's network or a
D-Slope GNet, loaded from a finished run dir) is frozen and stays in eval mode; the student sees the
occluded twin and imitates the teacher's stage features and outputs on the clean image (the outputs as the
head's `imitation_target` defines them: e.g. the normalised embedding of a recognition head).
"""

from __future__ import annotations

from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from harness.core.errors import CheckpointError, ConfigError
from harness.core.io import safe_torch_load
from harness.core.registry import METHODS
from harness.core.run_files import CHECKPOINT_NAME
from harness.methods.base import Batch, Method
from harness.methods.imitation import FeatureReduction, feature_imitation, output_imitation


class DistillSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    teacher: str | None = None  # run dir (or its checkpoint.pt) of a clean or dslope run
    feature_weight: float = 1e-3
    output_weight: float = 1e-3
    feature_reduction: FeatureReduction = "mean"  # per stage, mean of the branch MSEs (as D-Slope)


def load_teacher_weights(model: nn.Module, source: Path) -> None:
    """Copy a finished run's network trained on clean images (its method's `clean_network`: a clean run's
    `net`, D-Slope's `gnet`) into `model`."""
    path = source / CHECKPOINT_NAME if source.is_dir() else source
    if not path.is_file():
        raise CheckpointError(f"method_args.distill.teacher: no checkpoint at {path}")
    state = safe_torch_load(path, "method_args.distill.teacher")
    tags = (state.get("tags") or {}) if isinstance(state, dict) else {}
    state = state.get("method", {}) if isinstance(state, dict) else {}
    method = tags.get("method")
    if method in METHODS:
        network = METHODS.get(method).clean_network
    else:  # a checkpoint without its method's tag: any network some method declares clean
        declared = sorted({METHODS.get(n).clean_network for n in METHODS.names()} - {None})
        network = next((n for n in declared if any(k.startswith(f"{n}.") for k in state)), None)
    if network is None:
        raise CheckpointError(
            f"teacher {path}: a '{method}' run has no network trained on clean images only "
            "(give a clean or dslope run)"
        )
    prefix = f"{network}."
    weights = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if not weights:
        raise CheckpointError(f"teacher {path} holds no network named {network}")
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        message = str(err).splitlines()[0]
        raise CheckpointError(f"teacher {path} does not fit this backbone: {message}") from None


@METHODS.register("distill")
class Distill(Method):
    """Student on twins imitating a frozen teacher on clean images; the student is evaluated."""

    Settings = DistillSettings
    needs_twin = True
    role = "baseline"
    prerequisite = ("clean", "teacher")  # no teacher given: train a clean one first

    def __init__(self, build_model, supervised_loss, settings=None):
        super().__init__(build_model, supervised_loss, settings)
        if not self.settings.teacher:
            raise ConfigError(
                "method_args.distill.teacher: set the run dir of a finished clean or dslope run "
                "(`harness run` trains a clean teacher first when it is unset)"
            )
        self.student = build_model()
        self.teacher = build_model()
        load_teacher_weights(self.teacher, Path(self.settings.teacher))
        self.teacher.requires_grad_(False)
        self.teacher.eval()

    def networks(self):
        return {"student": self.student}

    def train(self, mode: bool = True):
        """The teacher stays in eval mode (frozen BatchNorm statistics) whatever the trainer asks."""
        super().train(mode)
        self.teacher.eval()
        return self

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        s = self.settings
        # The frozen teacher runs in float32 even under float16 autocast: in eval mode its BatchNorm uses
        # running statistics, which (e.g. a short teacher run's) need not keep activations within float16's
        # range (65504), and an overflow in a forward is a NaN loss no grad scaler can skip. No backward goes
        # through it, so full precision costs one forward.
        with torch.no_grad(), torch.autocast(batch["image"].device.type, enabled=False):
            out_t = self.teacher(batch["image"])
            feat_t = self.teacher.feature_groups
        out_s = self.student(batch["twin"])
        feat_s = self.student.feature_groups
        sup = self.supervised_loss(out_s, batch)
        imit_s, imit_t = self.student.imitation_target(out_s), self.teacher.imitation_target(out_t)
        feat = feature_imitation(feat_s, feat_t, reduction=s.feature_reduction)
        out = output_imitation(imit_s, imit_t)
        loss = sup + s.feature_weight * feat + s.output_weight * out
        return {
            "loss": loss,
            "sup": sup.detach(),
            "mimic_features": feat.detach(),
            "mimic_output": out.detach(),
        }
