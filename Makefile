# Each target creates .venv if missing and installs the package with the
# extras it needs, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SHARED_TFDS := $(abspath ../shared/tensorflow_datasets)
# Use the shared MNIST copy beside the project when the user has not chosen one.
ifeq ($(origin TFDS_DATA_DIR), undefined)
  ifneq ($(wildcard $(SHARED_TFDS)/mnist),)
    export TFDS_DATA_DIR := $(SHARED_TFDS)
  endif
endif
export TF_CPP_MIN_LOG_LEVEL ?= 2

RUN := runs/paper
FIGS := $(foreach n,4 5 6 7 8 9,figures/fig$(n).png) figures/fig9_contrast.png figures/sq_grid.png figures/convergence.png
# `make reproduce FORCE=1` reruns every step; otherwise a step whose outputs
# are newer than its inputs is skipped (and training skips finished stages).
ifdef FORCE
  FORCE_DEP := .force
  TRAIN_FLAGS := --force
endif

.PHONY: setup test test-fast reproduce clean bench evaluate digits mutants .force

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,eval]'
	touch $@

setup: $(VENV)/.installed

# The whole suite, slow tests included (what CI runs).
test: setup
	$(PY) -m pytest -q --durations=10

# The inner loop: everything but the tests marked slow.
test-fast: setup
	$(PY) -m pytest -q -m "not slow"

# The paper's reproduction end to end: train, Figs. 4-9 and two more, the report.
reproduce: setup figures/REPORT.md

$(RUN)/metrics.json: $(FORCE_DEP) | $(VENV)/.installed
	$(PY) reproduce/train.py --out $(RUN) $(TRAIN_FLAGS)

figures/%.png: reproduce/%.py $(RUN)/metrics.json $(FORCE_DEP) | $(VENV)/.installed
	$(PY) $< --run $(RUN) --out figures

figures/REPORT.md: reproduce/report.py $(FIGS) $(FORCE_DEP) | $(VENV)/.installed
	$(PY) reproduce/report.py --run $(RUN) --out figures

# The evaluation on MNIST and the two synthetic sets against baselines and model-free orderings, after the
# model-parameter randomisation check whose result (benchmarks/randomisation.json) its verdicts read. Full mode;
# the times of both are in their JSON files (`seconds`); the first run also trains runs/synthetic and runs/varying.
evaluate: setup $(RUN)/metrics.json
	$(PY) benchmarks/randomisation.py --run $(RUN)
	$(PY) benchmarks/evaluate.py --run $(RUN)

# The method on scikit-learn's 8x8 digits through the image-folder path (about 3 minutes).
digits: setup
	$(PY) reproduce/digits.py --work runs/digits --out figures

# Mutation testing of the method's core (setup.cfg [mutmut]): one mutant at a time, then the per-module summary
# in benchmarks/mutants.json. MUTANTS names the mutated functions (mutmut's names, globs allowed).
MUTANTS ?= siamese_xai.runs.x_run_id* siamese_xai.shards.x__manifest* siamese_xai.shards.x__check_manifest* \
	siamese_xai.loop.x_fit* siamese_xai._graph.x_explain_graph* siamese_xai._graph.x_nearest_prototype_tensors* \
	siamese_xai._graph.x_top_q_mask* siamese_xai._graph.x_perturbation_draws*
mutants: setup
	start=$$(date +%s); $(VENV)/bin/mutmut run --max-children 1 $(foreach m,$(MUTANTS),"$(m)"); \
	$(PY) benchmarks/mutants_summary.py --mutants mutants --out benchmarks/mutants.json --seconds $$(( $$(date +%s) - start ))

bench: setup
	$(PY) benchmarks/bench_speed.py --run $(RUN)

clean:
	rm -rf $(VENV) runs
