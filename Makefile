# One entry point for users and CI. `make test` and `make demo` create the virtual
# environment on first use and reinstall only when pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.otdiv-installed

.PHONY: install demo test test-threads lint bench bench-smoke docs clean

install: $(STAMP)

$(STAMP): pyproject.toml scripts/install.sh
	PYTHON=$(PYTHON) VENV=$(VENV) bash scripts/install.sh
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/otdiv demo

test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks docs
	$(PY) -m pytest -n 2 -q

# the suite again with every thread pool at one thread: no test may hinge on the thread count
ONE_THREAD := NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
test-threads: $(STAMP)
	$(ONE_THREAD) $(PY) -m pytest -n 2 -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks docs

bench: $(STAMP)
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) benchmarks/run.py --out docs/benchmarks.md

# every benchmark script at its tiny --quick sizes: does each still run? (a few minutes on
# 2 cores, mostly imports and Dask clusters starting). Prints the sections, writes nothing.
bench-smoke: $(STAMP)
	$(PY) benchmarks/run.py --quick
	$(PY) benchmarks/lipschitz_table.py --quick

# `make docs` uses the committed figures of slow scripts; `make docs FIGURES=--all` rebuilds all
FIGURES ?=
docs: $(STAMP)
	$(PY) -m pip install -q -e '.[docs]'
	MPLBACKEND=Agg $(PY) docs/make_figures.py $(FIGURES)
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

clean:
	rm -rf $(VENV) docs/_build .pytest_cache .hypothesis
