#!/usr/bin/env bash
# What one call of a lent GPU machine runs (README, Benchmarks, GPU): `make gpu-check`'s parts and the budget
# axis of validity v3 (configs/sweeps/validity_v3_pose_budget_cuda.yaml), within about 7 minutes: the sweep beside
# the precision and DDP checks, then the step times alone on the GPU.
#
# Prepared here, after the last commit: `make gpu-wheels` (.whl/: the wheels the machine's image lacks, the
# source manifest that lets its records name the commit without .git) and the starting checkpoint the budget
# sweep shares with the CPU grid, copied to .whl/cache/pretrained/pose/. Then the device tool's run, with
# carry [".whl"] and timeout_s 420 (the most a second call of a 15-minute lease gets):  bash benchmarks/gpu_lease.sh
# Everything it brings back lands in $OUT: gpu.json, gpu_parts.tgz, budget.tgz (records, trial logs), lease.log.
set -u -o pipefail
OUT=${OUT:-work_dirs/gpu_lease}
mkdir -p "$OUT"
exec > >(tee "$OUT/lease.log") 2>&1
SWEEP_SECONDS=${SWEEP_SECONDS:-310}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 3
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HARNESS_SOURCE_MANIFEST=$PWD/.whl/source.manifest
# The machine may hold a stale .git of an earlier checkout: only the manifest, checked file by file, names the
# commit here.
export GIT_DIR=$PWD/.no-git-here
python3 -c "from harness.core.results import source_state as s; print('source:', s().fields())"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
START=$SECONDS
date -u +"%FT%TZ budget sweep (${SWEEP_SECONDS} s) beside precision and ddp"
HARNESS_CACHE=$PWD/.whl/cache timeout -s TERM -k 20 "$SWEEP_SECONDS" python3 -m harness.cli sweep \
  configs/sweeps/validity_v3_pose_budget_cuda.yaml --local --resume > "$OUT/sweep.log" 2>&1 &
SWEEP=$!
python3 -m benchmarks.gpu_check --parts precision,ddp --budget "$SWEEP_SECONDS" --out "$OUT/gpu.json"
wait $SWEEP; echo "sweep exit $?"; tail -60 "$OUT/sweep.log"
tar czf "$OUT/budget.tgz" results/validity/v3/pose_budget_cuda results/validity/v3/sweeps/validity_v3_pose_budget_cuda/local
# Step times last, alone on the GPU, with what is left of the call's time (STEP_BUDGET_END s after the start).
LEFT=$((${STEP_BUDGET_END:-375} - (SECONDS - START)))
if [ "$LEFT" -ge 40 ]; then
  date -u +"%FT%TZ step_time alone on the GPU (${LEFT} s)"
  python3 -m benchmarks.gpu_check --parts step_time --budget "$LEFT" --out "$OUT/gpu.json"
fi
date -u +"%FT%TZ packing"
tar czf "$OUT/gpu_parts.tgz" -C work_dirs/gpu_check parts
ls -la "$OUT"
