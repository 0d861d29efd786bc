"""Safe loading: weights_only torch loads, pickle-free patch libraries, safe YAML; crafted files refused."""

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.core.errors import CheckpointError, DataError
from harness.core.io import safe_torch_load
from harness.core.occlusion import PatchLibrary
from harness.models.weight_files import load_backbone_weights

REPO = Path(__file__).resolve().parents[2]
SOURCES = [p for folder in ("harness", "tasks", "baselines") for p in (REPO / folder).rglob("*.py")]


class Evil:
    """Pickles to a call that creates `marker`: what a crafted checkpoint does on an unsafe load."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_checkpoint_is_refused_and_its_code_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "weights.bin"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": Evil(marker)}, path)
    with pytest.raises(CheckpointError, match=r"weights\.bin is corrupt or unsafe: .*refused"):
        safe_torch_load(path, "checkpoint")
    with pytest.raises(CheckpointError, match="model.pretrained"):
        load_backbone_weights(torch.nn.Linear(1, 1), path)
    assert not marker.exists()


def test_distill_teacher_refuses_a_crafted_checkpoint(tmp_path):
    from baselines.distill import load_teacher_weights

    marker = tmp_path / "pwned"
    torch.save({"method": Evil(marker)}, tmp_path / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="method_args.distill.teacher"):
        load_teacher_weights(torch.nn.Linear(1, 1), tmp_path)
    assert not marker.exists()


def test_patch_library_refuses_a_crafted_pickle(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "library.npz"
    parts = np.empty(1, dtype=object)
    parts[0] = Evil(marker)
    np.savez(path, version=np.array(1), shapes=np.zeros((1, 2), np.int64), pixels=np.zeros(0), parts=parts)
    with pytest.raises(DataError, match="library.npz"):
        PatchLibrary.load(path)
    assert not marker.exists()


def _calls(name: str):
    """(file, call node) for every call of `<anything>.name(...)` or `name(...)` in the sources."""
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
                if called == name:
                    yield path.relative_to(REPO), node


def _keyword(node: ast.Call, name: str):
    value = next((k.value for k in node.keywords if k.arg == name), None)
    return value.value if isinstance(value, ast.Constant) else None


def test_every_load_in_the_source_is_safe():
    """torch.load only with weights_only=True, np.load never with pickles, YAML only through safe_load."""
    torch_loads = [(p, n) for p, n in _calls("load") if ast.unparse(n.func) == "torch.load"]
    assert torch_loads, "the scan found no torch.load at all"
    assert [p for p, n in torch_loads if _keyword(n, "weights_only") is not True] == []
    assert [
        p for p, n in _calls("load") if ast.unparse(n.func) == "np.load" and _keyword(n, "allow_pickle")
    ] == []
    unsafe = {
        "yaml.load",
        "yaml.unsafe_load",
        "yaml.full_load",
        "pickle.load",
        "pickle.loads",
        "torch.jit.load",
    }
    found = [
        (p, ast.unparse(n.func))
        for name in ("load", "loads", "unsafe_load", "full_load")
        for p, n in _calls(name)
    ]
    assert [(p, f) for p, f in found if f in unsafe] == []


def test_distill_teacher_is_the_clean_network_its_run_method_declares(tmp_path):
    """A clean run's `net`, D-Slope's `gnet` (`Method.clean_network`); occ_aug has none."""
    from baselines.distill import load_teacher_weights

    source = torch.nn.Linear(2, 1)
    for method, network in (("clean", "net"), ("dslope", "gnet")):
        weights = {f"{network}.{k}": v for k, v in source.state_dict().items()}
        weights.update({f"other.{k}": v + 1 for k, v in source.state_dict().items()})
        torch.save({"method": weights, "tags": {"method": method}}, tmp_path / "checkpoint.pt")
        student = torch.nn.Linear(2, 1)
        load_teacher_weights(student, tmp_path)
        assert torch.equal(student.weight, source.weight)
    torch.save(
        {"method": {"net.weight": source.weight}, "tags": {"method": "occ_aug"}}, tmp_path / "checkpoint.pt"
    )
    with pytest.raises(CheckpointError, match="'occ_aug' run has no network trained on clean images only"):
        load_teacher_weights(torch.nn.Linear(2, 1), tmp_path)
