"""evaluate_split refuses to score a network whose output holds inf or NaN (else: a metric, no error)."""

import pytest
import torch
from torch import nn

from harness.core.errors import TrainingError
from harness.core.precision import Precision
from harness.evaluate.scoring import evaluate_split


class MeanTask:
    """The two calls evaluate_split makes of a task: predict one value per sample, score their mean."""

    def predict(self, model, batch):
        return [{"value": float(v)} for v in model(batch["image"])["heatmaps"].flatten(1).mean(1)]

    def evaluate(self, predictions, dataset):
        return {"mean": sum(p["value"] for p in predictions) / len(predictions)}


class Scale(nn.Module):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return {"heatmaps": x * self.factor}  # outputs may be dicts (checked recursively)


DATA = [{"image": torch.full((1, 2, 2), float(i + 1))} for i in range(4)]


def test_finite_outputs_are_scored_and_the_mode_restored():
    model = Scale(2.0).train()
    metrics, predictions = evaluate_split(MeanTask(), model, DATA, device=torch.device("cpu"), batch_size=2)
    assert metrics == {"mean": 5.0} and len(predictions) == 4  # (2 + 4 + 6 + 8) / 4
    assert model.training


def test_an_output_with_inf_stops_scoring_with_one_line_naming_split_and_precision():
    model = Scale(float("inf")).train()
    precision = Precision("cpu", torch.bfloat16)
    with pytest.raises(TrainingError, match=r"eval occluded_val: .*inf or NaN under amp-bfloat16"):
        evaluate_split(
            MeanTask(), model, DATA, device=torch.device("cpu"), batch_size=2, precision=precision,
            description="eval occluded_val",
        )  # fmt: skip
    assert model.training and not model._forward_hooks  # mode restored, the watch removed
