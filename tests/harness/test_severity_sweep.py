"""`occlusion.val_severity` is a sweep axis: trials expand over the levels, each trial config is valid."""

from harness.cluster.sweep import expand, load_sweep
from harness.core.config import CONFIG_ROOT, load_config


def test_severity_sweep_expands_over_the_levels():
    spec, base = load_sweep(CONFIG_ROOT / "sweeps" / "severity_pose.yaml")
    trials = expand(spec)
    assert len(trials) == 2 * 5 * 3
    configs = [load_config(base, overrides) for overrides in trials]
    assert sorted({c.occlusion.val_severity for c in configs}) == [0, 1, 2, 3, 4]
    assert {c.method for c in configs} == {"clean", "dslope"}
    # Each level is its own variant (hash), so seeds pool per level and method, never across levels.
    hashes = {(c.method, c.occlusion.val_severity): set() for c in configs}
    for c in configs:
        hashes[c.method, c.occlusion.val_severity].add(c.model_copy(update={"seed": 0}).hash())
    assert all(len(h) == 1 for h in hashes.values()) and len({next(iter(h)) for h in hashes.values()}) == 10
