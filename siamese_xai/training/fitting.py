"""An explainer for your own Siamese network in one call: `fit_explainer`.

`train_run` trains the paper's whole pipeline on MNIST, the Siamese network
included. A user who already has an embedding f (a black box: any callable
from a batch of images to a batch of embeddings) needs only Part 1's last two
stages and the prototypes; `fit_explainer` runs them:

    explainer = fit_explainer(f, x_train, y_train)
    e = explainer.explain(x_test[:8])
"""

from __future__ import annotations

import numpy as np

from siamese_xai import runs
from siamese_xai.explainers import prototypes
from siamese_xai.training import loop
from siamese_xai.training import stages as training
from siamese_xai.training.distribute import make_strategy
from siamese_xai.config import TrainConfig


def fit_explainer(
    embed,
    x,
    y,
    config: TrainConfig | None = None,
    *,
    num_classes: int | None = None,
    class_names=None,
    explain_config=None,
    run_dir=None,
    strategy=None,
    batch_size: int = 1000,
    verbose: int = 1,
):
    """Trains the explainable autoencoder and its decoder against `embed`, and builds the explainer.

    f's embeddings of `x` are computed once (f stays frozen), the autoencoder
    is trained with the joint loss (`training.train_autoencoder`), its decoder
    is fine-tuned on f's own embeddings (`training.finetune_decoder`), and the
    prototypes are the class means of f(x).

    Args:
        embed: f, a callable from `(batch, 28, 28, 1)` float32 images to
            `(batch, D)` embeddings (a Keras model, a SavedModel signature, a
            NumPy function).
        x: `(n, 28, 28, 1)` float32 training images in [0, 1].
        y: `(n,)` integer class labels in `[0, num_classes)`.
        config: a `TrainConfig` (uses `embedding_dim`, `seed`, `autoencoder`,
            `decoder`, `train_limit`, `deterministic`); its `embedding_dim`
            must be D. None: `TrainConfig(embedding_dim=D)`, the paper's
            settings for D read from f's output.
        num_classes: C; defaults to `max(y) + 1` (or the number of `class_names`).
        class_names: the classes' names in label order (None: "0", "1", ...);
            the explainer carries them and the run folder records them
            (`classes.json`).
        explain_config: the returned explainer's `ExplainConfig` (None: the
            paper's defaults).
        run_dir: where the stages' checkpoints and TensorBoard logs go (a
            killed call resumes from them); when `embed` is a Keras model the
            explainer's files are written there too (`runs.save_run`), so
            `SiameseExplainer.from_run(run_dir)` loads it, and the explainer
            carries the folder's `run_id`. None: nothing is written.
        strategy: a `tf.distribute.Strategy` or its name (see
            `siamese_xai.training.distribute.make_strategy`).
        batch_size: images per call of `embed`.
        verbose: 1 shows progress.

    Returns:
        A `SiameseExplainer(embed, decoder, prototypes, explain_config)`.

    Raises:
        ValueError: `x` and `y` do not match, `class_names` does not name C
            classes, or `config.embedding_dim` is not the length of f's embeddings.
    """
    import keras

    from siamese_xai.explainers.siamese import SiameseExplainer

    x = np.asarray(x, np.float32)
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(f"`y` must be (n,): one label per image. Received: y.shape={y.shape} for x.shape={x.shape}")
    if class_names is not None:
        class_names = tuple(str(c) for c in class_names)
        if num_classes is None:
            num_classes = len(class_names)
        elif len(class_names) != num_classes:
            raise ValueError(
                f"`class_names` must name each of the {num_classes} classes. Received: {len(class_names)} names"
            )
    if config is not None and config.train_limit:
        x, y = x[: config.train_limit], y[: config.train_limit]
    h = prototypes.embed_in_batches(embed, x, batch_size)
    if h.ndim != 2:
        raise ValueError(f"`embed` must map (batch, ...) images to (batch, D) embeddings. Received: outputs of shape {h.shape}")
    dim = h.shape[1]
    if config is None:
        config = TrainConfig(embedding_dim=dim)
    elif config.embedding_dim != dim:
        raise ValueError(
            f"`config.embedding_dim` must be the length of embed's embeddings, {dim}. "
            f"Received: config.embedding_dim={config.embedding_dim}"
        )
    protos = prototypes.prototypes_from_embeddings(h, y, num_classes)
    if config.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    strategy = make_strategy(strategy)
    encoder, decoder = training.train_autoencoder(x, h, config, run_dir, strategy, verbose)
    decoder = training.finetune_decoder(decoder, x, h, config, run_dir, strategy, verbose)
    identity = None
    if run_dir is not None and isinstance(embed, (keras.Model, runs.SavedModelTower)) and loop.is_chief(strategy):
        identity = runs.save_run(run_dir, embed, decoder, protos, encoder=encoder, class_names=class_names)
    return SiameseExplainer(embed, decoder, protos, explain_config, run_id=identity, class_names=class_names)
