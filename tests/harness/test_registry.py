import ast
from pathlib import Path

import pytest

from harness.errors import RegistryError
from harness.registry import BACKBONES, METHODS, TASKS, Registry

HARNESS = Path(__file__).resolve().parents[2] / "harness"


def test_duplicate_name_is_an_error():
    registry = Registry("thing")
    registry.register("a")(object)
    with pytest.raises(RegistryError, match="already registered"):
        registry.register("a")(object)


def test_unknown_name_lists_valid_ones_and_suggests():
    with pytest.raises(
        RegistryError, match=r"unknown backbone 'hrnet_w33'.*did you mean.*expected one of: .*hrnet_w32"
    ):
        BACKBONES.get("hrnet_w33")


def test_foundation_names_are_registered():
    assert "pose" in TASKS.names()
    assert {"clean", "dslope"} <= set(METHODS.names())
    assert {"hrnet_w32", "hrnet_w18_small", "resnet50"} <= set(BACKBONES.names())


def test_engine_never_imports_a_concrete_task():
    """harness/ must stay task-agnostic (style guideline 4)."""
    offenders = []
    for path in HARNESS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n == "tasks" or n.startswith("tasks.")]
    assert offenders == []
