"""The D-Slope benchmark engine, grouped by job. It knows no task, dataset or method by name; imports flow
one way, cli -> cluster -> run -> train / evaluate -> methods -> models -> core, and report -> core
(tests/harness/test_layers.py): core/ the shared vocabulary, models/ networks and the config -> objects
factory, methods/ what one training step computes, train/ the loop, evaluate/ scoring and trained runs,
run/ one run top to bottom, cluster/ sweeps and multi-worker trials, report/ records -> tables, cli/ the
typer front-ends."""

# BEGIN moved modules: written by tools/relayout.py from its tables (edit them there and re-run).
# A module that moved fails with one line naming its new place; a few public paths import as the new module.
import sys as _sys
from importlib import import_module as _import_module
from importlib.machinery import PathFinder as _PathFinder
from importlib.util import spec_from_loader as _spec_from_loader

_MOVED = {
    "harness.applicability": "harness.core.applicability",
    "harness.backbones": "harness.models.backbones",
    "harness.backbones_mmpose": "harness.models.mmpose_backbones",
    "harness.batches": "harness.core.batches",
    "harness.benchmark_cli": "harness.cli.benchmark",
    "harness.cache": "harness.core.cache",
    "harness.callbacks": "harness.train.callbacks",
    "harness.cli": "harness.cli.commands",
    "harness.cli_errors": "harness.cli.errors",
    "harness.config": "harness.core.config",
    "harness.distributed": "harness.core.distributed",
    "harness.errors": "harness.core.errors",
    "harness.eval_cli": "harness.cli.evaluate",
    "harness.evaluate_external": "harness.evaluate.external_models",
    "harness.evaluate_run": "harness.evaluate.evaluate_run",
    "harness.evaluation": "harness.evaluate.scoring",
    "harness.export": "harness.evaluate.export",
    "harness.external": "harness.core.external",
    "harness.factory": "harness.models.factory",
    "harness.finished_trials": "harness.cluster.finished_trials",
    "harness.imitation": "harness.methods.imitation",
    "harness.io": "harness.core.io",
    "harness.method_order": "harness.run.method_order",
    "harness.mmpose_imports": "harness.models.mmpose_imports",
    "harness.model": "harness.models.task_model",
    "harness.occlusion": "harness.core.occlusion",
    "harness.portable": "harness.core.portable",
    "harness.precision": "harness.core.precision",
    "harness.predict_images": "harness.evaluate.predict_images",
    "harness.predictions": "harness.evaluate.predictions",
    "harness.pretraining": "harness.train.pretraining",
    "harness.progress": "harness.core.progress",
    "harness.ray_train": "harness.cluster.ray_train",
    "harness.registry": "harness.core.registry",
    "harness.reproducibility": "harness.core.reproducibility",
    "harness.results": "harness.core.results",
    "harness.roles": "harness.core.roles",
    "harness.run": "harness.run.experiment",
    "harness.run_files": "harness.core.run_files",
    "harness.run_records": "harness.run.records",
    "harness.run_setup": "harness.run.setup",
    "harness.sweep": "harness.cluster.sweep",
    "harness.task": "harness.core.task",
    "harness.trained_run": "harness.evaluate.trained_run",
    "harness.trainer": "harness.train.trainer",
    "harness.verdict": "harness.report.verdict",
    "harness.weight_files": "harness.models.weight_files",
    "harness.weights": "harness.models.weights",
}
_STILL_IMPORTABLE = {"harness.registry", "harness.results"}


class _Alias:
    """Loader of an old public path: the module is the new one itself (one object, two names)."""

    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec):
        return _import_module(self.target)

    def exec_module(self, module) -> None:
        pass


class _MovedModules:
    """First on sys.meta_path, so an old path never finds a stale copy elsewhere (an editable install)."""

    @staticmethod
    def find_spec(fullname, path=None, target=None):
        new = _MOVED.get(fullname)
        if new is None or _PathFinder.find_spec(fullname, __path__) is not None:
            return None  # not an old path, or a package has that name now (harness.run, harness.cli)
        if fullname in _STILL_IMPORTABLE:
            return _spec_from_loader(fullname, _Alias(new))
        raise ImportError(f"{fullname} moved to {new}", name=fullname)


if not any(type(finder).__name__ == "_MovedModules" for finder in _sys.meta_path):
    _sys.meta_path.insert(0, _MovedModules())
# END moved modules
