# Two commands matter: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test lint bench bench-history bench-warehouse bench-collect dagster clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "vast-pipeline needs Python 3.11 or newer"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)  ## run the end-to-end demo on the embedded simulator
	$(VENV)/bin/vast-pipeline demo

test: $(STAMP)  ## run the whole test suite
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: bench-history bench-warehouse bench-collect  ## each ratio beside its target

bench-history: $(STAMP)
	$(VENV)/bin/vast-pipeline bench history

bench-warehouse: $(STAMP)  ## BENCH_WAREHOUSE_ARGS="--scale 0.25" for a quarter year
	$(VENV)/bin/vast-pipeline bench warehouse $(BENCH_WAREHOUSE_ARGS)

bench-collect: $(STAMP)
	$(VENV)/bin/vast-pipeline bench collect

dagster: $(STAMP)  ## the Dagster UI on the same data
	export DAGSTER_HOME=$$($(PY) -c "from pipeline.config import load_settings, prepare_dagster_home as p; print(p(load_settings()))") && $(VENV)/bin/dagster dev -w workspace.yaml

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
