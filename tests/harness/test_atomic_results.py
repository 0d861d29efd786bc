"""Atomic results: a reader polling results/runs never sees a partial record; run ids never clash."""

import json
import threading
from dataclasses import replace

from harness.core.config import CONFIG_ROOT, load_config
from harness.core.results import ResultRecord, write_record
from harness.run.setup import claim_run_dir


def test_a_reader_never_sees_a_partial_record(tmp_path):
    big = [{"prediction": list(range(400))} for _ in range(200)]  # ~0.5 MB per record: slow to write
    base = ResultRecord("run", "pose", "clean", "b", "d", "clean_val", "net", "ok", samples=big)
    seen, bad, done = set(), [], threading.Event()

    def reader():
        while not done.is_set():
            for path in (tmp_path / "runs").glob("*.json") if (tmp_path / "runs").is_dir() else []:
                try:
                    json.loads(path.read_text())
                    seen.add(path.name)
                except FileNotFoundError:
                    pass
                except ValueError as err:
                    bad.append(f"{path.name}: {err}")

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(30):
            write_record(replace(base, run_id=f"run{i % 5}", metrics={"AP": i / 30}), tmp_path)
    finally:
        done.set()
        thread.join()
    assert bad == []
    assert seen and sorted(p.name for p in (tmp_path / "runs").iterdir()) == sorted(
        seen
    )  # no temp files left


def test_runs_started_in_the_same_second_get_their_own_run_dir(tmp_path, monkeypatch):
    import harness.run.setup

    cfg = load_config(CONFIG_ROOT / "pose/default.yaml", [f"output.work_dir={tmp_path}"])
    tokens = iter(["beef", "beef", "beef", "cafe"])  # the random suffix collides twice
    monkeypatch.setattr(harness.run.setup.secrets, "token_hex", lambda n: next(tokens))
    first, second = claim_run_dir(cfg), claim_run_dir(cfg)
    assert first != second and first.is_dir() and second.is_dir()
    assert first.name.endswith("_beef") and second.name.endswith("_cafe")
