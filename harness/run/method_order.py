"""Which methods `harness run` trains and in which order, derived from what methods declare: their `role` and
their `prerequisite`. Nothing here names a method.

A method with a prerequisite (distillation needs a finished clean run as its teacher) runs after it, and a
run of the prerequisite finished earlier in the same command serves it, instead of being trained twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from harness.core.config import RunConfig
from harness.core.errors import ConfigError
from harness.core.registry import METHODS, Registry
from harness.core.run_files import run_reference

# `--method all` runs the plain model first, then the baselines, then the method under study.
_ROLE_ORDER = ("reference", "baseline", "method")


def run_order(names: Iterable[str], methods: Registry = METHODS) -> list[str]:
    """`names` by role (reference, baseline, method), then by name; a method always after its prerequisite.

    Raises:
        ConfigError: methods whose prerequisites form a cycle.

    Example:
        >>> run_order(["dslope", "distill", "clean", "occ_aug"])  # doctest: +SKIP
        ['clean', 'distill', 'occ_aug', 'dslope']
    """
    names = list(dict.fromkeys(names))

    def rank(name: str) -> tuple[int, str]:
        role = getattr(methods.get(name), "role", None)
        return (_ROLE_ORDER.index(role) if role in _ROLE_ORDER else len(_ROLE_ORDER)), name

    ordered: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in ordered:
            return
        if name in path:
            raise ConfigError(f"methods {' -> '.join((*path, name))} require each other")
        needed = (methods.get(name).prerequisite or (None,))[0]
        if needed in names:
            visit(needed, (*path, name))
        ordered.append(name)

    for name in sorted(names, key=rank):
        visit(name, ())
    return ordered


def default_methods() -> list[str]:
    """What `harness run` trains without `--method`: the reference model and the method under study."""
    return run_order(
        n for n in METHODS.names() if getattr(METHODS.get(n), "role", None) in ("reference", "method")
    )


def with_prerequisite_run(cfg: RunConfig, run_dir: Path) -> RunConfig:
    """`cfg` with its method's prerequisite field (e.g. distillation's `teacher`) pointing at `run_dir`.

    Raises:
        ConfigError: the method has no prerequisite.
    """
    method_cls = METHODS.get(cfg.method)
    if not method_cls.prerequisite:
        raise ConfigError(f"method '{cfg.method}' declares no prerequisite run")
    field = method_cls.prerequisite[1]
    args = {**cfg.method_args.get(cfg.method, {}), field: run_reference(run_dir, cfg.output.work_dir)}
    settings = method_cls.Settings(**args)
    return cfg.model_copy(
        update={"method_args": {**cfg.method_args, cfg.method: settings.model_dump()}}, deep=True
    )


def with_finished_prerequisite(cfg: RunConfig, finished: dict[str, Path]) -> RunConfig:
    """`cfg` pointed at a finished run of its method's prerequisite when one is in `finished` (method -> run
    dir) and the config does not name one already; otherwise `cfg` unchanged (the run trains it first)."""
    method_cls = METHODS.get(cfg.method)
    if not method_cls.prerequisite or method_cls.prerequisite[0] not in finished:
        return cfg
    settings = method_cls.Settings(**cfg.method_args.get(cfg.method, {}))
    if getattr(settings, method_cls.prerequisite[1]):
        return cfg
    return with_prerequisite_run(cfg, finished[method_cls.prerequisite[0]])
