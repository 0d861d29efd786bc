"""evaluate_split refuses to score a network whose output holds inf or NaN (else: a metric, no error); a batch
that overflows only float16 autocast is scored again in float32."""

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
    with pytest.raises(TrainingError, match=r"eval occluded_val: .*inf or NaN \(in float32 too\); nothing"):
        evaluate_split(
            MeanTask(), model, DATA, device=torch.device("cpu"), batch_size=2, precision=precision,
            description="eval occluded_val",
        )  # fmt: skip
    assert model.training and not model._forward_hooks  # mode restored, the watch removed


class Conv1x1(nn.Module):
    """A 1x1 convolution by `weight`: autocast runs it in the reduced dtype (a multiply it would not)."""

    def __init__(self, weight: float):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1, bias=False)
        nn.init.constant_(self.conv.weight, weight)

    def forward(self, x):
        return {"heatmaps": self.conv(x)}


def test_a_batch_past_float16s_range_is_scored_again_in_float32(capsys):
    """Inputs 1..4 times 3e4: the first batch (3e4, 6e4) fits float16 (max 65504) exactly, the second (9e4,
    1.2e5) overflows to inf and is rescored in float32: the mean is float32's, 7.5e4 exactly."""
    model = Conv1x1(3e4)
    half = Precision("cpu", torch.float16)
    with torch.autocast("cpu", dtype=torch.float16):
        assert torch.isinf(model(DATA[2]["image"][None])["heatmaps"]).all()  # the overflow is real
    metrics, predictions = evaluate_split(
        MeanTask(),
        model,
        DATA,
        device=torch.device("cpu"),
        batch_size=2,
        precision=half,
        description="eval x",
    )
    assert metrics == {"mean": 75000.0} and [p["value"] for p in predictions] == [3e4, 6e4, 9e4, 1.2e5]
    assert "eval x: 2 of 4 samples scored in float32 (amp-float16 overflowed)" in capsys.readouterr().err
