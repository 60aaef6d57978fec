# Two commands from a fresh clone: `make demo` (the main job) and `make test` (the whole suite).
# Each creates .venv and installs what it needs into it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test bench lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# the main job: train the default MLP on the embedded digits and write runs/demo
demo: $(VENV)/.installed
	$(VENV)/bin/retrograd train --out runs/demo

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
