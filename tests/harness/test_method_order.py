"""Method order for `harness run --method all` comes from what methods declare (role, prerequisite)."""

import pytest

from harness.core.errors import ConfigError
from harness.core.registry import METHODS, Registry
from harness.run.method_order import default_methods, run_order


def _method(role, prerequisite=None):
    return type("M", (), {"role": role, "prerequisite": prerequisite})


def test_order_is_by_role_then_name_with_prerequisites_first():
    methods = Registry("method")
    for name, cls in {
        "zeta": _method("method"),
        "alpha": _method("baseline", ("plain", "teacher")),  # needs a `plain` run
        "beta": _method("baseline", ("omega", "teacher")),  # a method that comes later by role: moved up
        "omega": _method("method"),
        "plain": _method("reference"),
        "odd": _method("unknown role"),
    }.items():
        methods.register(name)(cls)
    assert run_order(["zeta", "alpha", "beta", "omega", "plain", "odd"], methods) == [
        "plain",
        "alpha",
        "omega",
        "beta",
        "zeta",
        "odd",
    ]
    assert run_order(["alpha"], methods) == [
        "alpha"
    ]  # a prerequisite not asked for is the run's own business


def test_prerequisite_cycle_is_an_error():
    methods = Registry("method")
    methods.register("a")(_method("baseline", ("b", "x")))
    methods.register("b")(_method("baseline", ("a", "x")))
    with pytest.raises(ConfigError, match="methods a -> b -> a require each other"):
        run_order(["a", "b"], methods)


def test_registered_methods_in_order():
    assert run_order(METHODS.names()) == ["clean", "distill", "occ_aug", "dslope"]
    assert default_methods() == ["clean", "dslope"]
