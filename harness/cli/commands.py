"""The `harness` command line: strings become objects here, once.

Example:
    harness run --task pose --backbone hrnet_w32
    harness run --task pose --backbone hrnet_w18_small --method dslope --set train.epochs=2
    harness list
    harness export work_dirs/<run dir> --onnx enet.onnx
"""

from __future__ import annotations

import ctypes
import gc
import shutil
import signal
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from harness.cli.errors import fail as _fail
from harness.core.config import default_config_path, load_config
from harness.core.errors import HarnessError

app = typer.Typer(
    help="D-Slope benchmark harness: train and evaluate clean baselines and D-Slope on pose and face tasks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)


def release_memory() -> None:
    """Collect the finished run's networks and hand freed heap pages back to the OS (glibc malloc_trim).

    Several runs in one process otherwise stack their allocator high-water marks: the embedded default job
    (clean, then D-Slope) peaked at 4.5 GiB without this, against 3.2 GiB for D-Slope alone.
    """
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        pass


def _split_of_role(outcomes, role: str, fallback: str) -> str:
    """The split the records mark with `role` (a task instance may rename its splits, e.g. a .bin suite)."""
    names = [r.split for o in outcomes for r in o.records if r.split_role == role]
    return names[0] if names else fallback


def _comparison_table(outcomes, task_cls) -> Table:
    # The first three metrics the runs reported (they depend on the dataset: AP for COCO, PCKh for MPII).
    clean = _split_of_role(outcomes, "clean", task_cls.clean_split)
    occluded = _split_of_role(outcomes, "occluded", task_cls.occluded_split)
    reported = [r.metrics for o in outcomes for r in o.records if r.split == clean and r.metrics]
    columns = list(reported[0])[:3] if reported else [m.name for m in task_cls.metrics][:3]
    table = Table(title="Comparison (each method's evaluated network; others trained alongside on clean val)")
    table.add_column("method")
    table.add_column("network")
    for split in (clean, occluded):
        for name in columns:
            table.add_column(f"{split.split('_')[0]}\n{name}", justify="right")
    table.add_column("steps", justify="right")
    table.add_column("images", justify="right")
    for outcome in outcomes:
        by_key = {(r.network, r.split): r.metrics for r in outcome.records}
        for network in dict.fromkeys(r.network for r in outcome.records):
            cells = []
            for split in (clean, occluded):
                metrics = by_key.get((network, split))
                cells += [
                    f"{metrics[n]:.3f}" if metrics and metrics.get(n) is not None else "–" for n in columns
                ]
            table.add_row(outcome.records[0].method, network, *cells, str(outcome.steps), str(outcome.images))
    return table


@app.command()
def run(
    task: str | None = typer.Option(
        None, help="Registered task (see `harness list`); default: the config's, pose."
    ),
    backbone: str | None = typer.Option(None, help="Registered backbone or timm:<name>."),
    method: str | None = typer.Option(
        None, help="clean | dslope | all. Default: train clean and dslope and compare them."
    ),
    config: Path | None = typer.Option(None, help="YAML config (default: configs/<task>/default.yaml)."),
    set_: list[str] = typer.Option(
        [], "--set", help="Override a config key: --set train.epochs=3 (repeatable)."
    ),
    device: str | None = typer.Option(None, help="cpu or cuda (default: the config's, cpu)."),
    resume: Path | None = typer.Option(None, help="Continue a run dir from its last checkpoint."),
    nproc: int = typer.Option(
        1, min=1, help="Train each run on N data-parallel processes (torchrun); batch_size is per process."
    ),
    debug: bool = typer.Option(False, help="Show full tracebacks."),
) -> None:
    """Train and evaluate methods on a task; write results/runs/*.json and print a comparison table."""
    from harness.core import distributed
    from harness.core.registry import METHODS, TASKS
    from harness.run.experiment import run_experiment
    from harness.run.method_order import default_methods, run_order, with_finished_prerequisite

    def launch(sizes: list[int]) -> None:
        """Start N ranks of this same command under torchrun's launcher (from a worker: do nothing)."""
        if nproc == 1 or distributed.in_launch():
            return
        for size in sizes:  # refused once here, not once per rank
            distributed.check_world_size(size, distributed.Context(world_size=nproc), resume is not None)
        options = {"--task": task, "--backbone": backbone, "--method": method, "--config": config}
        options.update({"--device": device, "--resume": resume})
        args = [x for flag, value in options.items() if value for x in (flag, str(value))]
        args += [x for item in set_ for x in ("--set", item)] + (["--debug"] if debug else [])
        raise typer.Exit(distributed.launch(nproc, ["run", *args]))

    try:
        if resume is not None:
            if (resume / "config.yaml").is_file():
                launch([load_config(resume / "config.yaml").train.world_size])
            outcomes = [run_experiment(None, resume_dir=resume, console=console)]
            task_cls = TASKS.get(outcomes[0].records[0].task)
        else:
            if task is not None:
                TASKS.get(task)  # an unknown task is named before any file is looked for
            overrides = [*([f"task={task}"] if task else []), *set_]
            if backbone:
                overrides.append(f"model.backbone={backbone}")
            if device:
                overrides.append(f"device={device}")
            path = config or default_config_path(task or "pose")
            if method in (None, "all"):
                names = default_methods() if method is None else run_order(METHODS.names())
            else:
                names = [method]
            configs = [load_config(path, [*overrides, f"method={name}"]) for name in names]
            launch([cfg.train.world_size for cfg in configs])
            task_cls = TASKS.get(configs[0].task)
            outcomes = []
            finished: dict[str, Path] = {}  # method -> run dir: serves a later method's prerequisite
            for cfg in configs:
                cfg = with_finished_prerequisite(cfg, finished)
                if not distributed.launch_rank():  # one header, not one per rank
                    console.rule(f"{cfg.task} · {cfg.method} · {cfg.model.backbone} · seed {cfg.seed}")
                outcomes.append(run_experiment(cfg, console=console))
                release_memory()  # the next method starts from a small heap, not on top of this one
                finished[cfg.method] = outcomes[-1].run_dir
    except HarnessError as err:
        _fail(err, debug)
    except KeyboardInterrupt as err:
        # Exit code 128 + signal number: 130 for SIGINT (Ctrl-C), 143 for SIGTERM (a cluster's scheduler).
        signum = getattr(err, "signum", None) or signal.SIGINT
        message = f"[yellow]interrupted:[/] {err}" if str(err) else "[yellow]interrupted[/]"
        if distributed.current().is_main:  # every rank stopped at the same step; rank 0 says so
            console.print(message, highlight=False, soft_wrap=True)
        raise typer.Exit(128 + int(signum)) from None
    if not distributed.current().is_main:
        return  # rank 0 prints the table

    out = Console(width=max(shutil.get_terminal_size().columns, 120))
    out.print(_comparison_table(outcomes, task_cls))
    for outcome in outcomes:
        rec = outcome.records[0]
        out.print(
            f"{rec.method}: trained {outcome.steps} steps on {outcome.images} images "
            f"({outcome.train_seconds:.0f} s, {rec.training['steps_per_second']:.2f} steps/s, "
            f"{rec.training['device']}); run dir {outcome.run_dir}"
        )
    for line in _run_verdicts(outcomes):
        out.print(f"verdict: {line}", highlight=False)
    embedded = all(o.records[0].dataset.startswith("synthetic") for o in outcomes)  # the tasks' embedded sets
    out.print(
        f"Records written to {Path(outcomes[0].records[0].config['output']['results_dir']) / 'runs'}"
        + ("; these are short embedded-data runs, not the paper's numbers." if embedded else ".")
    )


def _run_verdicts(outcomes) -> list[str]:
    """The method under study minus each baseline on every split's primary metric, from this call's records
    (one seed: the difference only, no test; `harness report` pairs seeds across runs)."""
    from dataclasses import asdict

    from harness.report.interpret import RANDOM_FACTORS, _cell, _is_evaluated, _variant
    from harness.report.verdict import paired_verdicts

    records = [asdict(record) for outcome in outcomes for record in outcome.records]
    return [
        verdict.text() for verdict in paired_verdicts(records, _is_evaluated, _variant, _cell, RANDOM_FACTORS)
    ]


@app.command()
def report(
    results: list[Path] = typer.Option(
        [Path("results")], help="Results folder holding runs/*.json (repeatable: one report of several)."
    ),
    out: Path | None = typer.Option(None, help="Where tables/ and figures/ go (default: --results)."),
    format_: str = typer.Option("md,tex,csv", "--format", help="Table formats, comma separated: md,tex,csv."),
    filter_: list[str] = typer.Option(
        [], "--filter", help="Keep records with key=value (repeatable, ANDed): method=dslope, config.a.b=c."
    ),
    debug: bool = typer.Option(False, help="Show full tracebacks."),
) -> None:
    """Regenerate tables (Markdown, LaTeX, CSV) and figures (PNG, PDF) from results/runs/*.json alone."""
    from harness.report import generate_report, parse_filters, parse_formats

    try:
        summary = generate_report(results, out, parse_formats(format_), parse_filters(filter_))
    except HarnessError as err:
        _fail(err, debug)
    where = " and ".join(str(folder) for folder in results)
    if summary.records == 0:
        typer.echo(f"no results in {where}")
        return
    if summary.selected == 0:
        typer.echo(f"no results in {where} match {' and '.join(filter_)}")
        return
    typer.echo(
        f"{summary.selected} of {summary.records} records ({len(summary.failed)} failed): "
        f"{len(summary.tables)} table files, {len(summary.figures)} figure files under {out or results[0]}"
    )
    for note in summary.notes:
        typer.echo(f"  {note}")
    for text in summary.markdown:
        typer.echo("\n" + text.rstrip())
    if summary.verdicts:
        typer.echo("\nVerdicts (paired over seeds; from the records above):")
        for line in summary.verdicts:
            typer.echo(f"  {line}")


@app.command()
def sweep(
    path: Path = typer.Argument(..., help="Sweep YAML (configs/sweeps/*.yaml)."),
    set_: list[str] = typer.Option(
        [], "--set", help="Override a config key in every trial: --set output.results_dir=/shared/results."
    ),
    address: str | None = typer.Option(None, help="Ray cluster: auto | ray://HOST:PORT (default: local)."),
    gpus_per_trial: float | None = typer.Option(None, help="GPUs per trial (overrides the YAML)."),
    cpus_per_trial: float | None = typer.Option(None, help="CPUs per trial (overrides the YAML)."),
    max_concurrent: int | None = typer.Option(None, help="At most this many trials at once."),
    storage: str | None = typer.Option(
        None,
        help="Tune storage folder (a shared path on a cluster); default: sweeps/ beside the results dir.",
    ),
    resume: bool = typer.Option(
        False,
        help="Continue an interrupted sweep; finished trials are not re-run (without Tune's state: trials "
        "whose ok records are in the results dir are skipped).",
    ),
    dry_run: bool = typer.Option(False, help="Print the expanded trial list and exit."),
    allow_dirty: bool = typer.Option(
        False, help="Run a committed study config from a tree with uncommitted changes (records say so)."
    ),
    local: bool = typer.Option(
        False,
        help="Run the trials as processes of this machine, without Ray (--max-concurrent at a time; GPUs per "
        "trial > 0 spreads them over the visible GPUs).",
    ),
    debug: bool = typer.Option(False, help="Show full tracebacks."),
) -> None:
    """Run a grid of runs (task x backbone x method x seed ...) on Ray Tune (or --local processes); records
    land in results/runs/."""
    from harness.cluster.sweep import run_sweep, summary_table

    try:
        outcome = run_sweep(
            path, overrides=set_, address=address, gpus_per_trial=gpus_per_trial,
            cpus_per_trial=cpus_per_trial, max_concurrent=max_concurrent, resume=resume, dry_run=dry_run,
            storage=storage, allow_dirty=allow_dirty, local=local,
        )  # fmt: skip
    except HarnessError as err:
        _fail(err, debug)
    except KeyboardInterrupt as err:
        message = f"[yellow]sweep interrupted[/] ({err or 'SIGINT'}); continue with --resume"
        console.print(message, highlight=False)
        raise typer.Exit(130) from None
    table = outcome.table
    out = Console(width=max(shutil.get_terminal_size().columns, 120))
    out.print(summary_table(table, out.width), soft_wrap=True, markup=False, highlight=False)
    if dry_run:
        out.print(f"{len(table)} trials (dry run: nothing was started)")
        out.print(
            f"records would go to {outcome.records_dir}, Tune state to {outcome.tune_dir}", soft_wrap=True
        )
        return
    failed = int((table["status"] == "failed").sum())
    out.print(
        f"{len(table) - failed} trials ok, {failed} failed. Run `harness report` for tables and figures."
    )
    out.print(f"records: {outcome.records_dir}", soft_wrap=True, markup=False, highlight=False)
    out.print(
        f"{'trial logs: ' + outcome.tune_dir + '/local' if local else 'Tune state: ' + outcome.tune_dir} "
        "(continue with --resume)",
        soft_wrap=True,
        markup=False,
        highlight=False,
    )


@app.command()
def export(
    run_dir: Path = typer.Argument(..., help="A finished run dir (config.yaml + checkpoint.pt)."),
    onnx: Path = typer.Option(..., help="The .onnx file to write."),
    debug: bool = typer.Option(False, help="Show full tracebacks."),
) -> None:
    """Export a run's deployed network (ENet for D-Slope) to ONNX, checked against PyTorch."""
    from harness.evaluate.export import export_onnx

    try:
        summary = export_onnx(run_dir, onnx)
    except HarnessError as err:
        _fail(err, debug)
    typer.echo(
        f"wrote {summary.path}: network {summary.network}, input {list(summary.input_shape)}, output "
        f"{list(summary.output_shape)}; onnxruntime vs PyTorch max |diff| {summary.max_abs_diff:.2e}"
    )


@app.command("list")
def list_registered() -> None:
    """List registered tasks, backbones, methods and benchmark builders."""
    from harness.core.registry import BACKBONES, BENCHMARKS, METHODS, TASKS
    from harness.models.mmpose_imports import mmpose_extra_line

    table = Table(title="Registered")
    table.add_column("kind")
    table.add_column("names")
    table.add_row("tasks", ", ".join(TASKS.names()))
    table.add_row("backbones", ", ".join(BACKBONES.names()) + ", timm:<any timm model>")
    table.add_row("mmpose extra", mmpose_extra_line())
    table.add_row("methods", ", ".join(METHODS.names()))
    table.add_row("benchmarks", ", ".join(BENCHMARKS.names()))
    Console().print(table)
    Console().print(_imagenet_table(BACKBONES.names()))


def _imagenet_table(backbones: list[str]) -> Table:
    """Per backbone, what `model.pretrained: imagenet` loads (resolved from its library, nothing fetched)."""
    from harness.models.weights import imagenet_weights

    table = Table(title="model.pretrained: imagenet (fetched into the library's cache on first use)")
    table.add_column("backbone")
    table.add_column("ImageNet weights")
    for name in backbones:
        table.add_row(name, imagenet_weights(name).describe())
    table.add_row("timm:<name>", "timm's default pretrained tag for <name> (Hugging Face hub)")
    return table


# `harness benchmark build ...` lives in its own module (one job per module).
from harness.cli.benchmark import benchmark_app  # noqa: E402

app.add_typer(benchmark_app, name="benchmark")

# `harness eval` and `harness predict` use a trained run without training it (harness/cli/evaluate.py).
from harness.cli.evaluate import eval_command, predict_command  # noqa: E402

app.command("eval")(eval_command)
app.command("predict")(predict_command)


def main() -> None:
    """Console entry of `python -m harness.cli`: below every registration, so each sub-command exists."""
    app()


if __name__ == "__main__":  # pragma: no cover (run as a subprocess in tests/harness/test_cli.py)
    sys.exit(main())
