"""Data-parallel runs on the CPU with the gloo backend and 2 processes (harness/core/distributed.py).

One spawned pair of ranks does the in-process checks (tests/ddp_worker.py): an uninterrupted 2-rank run, the
same run stopped by one rank and resumed, and the trainer alone on a tiny D-Slope without BatchNorm. A
second test drives `harness run --nproc 2` (torchrun's launcher) as a user would: SIGTERM to one rank,
resume refused under another world size, resume under 2 ranks.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from ddp_worker import fit_tiny_dslope, spawn_ranks
from tiny_pose import TINY_POSE

from harness.core.config import load_config
from harness.core.distributed import Context, check_world_size, gather_in_order, shard
from harness.core.errors import ConfigError
from harness.train.trainer import EpochSampler

HARNESS = Path(sys.executable).with_name("harness")
# 12 persons in batches of 2 per rank: 3 steps per epoch on each rank's shard of 6, 2 epochs.
SLOW = [
    "method=clean", "train.batch_size=2", "train.max_steps=null", "train.epochs=2",
    "data.max_train_persons=12", "train.eval_batch_size=1", "train.log_every=1",
]  # fmt: skip


def test_epoch_sampler_shards_one_order_and_resumes_inside_a_shard():
    one = EpochSampler(10, seed=3)
    one.set_epoch(2)
    ranks = [EpochSampler(10, seed=3, rank=r, world_size=3) for r in range(3)]
    for sampler in ranks:
        sampler.set_epoch(2)
    order = one.order()
    assert [list(s) for s in ranks] == [order[0:9:3], order[1:9:3], order[2:9:3]]  # 9 of 10: equal shards
    assert [len(s) for s in ranks] == [3, 3, 3]
    ranks[1].set_epoch(2, start=2)  # 2 samples of this rank's shard already trained
    assert list(ranks[1]) == [order[7]] and len(ranks[1]) == 1


def test_gather_puts_shards_back_in_dataset_order():
    shards = [list(shard(7, Context(r, 3))) for r in range(3)]
    assert shards == [[0, 3, 6], [1, 4], [2, 5]]
    assert gather_in_order(list(range(7)), 7, Context()) == list(range(7))


def test_world_size_checks_name_both_sizes():
    check_world_size(2, Context(0, 2), resumed=True)
    check_world_size(1, Context(0, 4), resumed=False)  # a fresh run takes its launch's size
    with pytest.raises(ConfigError, match="trained with world size 2.*this launch has world size 1"):
        check_world_size(2, Context(), resumed=True)
    with pytest.raises(ConfigError, match="train.world_size=4 but this launch has world size 2"):
        check_world_size(4, Context(0, 2), resumed=False)
    assert "world_size" not in load_config(None, []).to_dict()["train"]  # one process: hashes as before
    assert load_config(None, ["train.world_size=2"]).hash() != load_config(None, []).hash()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """What the two spawned ranks saw and wrote (see tests/ddp_worker.py: rank_main)."""
    out = tmp_path_factory.mktemp("ranks")
    started = time.perf_counter()
    results = spawn_ranks(out, list(TINY_POSE), SLOW, timeout=240)
    print(f"\n2 spawned gloo ranks: {time.perf_counter() - started:.1f} s")
    return out, results


def _records(results_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((results_dir / "runs").glob("*.json"))]


def test_two_rank_clean_run_writes_one_set_of_records_with_identical_weights_on_both_ranks(ranks):
    out, (r0, r1) = ranks
    assert r0["a"]["run_dir"] == r1["a"]["run_dir"] and len(list((out / "a").iterdir())) == 1
    assert r0["a"]["steps"] == 6 and len(r0["a"]["digests"]) == 6
    assert r0["a"]["digests"] == r1["a"]["digests"]  # every parameter bitwise equal after every step
    records = _records(out / "a_results")
    assert [(r["network"], r["split"]) for r in records] == [("net", "clean_val"), ("net", "occluded_val")]
    for record in records:
        t = record["training"]
        assert (t["world_size"], t["batch_size_per_rank"], t["global_batch_size"]) == (2, 2, 4)
        assert t["images"] == 6 * 4 and record["config"]["train"]["world_size"] == 2
    assert r0["a"]["metrics"] == r1["a"]["metrics"]  # the metric computed once and shared
    run_dir = Path(r0["a"]["run_dir"])
    steps = [json.loads(x)["step"] for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert sorted(steps) == [1, 2, 3, 3, 4, 5, 6, 6]  # each step logged once (+ 2 epoch lines), by rank 0


def test_sharded_evaluation_equals_single_process_evaluation(ranks):
    """The 2-rank run scored each split on two shards (BatchNorm statistics from rank 0); scoring its saved
    network in one process gives exactly the same metrics."""
    from harness.core.registry import METHODS, TASKS
    from harness.evaluate.scoring import evaluate_split
    from harness.models.factory import occlusion_plan
    from harness.run.experiment import run_experiment  # noqa: F401  (registers everything)

    out, (r0, _) = ranks
    run_dir = Path(r0["a"]["run_dir"])
    cfg = load_config(run_dir / "config.yaml")
    task = TASKS.get(cfg.task)(TASKS.get(cfg.task).Settings(**cfg.data))
    from harness.models.backbones import create_backbone
    from harness.models.task_model import TaskModel

    def build():
        backbone = create_backbone(cfg.model.backbone, None, input_size=task.input_size)
        return TaskModel(backbone, task.head(backbone.out_channels, backbone.out_stride))

    method = METHODS.get("clean")(build, task.loss)
    method.load_state_dict(torch.load(run_dir / "checkpoint.pt", weights_only=True)["method"])
    _, splits = task.datasets(seed=cfg.seed, occlusion=occlusion_plan(cfg, False))
    single = {
        split: evaluate_split(task, method.net, splits[split], device=torch.device("cpu"), batch_size=1)[0]
        for split in ("clean_val", "occluded_val")
    }
    assert {split: metrics for _, split, metrics in r0["a"]["metrics"]} == single
    assert len(splits["clean_val"]) >= 3  # both ranks had samples to score


def test_stop_on_one_rank_then_resume_under_two_ranks_equals_the_uninterrupted_run(ranks):
    out, (r0, r1) = ranks
    message, signum = r0["b_interrupted"]
    assert signum == signal.SIGTERM and r1["b_interrupted"][1] == signal.SIGTERM
    # Rank 1 asked after step 4; both ranks stopped after step 5, in the middle of epoch 2.
    assert "SIGTERM at step 5: stopped in epoch 2 of 2 after batch 2 of 3" in message
    assert r1["b_interrupted"][0] == message
    assert r0["b_records_after_stop"] == ["interrupted"]  # rank 0 alone wrote it
    assert [r["status"] for r in _records(out / "b_results")] == ["ok", "ok"]  # interrupted record replaced
    assert r0["b"]["steps"] == 6 and r0["b"]["metrics"] == r0["a"]["metrics"] == r1["b"]["metrics"]
    a = torch.load(Path(r0["a"]["run_dir"]) / "checkpoint.pt", weights_only=True)
    b = torch.load(Path(r0["b"]["run_dir"]) / "checkpoint.pt", weights_only=True)
    assert a["method"].keys() == b["method"].keys()
    for key in a["method"]:
        assert torch.equal(a["method"][key], b["method"][key]), key
    for name, opt in a["optimizers"].items():
        for index, slot in opt["state"].items():
            for k, v in slot.items():
                other = b["optimizers"][name]["state"][index][k]
                assert torch.equal(torch.as_tensor(v), torch.as_tensor(other))


def test_two_rank_dslope_step_gives_the_gradients_of_one_process_with_twice_the_batch(ranks):
    """Tiny D-Slope without BatchNorm: batch 4 on each of 2 ranks == batch 8 in one process (both networks),
    and the weights of both networks stay identical across ranks after every step."""
    _, (r0, r1) = ranks
    assert len(r0["tiny"]["digests"]) == 3 and r0["tiny"]["digests"] == r1["tiny"]["digests"]
    single = fit_tiny_dslope(batch_size=8, steps=3)
    assert r0["tiny"]["grads"].keys() == single.grads.keys()
    assert {k.split(".")[0] for k in single.grads} == {"gnet", "enet"}
    for name, grad in single.grads.items():
        assert torch.allclose(r0["tiny"]["grads"][name], grad, rtol=1e-5, atol=1e-8), name
        assert torch.equal(r0["tiny"]["grads"][name], r1["tiny"]["grads"][name]), name


# --------------------------------------------------------------------------- `harness run --nproc 2`


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [str(HARNESS), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=os.environ, start_new_session=True,
    )  # fmt: skip


def _finish(proc: subprocess.Popen, timeout: float) -> str:
    try:
        return proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"harness {proc.args[1:3]} still running after {timeout} s: {proc.communicate()[0]}")


def _workers(launcher: int) -> list[int]:
    """PIDs of the ranks torchrun started (children of the launcher running harness.cli)."""
    children = [
        pid
        for task in Path(f"/proc/{launcher}/task").iterdir()
        for pid in (task / "children").read_text().split()
    ]
    return [int(pid) for pid in children if b"harness.cli" in Path(f"/proc/{pid}/cmdline").read_bytes()]


def test_harness_run_nproc_2_sigterm_to_one_rank_then_resume(tmp_path):
    sets = [*TINY_POSE, *SLOW, "method=dslope", "train.epochs=50", "train.max_steps=12",
            f"output.work_dir={tmp_path / 'work'}", f"output.results_dir={tmp_path / 'results'}"]  # fmt: skip
    args = ["run", "--nproc", "2", "--method", "dslope", *[x for s in sets for x in ("--set", s)]]
    proc = _start(args)
    try:
        deadline = time.monotonic() + 300  # generous: only a guard against a hang on a loaded machine
        while not [p for p in (tmp_path / "work").glob("*/metrics.jsonl") if p.read_text().strip()]:
            assert proc.poll() is None, proc.communicate()[0]  # wait for the first trained step
            assert time.monotonic() < deadline, "no step trained in 300 s"
            time.sleep(0.1)
        workers = _workers(proc.pid)
        assert len(workers) == 2
        os.kill(workers[1], signal.SIGTERM)  # one rank only (say, a scheduler preempting it)
        output = _finish(proc, 300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143, output
    assert "Traceback" not in output and output.count("interrupted: SIGTERM at step") == 1, output
    (run_dir,) = (tmp_path / "work").iterdir()
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)["state"]
    assert 1 <= state["step"] < 12
    (record,) = _records(tmp_path / "results")
    assert record["status"] == "interrupted" and f"step {state['step']}" in record["reason"]

    # Another world size is refused with one line naming both.
    single = subprocess.run([str(HARNESS), "run", "--resume", str(run_dir)], capture_output=True, text=True,
                            timeout=300)  # fmt: skip
    assert single.returncode == 2 and "Traceback" not in single.stderr
    assert "trained with world size 2" in single.stderr and "this launch has world size 1" in single.stderr

    resumed = _start(["run", "--nproc", "2", "--resume", str(run_dir)])
    output = _finish(resumed, 600)
    assert resumed.returncode == 0, output
    records = _records(tmp_path / "results")
    assert [(r["network"], r["split"], r["status"]) for r in records] == [
        ("enet", "clean_val", "ok"), ("enet", "occluded_val", "ok"), ("gnet", "clean_val", "ok")
    ]  # fmt: skip
    assert {r["training"]["steps"] for r in records} == {12}
    assert {r["training"]["global_batch_size"] for r in records} == {4}
    assert output.count("Comparison") == 1  # rank 0 alone prints the table


def test_buffer_sync_option_follows_the_installed_torchs_ddp():
    from harness.core.distributed import buffer_sync_option

    def ddp_2_14(self, module, broadcast_buffers=None, forward_sync_buffers=None): ...

    def ddp_2_11(self, module, broadcast_buffers=True): ...

    assert buffer_sync_option(ddp_2_14) == {"forward_sync_buffers": True}  # the pinned torch: no deprecation
    assert buffer_sync_option(ddp_2_11) == {"broadcast_buffers": True}  # the lent GPU image's torch 2.11
