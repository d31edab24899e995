# The two commands of the README: `make demo` and `make test`. Both create .venv when missing.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: demo test test-fast bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# CPU machines take the local CPU wheel of torch; a plain `torch` would pull GBs of CUDA wheels.
	if ! command -v nvidia-smi >/dev/null 2>&1; then $(BIN)/pip install -q "torch==2.13.0"; fi
	$(BIN)/pip install -q -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/autoscale-ray run experiments/local.yaml --out results/demo --restart

test: $(STAMP)
	$(BIN)/python -m pytest -q -ra

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/python benchmarks/law_multistart.py --naive-starts 150 --full-naive analytic
	OPENBLAS_NUM_THREADS=1 $(BIN)/python benchmarks/regression_loo.py
	$(BIN)/python benchmarks/data_stream.py
	$(BIN)/python benchmarks/train_overhead.py --tokens 800000
	$(BIN)/python benchmarks/storage_overhead.py --repeats 2
	OPENBLAS_NUM_THREADS=1 $(BIN)/python benchmarks/fit_parallel.py --repeats 2

clean:
	rm -rf $(VENV) results .pytest_cache
