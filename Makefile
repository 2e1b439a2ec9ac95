# Quick start: `make run` (install + default workflow), `make test` (install + test suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 2
SNAKEMAKE_ARGS ?=

.PHONY: install install-test install-bench install-slurm run slurm test bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt requirements-nodeps.txt constraints.txt pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt -c constraints.txt
	$(BIN)/pip install -q --no-deps -r requirements-nodeps.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt
	$(BIN)/pip install -q -r requirements-test.txt -c constraints.txt
	touch $@

$(VENV)/.installed-bench: $(VENV)/.installed requirements-bench.txt
	$(BIN)/pip install -q -r requirements-bench.txt -c constraints.txt
	$(BIN)/pip install -q --no-deps deepfocus==1.0.1  # its `fasttext` dependency would replace fasttext-numpy2
	touch $@

# The Slurm executor plugin lives apart from the venv's site-packages (see requirements-slurm.txt) and is
# put on PYTHONPATH only for cluster runs: `make slurm`, tests/test_slurm.py.
$(VENV)/slurm-plugins/.installed: $(VENV)/.installed requirements-slurm.txt
	$(BIN)/pip install -q --no-deps --upgrade --target $(VENV)/slurm-plugins -r requirements-slurm.txt
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test
install-bench: $(VENV)/.installed-bench
install-slurm: $(VENV)/slurm-plugins/.installed

# `langadapt unlock-stale`: an interrupted earlier run's locks are removed when no snakemake runs here
run: install
	$(BIN)/langadapt unlock-stale
	$(BIN)/snakemake --cores $(CORES) $(SNAKEMAKE_ARGS)

# The workflow on a Slurm cluster (profiles/slurm: edit its site values first)
slurm: install-slurm
	$(BIN)/langadapt unlock-stale
	PYTHONPATH=$(VENV)/slurm-plugins$${PYTHONPATH:+:$$PYTHONPATH} $(BIN)/snakemake --profile slurm $(SNAKEMAKE_ARGS)

test: install-test
	$(BIN)/python -m pytest -q

# MLM throughput / MFU against the Hugging Face Trainer baselines (~5 min on 2 cores), FOCUS against deepfocus,
# the corpus stage against the in-memory one and datatrove at 0.2M and 1M lines (~5 min)
bench: install-bench
	$(BIN)/python benchmarks/mlm_throughput.py --profile --repeat 3
	$(BIN)/python benchmarks/focus_vs_deepfocus.py
	$(BIN)/python benchmarks/corpus_stream.py --sizes 200000 1000000

lint: install-test
	$(BIN)/ruff check src scripts tests benchmarks
	$(BIN)/snakemake --lint

clean:
	rm -rf results .snakemake
