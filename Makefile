# One-command set-up on a fresh machine: `make demo` (main job) and `make test` (test suite).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH  ?= torch==2.13.0

.PHONY: install demo test lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: where a local CPU build of 2.13.0 exists pip takes it (no multi-GB CUDA download)
	$(PY) -m pip install -q "$(TORCH)" || $(PY) -m pip install -q "torch>=2.2"
	$(PY) -m pip install -q -e '.[test]'
	# official BraTS metrics for the cross-check test: their numpy<2.3/pandas<3/rich<14 pins are stricter than the
	# code needs (tests/test_metrics.py checks the result), so they go in without their pinned dependencies
	$(PY) -m pip install -q --no-deps "brats-evaluation==0.0.10" "panoptica==2.1.7"
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) -m mmtumor.demo

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check mmtumor tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache demo-output
