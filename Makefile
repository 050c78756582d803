# Two commands for a newcomer: `make demo` and `make test`. Both set up .venv first (idempotent).
PY_BOOT ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.londi-installed

export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export WANDB_MODE ?= offline

.PHONY: setup test test-all demo lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PY_BOOT) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

test: setup
	$(PY) -m pytest -q -ra

test-all: setup
	$(PY) -m pytest -m "not gpu"

demo: setup
	$(VENV)/bin/londi-demo

lint: setup
	$(VENV)/bin/ruff check londi envs scripts tests

clean:
	rm -rf $(VENV) outputs multirun wandb
