# Each target creates (or reuses) .venv and installs what it needs from the package registries.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test bench extension clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

## run: index this repository, serve it on the embedded default model, print how to connect
run: $(STAMP)
	$(VENV)/bin/repocomplete run .

## test: the whole test suite (GPU tests excluded; `pytest -m gpu` on a GPU machine)
test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) bench/engine.py

extension:
	cd extension && npm ci && npm run compile && npx vsce package

clean:
	rm -rf $(VENV) build *.egg-info
