import ast
from pathlib import Path

import pytest

from harness.core.errors import RegistryError
from harness.core.registry import BACKBONES, METHODS, TASKS, Registry

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
    assert {"pose", "face_alignment", "face_recognition"} <= set(TASKS.names())  # every tasks/ subpackage
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


def test_validating_a_config_imports_only_the_named_task():
    """The registry imports `tasks.<name>` for the task a config names, not every task (lazy homes)."""
    import os
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from harness.core.config import CONFIG_ROOT, load_config\n"
        "load_config(CONFIG_ROOT / 'pose/default.yaml')\n"
        "tasks = [m for m in sys.modules if m.startswith('tasks.') and m.count('.') == 1]\n"
        "print(sorted(m for m in tasks if m != 'tasks.common'))\n"  # shared code, not a task
    )
    env = {k: v for k, v in os.environ.items() if k != "HARNESS_PLUGINS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['tasks.pose']"


def test_a_name_outside_its_home_is_still_found_and_a_missing_home_is_no_error():
    registry = Registry("thing", homes=("no_such_package.{name}", "harness.{name}"))
    with pytest.raises(RegistryError, match="unknown thing 'nothing'"):
        registry.get("nothing")
    assert METHODS.get("dslope").role == "method"  # home harness.methods.dslope, after baselines.dslope
