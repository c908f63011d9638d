# Two commands matter: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install focus-validator demo test lint bench bench-history bench-warehouse bench-collect bench-market-landing dagster clean

# The FinOps Foundation's FOCUS validator (2.x needs Python 3.12) in its own venv, pinned
# by constraints-focus.txt; tests/reports/test_focus_validator.py runs it on an export.
FOCUS_VENV ?= .venv-focus
FOCUS_STAMP := $(FOCUS_VENV)/.installed-stamp
PYTHON312 ?= $(shell for p in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12; do \
	$$p --version >/dev/null 2>&1 && { echo $$p; break; }; done)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "vast-pipeline needs Python 3.11 or newer"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

$(FOCUS_STAMP): constraints-focus.txt
	@test -n "$(PYTHON312)" || { echo "focus-validator needs Python 3.12: install it or set PYTHON312=/path/to/python3.12"; exit 1; }
	rm -rf $(FOCUS_VENV)
	$(PYTHON312) -m venv $(FOCUS_VENV)
	$(FOCUS_VENV)/bin/python -m pip install --quiet -c constraints-focus.txt focus-validator pyarrow
	@touch $(FOCUS_STAMP)

focus-validator: $(FOCUS_STAMP)  ## the FOCUS validator venv the tests use (about 1 min)

demo: $(STAMP)  ## run the end-to-end demo on the embedded simulator
	$(VENV)/bin/vast-pipeline demo

# Most tests wait on HTTP, subprocesses or files, so three workers keep two cores busy
# (PYTEST_WORKERS=0 runs the suite in one process).
PYTEST_WORKERS ?= 3

test: $(STAMP) $(FOCUS_STAMP)  ## run the whole test suite
	$(PY) -m pytest -n $(PYTEST_WORKERS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

.PHONY: docs docs-tables

docs: $(STAMP)  ## the docs site into site/ (--strict: broken links or pages missing from the nav fail)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

docs-tables: $(STAMP)  ## regenerate docs/tables.md from sql/ and a warehouse built from the test scenario
	$(PY) docs/gen_tables.py

# The benchmarks live in bench/ (not in the wheel) and run from the checkout.
bench: bench-history bench-warehouse bench-collect bench-market-landing  ## each ratio beside its target

bench-history: $(STAMP)
	$(PY) -m bench history

bench-warehouse: $(STAMP)  ## BENCH_WAREHOUSE_ARGS="--scale 0.25" for a quarter year
	$(PY) -m bench warehouse $(BENCH_WAREHOUSE_ARGS)

bench-collect: $(STAMP)
	$(PY) -m bench collect

bench-market-landing: $(STAMP)
	$(PY) -m bench market-landing

dagster: $(STAMP)  ## the Dagster UI on the same data
	export DAGSTER_HOME=$$($(PY) -c "from pipeline.startup import load_settings, prepare_dagster_home as p; print(p(load_settings()))") && $(VENV)/bin/dagster dev -w workspace.yaml

clean:
	rm -rf $(VENV) $(FOCUS_VENV) .pytest_cache .ruff_cache site

bench-market: $(STAMP)  ## a year of hourly market snapshots; BENCH_MARKET_ARGS="--offers 2000" to size it
	$(PY) -m bench market $(BENCH_MARKET_ARGS)
