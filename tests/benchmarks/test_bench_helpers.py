"""The bench's measuring helpers: interleaving order, warm-up rounds dropped, per-round ratio statistics."""

import pytest

from benchmarks.bench import interleaved, ratio


def test_interleaved_calls_one_of_each_per_round_and_drops_warmup():
    calls = []
    fns = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    times = interleaved(fns, rounds=3, warmup=2)
    assert calls == ["a", "b"] * 5
    assert {name: len(t) for name, t in times.items()} == {"a": 3, "b": 3}
    assert all(t >= 0 for ts in times.values() for t in ts)


def test_ratio_is_median_and_spread_of_per_round_ratios():
    times = {"top": [2.0, 4.0, 9.0], "bottom": [1.0, 1.0, 3.0]}  # per round: 2, 4, 3
    assert ratio(times, "top", "bottom") == pytest.approx((3.0, 2.0))
    with pytest.raises(ValueError):
        ratio({"top": [1.0], "bottom": [1.0, 2.0]}, "top", "bottom")
