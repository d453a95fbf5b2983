# Two commands for users:  `make repro` (set up + rebuild every table and figure)  and  `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)

.PHONY: setup repro rebuild test notebooks paper-profile

setup: $(VENV)/.installed

# The environment comes from the project's own files: pyproject.toml pins torch, torchaudio and
# torchvision together (the PyPI CUDA build, which also runs on CPU). facenet-pytorch (MTCNN, whose
# weights ship in its wheel: CREMA-D's face features, mcrlib/data/face_features.py) is installed
# with --no-deps: its metadata pins torch<2.3, torchvision<0.18, numpy<2 and Pillow<10.3, which
# conflict with ours, while its code runs on our versions. This recipe installs it, so the
# environment depends on the Makefile too.
$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[dev]'
	$(BIN)/pip install --no-deps facenet-pytorch==2.6.0
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
