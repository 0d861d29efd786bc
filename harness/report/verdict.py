"""One-line verdicts from result records: the method under study minus each baseline, paired over seeds,
with a paired t-test.

Which method is under study and which are baselines comes from the records' `method_role` (`Method.role`:
"method" against every "baseline", then every "reference"); the metric is each record's declared primary
metric and "better"/"worse" follow its declared direction. Nothing here names a method or a metric.

Why paired: runs of two methods with the same seed share the data order, the occluded val and the
initial draw of the synthetic data, so seed-to-seed variation cancels in the difference. The verdict is
computed from the numbers, whatever they are; it never assumes D-Slope wins.
"""

from __future__ import annotations

import ast
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from harness.core.roles import complete_records

# Who is compared against the method under study, in this order.
_COMPARED_ROLES = ("baseline", "reference")


@dataclass(frozen=True)
class Verdict:
    task: str
    dataset: str
    backbone: str
    split: str
    metric: str
    candidate: str
    baseline: str
    differences: tuple[float, ...]  # candidate - baseline, one per shared cell
    higher_is_better: bool | None  # None: the records declare no direction, so no better/worse
    # The cell of each difference: (seed, then the value of each of `factors`), e.g. (3, 1001).
    cells: tuple[tuple, ...] = ()
    factors: tuple[str, ...] = ()  # random factors besides the seed (the report's RANDOM_FACTORS)
    setting: str = ""  # the config keys that set this comparison apart from others of the same split, if any

    @property
    def mean(self) -> float:
        return float(np.mean(self.differences))

    @property
    def std(self) -> float:
        return float(np.std(self.differences, ddof=1)) if len(self.differences) > 1 else 0.0

    @property
    def p_value(self) -> float | None:
        """Two-sided paired t-test p-value; None with fewer than two seeds or no spread at all."""
        n = len(self.differences)
        if n < 2 or self.std == 0.0:
            return None
        t = self.mean / (self.std / math.sqrt(n))
        return float(2 * stats.t.sf(abs(t), df=n - 1))

    def factor_means(self) -> list[float]:
        """The mean difference per draw of the random factors (e.g. per starting checkpoint)."""
        groups: dict[tuple, list[float]] = {}
        for cell, value in zip(self.cells, self.differences, strict=True):
            groups.setdefault(tuple(cell[1:]), []).append(value)
        return [float(np.mean(v)) for _, v in sorted(groups.items(), key=lambda item: repr(item[0]))]

    @property
    def factor_p_value(self) -> float | None:
        """The t-test with each random-factor draw as the unit (its cells averaged first), which does not
        treat cells sharing a checkpoint as independent; None with fewer than two draws."""
        means = self.factor_means()
        if len(means) < 2 or float(np.std(means, ddof=1)) == 0.0:
            return None
        return float(stats.ttest_1samp(means, 0.0).pvalue)

    def _pairing(self) -> str:
        n = len(self.differences)
        draws = len(self.factor_means()) if self.factors else 1
        if draws < 2:
            return f"paired over {n} seed{'s' * (n > 1)}"
        seeds = len({cell[0] for cell in self.cells})
        return f"paired over {n} cells: {seeds} seeds x {draws} {'/'.join(self.factors)}"

    def text(self) -> str:
        # Enough decimals for two significant digits of the smaller of the two (NME differences are ~1e-3).
        scale = max(self.std, abs(self.mean) * 0.1, 1e-4)
        d = max(3, 1 - math.floor(math.log10(scale)))
        head = (
            f"{self.task}/{self.dataset}/{self.backbone}{self.setting}: {self.candidate} − {self.baseline} "
            f"on {self.split} {self.metric}: {self.mean:+.{d}f} ± {self.std:.{d}f} ({self._pairing()}"
        )
        p = self.p_value
        if p is None:
            return head + "; too few seeds to judge)"
        better = (self.mean > 0) == self.higher_is_better
        if self.higher_is_better is None:
            significance = "significant difference" if p < 0.05 else "no significant difference"
            judgement = f"{significance} (the metric declares no direction), p={p:.3f}"
        elif p < 0.05:
            judgement = f"{self.candidate} {'better' if better else 'worse'}, p={p:.3f}"
        else:
            judgement = f"no significant difference, p={p:.3f}"
        factor_p = self.factor_p_value
        if factor_p is not None:
            draws = len(self.factor_means())
            judgement += f"; over the {draws} {'/'.join(self.factors)} means: p={factor_p:.3f}"
        return f"{head}; {judgement})"


def _primary(record: dict[str, Any]) -> str | None:
    """The record's declared primary metric, else its first one (records predating the field list their
    metrics sorted, so a pose record's first is AP)."""
    metrics = list(record.get("metrics") or {})
    if record.get("primary_metric") in metrics:
        return record["primary_metric"]
    return metrics[0] if metrics else None


