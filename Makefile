# spelab: the two set-up commands are `make run` and `make test` (README).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU wheel by default; on a CUDA machine install the CUDA build of the same version first
# (README, "GPU"), and this step keeps it.
TORCH ?= torch==2.13.0
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export WANDB_MODE ?= offline
PYTEST := $(PY) -m pytest

.PHONY: help install install-gpu-extra lint format run test test-slow test-all bench gpu-check smoke cpu-grid sync-wandb clean clean-logs audio-deps

help:
	@echo "make run        set up .venv and run the main job (ListOps, offline, a few CPU minutes)"
	@echo "make test       set up .venv and run the fast tests"
	@echo "make lint       ruff check and ruff format --check (CI runs it); make format rewrites"
	@echo "make test-slow  the slow tests (full grids, SLURM, fault injection); CI runs both"
	@echo "make bench      CPU benchmarks with their targets -> bench/results/"
	@echo "make gpu-check  GPU tests and benchmarks in one call (on a CUDA machine)"
	@echo "make cpu-grid   the committed CPU grid, re-run on the one-node SLURM cluster (~2 h on 2 cores)"
	@echo "make sync-wandb upload offline W&B runs"
	@echo "make audio-deps FluidSynth + a General MIDI soundfont (Debian), for spelab.generate audio=true"

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@echo "[install 1/5] virtual environment $(VENV)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "[install 2/5] pip"
	$(PY) -m pip install -q --upgrade pip
	@echo "[install 3/5] $(TORCH) (skipped when a torch is installed; the CPU wheel is ~200 MB)"
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH)"
	@echo "[install 4/5] spelab and its dependencies (Lightning, Hydra, W&B, music21, ...; a minute or two)"
	$(PY) -m pip install -q -e ".[dev]"
	@echo "[install 5/5] the compiled CPU kernels of SPE (once per machine, ~40 s; without a C++ compiler: a warning)"
	$(PY) -m spelab.nn.kernels.cpu
	@echo "[install] done: $(VENV)"
	touch $@

run: install
	$(PY) run.py $(ARGS)

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: install
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

test: install
	$(PYTEST) -q -m "not slow and not gpu" $(PYTEST_ARGS)

test-slow: install
	$(PYTEST) -q -m "slow and not gpu" $(PYTEST_ARGS)

test-all: test test-slow

# the `gpu` extra (triton): CI installs it so that the Triton kernels' tests run in the interpreter
install-gpu-extra: install $(VENV)/.gpu-installed

$(VENV)/.gpu-installed: pyproject.toml
	$(PY) -m pip install -q -e ".[dev,gpu]"
	touch $@

# glibc keeps freed memory for the benchmarks: with its default adaptive mmap threshold the same
# 32 MiB tensor is sometimes page-faulted afresh and sometimes not, and CPU times swing by 1.5x
# (README, "On a CPU"; the setting is recorded in every results file).
BENCH_MALLOC := glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736

bench: install $(VENV)/.bench-installed
	GLIBC_TUNABLES=$(BENCH_MALLOC) $(PY) -m bench.run_all --device cpu

$(VENV)/.bench-installed: pyproject.toml
	$(PY) -m pip install -q -e ".[dev,bench]"
	touch $@

# No install step: a GPU machine often has its own CUDA torch (and no network); the .venv is used when
# it exists, else the system python. Peers (fla-core, performer-pytorch) are compared when importable.
gpu-check:
	$(if $(wildcard $(PY)),$(PY),$(PYTHON)) -m bench.gpu_check

smoke: install
	$(PY) run.py -m +sweep=smoke

# The CPU grid committed in experiments/cpu_grid/ (its README): both sweeps on the one-node SLURM cluster
# of scripts/slurm/ (root), then their results.json + configs copied there and the report rebuilt.
GRID_OUT := experiments/cpu_grid
cpu-grid: install
	bash scripts/slurm/start.sh
	$(PY) run.py -m +sweep=cpu_grid hydra/launcher=slurm_cpu
	$(PY) run.py -m +sweep=cpu_grid_modern hydra/launcher=slurm_cpu
	$(PY) scripts/collect_sweep.py logs/sweeps/cpu_grid_v1 $(GRID_OUT)/cpu_grid_v1
	$(PY) scripts/collect_sweep.py logs/sweeps/cpu_grid_modern_v1 $(GRID_OUT)/cpu_grid_modern_v1
	$(PY) -m spelab.report $(GRID_OUT)/cpu_grid_v1 $(GRID_OUT)/cpu_grid_modern_v1 --out $(GRID_OUT)/report

# Optional: audio rendering of generated music (spelab.generate audio=true). Debian packages, no Python one.
audio-deps:
	@if command -v fluidsynth >/dev/null && ls /usr/share/sounds/sf2/*.sf2 >/dev/null 2>&1; then \
	  echo "audio-deps: fluidsynth and a soundfont are installed"; \
	else \
	  $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y fluidsynth fluid-soundfont-gm || \
	  { $(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq && \
	    $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y fluidsynth fluid-soundfont-gm; }; \
	fi

sync-wandb: install
	@find logs -type d -name 'offline-run-*' -print0 2>/dev/null | xargs -0 -r -n1 $(VENV)/bin/wandb sync

clean-logs:
	rm -rf logs/runs logs/sweeps

clean: clean-logs
	rm -rf $(VENV) .pytest_cache
