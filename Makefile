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

# two workers: the suite's long tests (learning, skull-on, benchmark) overlap on a 2-core machine (tests/conftest.py
# gives each worker one torch thread); `$(PY) -m pytest -q -p no:xdist` runs it in one process
test: install
	$(PY) -m pytest -q -n 2

# every weights-dependent table of docs/benchmarks.md with the current weights (long: ~2 h on a 2-core CPU; run it on
# an idle machine, the timings are reported)
bench: install
	$(PY) benchmarks/bench_real.py --weights a2fseg-cpu a2fseg-phantom-cpu a2fseg-avg-cpu a2fseg-medmap-cpu robustseg-cpu hemis-cpu mmformer-cpu unet-cpu master-assistant-cpu
	$(PY) benchmarks/bench_postprocess_real.py --weights a2fseg-cpu
	$(PY) benchmarks/bench_thresholds_real.py --weights a2fseg-cpu
	$(PY) benchmarks/bench_models.py --update-cards
	$(PY) benchmarks/bench_et_threshold.py
	$(PY) benchmarks/sim2real.py --weights weights/a2fseg-cpu.safetensors --note "bundled default as segment runs it"
	$(PY) benchmarks/bench_subsets_real.py
	$(PY) benchmarks/bench_clinical_real.py --update-card
	$(PY) benchmarks/analyse_t1c_alone.py
	$(PY) benchmarks/bench_segment.py
	$(PY) benchmarks/bench_default_benchmark.py
	$(PY) benchmarks/bench_grid_ceiling.py --spacings 1.5 2 3
	$(PY) benchmarks/bench_small_tumours.py --weights a2fseg-cpu a2fseg-phantom-cpu
	$(PY) benchmarks/collect.py

lint: install
	$(VENV)/bin/ruff check mmtumor tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache demo-output
