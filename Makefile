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

.PHONY: setup test reproduce train clean

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

setup: $(VENV)/.installed

test: setup
	$(PY) -m pytest -q

# The paper's reproduction end to end (training stage: runs/paper/).
reproduce: setup
	$(PY) reproduce/train.py --out runs/paper

clean:
	rm -rf $(VENV) runs
