"""Figures (PNG + PDF, byte-identical across reruns): split bars, metric vs. severity, training curves and
the qualitative grid.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from harness.core.portable import resolve_path
from harness.core.task import default_cache_dir as cache_root
from harness.report.canvas import _new_figure, _save
from harness.report.interpret import _is_evaluated, _primary_metric
from harness.report.severity import figure_severity, severity_tables
from harness.report.tables import Table, compact_rows

_QUALITATIVE_ROWS = 6
_RC = {"svg.hashsalt": "dslope-harness", "font.size": 8}


def figure_split_bars(table: Table, out: Path) -> list[Path]:
    """Grouped horizontal bars of the primary metric: one group per row, one bar per split (clean vs.
    occluded). Labels sit on the y axis, one row each, so they stay legible for any number of arms."""
    metric = _primary_metric(dict.fromkeys(m for _, m in table.columns), table.primary)
    columns = [c for c, (_, m) in enumerate(table.columns) if m == metric]
    rows = [r for r in range(len(table.rows)) if any((r, c) in table.cells for c in columns)]
    rows.sort(key=lambda r: r in table.reference_rows)  # networks trained alongside last, as in the table
    if not rows:
        return []
    key_columns, values, shared = compact_rows(table, rows)
    labels = [_bar_label(row, key_columns) for row in values]
    lines = max(label.count("\n") + 1 for label in labels)
    fig = _new_figure(6.0, 0.9 + len(rows) * max(0.32, 0.12 * lines + 0.1))
    ax = fig.add_subplot()
    width = 0.8 / len(columns)
    for i, c in enumerate(columns):
        means = [table.cells.get((r, c), (math.nan, 0.0, 0))[0] for r in rows]
        stds = [table.cells[r, c][1] if table.cells.get((r, c), (0, 0, 0))[2] > 1 else 0.0 for r in rows]
        positions = [j + (i - (len(columns) - 1) / 2) * width for j in range(len(rows))]
        ax.barh(positions, means, width, xerr=stds, capsize=2, label=table.columns[c][0])
    ax.set_yticks(range(len(rows)), labels, fontsize=6)
    ax.invert_yaxis()  # the table's first row on top
    ax.set_xlabel(metric)
    ax.set_title(
        f"{table.name}: {metric} per split (mean ± std over seeds)" + (f"\n{shared}" if shared else "")
    )
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # outside: never over a bar
    return _save(fig, out / f"{table.name}_splits")


def _bar_label(row: tuple[str, ...], key_columns: list[str], width: int = 40) -> str:
    """The row's varying keys (`method (network) · backbone`), then the config keys that set it apart, on
    one line when it fits in `width` characters, else one line per key (each wrapped at `width`)."""
    import textwrap

    names = [v for v, k in zip(row, key_columns, strict=True) if k != "config" and v]
    config = dict(zip(key_columns, row, strict=True)).get("config") or ""
    parts = [p for p in re.split(r", (?=[\w.\-]+=)", config) if p]  # not inside a [a, b] value
    one_line = " · ".join([*names, *parts])
    if len(one_line) <= width:
        return one_line
    lines = textwrap.wrap(" · ".join(names), width) or [""]
    for part in parts:
        lines += textwrap.wrap(part, width, break_long_words=True)
    return "\n".join(lines)


def figure_curves(records: list[dict[str, Any]], out: Path) -> list[Path]:
    """Per run: training losses and validation metrics per epoch, from the record's `curves`."""
    written = []
    seen = set()
    for r in records:
        if r["run_id"] in seen or not r.get("curves"):
            continue
        seen.add(r["run_id"])
        curves = r["curves"]
        epochs = [c.get("epoch", i + 1) for i, c in enumerate(curves)]
        keys = list(dict.fromkeys(k for c in curves for k in c))
        losses = [k for k in keys if "loss" in k and not k.startswith("val_")]
        vals = [k for k in keys if k.startswith("val_")]
        panels = [(p, ks) for p, ks in (("loss", losses), ("validation", vals)) if ks]
        if not panels:
            continue
        fig = _new_figure(4.0 * len(panels), 3.0)
        for i, (label, names) in enumerate(panels):
            ax = fig.add_subplot(1, len(panels), i + 1)
            for name in names:
                points = [
                    (e, c[name]) for e, c in zip(epochs, curves, strict=True) if _is_number(c.get(name))
                ]
                if points:
                    ax.plot(*zip(*points, strict=True), marker="o", markersize=3, label=name)
            ax.set_xlabel("epoch")
            ax.set_ylabel(label)
            ax.legend()
        fig.suptitle(f"{r['run_id']} · {r.get('method')} · {r.get('backbone')} · seed {r.get('seed')}")
        written += _save(fig, out / "curves" / r["run_id"])
    return written


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _showcase_record(records: list[dict[str, Any]], method_role: str) -> dict[str, Any] | None:
    """The occluded-split record with samples of the evaluated network of a method with `method_role`
    (lowest seed, then run id)."""
    candidates = [
        r
        for r in records
        if r.get("method_role") == method_role
        and r.get("split_role") == "occluded"
        and r.get("samples")
        and _is_evaluated(r)
    ]
    return min(candidates, key=lambda r: (str(r.get("seed")), r["run_id"], r["_file"]), default=None)


