"""`harness eval` and `harness predict`: the commands that use a trained run (or, for `eval`, a model of
another library) without training it.

Example:
    harness eval work_dirs/<run> --severity 0,1,2,3,4
    harness eval --model mmpose:td-hm_hrnet-w32_8xb64-210e_coco-256x192 --checkpoint hrnet_w32.pth --task pose
    harness eval --model onnx:w600k_r50.onnx --task face_recognition --severity 0,1,2,3,4
    harness eval work_dirs/<run> --config configs/pose/ochuman_hrnet-w32_256x192.yaml \
        --set data.root=/data/coco
    harness predict work_dirs/<run> photos/ --out predicted/
"""
# ruff: noqa: B008  (typer declares options as argument defaults)

from __future__ import annotations

import shutil
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from harness.core.errors import ConfigError, HarnessError

console = Console(stderr=True)


def eval_command(
    run_dir: Path | None = typer.Argument(
        None,
        help="A run dir (config.yaml + checkpoint.pt), finished or interrupted; same as --model run:DIR.",
    ),
    model: str | None = typer.Option(
        None,
        help="run:<RUN_DIR> | mmpose:<config name or .py> | onnx:<file> | face_alignment:<2D-FAN variant>.",
    ),
    checkpoint: Path | None = typer.Option(
        None, help="Local weights of an external model (mmpose .pth, FAN)."
    ),
    task: str | None = typer.Option(None, help="Task to score an external model on (default: --config's)."),
    network: str | None = typer.Option(None, help="Network to score (default: the method's evaluated one)."),
    config: Path | None = typer.Option(
        None, help="A config of the same task: its data/occlusion are scored."
    ),
    set_: list[str] = typer.Option(
        [], "--set", help="Override data.*, occlusion.*, eval batch size, device."
    ),
    split: list[str] = typer.Option([], help="Score only this split (repeatable; default: every split)."),
    severity: str | None = typer.Option(
        None, help="Score the occluded split at these levels of the task's ladder: 0,1,2,3,4."
    ),
    device: str | None = typer.Option(None, help="cpu or cuda (default: the run's)."),
    debug: bool = typer.Option(False, help="Show full tracebacks."),
) -> None:
    """Score a trained run or an external model on any split its task can build (no training); write
    records and predictions."""
    from harness.cli.errors import fail as _fail

    try:
        overrides = [*set_, *([f"device={device}"] if device else [])]
        outcome = _evaluate(run_dir, model, checkpoint, task, network, config, overrides, split, severity)
    except HarnessError as err:
        _fail(err, debug)
    records = outcome.records
    metrics = list(records[0].metrics)[:4]
    table = Table(title=f"eval {outcome.source_run_id} ({records[0].method}, network {records[0].network})")
    for column in ("split", "severity", *metrics):
        table.add_column(column, justify="left" if column == "split" else "right")
    for record in records:
        level = "–" if record.severity is None else str(record.severity)
        cells = [f"{record.metrics[m]:.4f}" if record.metrics.get(m) is not None else "–" for m in metrics]
        table.add_row(record.split, level, *cells)
    Console(width=max(shutil.get_terminal_size().columns, 120)).print(table)
    results = Path(records[0].config["output"]["results_dir"]) / "runs"
    typer.echo(f"{len(records)} records ({records[0].run_id}) in {results}; predictions in {outcome.folder}")


def _evaluate(run_dir, model, checkpoint, task, network, config, overrides, splits, severity):
    """`run:` (or a positional run dir) goes to evaluate_run, any other spec to evaluate_external."""
    from harness.core.external import RUN_KIND, ModelSpec
    from harness.evaluate.evaluate_run import evaluate_run, parse_severities
    from harness.evaluate.external_models import evaluate_external

    if run_dir is not None and model is not None:
        raise ConfigError("eval: give a run dir or --model, not both")
    if run_dir is None and model is None:
        raise ConfigError("eval: give a run dir or --model KIND:TARGET (e.g. --model run:work_dirs/<run>)")
    spec = ModelSpec(RUN_KIND, str(run_dir)) if run_dir is not None else ModelSpec.parse(model)
    severities = parse_severities(severity)
    if spec.kind == RUN_KIND:
        for option, value in (("--checkpoint", checkpoint), ("--task", task)):
            if value is not None:
                raise ConfigError(f"{option}: a trained run brings its own (only external models take it)")
        return evaluate_run(
            Path(spec.target), network=network, config_file=config, overrides=overrides,
            splits=splits or None, severities=severities, console=console,
        )  # fmt: skip
    if network is not None:
        raise ConfigError("--network: an external model has one network (only trained runs take it)")
    return evaluate_external(
        spec, task=task, checkpoint=checkpoint, config_file=config, overrides=overrides,
        splits=splits or None, severities=severities, console=console,
    )  # fmt: skip


def predict_command(
    run_dir: Path = typer.Argument(..., help="A run dir (config.yaml + checkpoint.pt)."),
    images: Path = typer.Argument(..., help="An image, or a folder of images (jpg, jpeg, png, bmp)."),
    out: Path = typer.Option(..., help="Folder for the drawn images and predictions.json."),
    boxes: Path | None = typer.Option(
        None, help="COCO detections json (image file name or id, bbox, score); default: the whole image."
    ),
    network: str | None = typer.Option(None, help="Network to run (default: the method's evaluated one)."),
    score_threshold: float = typer.Option(0.0, help="Ignore boxes scoring below this."),
    device: str | None = typer.Option(None, help="cpu or cuda (default: cpu)."),
    debug: bool = typer.Option(False, help="Show full tracebacks."),
) -> None:
    """Draw a trained run's predicted skeletons / landmarks on images and write their coordinates as json."""
    from harness.cli.errors import fail as _fail
    from harness.evaluate.predict_images import predict_images

    try:
        summary = predict_images(
            run_dir, images, out, boxes=boxes, network=network, score_threshold=score_threshold,
            device=device or "cpu", console=console,
        )  # fmt: skip
    except HarnessError as err:
        _fail(err, debug)
    typer.echo(
        f"{summary.predictions} predictions on {summary.images} images (network {summary.network}): "
        f"drawn images and {summary.json_path.name} in {summary.out}"
    )
