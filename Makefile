# Two commands a researcher needs: `make run` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test lint bench step-time clean

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

run: setup
	$(BIN)/harness run --task pose --backbone hrnet_w32

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check harness tasks baselines benchmarks tests

clean:
	rm -rf work_dirs .pytest_cache

# Performance targets P1-P5 (about 13 minutes on 2 cores, 10 of them the three default jobs of P4).
bench: setup
	$(BIN)/python benchmarks/bench.py

# Step time per backbone x method (about 1 minute on 2 cores).
step-time: setup
	$(BIN)/python benchmarks/step_time.py
