# Everything a fresh machine needs: Python 3.11 and pip. Targets create their venv themselves:
# .venv (an editable syncd plus the test tools) for development, .venv-run (syncd installed as a
# user would, `pip install .`, with its runtime dependencies only) for `make run`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_VENV := .venv-run
CONFIG ?= config/syncd.toml

.PHONY: run test lint typecheck pytest bench clean

$(BIN)/syncd: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

$(RUN_VENV)/bin/syncd: pyproject.toml $(shell find syncd -name '*.py')
	test -d $(RUN_VENV) || $(PYTHON) -m venv $(RUN_VENV)
	$(RUN_VENV)/bin/pip install --quiet --upgrade pip
	rm -rf build  # setuptools reuses build/lib, which would ship a module deleted since
	$(RUN_VENV)/bin/pip install --quiet .
	@touch $@

run: $(RUN_VENV)/bin/syncd
	$(RUN_VENV)/bin/syncd --config $(CONFIG) run

lint: $(BIN)/syncd
	$(BIN)/ruff check syncd tests bench
	$(BIN)/ruff format --check syncd tests bench

typecheck: $(BIN)/syncd
	$(BIN)/mypy

pytest: $(BIN)/syncd
	$(BIN)/pytest -q

test: lint typecheck pytest

# FP_CORPUS: a directory of feeds to run through both parse paths too, e.g. the "wellformed"
# tests of feedparser's sdist (see bench/parse_paths.py).
# The side environment with lemon24/reader that adds reader's column to bench/speed.py (reader's
# own dependencies, apart from syncd's): `make .venv-reader/bin/python`, then `make bench`.
.venv-reader/bin/python:
	$(PYTHON) -m venv .venv-reader
	.venv-reader/bin/pip install --quiet reader sgmllib3k  # its vendored feedparser needs sgmllib

bench: $(BIN)/syncd
	$(BIN)/python bench/speed.py $(if $(wildcard .venv-reader/bin/python),--reader .venv-reader/bin/python)
	$(BIN)/python bench/parse_paths.py $(if $(FP_CORPUS),--corpus $(FP_CORPUS))
	$(BIN)/python bench/parse_speed.py
	$(BIN)/python bench/backfill.py
	$(BIN)/python bench/deliveries.py
	$(BIN)/python bench/freshness.py
	$(BIN)/python bench/daemon_scale.py
	$(BIN)/python bench/export.py
	$(BIN)/python bench/websub.py
	$(BIN)/python bench/store_size.py
	$(BIN)/python bench/workers.py

clean:
	rm -rf $(VENV) $(RUN_VENV) .venv-reader var .pytest_cache .mypy_cache .ruff_cache
