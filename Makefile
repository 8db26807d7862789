# tcledger: the two commands of the README are `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/tcledger serve

test: $(STAMP)
	$(BIN)/python -m pytest -q
	$(BIN)/ruff check domain infra api audit projections integrations bench
	$(BIN)/mypy

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/commands.py
	$(BIN)/python bench/projections.py
	$(BIN)/python bench/audit.py
	$(BIN)/python bench/community.py
	$(BIN)/python bench/integrations.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
