"""Shared fixtures. Tests read the real MNIST copy beside the project (../shared)."""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_SHARED = Path(__file__).resolve().parents[1].parent / "shared"
if "TFDS_DATA_DIR" not in os.environ and (_SHARED / "tensorflow_datasets" / "mnist").is_dir():
    os.environ["TFDS_DATA_DIR"] = str(_SHARED / "tensorflow_datasets")

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

RAW_MNIST_DIR = _SHARED / "datasets" / "mnist"


@pytest.fixture(scope="session")
def raw_mnist_dir():
    if not RAW_MNIST_DIR.is_dir():
        pytest.fail(f"the raw MNIST files are expected in {RAW_MNIST_DIR}")
    return RAW_MNIST_DIR


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A run folder trained with the tiny config on real MNIST (seconds)."""
    from siamese_xai import training
    from siamese_xai.config import TrainConfig

    run_dir = tmp_path_factory.mktemp("tiny_run")
    metrics = training.train_run(TrainConfig.tiny(), run_dir, verbose=0)
    return run_dir, metrics
