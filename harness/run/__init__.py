"""One run, top to bottom: experiment.run_experiment (build -> data -> optimizers -> resume -> loop ->
evaluate -> record), the named steps it reads as (setup), the records it writes (records), and which
methods run in which order (method_order). May import train, evaluate, methods, models and core; never
cluster or cli."""


def __getattr__(name: str):
    """This package was one module, harness.run.experiment now: old imports of its names still work."""
    if name.startswith("__"):
        raise AttributeError(name)
    from importlib import import_module

    return getattr(import_module("harness.run.experiment"), name)
