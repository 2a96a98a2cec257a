# `make run` and `make test` create (or reuse) .venv and install from hash-pinned locks
# (requirements/): run.lock holds only what running needs, test.lock adds the test, training and
# eval extras. pip prints every package it collects; the first install downloads about 1 GB.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
LOCKS := requirements
# torch's CPU build (pinned as torch==2.13.0+cpu): from pip's own find-links where it has one
# (offline machines carry the wheel), else from PyTorch's CPU index. Asked of the venv's pip.
TORCH_INDEX = $$($(PY) -m pip config list | grep -q find-links || echo --extra-index-url https://download.pytorch.org/whl/cpu)
FIND_LINKS = $$($(PY) -m pip config list | sed -n "s/^.*find-links='\(.*\)'/--find-links \1/p" | head -1)
UV_LOCK = $(PY) -m uv pip compile --quiet --no-header --generate-hashes --python-version 3.11 \
	--python-platform x86_64-manylinux_2_28 --override $(LOCKS)/torch-cpu.txt $(FIND_LINKS)

.PHONY: run test test-notorch bench extension audit lock clean

# One recipe for both installs: .venv/.run-installed from run.lock, .venv/.test-installed from test.lock.
$(VENV)/.%-installed: $(LOCKS)/%.lock $(LOCKS)/pip.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if v == (3, 11) else \
		f"make $* needs Python 3.11, $(PY) is {v[0]}.{v[1]} (its hash locks and CPU torch wheel are for 3.11). " \
		"repocomplete itself runs on 3.11-3.13: for 3.12/3.13 follow docs/install.md (Python 3.12 and 3.13).\n" \
		"Or install python3.11 (pyenv, uv python install 3.11, deadsnakes), then: rm -rf $(VENV) && make $* PYTHON=python3.11")'
	$(PY) -m pip install --disable-pip-version-check --require-hashes -r $(LOCKS)/pip.lock
	@echo "Installing $$(grep -c '^[a-z]' $<) hash-pinned packages from $< into $(VENV) (first time: 2-5 minutes)"
	$(PY) -m pip install --disable-pip-version-check --require-hashes $(TORCH_INDEX) -r $<
	$(PY) -m pip install --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

## run: index this repository, serve it on the embedded default model, print how to connect
run: $(VENV)/.run-installed
	$(VENV)/bin/repocomplete run .

## test: the whole test suite (GPU tests excluded; `pytest -m gpu` on a GPU machine)
test: $(VENV)/.test-installed
	$(PY) -m pytest

## test-notorch: the part of the suite that needs no torch, on another CPython (default python3.13),
## in its own venv from requirements/py313-notorch.lock (hash-pinned for 3.13, torch left out: PyPI's
## torch for 3.12/3.13 is a ~3 GB CUDA build). CI runs it with pyenv's 3.13 (.ci/run).
NOTORCH_PYTHON ?= python3.13
NOTORCH_VENV := .venv-notorch
NOTORCH_PY := $(NOTORCH_VENV)/bin/python
# Every test that needs no torch: the indexer, the server and language server on the fake and
# OpenAI-compatible backends, the engine's pure parts, the architecture rules. The few tests in these
# folders that load a model skip themselves without torch; three files are about models throughout.
NOTORCH_TESTS := tests/indexer tests/lsp tests/server tests/test_architecture.py \
	$(addprefix tests/repocomplete/test_,config.py fim.py prompt.py postprocess.py wire.py fake_backend.py openai_backend.py) \
	--ignore=tests/server/test_threads_report.py --ignore=tests/server/test_adapters_served.py --ignore=tests/lsp/test_adapters.py
$(NOTORCH_VENV)/.installed: $(LOCKS)/py313-notorch.lock $(LOCKS)/pip.lock pyproject.toml
	@test -x $(NOTORCH_PY) || $(NOTORCH_PYTHON) -m venv $(NOTORCH_VENV)
	$(NOTORCH_PY) -m pip install --disable-pip-version-check --require-hashes -r $(LOCKS)/pip.lock
	@echo "Installing $$(grep -c '^[a-z]' $<) hash-pinned packages from $< into $(NOTORCH_VENV) (no torch)"
	@# --no-compile: byte-compiling ~100 packages (scipy, transformers) costs minutes; imports compile what they use
	$(NOTORCH_PY) -m pip install --disable-pip-version-check --no-compile --require-hashes --no-deps -r $<
	$(NOTORCH_PY) -m pip install --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

test-notorch: $(NOTORCH_VENV)/.installed
	@$(NOTORCH_PY) -c 'import importlib.util, sys; print("test-notorch on Python", sys.version.split()[0]); \
		sys.exit("torch is installed in $(NOTORCH_VENV): this run is meant to prove the code works without it" if importlib.util.find_spec("torch") else 0)'
	$(NOTORCH_PY) -m pytest -p no:cacheprovider $(NOTORCH_TESTS)

bench: $(VENV)/.test-installed
	$(PY) bench/engine.py

extension:
	cd extension && npm ci && npm run compile && npx vsce package

## audit: known vulnerabilities in the locked Python packages and the extension's npm packages
audit: $(VENV)/.test-installed
	$(PY) -m pip install --disable-pip-version-check --no-build-isolation -e '.[dev]'
	$(PY) scripts/audit.py

## lock: re-resolve requirements/*.lock after changing a pin in pyproject.toml
lock:
	@$(PY) -m uv --version >/dev/null 2>&1 || { echo "make lock needs uv (the dev extra): $(PY) -m pip install -e '.[dev]'"; exit 1; }
	$(UV_LOCK) $(LOCKS)/pip.in -o $(LOCKS)/pip.lock
	$(UV_LOCK) pyproject.toml $(LOCKS)/build.in --extra test -o $(LOCKS)/test.lock
	$(UV_LOCK) pyproject.toml $(LOCKS)/build.in --constraint $(LOCKS)/test.lock -o $(LOCKS)/run.lock
	$(PY) -m uv pip compile --quiet --no-header --generate-hashes --python-version 3.13 --only-binary :all: \
		--python-platform x86_64-manylinux_2_28 --excludes $(LOCKS)/notorch-excludes.txt \
		pyproject.toml $(LOCKS)/build.in --extra test -o $(LOCKS)/py313-notorch.lock

clean:
	rm -rf $(VENV) build *.egg-info
