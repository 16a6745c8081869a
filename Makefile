# Quick start: `make demo` (set up and run the main job on bundled data), `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# The CPU build of torch; an unpinned torch pulls a multi-GB CUDA build.
TORCH  := torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: setup demo test test-slow lint typecheck refactor-check test-anonymeter bench-setup bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/tabsynth demo --out out/demo

test: setup
	$(PY) -m pytest -q

test-slow: setup
	$(PY) -m pytest -q -m slow

# ruff on the package (pyproject.toml's [tool.ruff]); CI runs it before the tests.
lint: setup
	$(PY) -m ruff check tabsynth

# mypy on the package (pyproject.toml's [tool.mypy]); CI runs it after lint.
typecheck: setup
	$(PY) -m mypy tabsynth

# A refactor must not move a bit: every family's fixed-seed fits hashed in this tree and in REF (a
# temporary git worktree), both on this machine and one thread (docs/development.md).
REF ?= main
refactor-check: setup
	$(PY) tests/models/bit_exact.py --against $(REF)

# Peers for side-by-side benchmarks only: SDV's ctgan (BSL) in the main venv; benchmarks/harness.py runs
# MOSTLY AI's engine (Apache-2.0) and SDV (BSL) in venvs of their own. torch goes in first so the
# on-disk CPU build is kept; the engine pulls torchvision/torchaudio built for CUDA torch, which fail
# to load beside the CPU torch (transformers then cannot import), and it runs without them.
bench-setup: setup .venv-engine/.installed .venv-sdv/.installed .venv-qa/.installed
	$(PY) -m pip install --quiet $(TORCH) -e ".[bench]"

# One benchmark (benchmarks/configs/NAME.toml; benchmarks/README.md lists them), resumable:
# make bench CONFIG=suite ARGS="--tables german_credit --methods ts-ar engine"
CONFIG ?= suite
bench: setup
	$(PY) benchmarks/harness.py $(CONFIG) $(ARGS)

.venv-engine/.installed:
	$(PYTHON) -m venv .venv-engine
	.venv-engine/bin/pip install --quiet $(TORCH)
	.venv-engine/bin/pip install --quiet $(TORCH) mostlyai-engine==2.7.3
	.venv-engine/bin/pip uninstall --quiet -y torchvision torchaudio
	touch $@

# anonymeter, the reference for the report's privacy attacks, pins numpy < 2: a venv of its own, used
# only by tests/report/test_anonymeter.py (skipped in the main venv, where anonymeter is absent).
test-anonymeter: .venv-anonymeter/.installed
	.venv-anonymeter/bin/python -m pytest -q tests/report/test_anonymeter.py

.venv-anonymeter/.installed:
	$(PYTHON) -m venv .venv-anonymeter
	.venv-anonymeter/bin/pip install --quiet $(TORCH)
	.venv-anonymeter/bin/pip install --quiet $(TORCH) -e ".[test]" anonymeter==1.1.0
	touch $@

.venv-sdv/.installed:
	$(PYTHON) -m venv .venv-sdv
	.venv-sdv/bin/pip install --quiet $(TORCH)
	.venv-sdv/bin/pip install --quiet $(TORCH) sdv==2.0.0
	touch $@

# MOSTLY AI's QA (Apache-2.0), the independent judge of the sequences benchmark (benchmarks/qa.py).
.venv-qa/.installed:
	$(PYTHON) -m venv .venv-qa
	.venv-qa/bin/pip install --quiet $(TORCH)
	.venv-qa/bin/pip install --quiet $(TORCH) mostlyai-qa==1.10.11
	touch $@

clean:
	rm -rf $(VENV) .venv-engine .venv-sdv .venv-qa .venv-anonymeter out .pytest_cache
