"""Re-layout harness/ into subpackages by job (issue 29), as a deterministic script that can be run again.

Other branches keep adding to the flat harness/ while this lands, so the move is a script, not a diff: run it
on any tree, as often as needed; a second run on its own result changes nothing. From the repository root:

    python tools/relayout.py            # move, rewrite, report
    python tools/relayout.py --dry-run  # report what it would do, touch nothing

What it does, in order:
1. `git mv`s each module of MODULES (old dotted name -> new dotted name) that is still at its old place; a
   `Path(__file__).parents[N]` in a moved module is shifted by the change in depth.
2. Writes each subpackage's `__init__.py` from PACKAGES (what it owns, what it may import), `cli/__main__.py`
   and, in packages that took an old module's name (FORWARDS), a `__getattr__` that resolves the old names.
3. Writes, between markers in harness/__init__.py, the import hook: an old path fails with one line naming
   the new place (`ImportError: harness.trainer moved to harness.train.trainer`), except the public ones
   (STILL_IMPORTABLE) that import as the new module.
4. Rewrites every reference in SCAN (imports, `harness.x.y` strings such as monkeypatch targets, `-m`
   commands, `harness/x.py` paths in docs and comments, the console-script entry point), anchored on word
   boundaries; then NAMES, the functions later moved by hand between modules, in imports and dotted strings.
5. Sorts and formats the Python files it changed (ruff, when it is installed).
6. Reports what it did, and what it cannot place: a module left directly under harness/, a subpackage it has
   no docstring for, an import of a harness module that does not exist. Add those to the tables and re-run.

It never clobbers: it refuses a dirty work tree (unless --allow-dirty), never moves onto an existing file, and
never overwrites an `__init__.py` it did not write (it only prepends its paragraph to that docstring).
Not part of the package; delete it once the branches in flight have landed.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Old dotted name -> new dotted name. Names that are not listed here and sit directly under harness/ are
# reported, never guessed.
MODULES: dict[str, str] = {
    # core: the shared vocabulary
    "harness.errors": "harness.core.errors",
    "harness.io": "harness.core.io",
    "harness.registry": "harness.core.registry",
    "harness.config": "harness.core.config",
    "harness.applicability": "harness.core.applicability",
    "harness.task": "harness.core.task",
    "harness.occlusion": "harness.core.occlusion",
    "harness.cache": "harness.core.cache",
    "harness.precision": "harness.core.precision",
    "harness.batches": "harness.core.batches",
    "harness.progress": "harness.core.progress",
    "harness.distributed": "harness.core.distributed",
    "harness.run_files": "harness.core.run_files",
    "harness.reproducibility": "harness.core.reproducibility",
    "harness.results": "harness.core.results",
    "harness.roles": "harness.core.roles",
    "harness.portable": "harness.core.portable",
    "harness.external": "harness.core.external",
    # models: networks, and config -> objects
    "harness.backbones": "harness.models.backbones",
    "harness.backbones_mmpose": "harness.models.mmpose_backbones",
    "harness.mmpose_imports": "harness.models.mmpose_imports",
    "harness.model": "harness.models.task_model",
    "harness.factory": "harness.models.factory",
    "harness.weights": "harness.models.weights",
    "harness.weight_files": "harness.models.weight_files",
    # methods: what one step computes
    "harness.imitation": "harness.methods.imitation",
    # train: the loop
    "harness.trainer": "harness.train.trainer",
    "harness.callbacks": "harness.train.callbacks",
    "harness.pretraining": "harness.train.pretraining",
    # evaluate: scoring, and trained runs
    "harness.evaluation": "harness.evaluate.scoring",
    "harness.predictions": "harness.evaluate.predictions",
    "harness.trained_run": "harness.evaluate.trained_run",
    "harness.evaluate_run": "harness.evaluate.evaluate_run",
    "harness.predict_images": "harness.evaluate.predict_images",
    "harness.export": "harness.evaluate.export",
    "harness.evaluate_external": "harness.evaluate.external_models",
    # run: one run top to bottom
    "harness.run": "harness.run.experiment",
    "harness.run_setup": "harness.run.setup",
    "harness.run_records": "harness.run.records",
    "harness.method_order": "harness.run.method_order",
    # cluster: many processes and machines
    "harness.ray_train": "harness.cluster.ray_train",
    "harness.sweep": "harness.cluster.sweep",
    "harness.finished_trials": "harness.cluster.finished_trials",
    # report
    "harness.verdict": "harness.report.verdict",
    # cli: the typer front-ends
    "harness.cli": "harness.cli.commands",
    "harness.cli_errors": "harness.cli.errors",
    "harness.eval_cli": "harness.cli.evaluate",
    "harness.benchmark_cli": "harness.cli.benchmark",
}

# Old paths that keep importing. harness.cli is a package again (it resolves the old module's names and runs
# with `python -m`), so references to it are left as they are; the other two import as the new module, so
# only the engine's own imports (.py files) are rewritten and docs keep naming the public path.
PUBLIC_PACKAGES = ("harness.cli",)
STILL_IMPORTABLE = ("harness.registry", "harness.results")

# Packages that took the name of an old module: its names resolve from the module it became.
FORWARDS: dict[str, str] = {
    "harness.run": "harness.run.experiment",
    "harness.cli": "harness.cli.commands",
}

# Functions and constants moved by hand between modules after the move (`old module.name` -> `new.name`),
# so a branch written against the old place is rewritten too. Filled by the hand-edit commits.
NAMES: dict[str, str] = {
    # the checkpoint the pretraining stage builds, and its loading: the factory needs them, not the trainer
    "harness.train.pretraining.EMBEDDED": "harness.models.pretrained.EMBEDDED",
    "harness.train.pretraining.PretrainedBackbone": "harness.models.pretrained.PretrainedBackbone",
    "harness.train.pretraining.load_embedded": "harness.models.pretrained.load_embedded",
    # what `harness eval` shares with a run, below both: record fields, workers, occlusion plan
    "harness.run.records.task_record": "harness.evaluate.records.task_record",
    "harness.run.setup.now": "harness.evaluate.records.now",
    "harness.run.setup.default_workers": "harness.core.batches.default_workers",
    "harness.run.setup.loader_workers": "harness.core.batches.loader_workers",
    "harness.run.setup.occlusion_plan": "harness.models.factory.occlusion_plan",
    "harness.run.experiment.occlusion_plan": "harness.models.factory.occlusion_plan",
}

ENTRY_POINTS = {'harness = "harness.cli:app"': 'harness = "harness.cli.commands:app"'}

# Each package's docstring: what it owns, what it may import (tests/harness/test_layers.py checks the rule).
PACKAGES: dict[str, str] = {
    "harness": (
        "The D-Slope benchmark engine, grouped by job. It knows no task, dataset or method by name; "
        "imports flow one way, cli -> cluster -> run -> train / evaluate -> methods -> models -> core, "
        "and report -> core (tests/harness/test_layers.py): core/ the shared vocabulary, models/ networks "
        "and the config -> objects factory, methods/ what one training step computes, train/ the loop, "
        "evaluate/ scoring and trained runs, run/ one run top to bottom, cluster/ sweeps and multi-worker "
        "trials, report/ records -> tables, cli/ the typer front-ends."
    ),
    "harness.core": (
        "The shared vocabulary every layer speaks: the typed config, the registries, the Task contract, "
        "occlusion (patch library, occluded twins), errors, atomic I/O and safe loading, build-once "
        "caches and digests, precision, batches, progress bars, the rank context of data-parallel runs (a "
        "no-op at world size 1), a run dir's file names and its checkpoint check, and result records "
        "(fields, roles, portable paths, source state, CPU arithmetic). It imports nothing else of "
        "harness/; every subpackage may import it."
    ),
    "harness.models": (
        "Networks, and how a config becomes objects: the registered backbones (timm, named ones, the "
        "optional mmpose ones behind their import shim), TaskModel (backbone + task head, stage taps "
        "hooked), pretrained weights loaded all or nothing, and the factory that turns a run's config "
        "into its task, networks, method and occlusion plan. May import core only."
    ),
    "harness.methods": (
        "What one training step computes: the Method contract (networks, optimizer groups, training_step, "
        "role, prerequisite), D-Slope, and the imitation term it shares with distillation (baselines/ "
        "register the others the same way). May import models and core; never the trainer or a run."
    ),
    "harness.train": (
        "The training loop: the single Trainer (device, precision, backward, optimizers, limits, NaN "
        "guard, full checkpoint and resume), its callbacks (checkpoint, metrics log, periodic eval, "
        "progress), and the embedded pretraining stage that trains a backbone once with it. May import "
        "methods, models and core; never evaluate, run or above."
    ),
    "harness.evaluate": (
        "Scoring and trained runs: evaluate_split (task.predict -> task.evaluate, sharded over ranks), "
        "prediction files, the record of one scored split, a run dir loaded back (trained_run), and what "
        "runs on one without training: `harness eval` (evaluate_run), `harness predict` (predict_images), "
        "`harness export`. May import models and core; never train, run or above."
    ),
    "harness.run": (
        "One run, top to bottom: experiment.run_experiment (build -> data -> optimizers -> resume -> loop "
        "-> evaluate -> record), the named steps it reads as (setup), the records it writes (records), "
        "and which methods run in which order (method_order). May import train, evaluate, methods, models "
        "and core; never cluster or cli."
    ),
    "harness.cluster": (
        "Runs spread over processes and machines: Ray Tune sweeps (one ordinary run per grid point) and "
        "Ray Train trials whose run has several data-parallel workers. The rank context those workers "
        "train under (DDP step, sharded eval, rank 0 writes, torchrun launch) is core/distributed.py, "
        "below, because the trainer and evaluation use it at every world size. May import run and "
        "everything below it; never cli."
    ),
    "harness.report": (
        "Records -> tables, verdicts (verdict.py: the method minus each baseline, paired over seeds), "
        "figures and the report text. May import core only: it reads result records, never a run."
    ),
    "harness.cli": (
        "Every typer front-end and how its errors become one line: `harness run / report / verdict / "
        "sweep / export / list` (commands), `eval` and `predict` (evaluate), `benchmark build` "
        "(benchmark), errors. Strings become objects here, once. May import every other subpackage. "
        "`harness.cli:app` and `python -m harness.cli` keep working: the old module's names resolve from "
        "commands.py."
    ),
}

CLI_MAIN = '''"""`python -m harness.cli` (and torchrun's `--module harness.cli`): the `harness` command."""

import sys

from harness.cli.commands import main

sys.exit(main())
'''

SCAN = ("harness", "tasks", "baselines", "benchmarks", "tests", "configs", "docs", ".ci",
        "README.md", "pyproject.toml", "Makefile")  # fmt: skip
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".cfg", ".ini", ".sh", ".rst", ""}
BEGIN, END = "# BEGIN moved modules", "# END moved modules"
KEEP_MARK = "relayout: keep"
LINE_LENGTH = 110  # pyproject's [tool.ruff] line-length


def _path(dotted: str, package: bool = False) -> Path:
    parts = dotted.split(".")
    return ROOT.joinpath(*parts, "__init__.py") if package else ROOT.joinpath(*parts[:-1], parts[-1] + ".py")


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout


class Plan:
    """What a run did (or would do), for the report."""

    def __init__(self, dry: bool):
        self.dry = dry
        self.lines: dict[str, list[str]] = {}
        self.changed_py: list[Path] = []
        self.rewritten: list[Path] = []

    def say(self, section: str, line: str) -> None:
        self.lines.setdefault(section, []).append(line)

    def write(self, path: Path, text: str, section: str, what: str) -> None:
        self.say(section, f"{what} {path.relative_to(ROOT)}")
        if not self.dry:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            if path.suffix == ".py":
                self.changed_py.append(path)


# 1. moves ------------------------------------------------------------------------------------------------


def _shift_parents(text: str, depth_change: int) -> str:
    """`Path(__file__).resolve().parents[N]` of a module moved `depth_change` folders deeper."""
    pattern = re.compile(r"(Path\(__file__\)(?:\.resolve\(\))?\.parents\[)(\d+)(\])")
    return pattern.sub(lambda m: f"{m[1]}{int(m[2]) + depth_change}{m[3]}", text)


def move_modules(plan: Plan) -> None:
    for old, new in MODULES.items():
        src, dst = _path(old), _path(new)
        if not src.is_file():
            if dst.is_file():
                continue  # moved by an earlier run
            plan.say("missing", f"{old}: neither {src.relative_to(ROOT)} nor {dst.relative_to(ROOT)} exists")
            continue
        if dst.exists():
            plan.say("conflicts", f"{old}: both {src.relative_to(ROOT)} and {dst.relative_to(ROOT)} exist; "
                     "left both alone (merge them by hand, then re-run)")  # fmt: skip
            continue
        plan.say("moved", f"{old} -> {new}")
        if plan.dry:
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        _git("mv", str(src.relative_to(ROOT)), str(dst.relative_to(ROOT)))
        depth = len(new.split(".")) - len(old.split("."))
        text = dst.read_text()
        shifted = _shift_parents(text, depth)
        if shifted != text:
            dst.write_text(shifted)
            plan.say("moved", f"  {new}: Path(__file__).parents[N] shifted by {depth}")
        plan.changed_py.append(dst)


# 2. package __init__ files -----------------------------------------------------------------------------


def _docstring(text: str) -> str:
    """A paragraph as a module docstring that fits the 110-column limit."""
    words, lines, line = text.split(), [], '"""'
    for word in words:
        if len(line) + 1 + len(word) > 106:  # room for the closing quotes
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line != '"""' else line + word
    lines.append(line + '"""')
    return "\n".join(lines) + "\n"


def _forwarder(package: str, module: str) -> str:
    return (
        "\n\ndef __getattr__(name: str):\n"
        f'    """This package was one module, {module} now: old imports of its names still work."""\n'
        '    if name.startswith("__"):\n'
        "        raise AttributeError(name)\n"
        "    from importlib import import_module\n\n"
        f'    return getattr(import_module("{module}"), name)\n'
    )


def init_text(package: str) -> str:
    text = _docstring(PACKAGES[package])
    if package in FORWARDS:
        text += _forwarder(package, FORWARDS[package])
    return text


def write_inits(plan: Plan) -> None:
    for package in PACKAGES:
        if package == "harness":
            continue  # its docstring goes with the hook (step 3)
        path = _path(package, package=True)
        if not path.parent.is_dir() and not any(v.startswith(package + ".") for v in MODULES.values()):
            continue
        want = init_text(package)
        current = path.read_text() if path.is_file() else ""
        if current == want:
            continue
        if not current.strip():
            plan.write(path, want, "package docstrings", "wrote")
            continue
        # An __init__ with its own content: prepend the paragraph to its docstring, once; never replace it.
        paragraph = _docstring(PACKAGES[package]).removesuffix('"""\n').removeprefix('"""')
        if paragraph.split()[:8] == current.removeprefix('"""').split()[:8]:
            continue
        if current.startswith('"""'):
            plan.write(
                path, f'"""{paragraph}\n\n{current[3:]}', "package docstrings", "prepended paragraph to"
            )
        else:
            plan.write(
                path, want.rstrip("\n") + "\n\n" + current, "package docstrings", "prepended docstring to"
            )
    main = _path("harness.cli.__main__")
    if main.parent.is_dir() and not main.is_file():
        plan.write(main, CLI_MAIN, "package docstrings", "wrote")


# 3. the import hook ------------------------------------------------------------------------------------


def hook_block() -> str:
    moved = "".join(f'    "{old}": "{new}",\n' for old, new in sorted(MODULES.items()))
    return f'''{BEGIN}: written by tools/relayout.py from its tables (edit them there and re-run).
# A module that moved fails with one line naming its new place; a few public paths import as the new module.
import sys as _sys
from importlib import import_module as _import_module
from importlib.machinery import PathFinder as _PathFinder
from importlib.util import spec_from_loader as _spec_from_loader

_MOVED = {{
{moved}}}
_STILL_IMPORTABLE = {{{", ".join(f'"{name}"' for name in STILL_IMPORTABLE)}}}


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
        raise ImportError(f"{{fullname}} moved to {{new}}", name=fullname)


if not any(type(finder).__name__ == "_MovedModules" for finder in _sys.meta_path):
    _sys.meta_path.insert(0, _MovedModules())
{END}
'''


def write_hook(plan: Plan) -> None:
    path = _path("harness", package=True)
    current = path.read_text() if path.is_file() else ""
    block = hook_block()
    if BEGIN in current and END in current:
        head, rest = current.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].removeprefix("\n")
        want = head + block + tail
    elif not current.strip():
        want = _docstring(PACKAGES["harness"]) + "\n" + block
    else:
        want = current.rstrip("\n") + "\n\n" + block
    if want != current:
        plan.write(path, want, "import hook", "wrote")


# 4. references ---------------------------------------------------------------------------------------


def _modules_on_disk() -> set[str]:
    names = set()
    for path in (ROOT / "harness").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.add(".".join(parts))
    return names


def _scanned_files() -> list[Path]:
    listed = _git("ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *SCAN).split("\0")
    files = []
    for name in sorted(set(filter(None, listed))):
        path = ROOT / name
        if path.is_file() and path.suffix in TEXT_SUFFIXES and path.stat().st_size < 2_000_000:
            files.append(path)
    return files


class Rewriter:
    """Old dotted names and harness/ paths -> new ones, leaving names that are already new untouched."""

    def __init__(self, on_disk: set[str]):
        self.on_disk = on_disk
        protected = on_disk | set(MODULES.values()) | set(PACKAGES)
        names = sorted(set(MODULES) | protected, key=len, reverse=True)
        self.dotted = re.compile(r"(?<![\w.])(" + "|".join(map(re.escape, names)) + r")(?![\w])")
        olds = sorted(MODULES, key=len, reverse=True)
        slashed = [re.escape(o.replace(".", "/")) for o in olds]
        self.slashed = re.compile(r"(?<![\w./-])(" + "|".join(slashed) + r")\.py\b")
        self.from_harness = re.compile(r"^([ \t]*)from harness import (\([^)]*\)|[^\n]+)$", re.M)
        self.name_moves = sorted(NAMES, key=len, reverse=True)

    def text(self, text: str, python: bool) -> str:
        if python:
            text = self.from_harness.sub(self._from_harness, text)
        text = self.dotted.sub(lambda m: self._dotted(m, python), text)
        text = self.slashed.sub(lambda m: MODULES[m[1].replace("/", ".")].replace(".", "/") + ".py", text)
        if NAMES:
            if python:
                text = _FROM_IMPORT.sub(self._regroup, text)
            for old in self.name_moves:
                text = re.sub(r"(?<![\w.])" + re.escape(old) + r"(?![\w])", NAMES[old], text)
        return text

    def _dotted(self, m: re.Match, python: bool) -> str:
        name = m[1]
        if name not in MODULES or name in PUBLIC_PACKAGES or (name in STILL_IMPORTABLE and not python):
            return name  # already new, or an old path that still works
        if name in self.on_disk:  # a package now has this name (harness.run): `from harness.run import setup`
            after = re.match(r"\s+import\s+\(?([\w\s,]+)", m.string[m.end() :])
            if after and all(
                f"{name}.{n.split()[0]}" in self.on_disk for n in after[1].split(",") if n.strip()
            ):
                return name
        return MODULES[name]

    def _from_harness(self, m: re.Match) -> str:
        """`from harness import distributed` -> `from harness.core import distributed`."""
        indent, body = m[1], m[2]
        body, _, comment = body.partition("#")
        names = [n.strip() for n in body.strip("() \n").replace("\n", " ").split(",") if n.strip()]
        kept, lines = [], []
        for item in names:
            name, _, alias = item.partition(" as ")
            old = f"harness.{name.strip()}"
            if old not in MODULES or old in self.on_disk or old in PUBLIC_PACKAGES:
                kept.append(item)
                continue
            parent, _, leaf = MODULES[old].rpartition(".")
            alias = alias.strip() or name.strip()
            lines.append(f"{indent}from {parent} import {leaf}" + ("" if leaf == alias else f" as {alias}"))
        if not lines:
            return m[0]
        if kept:
            lines.insert(0, f"{indent}from harness import {', '.join(kept)}")
        if comment.strip():
            lines[0] += f"  #{comment.rstrip()}"
        return "\n".join(lines)

    def _regroup(self, m: re.Match) -> str:
        """`from a import x, y` where NAMES moved y to b -> `from a import x` + `from b import y`."""
        indent, module, body = m[1], m[2], m[3]
        body, _, comment = body.partition("#") if not body.startswith("(") else (body, "", "")
        items = [n.strip() for n in re.sub(r"#[^\n]*", "", body).strip("() \n").split(",") if n.strip()]
        groups: dict[str, list[str]] = {module: []}
        for item in items:
            name = item.split(" as ")[0].strip()
            target = NAMES.get(f"{module}.{name}")
            if target is None:
                groups[module].append(item)
                continue
            new_module, _, new_name = target.rpartition(".")
            alias = item.split(" as ")[1].strip() if " as " in item else name
            groups.setdefault(new_module, []).append(
                new_name if new_name == alias else f"{new_name} as {alias}"
            )
        if len(groups) == 1:
            return m[0]
        lines = [f"{indent}from {mod} import {', '.join(names)}" for mod, names in groups.items() if names]
        if comment.strip():
            lines[0] += f"  #{comment.rstrip()}"
        return "\n".join(lines)


_FROM_IMPORT = re.compile(r"^([ \t]*)from (harness(?:\.\w+)+) import (\([^)]*\)|[^\n]+)$", re.M)


def _rewrite_unmarked(text: str, rewrite) -> str:
    """`rewrite` applied to the runs of lines between those marked `relayout: keep` (an old path on purpose,
    e.g. a test of the hook); marked lines stay as they are."""
    parts, run = [], []
    for line in text.splitlines(keepends=True):
        if KEEP_MARK in line:
            parts += [rewrite("".join(run)), line]
            run = []
        else:
            run.append(line)
    return "".join(parts) + rewrite("".join(run))


def rewrite_references(plan: Plan) -> None:
    rewriter = Rewriter(_modules_on_disk() if not plan.dry else set(MODULES.values()) | set(PACKAGES))
    this = Path(__file__).resolve()
    for path in _scanned_files():
        if path.resolve() == this or path == _path("harness", package=True):
            continue  # the hook's table of old names is written by write_hook
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        python = path.suffix == ".py"
        new = _rewrite_unmarked(text, lambda part, python=python: rewriter.text(part, python=python))
        if path.name == "pyproject.toml":
            for old, entry in ENTRY_POINTS.items():
                new = new.replace(old, entry)
        if new != text:
            diff = difflib.ndiff(text.splitlines(), new.splitlines())
            count = sum(line.startswith("+ ") for line in diff)
            plan.write(path, new, "rewritten", f"{count:3d} lines in")
            plan.rewritten.append(path)


# 5. sort and format ------------------------------------------------------------------------------------


def tidy(plan: Plan) -> None:
    files = sorted({str(p.relative_to(ROOT)) for p in plan.changed_py if p.is_file()})
    if plan.dry or not files:
        return
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).is_file():
        plan.say(
            "to do",
            "ruff not found: run `ruff check --select I --fix` and `ruff format` on the changed files",
        )
        return
    subprocess.run([ruff, "check", "--select", "I", "--fix", "--quiet", *files], cwd=ROOT, check=False)
    subprocess.run([ruff, "format", "--quiet", *files], cwd=ROOT, check=False)


# 6. what is left for a person ----------------------------------------------------------------------------


def unplaced(plan: Plan) -> None:
    for path in plan.rewritten:  # longer names can push a comment or docstring line past the limit
        if path.suffix == ".py" and path.is_file():
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if len(line) > LINE_LENGTH:
                    plan.say(
                        "lines to reflow", f"{path.relative_to(ROOT)}:{number} ({len(line)} > {LINE_LENGTH})"
                    )
    harness = ROOT / "harness"
    for path in sorted(harness.glob("*.py")):
        if path.name != "__init__.py":
            name = f"harness.{path.stem}"
            where = f"'{name}': 'harness.<package>.{path.stem}'"
            plan.say("unknown modules", f"{path.relative_to(ROOT)}: add {where} to MODULES and re-run")
    for init in sorted(harness.glob("*/__init__.py")):
        package = f"harness.{init.parent.name}"
        if package not in PACKAGES:
            where = f"{init.parent.relative_to(ROOT)}/"
            plan.say("unknown packages", f"{where}: add its paragraph to PACKAGES and its layer to "
                     "tests/harness/test_layers.py, then re-run")  # fmt: skip
    if plan.dry:
        return
    on_disk = _modules_on_disk() | set(STILL_IMPORTABLE) | set(PUBLIC_PACKAGES)
    for path in _scanned_files():
        if path.suffix != ".py" or path.resolve() == Path(__file__).resolve():
            continue
        try:
            tree = ast.parse(path.read_text())
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                wanted = [node.module] + [
                    f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES
                ]
            elif isinstance(node, ast.Import):
                wanted = [a.name for a in node.names]
            else:
                continue
            for name in wanted:
                if (name == "harness" or name.startswith("harness.")) and name not in on_disk:
                    plan.say("unresolved imports", f"{path.relative_to(ROOT)}:{node.lineno}: {name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="report what would change, touch nothing")
    parser.add_argument(
        "--allow-dirty", action="store_true", help="run on a work tree with uncommitted changes"
    )
    args = parser.parse_args()
    if not (ROOT / "harness").is_dir():
        print(f"error: no harness/ under {ROOT}", file=sys.stderr)
        return 2
    if not args.dry_run and not args.allow_dirty and _git("status", "--porcelain", "--untracked-files=no"):
        print(
            "error: the work tree has uncommitted changes; commit them first (or --allow-dirty)",
            file=sys.stderr,
        )
        return 2
    plan = Plan(args.dry_run)
    move_modules(plan)
    write_inits(plan)
    write_hook(plan)
    rewrite_references(plan)
    tidy(plan)
    unplaced(plan)
    if not plan.lines:
        print("nothing to do: the tree is already laid out")
    for section, lines in plan.lines.items():
        print(f"{section} ({len(lines)}):")
        for line in lines:
            print(f"  {line}")
    return 1 if any(k in plan.lines for k in ("conflicts", "unknown modules", "unknown packages",
                                                "unresolved imports", "missing")) else 0  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
