"""Class prototypes (Snell et al.): mean embeddings per class, and nearest-prototype classification."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from siamese_xai.explainers._graph import nearest_prototype_tensors


def embed_in_batches(embed, x, batch_size: int = 1024) -> np.ndarray:
    """Applies a black-box embedding to `x` in batches.

    Args:
        embed: callable from `(batch, ...)` inputs to `(batch, D)` embeddings
            (a Keras model, a SavedModel signature or a NumPy function).
        x: `(n, ...)` inputs.
        batch_size: inputs per call.

    Returns:
        `(n, D)` float32 embeddings.
    """
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer. Received: batch_size={batch_size!r}")
    parts = [np.asarray(embed(x[i : i + batch_size]), dtype=np.float32) for i in range(0, len(x), batch_size)]
    if not parts:
        raise ValueError("`x` must hold at least one input. Received: an empty array")
    return np.concatenate(parts, axis=0)


def compute_prototypes(embed, x, y, num_classes: int | None = None, batch_size: int = 1024) -> np.ndarray:
    """Computes class prototypes c_k = mean of f(x_i) over training examples of class k.

    Args:
        embed: the embedding f, a callable from `(batch, ...)` to `(batch, D)`.
        x: `(n, ...)` training inputs.
        y: `(n,)` integer labels in `[0, num_classes)`.
        num_classes: C; defaults to `max(y) + 1`.
        batch_size: inputs per call of `embed`.

    Returns:
        `(C, D)` float32 prototypes.
    """
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(
            f"`y` must be a 1-D array of labels, one per input. Received: y.shape={y.shape} for {len(x)} inputs"
        )
    h = embed_in_batches(embed, x, batch_size)
    return prototypes_from_embeddings(h, y, num_classes)


def prototypes_from_embeddings(h, y, num_classes: int | None = None) -> np.ndarray:
    """Class means of precomputed embeddings.

    Args:
        h: `(n, D)` embeddings.
        y: `(n,)` integer labels.
        num_classes: C; defaults to `max(y) + 1`.

    Returns:
        `(C, D)` float32 prototypes.
    """
    h = np.asarray(h, dtype=np.float64)
    y = np.asarray(y).astype(np.int64)
    if num_classes is None:
        num_classes = int(y.max()) + 1
    counts = np.bincount(y, minlength=num_classes)
    if len(counts) > num_classes or (counts == 0).any():
        missing = np.flatnonzero(counts[:num_classes] == 0).tolist()
        raise ValueError(
            f"Every class in [0, {num_classes}) needs at least one example. "
            f"Received: labels with classes {missing} missing or out of range"
        )
    sums = np.zeros((num_classes, h.shape[1]))
    np.add.at(sums, y, h)
    return (sums / counts[:, None]).astype(np.float32)


def nearest_prototype(h, prototypes):
    """Classifies embeddings by their nearest prototype (Euclidean).

    Args:
        h: `(B, D)` embeddings.
        prototypes: `(C, D)` prototypes.

    Returns:
        `(classes, distances)`: `(B,)` int64 nearest class and `(B, C)` float32
        Euclidean distances to every prototype.
    """
    h = np.asarray(h, dtype=np.float32)
    prototypes = np.asarray(prototypes, dtype=np.float32)
    if h.ndim != 2 or prototypes.ndim != 2 or h.shape[1] != prototypes.shape[1]:
        raise ValueError(
            "`h` and `prototypes` must be (B, D) and (C, D) with the same D. "
            f"Received: h.shape={h.shape}, prototypes.shape={prototypes.shape}"
        )
    # The explanation graph's own implementation, so the two never disagree.
    classes, distances = nearest_prototype_tensors(tf.constant(h), tf.constant(prototypes))
    return classes.numpy(), distances.numpy()


def prototype_accuracy(h, y, prototypes) -> float:
    """Share of embeddings whose nearest prototype is their label."""
    classes, _ = nearest_prototype(h, prototypes)
    return float((classes == np.asarray(y)).mean())


def between_class_sq_distance(means) -> float:
    """Mean squared distance between two *different* class means.

    Args:
        means: `(C, D)` class means (C >= 2).

    Returns:
        `mean_{k != l} ||means_k - means_l||^2`, over the C (C - 1) ordered
        pairs: the C zero distances of a class to itself are left out (with
        them the mean is (C - 1) / C of this, 10% low for 10 classes).
    """
    means = np.asarray(means, dtype=np.float64)
    if means.ndim != 2 or len(means) < 2:
        raise ValueError(f"`means` must be (C, D) with C >= 2. Received: shape {means.shape}")
    sq = np.sum((means[:, None] - means[None]) ** 2, axis=-1)
    c = len(means)
    return float(sq.sum() / (c * (c - 1)))
