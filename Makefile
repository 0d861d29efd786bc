# Two commands a researcher needs: `make run` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup setup-mmpose run test lint bench step-time gpu-check gpu-wheels clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch and torchvision are pinned as a matched pair in pyproject.toml; installed first, explicitly,
# so no other requirement can pull a different torch.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

# Optional extra: mmpose 1.3.2 backbones (`mmpose:*`), without mmpose's compiled ops and without mmdet.
# Plain `pip install mmpose` fails (chumpy's setup imports pip) and the xtcocotools wheel breaks under
# numpy 2, so mmpose comes without its declared requirements and xtcocotools is built from source against
# the venv's numpy (setuptools and cython must be in the venv for --no-build-isolation). torch, torchvision
# and numpy stay as pinned. harness/models/mmpose_imports.py covers the two imports this leaves unmet.
MMPOSE_STAMP := $(VENV)/.installed-mmpose
$(MMPOSE_STAMP): $(STAMP)
	$(BIN)/pip install --quiet mmengine==0.10.7 mmcv-lite==2.2.0 json-tricks munkres scipy six cython setuptools
	$(BIN)/pip install --quiet --no-deps --no-build-isolation --no-binary xtcocotools \
		mmpose==1.3.2 xtcocotools==1.14.3
	touch $(MMPOSE_STAMP)

setup-mmpose: $(MMPOSE_STAMP)

run: setup
	$(BIN)/harness run --task pose

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check harness tasks baselines benchmarks tests

clean:
	rm -rf work_dirs .pytest_cache

# Performance targets P1-P5 (about 13 minutes on 2 cores, 10 of them the three default jobs of P4).
bench: setup
	$(BIN)/python benchmarks/bench.py

# Step time per backbone x method (about 1 minute on 2 cores; with the mmpose extra, a row per mmpose:* backbone too).
step-time: setup
	$(BIN)/python -m benchmarks.step_time

# The CUDA path on one GPU in at most 10 minutes (benchmarks/gpu_check.py, results/bench/gpu.json). No `setup`
# prerequisite: a lent GPU machine reaches no registry, so it runs with that machine's python3 and its CUDA
# torch (README, Benchmarks, GPU); where `make setup` made .venv, its python is used. GPU_CHECK_ARGS=--dry-run
# walks the same parts on the CPU.
GPU_PYTHON ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,python3)
gpu-check:
	$(GPU_PYTHON) -m benchmarks.gpu_check $(GPU_CHECK_ARGS)

# The five packages the harness imports that the lent GPU machine's image lacks (it reaches no registry), as
# CPython 3.12 x86-64 wheels in .whl/ (3 MB, git-ignored) to carry there, and the source manifest that lets
# records made there name the commit (no .git travels; run it on a clean checkout); README, Benchmarks, GPU.
gpu-wheels: setup
	$(BIN)/pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
		pycocotools==2.0.11 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
	$(BIN)/python -m harness.core.source_manifest .whl/source.manifest
