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
# Scripts run through the package's quiet start-up: progress and results, not TensorFlow's
# start-up lines (`make ... SIAMESE_XAI_VERBOSE=1` shows them).
RUN_PY := $(PY) -m siamese_xai.startup

RUN := runs/paper
FIGS := $(foreach n,4 5 6 7 8 9,figures/fig$(n).png) figures/fig9_contrast.png figures/sq_grid.png figures/convergence.png
# `make reproduce FORCE=1` reruns every step; otherwise a step whose outputs
# are newer than its inputs is skipped (and training skips finished stages).
ifdef FORCE
  FORCE_DEP := .force
  TRAIN_FLAGS := --force
endif

.PHONY: setup test test-slow reproduce clean bench evaluate cost-curves pairs probe-flips digits seeds mutants mutants-all photos explain-memory .force

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,eval,beam]'
	touch $@

setup: $(VENV)/.installed

# The test suite: every test but those marked slow (end to end: networks trained, processes killed and resumed).
test: setup
	$(PY) -m pytest -q -m "not slow" --durations=15

# The slow end-to-end tests (train and explain-split killed and resumed, one- and two-worker clusters, the wheel
# in a fresh environment, the benchmarks' quick modes). CI runs them after `make test`.
test-slow: setup
	$(PY) -m pytest -q -m slow --durations=15

# The paper's reproduction end to end: train, Figs. 4-9 and two more, the report.
# The last lines say, per quantity, whether this run falls inside the band across seeds (figures/seeds.json).
reproduce: setup figures/REPORT.md
	$(RUN_PY) -m reproduce.report --run $(RUN) --out figures --check-band

$(RUN)/metrics.json: $(FORCE_DEP) | $(VENV)/.installed
	$(RUN_PY) -m reproduce.train --out $(RUN) $(TRAIN_FLAGS)

# All figures in one process (one TensorFlow start-up, the run and MNIST loaded once).
$(FIGS) &: reproduce/figures.py $(FIGS:figures/%.png=reproduce/%.py) reproduce/paper.py $(RUN)/metrics.json $(FORCE_DEP) | $(VENV)/.installed
	$(RUN_PY) -m reproduce.figures --run $(RUN) --out figures

# The paper's figure claims as tests over many test images (reproduce/claims.py's docstring has the rules).
figures/claims.json: reproduce/claims.py $(RUN)/metrics.json $(FORCE_DEP) | $(VENV)/.installed
	$(RUN_PY) -m reproduce.claims --run $(RUN) --out figures

figures/REPORT.md: reproduce/report.py $(FIGS) figures/claims.json $(FORCE_DEP) | $(VENV)/.installed
	$(RUN_PY) -m reproduce.report --run $(RUN) --out figures

# The benchmark (docs/evaluation.md): the model-parameter randomisation check, then every registered method on
# MNIST (ROAD and deletion/insertion of the margin; verdicts by paired tests against a declared margin, Holm-corrected) and on three ground-truth sets.
# Full mode; the times of both are in their JSON files (`seconds`); the first run also trains runs/synthetic,
# runs/varying and runs/shapes.
evaluate: setup $(RUN)/metrics.json
	$(RUN_PY) -m benchmarks.evaluation.randomisation --run $(RUN)
	$(RUN_PY) -m benchmarks.evaluation.evaluate --run $(RUN)

# Quality (ROAD, most relevant first) against f calls per image for kernelshap_margin, distance_explainer_margin and
# probe over a range of their budgets, on the first 20 MNIST test images; writes
# benchmarks/evaluation/cost_curves.json and docs/cost_curves.png.
cost-curves: setup $(RUN)/metrics.json
	$(RUN_PY) -m benchmarks.evaluation.cost_curves --run $(RUN) --n 20

# The pair benchmark with known answers (docs/pairs.md; the rules in benchmarks/evaluation/pairs.py's docstring): why two
# images are the same identity or differ, every method in one run; writes benchmarks/evaluation/pairs.json and PAIRS.md. The first
# run trains runs/pair-set and runs/pair-mnist and creates .venv-peers, the separate environment of distance-explainer
# and xaitk-saliency (they pull in PyTorch).
pairs: setup
	$(RUN_PY) -m benchmarks.evaluation.pairs

