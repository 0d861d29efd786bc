"""Cluster submission as the README tells a new user: `ray start --head` (127.0.0.1, 2 CPUs, token
authentication), `ray job submit --working-dir DIR -- harness sweep ... --address auto --set
output.results_dir=...` of a 2-trial tiny sweep whose second trial is a 2-worker Ray Train run, records and
Tune state checked (beside the results, not in Ray's unpacked working dir), cluster stopped.

The cluster lives in its own short temp dir with its own ports on 127.0.0.1 and its own token file, and is
stopped by the process ids that name that dir (`ray stop` would stop every Ray instance of this machine,
including other people's), in a `finally`, so a failure leaves nothing running.
"""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from tiny_pose import TINY_POSE

from harness.core.config import CONFIG_ROOT
from harness.core.errors import ConfigError

BIN = Path(sys.executable).parent


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _pids_naming(*needles: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if any(needle.encode() in cmdline for needle in needles):
            pids.append(int(entry.name))
    return pids


def _stop_cluster(*needles: str) -> None:
    """SIGTERM, then SIGKILL after 10 s, to every process whose command line names this cluster."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        for pid in _pids_naming(*needles):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while _pids_naming(*needles) and time.monotonic() < deadline:
            time.sleep(0.2)


def _ray_start(env, temp, gcs, dashboard, agent, client) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "ray"), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(gcs),
         "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard),
         "--include-dashboard", "true", "--dashboard-agent-listen-port", str(agent),
         "--ray-client-server-port", str(client),
         "--num-cpus", "2", "--num-gpus", "0", "--temp-dir", temp, "--disable-usage-stats"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_ray_job_submit_runs_a_sweep_with_a_two_worker_trial_on_a_token_cluster(tmp_path):
    temp = tempfile.mkdtemp(prefix="rayh19_", dir="/tmp")  # short: Ray's socket paths stay under 108 bytes
    token = tmp_path / "auth_token"
    token.write_text(secrets.token_hex(32))
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",  # what the README asks for; the token file instead of ~/.ray/auth_token
        "RAY_AUTH_TOKEN_PATH": str(token),
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "RAY_USAGE_STATS_ENABLED": "0",
        # Ray's own start-up waits (60 s / 30 s) are too short for a shared 2-core machine at nice 15.
        "RAY_DASHBOARD_STARTUP_TIMEOUT_S": "600",
        "RAY_agent_register_timeout_ms": "600000",
    }
    job_dir = tmp_path / "job"  # what --working-dir uploads; Ray unpacks it under its session folder
    job_dir.mkdir()
    name = f"sweep{secrets.token_hex(4)}"  # unique: the cluster's processes are found by this name
    sweep = job_dir / f"{name}.yaml"
    sets = [*TINY_POSE, "method=dslope"]
    sweep.write_text(
        json.dumps(
            {
                "base": str(CONFIG_ROOT / "pose/default.yaml"),
                "set": sets,
                "grid": {"train.world_size": [1, 2]},  # trial 1: a Ray Train run on 2 workers
                "resources": {"cpus_per_trial": 0.5},  # per worker; both trials fit the 2 CPUs at once
                "max_failures": 0,
            }
        )
    )
    try:
        started = time.perf_counter()
        for _attempt in range(3):  # Ray waits 30 s (hard-coded) for its raylet; a loaded machine may miss it
            gcs, dashboard, agent, client = _free_ports(4)
            start = _ray_start(env, temp, gcs, dashboard, agent, client)
            if start.returncode == 0 or "timed out during startup" not in start.stderr:
                break
            _stop_cluster(temp)
        assert start.returncode == 0, start.stdout[-2000:] + start.stderr[-2000:]
        job = subprocess.run(
            [str(BIN / "ray"), "job", "submit", "--address", f"http://127.0.0.1:{dashboard}",
             "--working-dir", str(job_dir), "--", "harness", "sweep", sweep.name, "--address", "auto",
             "--set", f"output.results_dir={tmp_path / 'results'}",
             "--set", f"output.work_dir={tmp_path / 'work'}"],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=1500,
        )  # fmt: skip
        wall = time.perf_counter() - started
        assert job.returncode == 0, job.stdout[-4000:] + job.stderr[-2000:]
        unpacked = list(Path(temp).glob(f"session_*/runtime_resources/working_dir_files/*/{sweep.name}"))
        assert unpacked, "the job ran from Ray's unpacked copy of the working dir"
        assert not list(unpacked[0].parent.rglob("*.json")) and not (unpacked[0].parent / "sweeps").exists()
    finally:
        _stop_cluster(temp, sweep.name)
        shutil.rmtree(temp, ignore_errors=True)
    assert not _pids_naming(temp)

    records = [json.loads(p.read_text()) for p in sorted((tmp_path / "results" / "runs").glob("*.json"))]
    runs = {}
    for record in records:
        assert record["status"] == "ok"
        runs.setdefault(record["training"]["world_size"], []).append((record["network"], record["split"]))
    expected = [("enet", "clean_val"), ("enet", "occluded_val"), ("gnet", "clean_val")]
    assert runs == {1: expected, 2: expected}  # one set of records per trial, the 2-worker one included
    two = next(r for r in records if r["training"]["world_size"] == 2)
    assert two["training"]["global_batch_size"] == 2 * two["training"]["batch_size_per_rank"]
    assert "2 trials ok, 0 failed" in job.stdout
    tune_dir = tmp_path / "sweeps" / name  # <results_dir>/../sweeps/<name>: the default Tune storage
    assert (tune_dir / "harness_trials.json").is_file() and list(tune_dir.glob("experiment_state*.json"))
    assert f"records: {tmp_path / 'results' / 'runs'}" in job.stdout
    assert f"Tune state: {tune_dir}" in job.stdout
    table = job.stdout[: job.stdout.index("2 trials ok")].splitlines()
    rows = [line for line in table if line.lstrip().startswith(("0  ", "1  "))]
    assert len(rows) == 2 and all("ok" in row for row in rows)  # one line per trial, none wrapped
    print(f"\nray start + job submit of the 2-trial sweep + records: {wall:.0f} s")


def test_each_trial_gets_its_workers_and_multi_worker_trials_reserve_only_their_driver(tmp_path):
    from harness.cluster.ray_train import DRIVER_CPUS, trial_resources
    from harness.cluster.sweep import expand, load_sweep, trial_workers
    from harness.core.config import load_config

    path = tmp_path / "sweep.yaml"
    path.write_text(
        json.dumps(
            {
                "base": str(CONFIG_ROOT / "pose/default.yaml"),
                "grid": {"train.world_size": [1, 4]},
                "resources": {"workers_per_trial": 2, "cpus_per_trial": 3, "gpus_per_trial": 1},
            }
        )
    )
    spec, base = load_sweep(path)
    workers = [trial_workers(load_config(base, o), spec.resources.workers_per_trial) for o in expand(spec)]
    assert workers == [2, 4]  # world size 1 in a trial's config: the sweep's workers_per_trial
    assert trial_resources(1, 3, 1).bundles == [{"CPU": 3.0, "GPU": 1.0}]
    assert trial_resources(4, 3, 1).bundles == [
        {"CPU": DRIVER_CPUS}
    ]  # workers ask Ray Train for 3 CPUs + 1 GPU
    path.write_text(json.dumps({"base": "x.yaml", "resources": {"workers_per_trial": 0}}))
    with pytest.raises(ConfigError, match="resources.workers_per_trial"):
        load_sweep(path)


def test_sweep_summary_has_one_line_per_trial_within_the_width():
    import pandas as pd

    from harness.cluster.sweep import summary_table

    frame = pd.DataFrame(
        [
            {"trial": 0, "overrides": 'method="clean" seed=0', "status": "ok",
             "run_id": "pose_clean_hrnet_w18_small_s0_20261130-100937_3420", "enet/clean_val/AP": 0.12345},
            {"trial": 1, "overrides": 'method="dslope" seed=1 train.world_size=2 optim.lr=0.002',
             "status": "failed", "run_id": "quick_trial001_pose_dslope_s1_failed",
             "reason": "RuntimeError: broken on purpose, with a long message " * 3},
        ]
    )  # fmt: skip
    lines = summary_table(frame, width=100).splitlines()
    assert len(lines) == 3 + 1 + 2 and all(len(line) <= 100 for line in lines)  # 3 header lines, rule, rows
    assert lines[-2].split()[:3] == ["0", 'method="clean"', "seed=0"] and "0.123" in lines[-2]
    assert lines[-1].split()[0] == "1" and "failed" in lines[-1] and lines[-1].endswith("…")
    assert [line.split()[-1] for line in lines[:3]] == ["enet", "clean_val", "reason"]
