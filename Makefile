# Two commands from a fresh clone: `make demo` (the main job) and `make test` (the whole suite).
# Each creates .venv and installs what it needs into it: the demo only the `train` extra, the
# tests everything (the PyTorch oracle, scipy, gymnasium, MPI...).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test bench lint clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed-train: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e '.[train]'
	touch $@

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed-train

# the main job: train the default MLP on the embedded digits and write runs/demo (replacing the
# previous demo run)
demo: $(VENV)/.installed-train
	$(VENV)/bin/retrograd train --out runs/demo --overwrite

test: $(VENV)/.installed
	$(PY) -m pytest

bench: $(VENV)/.installed
	$(PY) bench/mlp.py --optimizer sgd,adam
	$(PY) bench/losses.py
	$(PY) bench/sklearn_mlp.py

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests bench examples

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
