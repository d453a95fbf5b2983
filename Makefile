# Two commands for users:  `make repro` (set up + rebuild every table and figure)  and  `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)

.PHONY: setup repro rebuild test test-other-kernels notebooks paper-profile paper-rehearsal replicate-other-kernels plots-template

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
	$(MAKE) test-other-kernels

# The formula and gradient tests again under another kernel family (ATen's default, non-vectorised
# CPU capability; oneDNN capped at AVX2): a test that holds only by one CPU's rounding fails here,
# on the developer's machine, instead of on a user's (Intel and AMD, AVX2 and AVX-512 round
# differently). The whole suite passes under these settings too; this subset keeps CI short.
OTHER_KERNELS := ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=AVX2
KERNEL_SENSITIVE := tests/test_losses.py tests/test_mipd.py tests/test_perturbations.py tests/test_transformer.py \
	tests/test_pretrained_encoders.py tests/test_fused_contrastive.py tests/test_resnet.py tests/test_ensemble.py \
	tests/test_mlb.py tests/test_ogm.py tests/test_agm.py tests/test_mmpareto.py tests/test_reconboost.py \
	tests/test_inference.py tests/test_paired_stats.py tests/test_robustness.py tests/test_higher_order_losses.py \
	tests/test_measures.py tests/test_trainer.py tests/test_confu_model.py
test-other-kernels: setup
	$(OTHER_KERNELS) pytest -q $(KERNEL_SENSITIVE)

# DVC's plots page with vega, vega-lite and vega-embed inlined (.dvc/plots/offline.html, committed):
# `dvc plots show/diff` then draw their data plots offline. Needs npm; rerun to change the versions.
plots-template:
	rm -rf .plots-npm && mkdir .plots-npm && cd .plots-npm && npm pack vega@5.20.2 vega-lite@5.2.0 vega-embed@6.18.2
	python tools/offline_plots_template.py .plots-npm && rm -rf .plots-npm

# Re-pair the .ipynb files with their .py sources and store a smoke run's outputs in them
# (nbval compares the cells marked NBVAL_CHECK_OUTPUT against these).
notebooks: setup
	jupytext --sync notebooks/*.py
	for nb in notebooks/*.ipynb; do jupytext --execute --set-kernel python3 "$$nb"; done

# The paper's datasets and settings (GPU): every stage under profiles/paper.yaml (its overrides of
# params.yaml), into results/paper/ and figures/paper/; params.yaml and the committed quick results
# are not touched. It runs outside DVC, prepare first, then dvc.yaml's notebook stages in order:
# no stage is skipped as up to date, but every run already in the run cache is read, not retrained.
paper-profile: setup
	python -m mcrlib.pipeline --profile paper

# A rehearsal of the paper profile on CPU, no GPU and no data needed (issue 25): fabricated samples of
# every paper dataset at real sizes through every `prepare`, then every run of the profile built at
# the paper's shapes: its FLOPs per step counted on the meta device, time and peak memory measured on
# real steps within budgets, into results/paper_rehearsal/; then the GPU-hour estimate from them
# (cost.md, README's paper-profile section). About 23 min on 2 idle cores (docs/paper-rehearsal.md).
paper-rehearsal: setup
	nice -n 19 python -m benchmarks.paper_rehearsal
	python -m benchmarks.paper_cost

# The AV-Digits primary claims retrained under other CPU kernels (oneDNN at SSE4.1: every
# convolution of the ResNets rounds differently) into their own run cache: issue 23's sensitivity
# check (benchmarks/replicate_primary.py; it refuses settings that change no operation). Writes
# results/other-runs/other-kernels-primary/, which the report shows as a sensitivity column. A
# ResNet step costs about 1.3x the native one: 150 benchmark runs, then the ablations' Tables 2-4
# on AV-Digits, on 2 cores; it resumes from its own cache.
replicate-other-kernels: setup
	ONEDNN_MAX_CPU_ISA=SSE41 python -m benchmarks.replicate_primary
