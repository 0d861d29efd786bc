"""`make gpu-check` without a GPU: the one-line refusal, part isolation (time limit, crash), and the dry run
that walks every part on the CPU, so the script works the first time a GPU is lent."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from benchmarks.gpu_check import TIMEOUTS, run_part

REPO = Path(__file__).resolve().parents[2]


def gpu_check(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu_check", *args],
        cwd=REPO, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_without_cuda_it_says_so_in_one_line_and_exits_2(tmp_path):
    done = gpu_check("--out", str(tmp_path / "gpu.json"), "--workdir", str(tmp_path / "work"))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu-check: no CUDA device"), done.stderr
    assert "--dry-run" in lines[0]
    assert not (tmp_path / "gpu.json").exists() and not (tmp_path / "work").exists()


def test_an_unknown_part_is_one_line_and_exit_2():
    done = gpu_check("--dry-run", "--parts", "precision,warp_drive")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "gpu-check: --parts: unknown part(s) warp_drive; known: " + ", ".join(TIMEOUTS)
    )


def _process_gone(pid: int, wait: float = 10.0) -> bool:
    """True once `pid` no longer runs (gone, or a zombie nobody reaped yet)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.2)
    return False


def test_a_part_past_its_limit_is_stopped_whole_and_keeps_its_figures(tmp_path):
    # The part writes its first figures, starts a grandchild (as parts start harness runs), then hangs.
    script = (
        "import json, pathlib, subprocess, sys, time\n"
        f"d = pathlib.Path({str(tmp_path)!r})\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        "(d / 'grandchild.pid').write_text(str(child.pid))\n"
        "(d / 'slow.json').write_text(json.dumps({'first': 1.5}))\n"
        "print('measured the first number', flush=True)\n"
        "time.sleep(120)\n"
    )
    start = time.monotonic()
    status, seconds, figures, error = run_part("slow", [sys.executable, "-c", script], tmp_path, timeout=5)
    assert status == "timeout" and time.monotonic() - start < 60
    assert figures == {"first": 1.5}
    assert "stopped after 5 s" in error and "measured the first number" in error
    assert _process_gone(int((tmp_path / "grandchild.pid").read_text()))


def test_a_crashing_part_is_an_error_with_the_end_of_its_output(tmp_path):
    script = "print('loss became nan at step 3'); raise SystemExit(3)"
    status, _, figures, error = run_part("crash", [sys.executable, "-c", script], tmp_path, timeout=60)
    assert (status, figures) == ("error", {})
    assert error.startswith("exit 3:") and "loss became nan at step 3" in error


def test_a_part_whose_checks_fail_is_failed_not_ok(tmp_path):
    target = tmp_path / "check.json"
    script = f"import pathlib; pathlib.Path({str(target)!r}).write_text('{{\"ok\": false}}')"
    status, _, figures, error = run_part("check", [sys.executable, "-c", script], tmp_path, timeout=60)
    assert (status, figures, error) == ("failed", {"ok": False}, None)


def test_dry_run_walks_every_part_on_the_cpu(tmp_path):
    """The whole check at tiny sizes on the CPU: every part ok, and gpu.json holds each part's figures."""
    out = tmp_path / "gpu.json"
    done = gpu_check("--dry-run", "--out", str(out), "--workdir", str(tmp_path / "work"), timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for name in TIMEOUTS:  # the parts are listed before they run
        assert f"  {name} " in done.stdout
    summary = json.loads(out.read_text())
    assert summary["dry_run"] is True and summary["environment"]["torch"] == torch.__version__
    parts = summary["parts"]
    assert list(parts) == list(TIMEOUTS)
    assert {name: p["status"] for name, p in parts.items()} == dict.fromkeys(TIMEOUTS, "ok")
    methods = parts["precision"]["figures"]["bf16"]["methods"]
    assert sorted(methods) == ["clean", "distill", "dslope", "occ_aug"]
    assert all(m["precision"] == ["amp-bfloat16"] and m["loss"] > 0 for m in methods.values())
    steps = {
        k: v
        for k, v in parts["step_time"]["figures"].items()
        if isinstance(v, dict) and "dslope_over_clean" in v
    }
    assert len(steps) == 2 and all(v["dslope_over_clean"][0] > 0 for v in steps.values())
    for method in ("occ_aug", "dslope"):
        assert set(parts["validity"]["figures"][method]["AP"]) == {"clean_val", "occluded_val"}
    loader = parts["loader"]["figures"]
    assert all(
        loader[m]["gpu_images_per_s"] > 0 and loader[m]["fed_images_per_s"] > 0 for m in ("clean", "dslope")
    )
    ddp = parts["ddp"]["figures"]
    assert ddp["torchrun_nproc_1"]["world_size"] == [1]
    assert ddp["ddp_probe"]["backend"] == "gloo" and ddp["ddp_probe"]["ranks_agree"] is True
    assert ddp["nproc_2"]["ok"] is None and "needs 2" in ddp["nproc_2"]["note"]
    evaluation = parts["eval_export"]["figures"]
    assert evaluation["eval"]["max_abs_AP_diff"] == 0.0
    assert evaluation["export"]["onnx_vs_pytorch_max_abs_diff"] < 1e-3
