# Quick start: `make demo` (set up and run the main job on bundled data), `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# The CPU build of torch; an unpinned torch pulls a multi-GB CUDA build.
TORCH  := torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: setup demo test test-slow bench-setup bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/tabsynth demo --out out/demo

test: setup
	$(PY) -m pytest -q

test-slow: setup
	$(PY) -m pytest -q -m slow

# Peers (SDV's ctgan, BSL-licensed) for side-by-side benchmarks only.
bench-setup: setup
	$(PY) -m pip install --quiet $(TORCH) -e ".[bench]"

clean:
	rm -rf $(VENV) out .pytest_cache
