"""Training the network and explainer on the varying ground-truth set (`siamese_xai.evaluation.synthetic`).

`siamese_xai.evaluation.synthetic.make_synthetic` draws the same 4x4 square (same place,
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
KernelSHAP's superpixels in `siamese_xai/evaluation/baselines.py` (`superpixel_grid(cell=4)`),
so a method that ranks whole cells can still put its 16 top pixels exactly on
the square: every baseline's ground-truth ceiling is 1 by construction (the
occlusion patch is 6x6 and not grid-aligned; `evaluate.py` measures
its ceiling with an oracle).

`train_synthetic_run` trains f, the explainable autoencoder and the decoder on
any ground-truth set with the project's own training functions
(`siamese_xai.training.stages`); `train_varying_run` on this one.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from siamese_xai.evaluation.synthetic import INTENSITY, LAYOUT, make_varying_synthetic


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


OBJECTIVES = ("contrastive", "classifier")


def train_classifier_embedding(x, y, num_classes: int, epochs: int, seed: int = 0, embedding_dim: int = 20,
                               batch_size: int = 128, verbose: int = 0):
    """f trained as a classifier: the Siamese subnetwork with a linear softmax head, the head then dropped.

    The subnetwork is `siamese_xai.training.models.build_siamese_subnetwork` (the paper's
    f); a `Dense(num_classes)` head over ReLU(h) is trained with Keras's
    `fit` (Adam, cross-entropy) and discarded, so f still maps an image to
    its `(D,)` embedding and the class prototypes are still mean embeddings.

    Args:
        x: `(n, H, W, 1)` training images; y: `(n,)` their classes in [0, num_classes).
        num_classes: classes of the head.
        epochs: passes over the images.
        seed: Keras's random seed (weights, shuffling).

    Returns:
        The trained subnetwork f, `(batch, H, W, 1) -> (batch, D)`.
    """
    import keras

    from siamese_xai.training import models

    keras.utils.set_random_seed(seed)
    f = models.build_siamese_subnetwork(embedding_dim, image_shape=tuple(x.shape[1:]))
    head = keras.Sequential([f, keras.layers.ReLU(), keras.layers.Dense(num_classes)], name="classifier")
    head.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    head.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=verbose)
    return f


def train_synthetic_run(run_dir, x, y, epochs=(2, 8, 8), pairs: int = 8000, stamp=None, num_classes: int = 10,
                        seed: int = 0, verbose: int = 0, stamp_name: str = "synthetic_config.json",
                        objective: str = "contrastive"):
    """Trains f, the autoencoder and the decoder on a ground-truth set (or loads them when already trained).

    Uses `siamese_xai.training.stages` (the paper run's code) with its default
    learning rates; a run folder whose stamp (the settings and `stamp`) is the
    same is reused. The stamp file is written last, so its presence means the
    models are complete.

    f is trained with the paper's contrastive loss (`objective="contrastive"`)
    or as a classifier whose head is then dropped (`"classifier"`,
    `train_classifier_embedding`, for `epochs[0]` epochs; `pairs` unused): a
    set on which the contrastive loss does not give a network that decides by
    the set's true region still gets one, and the method explains any f.

    Args:
        run_dir: where `snn.keras`, `decoder.keras`, `prototypes.npy` and the stamp go.
        x: `(n, 28, 28, 1)` training images; y: `(n,)` their classes.
        epochs: (Siamese network, autoencoder, decoder fine-tuning).
        pairs: pairs per Siamese epoch.
        stamp: what identifies the data (recorded and compared).
        num_classes: classes (prototypes).
        seed: the training's seed.
        objective: how f is trained, one of `OBJECTIVES`.

    Returns:
        `(explainer, info)`: a `SiameseExplainer` (paper defaults) and a dict
        with the training accuracy, reconstruction error and wall times.
    """
    from siamese_xai import files, runs
    from siamese_xai.explainers.prototypes import embed_in_batches
    from siamese_xai.training import stages as training
    from siamese_xai.config import AutoencoderConfig, DecoderConfig, SNNConfig, TrainConfig
    from siamese_xai.explainers.siamese import SiameseExplainer
    from siamese_xai.explainers.prototypes import prototype_accuracy, prototypes_from_embeddings

    if objective not in OBJECTIVES:
        raise ValueError(f"`objective` must be one of {OBJECTIVES}. Received: objective={objective!r}")
    run_dir = Path(run_dir)
    config = TrainConfig(
        seed=seed,
        snn=SNNConfig(epochs=epochs[0], pairs_per_epoch=pairs),
        autoencoder=AutoencoderConfig(epochs=epochs[1]),
        decoder=DecoderConfig(epochs=epochs[2]),
    )
    stamp = {"config": config.to_dict(), **(stamp or {})}
    if objective != "contrastive":  # the contrastive runs' stamps stay as they were
        stamp["objective"] = objective
    stamp_file = run_dir / stamp_name
    if stamp_file.is_file() and files.read_json(stamp_file).get("stamp") == stamp:
        return SiameseExplainer.from_run(run_dir), files.read_json(stamp_file)["info"]
    t0 = time.perf_counter()
    if objective == "classifier":
        snn = train_classifier_embedding(x, y, num_classes, epochs[0], seed=seed, verbose=verbose)
    else:
        snn = training.train_siamese(x, y, config, verbose=verbose)
    t1 = time.perf_counter()
    h = embed_in_batches(snn, x, 1000)
    _, decoder = training.train_autoencoder(x, h, config, verbose=verbose)
    t2 = time.perf_counter()
    decoder = training.finetune_decoder(decoder, x, h, config, verbose=verbose)
    t3 = time.perf_counter()
    protos = prototypes_from_embeddings(h, y, num_classes)
    recon = embed_in_batches(decoder, h, 1000)
    info = {
        "objective": objective,
        "train_accuracy": float(prototype_accuracy(h, y, protos)),
        "train_recon_sse": float(((recon - x) ** 2).sum(axis=(1, 2, 3)).mean()),
        "seconds": {"snn": round(t1 - t0, 1), "autoencoder": round(t2 - t1, 1), "decoder": round(t3 - t2, 1)},
    }
    runs.save_run(run_dir, snn, decoder, protos)
    files.write_json(stamp_file, {"stamp": stamp, "info": info})
    return SiameseExplainer.from_run(run_dir), info