def figure_qualitative(records: list[dict[str, Any]], out: Path, notes: list[str]) -> list[Path]:
    """The paper's grid: occluded val crops, columns ground truth | the reference method (`role:
    reference`, the clean model) | the method under study (`role: method`); per backbone."""
    written = []
    groups = sorted({(str(r.get("task")), str(r.get("dataset")), str(r.get("backbone"))) for r in records})
    for task, dataset, backbone in groups:
        mine = [
            r
            for r in records
            if (str(r.get("task")), str(r.get("dataset")), str(r.get("backbone")))
            == (
                task,
                dataset,
                backbone,
            )
        ]
        baseline = _showcase_record(mine, "reference")
        dslope = _showcase_record(mine, "method")
        if baseline is None or dslope is None:
            continue
        theirs = {s.get("ann_id"): s for s in dslope["samples"]}
        shown = [(_with_image_path(s, baseline), theirs[s.get("ann_id")]) for s in baseline["samples"]
                 if s.get("ann_id") in theirs]  # fmt: skip
        rows = [(s, t) for s, t in shown if s["image"] is not None and s["image"].is_file()]
        rows = rows[:_QUALITATIVE_ROWS]
        if not rows:
            first = baseline["samples"][0].get("image") if baseline["samples"] else None
            notes.append(
                f"figure qualitative {task}/{dataset}/{backbone}: skipped, its sample images are not on this "
                f"machine (first: {first}, cache root {cache_root()}); run the records' config once with "
                "HARNESS_CACHE set to the cache that holds them, or rebuild them there"
            )
            continue
        drawer = _task_drawer(baseline)
        if drawer is None:
            notes.append(
                f"figure qualitative {task}/{dataset}/{backbone}: the task cannot be built from the record's "
                "config, drawn with the record's skeleton"
            )
            drawer = _skeleton_drawer((baseline.get("data") or {}).get("skeleton") or [])
        written += _draw_grid(
            rows, drawer, baseline, dslope, out / f"qualitative_{task}_{dataset}_{backbone}"
        )
    if not written and not any("figure qualitative" in n for n in notes):
        notes.append(
            "figure qualitative: no occluded-split samples of both a reference and a method run, skipped"
        )
    return written


