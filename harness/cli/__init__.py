"""Every typer front-end and how its errors become one line: `harness run / report / verdict / sweep /
export / list` (commands), `eval` and `predict` (evaluate), `benchmark build` (benchmark), errors. Strings
become objects here, once. May import every other subpackage. `harness.cli:app` and `python -m
harness.cli` keep working: the old module's names resolve from commands.py."""


def __getattr__(name: str):
    """This package was one module, harness.cli.commands now: old imports of its names still work."""
    if name.startswith("__"):
        raise AttributeError(name)
    from importlib import import_module

    return getattr(import_module("harness.cli.commands"), name)
