"""Name -> factory registries for tasks, backbones, methods and benchmark builders.

Borrowed from timm: a plain decorator registers a thing in the file that defines it; a name is looked
up once, at the config/CLI edge, and from there on everything is ordinary calls.
"""

from __future__ import annotations

import difflib
import importlib
import os
import pkgutil
from collections.abc import Callable
from typing import Generic, TypeVar

from harness.core.errors import RegistryError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of factories of one kind.

    Example:
        >>> methods = Registry("method")
        >>> @methods.register("clean")
        ... class Clean: ...
        >>> methods.get("clean") is Clean
        True
    """

    def __init__(self, kind: str, homes: tuple[str, ...] = ()):
        """`homes`: module templates (`tasks.{name}`) where a thing called `name` is defined by convention, so
        looking it up imports that one module instead of every plugin (validating a pose config loads no
        face task). A name found in no home falls back to importing every plugin."""
        self.kind = kind
        self.homes = homes
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers its target under `name`; a duplicate name is an error."""

        def decorate(obj: T) -> T:
            if name in self._items:
                raise RegistryError(f"{self.kind} '{name}' is already registered")
            self._items[name] = obj
            return obj

        return decorate

    def get(self, name: str) -> T:
        """Return the factory for `name`, or raise with the valid names and a close match."""
        if name not in self._items:
            self._import_home(name)
        if name not in self._items:
            _load_plugins()
        if name not in self._items:
            close = difflib.get_close_matches(name, self._items, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise RegistryError(
                f"unknown {self.kind} '{name}'{hint}; expected one of: {', '.join(sorted(self._items))}"
            )
        return self._items[name]

    def _import_home(self, name: str) -> None:
        """Import the module where `name` lives by convention; a home that does not exist is skipped."""
        for template in self.homes:
            module = template.format(name=name)
            if not all(part.isidentifier() for part in module.split(".")):
                continue
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as err:
                if err.name is None or not module.startswith(err.name):
                    raise  # the home exists but imports something missing: a real error
            if name in self._items:
                return

    def names(self) -> list[str]:
        _load_plugins()
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        _load_plugins()
        return name in self._items


TASKS: Registry = Registry("task", homes=("tasks.{name}",))
BACKBONES: Registry = Registry("backbone")
METHODS: Registry = Registry("method", homes=("baselines.{name}", "harness.methods.{name}"))
BENCHMARKS: Registry = Registry("benchmark")  # builders of derived test sets (`harness benchmark build`)

# Modules whose import registers things (a name ending in .* imports every subpackage). The engine names
# packages, never a concrete task: a new task is its own folder under tasks/, nothing here.
PLUGIN_MODULES: tuple[str, ...] = (
    "harness.models.backbones",
    "harness.models.mmpose_backbones",  # registers mmpose:* names always; building one needs the extra
    "baselines",
    "harness.methods.dslope",
    "tasks.*",  # every subpackage of tasks/
)
_loaded = False


def _load_plugins() -> None:
    """Import the built-in plugin modules, then any listed in $HARNESS_PLUGINS (comma-separated), so a
    researcher's own task, method or backbone registers without editing the harness."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    extra = [m.strip() for m in os.environ.get("HARNESS_PLUGINS", "").split(",") if m.strip()]
    for module in (*PLUGIN_MODULES, *extra):
        if module.endswith(".*"):
            package = importlib.import_module(module[:-2])
            for sub in sorted(m.name for m in pkgutil.iter_modules(package.__path__) if m.ispkg):
                importlib.import_module(f"{package.__name__}.{sub}")
        else:
            importlib.import_module(module)
