"""Training the network and explainer on the varying ground-truth set (`siamese_xai.synthetic`).

`siamese_xai.synthetic.make_synthetic` draws the same 4x4 square (same place,
intensity 1) in every image of a class: a negative control for the paper's
method, which moves h toward the class's own prototype and so only sees what
varies within a class. Here the square still decides the class, but it varies
within the class:

- position: each class owns two adjacent cells of a 4-pixel grid on the
  image's border ring (outside the 20x20 box where MNIST centres its digits);
  an image puts its square in one of them (a jitter of 4 pixels);
- intensity: uniform in [0.4, 1.0];
- under it, a random MNIST digit (its own label ignored).

Every square sits exactly on a cell of the 4-pixel grid, the grid of
KernelSHAP's superpixels in `siamese_xai/baselines.py` (`superpixel_grid(cell=4)`),
so a method that ranks whole cells can still put its 16 top pixels exactly on
the square: every baseline's ground-truth ceiling is 1 by construction (the
occlusion patch is 6x6 and not grid-aligned; `evaluate.py` measures
its ceiling with an oracle).

`train_synthetic_run` trains f, the explainable autoencoder and the decoder on
any ground-truth set with the project's own training functions
(`siamese_xai.training`); `train_varying_run` on this one.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from siamese_xai.synthetic import CELL, CLASS_CELLS, INTENSITY, LAYOUT, make_varying_synthetic  # noqa: F401


def train_varying_run(run_dir, digits, n_train: int = 4000, epochs=(2, 8, 8), pairs: int = 8000, seed: int = 0,
                      verbose: int = 0):
    """Trains f, the autoencoder and the decoder on `make_varying_synthetic` data (or loads them).

    Args:
        run_dir: the run folder.
        digits: `(m, 28, 28, 1)` MNIST training digits to draw under the squares.
        n_train: training images.
        epochs: (Siamese network, autoencoder, decoder fine-tuning).
        pairs: pairs per Siamese epoch.
        seed: the data set's and the training's seed.

    Returns:
        `(explainer, info)` as `train_synthetic_run`.
    """
    x, y, _, _ = make_varying_synthetic(digits, n_train, seed=seed)
    stamp = {"n_train": n_train, "data_seed": seed, "layout": LAYOUT, "intensity": list(INTENSITY)}
    return train_synthetic_run(run_dir, x, y, epochs, pairs, stamp, seed=seed, verbose=verbose,
                               stamp_name="varying_config.json")


def train_synthetic_run(run_dir, x, y, epochs=(2, 8, 8), pairs: int = 8000, stamp=None, num_classes: int = 10,
                        seed: int = 0, verbose: int = 0, stamp_name: str = "synthetic_config.json"):
    """Trains f, the autoencoder and the decoder on a ground-truth set (or loads them when already trained).

    Uses `siamese_xai.training` (the paper run's code) with its default
    learning rates; a run folder whose stamp (the settings and `stamp`) is the
    same is reused. The stamp file is written last, so its presence means the
    models are complete.

    Args:
        run_dir: where `snn.keras`, `decoder.keras`, `prototypes.npy` and the stamp go.
        x: `(n, 28, 28, 1)` training images; y: `(n,)` their classes.
        epochs: (Siamese network, autoencoder, decoder fine-tuning).
        pairs: pairs per Siamese epoch.
        stamp: what identifies the data (recorded and compared).
        num_classes: classes (prototypes).
        seed: the training's seed.

    Returns:
        `(explainer, info)`: a `SiameseExplainer` (paper defaults) and a dict
        with the training accuracy, reconstruction error and wall times.
    """
    from siamese_xai import files, runs, training
    from siamese_xai.config import AutoencoderConfig, DecoderConfig, SNNConfig, TrainConfig
    from siamese_xai.explain import SiameseExplainer
    from siamese_xai.prototypes import prototype_accuracy, prototypes_from_embeddings

    run_dir = Path(run_dir)
    config = TrainConfig(
        seed=seed,
        snn=SNNConfig(epochs=epochs[0], pairs_per_epoch=pairs),
        autoencoder=AutoencoderConfig(epochs=epochs[1]),
        decoder=DecoderConfig(epochs=epochs[2]),
    )
    stamp = {"config": config.to_dict(), **(stamp or {})}
    stamp_file = run_dir / stamp_name
    if stamp_file.is_file() and files.read_json(stamp_file).get("stamp") == stamp:
        return SiameseExplainer.from_run(run_dir), files.read_json(stamp_file)["info"]
    t0 = time.perf_counter()
    snn = training.train_siamese(x, y, config, verbose=verbose)
    t1 = time.perf_counter()
    h = training.predict(snn, x)
    _, decoder = training.train_autoencoder(x, h, config, verbose=verbose)
    t2 = time.perf_counter()
    decoder = training.finetune_decoder(decoder, x, h, config, verbose=verbose)
    t3 = time.perf_counter()
    protos = prototypes_from_embeddings(h, y, num_classes)
    recon = training.predict(decoder, h)
    info = {
        "train_accuracy": float(prototype_accuracy(h, y, protos)),
        "train_recon_sse": float(((recon - x) ** 2).sum(axis=(1, 2, 3)).mean()),
        "seconds": {"snn": round(t1 - t0, 1), "autoencoder": round(t2 - t1, 1), "decoder": round(t3 - t2, 1)},
    }
    runs.save_run(run_dir, snn, decoder, protos)
    files.write_json(stamp_file, {"stamp": stamp, "info": info})
    return SiameseExplainer.from_run(run_dir), info
