# bsr: two commands set everything up.
#   make test   create the environment if needed, install bsr, lint, run the tests
#   make demo   same set-up, then the main job on the embedded default data
#   make lab    open JupyterLab on the course notebooks (extra options: LAB_ARGS="--port 9000")
#   make book   the course as a website: every notebook executed, built into build/book/
#
# The environment is the active conda env (not base) if there is one, else ./.venv.

PYTHON ?= python3
# torch is installed first so that a normal PyPI build is chosen on your machine
# (CUDA where present); override with e.g. `make test TORCH=torch`.
TORCH ?= torch==2.13.0

ifneq ($(and $(CONDA_PREFIX),$(filter-out base,$(CONDA_DEFAULT_ENV))),)
ENV := $(CONDA_PREFIX)
else
ENV := .venv
endif
BIN := $(ENV)/bin
PY := $(BIN)/python
STAMP := $(ENV)/.bsr-installed
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup test lint format demo lab book clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(ENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install "$(TORCH)"
	$(PY) -m pip install -e ".[dev]"
	$(PY) -m bsr.ffmpeg $(BIN)
	@touch $(STAMP)
	@echo "bsr is installed in $(ENV): activate it in every new shell (README, A first look), or call $(BIN)/bsr"

lint: $(STAMP)
	$(PY) -m ruff check bsr book tests notebooks
	$(PY) -m ruff format --check bsr book tests notebooks

format: $(STAMP)
	$(PY) -m ruff format bsr book tests notebooks
	$(PY) -m ruff check --fix bsr book tests notebooks

test: lint
	$(PY) -m pytest

demo: $(STAMP)
	$(BIN)/bsr demo

# Jupyter refuses to run as root unless told; Docker and cloud machines often are root.
LAB_ROOT := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)
LAB_ARGS ?=
lab: $(STAMP)
	$(PY) -c "import jupyterlab" 2>/dev/null || $(PY) -m pip install "jupyterlab>=4"
	$(PY) -m jupyterlab notebooks/ $(LAB_ROOT) $(LAB_ARGS)

# Executes all ten notebooks (about 6 minutes on two cores), then builds the site offline;
# open build/book/_build/html/index.html. BOOK_ARGS="--jupyterhub URL" adds a hub button.
BOOK_ARGS ?=
book: $(STAMP)
	$(PY) -m book $(BOOK_ARGS)

clean:
	rm -rf .venv build *.egg-info .pytest_cache .ruff_cache
