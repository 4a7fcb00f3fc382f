# Two set-up commands (see README): `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint install bench clean default-model

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/mtst demo

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q --durations=15

# Rebuild the shipped default model (train configs/multitask.yaml, export int8, measure, write the assets):
# ~30 min on 2 cores with AVX-512 BF16; see docs/guide.md#the-shipped-default-model
default-model: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python experiments/ship_default_model.py

lint: $(STAMP)
	$(BIN)/ruff check src tests bench experiments

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
