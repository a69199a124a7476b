"""A ground-truth set whose deciding feature varies within each class.

`benchmarks/baselines.py`'s `make_synthetic` draws the same 4x4 square (same place,
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
KernelSHAP's superpixels in `benchmarks/baselines.py` (`superpixel_grid(cell=4)`),
so a method that ranks whole cells can still put its 16 top pixels exactly on
the square: every baseline's ground-truth ceiling is 1 by construction (the
occlusion patch is 6x6 and not grid-aligned; `evaluate.py` measures
its ceiling with an oracle).

`train_varying_run` trains f, the explainable autoencoder and the decoder on
it with the project's own training functions (`siamese_xai.training`).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

CELL = 4  # the square's side, and the grid it sits on
# The 24 cells of the border ring of the 7x7 grid of 4x4 cells, clockwise from the top-left corner.
_RING = (
    [(0, 4 * c) for c in range(7)]
    + [(4 * r, 24) for r in range(1, 6)]
    + [(24, 4 * c) for c in range(6, -1, -1)]
    + [(4 * r, 0) for r in range(5, 0, -1)]
)
# Class k's two cells: adjacent on the ring; four ring cells are left empty as gaps between classes.
_LAYOUT = "001122_334455_667788_99_"  # one character per ring cell: the class, or _ for a gap
CLASS_CELLS = tuple(
    tuple(_RING[i] for i, ch in enumerate(_LAYOUT) if ch == str(k)) for k in range(10)
)
INTENSITY = (0.4, 1.0)


def make_varying_synthetic(digits, n: int, seed: int = 0, num_classes: int = 10):
    """Images whose class is decided by a square whose position and intensity vary within the class.

    Args:
        digits: `(m, 28, 28, 1)` float images in [0, 1] (MNIST digits).
        n: images to make.
        seed: the same seed gives the same set.
        num_classes: at most 10.

    Returns:
        `(x, y, regions, cell)`: `(n, 28, 28, 1)` float32 images, `(n,)` int64
        classes (balanced, shuffled), `(n, 28, 28)` bool the square of each
        image, `(n,)` int64 which of its class's two cells (0 or 1).
    """
    digits = np.asarray(digits, np.float32)
    if digits.ndim != 4 or digits.shape[1:] != (28, 28, 1):
        raise ValueError(f"`digits` must be (m, 28, 28, 1). Received: digits.shape={digits.shape}")
    if not 1 <= num_classes <= len(CLASS_CELLS):
        raise ValueError(f"`num_classes` must be in [1, {len(CLASS_CELLS)}]. Received: num_classes={num_classes}")
    if n < 1:
        raise ValueError(f"`n` must be positive. Received: n={n}")
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % num_classes).astype(np.int64)
    x = digits[rng.integers(0, len(digits), n)].copy()
    which = rng.integers(0, 2, n).astype(np.int64)
    level = rng.uniform(*INTENSITY, n).astype(np.float32)
    regions = np.zeros((n, 28, 28), bool)
    for i in range(n):
        r, c = CLASS_CELLS[y[i]][which[i]]
        regions[i, r : r + CELL, c : c + CELL] = True
        x[i, r : r + CELL, c : c + CELL, 0] = level[i]
    return x, y, regions, which


def train_varying_run(run_dir, digits, n_train: int = 4000, epochs=(2, 8, 8), pairs: int = 8000, seed: int = 0,
                      verbose: int = 0):
    """Trains f, the autoencoder and the decoder on `make_varying_synthetic` data (or loads them).

    Uses `siamese_xai.training` (the paper run's code) with its default
    learning rates; a run folder with the same settings is reused.

    Args:
        run_dir: where `snn.keras`, `decoder.keras`, `prototypes.npy` and `varying_config.json` go.
        digits: `(m, 28, 28, 1)` MNIST training digits to draw under the squares.
        n_train: training images.
        epochs: (Siamese network, autoencoder, decoder fine-tuning).
        pairs: pairs per Siamese epoch.
        seed: the data set's and the training's seed.

    Returns:
        `(explainer, info)`: a `SiameseExplainer` (paper defaults) and a dict
        with the training accuracy and wall times.
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
    stamp = {"config": config.to_dict(), "n_train": n_train, "data_seed": seed, "layout": _LAYOUT,
             "intensity": list(INTENSITY)}
    x, y, _, _ = make_varying_synthetic(digits, n_train, seed=seed)
    stamp_file = run_dir / "varying_config.json"
    if stamp_file.is_file() and files.read_json(stamp_file).get("stamp") == stamp:
        explainer = SiameseExplainer.from_run(run_dir)
        info = files.read_json(stamp_file)["info"]
        return explainer, info
    t0 = time.perf_counter()
    snn = training.train_siamese(x, y, config, verbose=verbose)
    t1 = time.perf_counter()
    h = training.predict(snn, x)
    _, decoder = training.train_autoencoder(x, h, config, verbose=verbose)
    t2 = time.perf_counter()
    decoder = training.finetune_decoder(decoder, x, h, config, verbose=verbose)
    t3 = time.perf_counter()
    protos = prototypes_from_embeddings(h, y, 10)
    recon = training.predict(decoder, h)
    info = {
        "train_accuracy": float(prototype_accuracy(h, y, protos)),
        "train_recon_sse": float(((recon - x) ** 2).sum(axis=(1, 2, 3)).mean()),
        "seconds": {"snn": round(t1 - t0, 1), "autoencoder": round(t2 - t1, 1), "decoder": round(t3 - t2, 1)},
    }
    runs.save_run(run_dir, snn, decoder, protos)
    files.write_json(stamp_file, {"stamp": stamp, "info": info})
    return SiameseExplainer.from_run(run_dir), info
