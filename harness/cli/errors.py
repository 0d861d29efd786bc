"""How every `harness` sub-command ends on bad input: one line naming the culprit, exit code 2.

A module of its own so the sub-command modules (`benchmark`, `evaluate`) and `commands` share it without
importing each other.
"""

from __future__ import annotations

import typer
from rich.console import Console

console = Console(stderr=True)


def fail(err: Exception, debug: bool) -> None:
    """One line naming the culprit, exit code 2 (the traceback only with --debug)."""
    if debug:
        raise err
    # An error raised in a DataLoader worker arrives wrapped with the worker's traceback: keep its last line.
    message = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
    message = message.removeprefix(f"{type(err).__module__}.{type(err).__name__}: ")
    from harness.core.distributed import current

    rank = f" (rank {current().rank})" if current().rank else ""  # under torchrun: which rank says so
    console.print(f"[bold red]error{rank}:[/] {message}", markup=True, highlight=False, soft_wrap=True)
    raise typer.Exit(2)
