"""`harness benchmark build NAME --option value ...`: build a registered derived benchmark (C-COCO, C-MPII).

The engine knows no benchmark: each builder registers under BENCHMARKS with a pydantic `Settings`, and the
command line's `--some-option value` pairs become its `some_option` fields, validated there.

Example:
    harness benchmark build c-coco --coco-root ~/data/coco --split val2017 --seed 0 --out ~/data/c-coco
    harness benchmark build c-mpii --mpii-root ~/data/mpii --patch-ann ~/data/coco/annotations/\
person_keypoints_train2017.json --patch-images ~/data/coco/train2017 --out ~/data/c-mpii --severity 3
"""

from __future__ import annotations

import json

import typer
from pydantic import ValidationError
from rich.console import Console

from harness.core.errors import ConfigError, HarnessError
from harness.core.progress import make_progress

benchmark_app = typer.Typer(help="Build derived benchmarks (C-COCO, C-MPII).", no_args_is_help=True)
console = Console(stderr=True)


def parse_options(args: list[str]) -> dict[str, str]:
    """['--coco-root', 'DIR', '--seed', '0'] -> {'coco_root': 'DIR', 'seed': '0'} (also --key=value)."""
    options: dict[str, str] = {}
    rest = list(args)
    while rest:
        flag = rest.pop(0)
        if not flag.startswith("--"):
            raise ConfigError(f"unexpected argument '{flag}' (options are --name value)")
        name, _, value = flag[2:].partition("=")
        if not _:
            if not rest or rest[0].startswith("--"):
                raise ConfigError(f"option --{name} needs a value")
            value = rest.pop(0)
        options[name.replace("-", "_")] = value
    return options


def settings_from_options(schema, options: dict[str, str]):
    """Validate options against a builder's Settings; one line naming the --option on error."""
    try:
        return schema.model_validate(options)
    except ValidationError as err:
        first = err.errors()[0]
        flag = "--" + str(first["loc"][0]).replace("_", "-") if first["loc"] else "options"
        if first["type"] == "extra_forbidden":
            valid = ", ".join("--" + n.replace("_", "-") for n in sorted(schema.model_fields))
            raise ConfigError(f"unknown option {flag} (valid: {valid})") from None
        raise ConfigError(f"{flag}: {first['msg'].lower()}") from None


@benchmark_app.command("build", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def build(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Registered benchmark, e.g. c-coco or c-mpii."),
    debug: bool = typer.Option(False, help="Show the full traceback on errors."),
) -> None:
    """Build a benchmark: --out DIR, --seed, --severity 0-4, --patch-ann/--patch-images, dataset roots.

    Same inputs and seed give byte-identical files; an interrupted build resumes (finished images are
    skipped) and the manifest is written last.
    """
    from harness.cli.errors import fail as _fail
    from harness.core.registry import BENCHMARKS

    try:
        builder = BENCHMARKS.get(name)
        settings = settings_from_options(builder.Settings, parse_options(ctx.args))
        progress = make_progress(console)
        with progress:

            def advance(total: int):
                job = progress.add_task(f"building {name}", total=total, info="")
                return lambda: progress.advance(job)

            manifest_path = builder.build(settings, progress=advance)
    except (HarnessError, OSError) as err:
        _fail(err, debug)
        return
    manifest = json.loads(manifest_path.read_text())
    console.print(
        f"{name}: {manifest['images']} images, {manifest['persons']} persons, "
        f"{manifest['covered_keypoints']} keypoints covered -> {manifest_path.parent}",
        highlight=False,
    )
