"""Loss math as pure functions of tensors.

Pair-label convention (the paper's, stated once for the package): z = 0 for a
similar pair (same class), z = 1 for a dissimilar pair (different classes).

Every function returns per-example values; averaging (and, under a
`tf.distribute` strategy, division by the global batch size) is the training
loop's job.
"""

from __future__ import annotations

import tensorflow as tf


def squared_distance(a, b):
    """||a - b||^2 over the last axis. `(batch, D), (batch, D) -> (batch,)`."""
    return tf.reduce_sum(tf.square(a - b), axis=-1)


def contrastive_loss(h_i, h_j, z, tau: float = 1.0):
    """Contrastive loss of pairs, as in the paper.

    `l = (1 - z) ||h_i - h_j||^2 + z max(0, tau - ||h_i - h_j||^2)`

    Args:
        h_i: `(batch, D)` embeddings of the first inputs.
        h_j: `(batch, D)` embeddings of the second inputs.
        z: `(batch,)` pair labels, 0 similar, 1 dissimilar.
        tau: the threshold on the squared distance of dissimilar pairs.

    Returns:
        `(batch,)` per-pair losses.
    """
    d2 = squared_distance(h_i, h_j)
    z = tf.cast(z, d2.dtype)
    return (1.0 - z) * d2 + z * tf.maximum(0.0, tau - d2)


def reconstruction_sse(x, x_rec):
    """Per-example sum of squared errors ||x - x_rec||^2. `(batch, ...) -> (batch,)`."""
    diff = tf.reshape(x - x_rec, [tf.shape(x)[0], -1])
    return tf.reduce_sum(tf.square(diff), axis=-1)


def joint_autoencoder_loss(x, x_rec, h, code, alpha: float = 1.0, beta: float = 1.0):
    """The explainable autoencoder's joint loss, without the regularizer.

    `alpha ||x - g(e(x))||^2 + beta ||h - e(x)||^2`, with h = f(x) a fixed
    target (no gradient flows into the Siamese network).

    Args:
        x: `(batch, 28, 28, 1)` inputs.
        x_rec: `(batch, 28, 28, 1)` reconstructions g(e(x)).
        h: `(batch, D)` Siamese embeddings f(x).
        code: `(batch, D)` autoencoder codes e(x).
        alpha: weight of the reconstruction term.
        beta: weight of the embedding-alignment term.

    Returns:
        `(batch,)` per-example losses.
    """
    return alpha * reconstruction_sse(x, x_rec) + beta * squared_distance(tf.stop_gradient(h), code)


def l2_regularization(weights):
    """R(W) = sum of squared weights over the given variables (kernels, not biases)."""
    if not weights:
        return tf.constant(0.0)
    return tf.add_n([tf.reduce_sum(tf.square(w)) for w in weights])
