# Two commands for users:  `make repro` (set up + rebuild every table and figure)  and  `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)

.PHONY: setup repro rebuild test notebooks paper-profile

setup: $(VENV)/.installed

# The environment comes from the project's own files: pyproject.toml pins torch, torchaudio and
# torchvision together (the PyPI CUDA build, which also runs on CPU).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[dev]'
	touch $@

repro: setup
	dvc repro

# Every stage again, although the committed results are current (a check that they reproduce).
rebuild: setup
	dvc repro --force

# Unit and pipeline tests, then every notebook with its smoke parameters under nbval.
test: setup
	pytest tests
	pytest --nbval-lax notebooks

# Re-pair the .ipynb files with their .py sources and store a smoke run's outputs in them
# (nbval compares the cells marked NBVAL_CHECK_OUTPUT against these).
notebooks: setup
	jupytext --sync notebooks/*.py
	for nb in notebooks/*.ipynb; do jupytext --execute --set-kernel python3 "$$nb"; done

# Switch params.yaml to the paper's datasets and settings (GPU); `git checkout params.yaml` undoes it.
paper-profile:
	cp profiles/paper.yaml params.yaml
