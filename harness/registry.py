"""Name -> factory registries for tasks, backbones, methods and benchmark builders.

Borrowed from timm: a plain decorator registers a thing in the file that defines it; a name is looked
up once, at the config/CLI edge, and from there on everything is ordinary calls.
"""

from __future__ import annotations

import difflib
import importlib
import os
from collections.abc import Callable
from typing import Generic, TypeVar

from harness.errors import RegistryError

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

    def __init__(self, kind: str):
        self.kind = kind
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
        _load_plugins()
        if name not in self._items:
            close = difflib.get_close_matches(name, self._items, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise RegistryError(
                f"unknown {self.kind} '{name}'{hint}; expected one of: {', '.join(sorted(self._items))}"
            )
        return self._items[name]

    def names(self) -> list[str]:
        _load_plugins()
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        _load_plugins()
        return name in self._items


TASKS: Registry = Registry("task")
BACKBONES: Registry = Registry("backbone")
METHODS: Registry = Registry("method")
BENCHMARKS: Registry = Registry("benchmark")  # builders of derived test sets (`harness benchmark build`)

# Modules whose import registers things. The engine names packages, never a concrete task's classes,
# so a new task is one line here plus its own folder.
PLUGIN_MODULES: tuple[str, ...] = (
    "harness.backbones",
    "harness.backbones_mmpose",  # registers mmpose:* names always; building one needs the extra
    "baselines",
    "harness.methods.dslope",
    "tasks",
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
        importlib.import_module(module)