def paired_verdicts(
    records: list[dict[str, Any]],
    is_evaluated: Callable[[dict[str, Any]], bool],
    variant: Callable[[dict[str, Any]], dict[str, Any]],
    cell: Callable[[dict[str, Any]], tuple] = lambda r: (int(r.get("seed", 0)),),
    factors: tuple[str, ...] = (),
) -> list[Verdict]:
    """Verdicts per (task, dataset, backbone, config variant, split) where the method under study and a
    baseline share seeds.

    Args:
        records: result records (status ok ones are used); records lacking `method_role` get it
            (harness/core/roles.py).
        is_evaluated: whether a record is of the network a method deploys (ENet, not GNet).
        variant: the record's config minus what does not change a number (seeds pool within a variant).
        cell: which draw a record is, (seed, *values of `factors`): methods pair within a cell.
        factors: the names of the random factors in a cell after the seed.
    """
    roles: dict[str, str | None] = {}
    groups: dict[tuple, dict[tuple[str, str], dict[tuple, float]]] = {}
    directions: dict[tuple, bool] = {}
    for r in complete_records(records):
        if r.get("status") != "ok" or not is_evaluated(r):
            continue
        metric = _primary(r)
        value = (r.get("metrics") or {}).get(metric)
        if metric is None or value is None:
            continue
        config = {k: v for k, v in variant(r).items() if k != "method" and not k.startswith("method_args")}
        key = (
            r.get("task"),
            r.get("dataset"),
            r.get("backbone"),
            r.get("split"),
            metric,
            repr(sorted(config.items())),
        )
        method = str(r.get("method"))
        roles[method] = r.get("method_role")
        own = ((r.get("config") or {}).get("method_args") or {}).get(method) or {}
        arm = (method, json.dumps(own, sort_keys=True))  # D-Slope with other weights is another arm
        groups.setdefault(key, {}).setdefault(arm, {})[cell(r)] = float(value)
        declared = (r.get("higher_is_better") or {}).get(metric)
        directions[key] = declared if isinstance(declared, bool) else None
    baselines = [m for role in _COMPARED_ROLES for m in sorted(m for m in roles if roles[m] == role)]
    settings = _setting_labels(list(groups))
    verdicts = []
    for key, arms in sorted(groups.items(), key=lambda item: tuple(map(str, item[0]))):
        candidates = {arm: seeds for arm, seeds in arms.items() if roles[arm[0]] == "method"}
        labels = _arm_labels(list(candidates))
        for arm, candidate_seeds in sorted(candidates.items(), key=lambda item: labels[item[0]]):
            for baseline in baselines:
                baseline_seeds: dict[tuple, float] = {}
                for other, seeds in arms.items():
                    if other[0] == baseline:
                        baseline_seeds.update(seeds)
                shared = sorted(set(candidate_seeds) & set(baseline_seeds), key=repr)
                if not shared:
                    continue
                task, dataset, backbone, split, metric, _ = key
                verdicts.append(
                    Verdict(
                        str(task),
                        str(dataset),
                        str(backbone),
                        str(split),
                        metric,
                        labels[arm],
                        baseline,
                        tuple(candidate_seeds[s] - baseline_seeds[s] for s in shared),
                        directions[key],
                        tuple(shared),
                        factors,
                        settings[key],
                    )
                )
    return verdicts


def _setting_labels(keys: list[tuple]) -> dict[tuple, str]:
    """' [max_steps=600]' naming the config keys that set a group apart from the other groups of the same
    (task, dataset, backbone, split, metric), as the tables label their rows (the common setting reads plain,
    derived keys are left to the key they follow from); '' when nothing sets it apart."""
    from harness.report.tables import _variant_labels

    variants = {key: json.dumps(dict(ast.literal_eval(key[5])), sort_keys=True, default=str) for key in keys}
    labels = _variant_labels({(key[:5], variant) for key, variant in variants.items()})
    return {
        key: f" [{labels[key[:5], variants[key]]}]" if labels[key[:5], variants[key]] else "" for key in keys
    }


def _arm_labels(arms: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """'dslope', or 'dslope[enet_weight=0.0001]' naming the settings that differ when several arms exist."""
    if len(arms) <= 1:
        return {arm: arm[0] for arm in arms}
    settings = {arm: json.loads(arm[1]) for arm in arms}
    keys = sorted({k for s in settings.values() for k in s})
    differing = [k for k in keys if len({json.dumps(s.get(k)) for s in settings.values()}) > 1]
    return {arm: f"{arm[0]}[{', '.join(f'{k}={settings[arm].get(k)}' for k in differing)}]" for arm in arms}