def _with_image_path(sample: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """`sample` with its stored image path (`{cache}/...`, `{data}/...`) resolved on this machine."""
    roots = {"cache": cache_root()}
    data_root = ((record.get("config") or {}).get("data") or {}).get("root")
    if data_root and not str(data_root).startswith("{"):
        roots["data"] = Path(data_root)
    image = sample.get("image")
    return {**sample, "image": resolve_path(str(image), roots) if image else None}


def _task_drawer(record: dict[str, Any]):
    """The record's task drawing a sample (`Task.draw_prediction`), built from the record's own config;
    None when this harness cannot build it (an unknown task, or settings of an older version)."""
    from pydantic import ValidationError

    from harness.core.errors import HarnessError
    from harness.core.registry import TASKS

    try:
        task_cls = TASKS.get(str(record.get("task")))
        task = task_cls(task_cls.Settings(**((record.get("config") or {}).get("data") or {})))
    except (HarnessError, ValidationError, TypeError):
        return None

    def draw(image, keypoints: list[float], box: list[float], ground_truth: bool):
        prediction = {"keypoints": keypoints, "box": box, "ground_truth": ground_truth}
        return task.draw_prediction(image.copy(), prediction)

    return draw


def _skeleton_drawer(skeleton: list[list[int]]):
    """Limbs and joints in one colour, for records whose task cannot be built here."""
    import cv2

    def draw(image, keypoints: list[float], box: list[float], ground_truth: bool):
        image = image.copy()
        joints = [keypoints[i : i + 3] for i in range(0, len(keypoints) - 2, 3)]
        shown = [not ground_truth or v > 0 for _, _, v in joints]
        point = [(int(round(x)), int(round(y))) for x, y, _ in joints]
        for a, b in skeleton:
            if a < len(joints) and b < len(joints) and shown[a] and shown[b]:
                cv2.line(image, point[a], point[b], (0, 200, 0), 1, cv2.LINE_AA)
        for p, visible in zip(point, shown, strict=True):
            if visible:
                cv2.circle(image, p, 2, (0, 0, 255), -1, cv2.LINE_AA)
        return image

    return draw


def _draw_grid(rows, drawer, baseline, dslope, stem: Path) -> list[Path]:
    """Rows of occluded val samples; columns ground truth | reference | method, each drawn by `drawer`."""
    from harness.core.io import read_image

    titles = [
        "ground truth",
        f"{baseline.get('method')}\n{baseline['run_id']}",
        f"{dslope.get('method')} {dslope.get('network')}\n{dslope['run_id']}",
    ]
    fig = _new_figure(6.0, 2.2 * len(rows))
    axes = fig.subplots(len(rows), 3, squeeze=False)
    for i, (ours, theirs) in enumerate(rows):
        image = read_image(ours["image"])
        x0, y0, x1, y1 = _crop(ours["box"], image.shape[1], image.shape[0])
        for j, keypoints in enumerate((ours["ground_truth"], ours["prediction"], theirs["prediction"])):
            drawn = drawer(image, keypoints, ours["box"], ground_truth=j == 0)
            ax = axes[i][j]
            ax.imshow(drawn[y0:y1, x0:x1, ::-1], extent=(x0, x1, y1, y0))
            ax.set_xlim(x0, x1)
            ax.set_ylim(y1, y0)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(titles[j], fontsize=4)
    return _save(fig, stem)


def _crop(box: list[float], width: int, height: int, scale: float = 1.25) -> tuple[int, int, int, int]:
    """The person box enlarged by `scale` about its centre, clipped to the image, in integer pixels."""
    x, y, w, h = box
    cx, cy = x + w / 2, y + h / 2
    half_w, half_h = max(w, 1) * scale / 2, max(h, 1) * scale / 2
    x0, y0 = max(0, int(math.floor(cx - half_w))), max(0, int(math.floor(cy - half_h)))
    x1, y1 = min(width, int(math.ceil(cx + half_w))), min(height, int(math.ceil(cy + half_h)))
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def write_figures(
    tables: list[Table],
    ok: list[dict[str, Any]],
    out: Path,
    notes: list[str],
) -> list[Path]:
    """Every figure the records allow; the ones they do not allow are skipped with a note."""
    import matplotlib

    with matplotlib.rc_context(_RC):
        written = []
        for table in tables:
            if not table.ablation:
                written += figure_split_bars(table, out)
        written += figure_severity(severity_tables(ok), out, notes)
        written += figure_curves(ok, out)
        written += figure_qualitative(ok, out, notes)
    return written