# How often the probe's counterfactuals flip f's decision on MNIST, the shapes set, the pair set (class and rank
# questions) and MNIST digits 5-9 explained by a network trained on 0-4 (few-shot); writes benchmarks/evaluation/probe_flips.json.
# The first run trains four small networks into runs/probe-flips (docs/asking-the-network.md has the times).
probe-flips: setup
	$(RUN_PY) -m benchmarks.evaluation.probe_flips

# The method on scikit-learn's 8x8 digits through the image-folder path (about 3 minutes).
digits: setup
	$(RUN_PY) -m reproduce.digits --work runs/digits --out figures

# Photo-sized images (docs/photos.md): writes the 96x96 and 224x224 class-folder trees under runs/photos, trains
# each with `siamese-xai train` and its defaults and fits an explainer to a tower trained with plain Keras, and
# writes benchmarks/speed/photos.json (times, peak memory, accuracy, g(f(x)) error). PHOTO_SIZES="96" for the first only.
PHOTO_SIZES ?= 96 224
photos: setup
	$(RUN_PY) -m benchmarks.speed.photos run --work runs/photos --sizes $(PHOTO_SIZES)

# Explaining one image with mc (N = 5000) at 28, 96 and 224 px, each in its own process (docs/photos.md): peak
# resident memory and seconds under the default memory budget and under 256 MiB, and 96 px with the split at the kinks
# summing 1000 draws at once (as before its cache-sized blocks); writes benchmarks/speed/explain_memory.json.
explain-memory: setup
	$(RUN_PY) -m benchmarks.speed.explain_memory run --budgets-mb 256 --compare-block-mb 1024

# The whole reproduction with training seeds 1-5 (one full training each; resumable: rerun after an interruption).
seeds: setup
	$(RUN_PY) -m reproduce.seeds --work runs/seeds --out figures

# Mutation testing of the method's core (setup.cfg [mutmut]), then the per-module summary in
# tools/mutants.json. MUTANTS names the mutated functions (mutmut's names, globs allowed). `make mutants`
# runs a seeded sample of MUTANTS_PER_MODULE mutants of each module (every mutant of a smaller one;
# tools/mutants_sample.py), `make mutants-all` every mutant (hours); MUTANTS_JOBS mutants at a time.
MUTANTS ?= siamese_xai.runs.x_run_id* siamese_xai.scale.shards.x__manifest* siamese_xai.scale.shards.x__check_manifest* \
	siamese_xai.training.loop.x_fit* siamese_xai.training.loop.x_worker_dir* siamese_xai.training.loop.x_is_chief* siamese_xai.training.loop.x__record_session* \
	siamese_xai.training.loop.x_read_sessions* siamese_xai.explainers._graph.x_explain_graph* siamese_xai.explainers._graph.x_nearest_prototype_tensors* \
	siamese_xai.explainers._graph.x_top_q_mask* siamese_xai.explainers._graph.x_perturbation_draws* siamese_xai.explainers.contrast.x_runner_up* \
	siamese_xai.explainers.contrast.x_path_points* siamese_xai.explainers.contrast.x__group_sums* siamese_xai.explainers.contrast.x_contrast_graph* \
	siamese_xai.decoding.rules.x* siamese_xai.decoding.fused.x* siamese_xai.decoding.exact.x* \
	siamese_xai.decoding.kinks.x* siamese_xai.decoding.chain.x* siamese_xai.decoding.evaluator.x*
MUTANTS_PER_MODULE ?= 30
MUTANTS_JOBS ?= 2
mutants: MUTANTS_START := $(shell date +%s)
mutants: setup
	$(RUN_PY) -m tools.mutants_sample --per-module $(MUTANTS_PER_MODULE) --targets $(foreach m,$(MUTANTS),"$(m)") > mutants-sample.txt
	nice -n 10 $(VENV)/bin/mutmut run --max-children $(MUTANTS_JOBS) $$(cat mutants-sample.txt) || true
	$(RUN_PY) -m tools.mutants_summary --mutants mutants --out tools/mutants.json --seconds $$(( $$(date +%s) - $(MUTANTS_START) )) \
		--per-module $(MUTANTS_PER_MODULE) --targets $(foreach m,$(MUTANTS),"$(m)")

mutants-all:
	$(MAKE) mutants MUTANTS_PER_MODULE=0

bench: setup
	$(RUN_PY) -m benchmarks.speed.bench_speed --run $(RUN)

clean:
	rm -rf $(VENV) runs
