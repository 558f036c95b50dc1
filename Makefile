# Two commands on a fresh machine:  `make up` (the whole stack + demo stream)  and  `make test`.
# torch==2.13.0 is installed first and alone: it is the CPU build; a bare `torch` pulls CUDA.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.finsent-installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install up test test-fast test-faults lint bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

install: $(STAMP)

up: install
	$(BIN)/finsent up

test: install
	bash scripts/ensure-test-services.sh
	$(BIN)/ruff check .
	$(BIN)/pytest -q -p no:cacheprovider

test-fast: install
	$(BIN)/pytest -q -m "not slow and not browser"

test-faults: install
	$(BIN)/pytest -q -m fault tests/faults

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python bench/run_all.py
