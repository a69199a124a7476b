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


def batch_contrastive_loss(h, y, tau: float = 1.0):
    """The paper's contrastive loss over every pair of a batch, balanced: one value per anchor.

    For anchor i, the mean of `contrastive_loss` over its similar partners
    (same label, j != i) and the mean over its dissimilar partners, averaged
    with weight 1/2 each, as the balanced pairs of `data.sample_pairs` weigh
    them; an anchor without a partner of one kind takes the other's mean
    alone. A batch of B images gives B (B - 1) / 2 pairs instead of B / 2.

    Args:
        h: `(batch, D)` embeddings.
        y: `(batch,)` integer labels.
        tau: the threshold on the squared distance of dissimilar pairs.

    Returns:
        `(batch,)` per-anchor losses.
    """
    d2 = tf.reduce_sum(tf.square(h[:, None, :] - h[None, :, :]), axis=-1)
    equal = tf.cast(tf.equal(y[:, None], y[None, :]), d2.dtype)
    similar = equal - tf.eye(tf.shape(h)[0], dtype=d2.dtype)
    dissimilar = 1.0 - equal
    n_sim, n_dis = tf.reduce_sum(similar, axis=1), tf.reduce_sum(dissimilar, axis=1)
    l_sim = tf.reduce_sum(similar * d2, axis=1) / tf.maximum(n_sim, 1.0)
    l_dis = tf.reduce_sum(dissimilar * tf.maximum(0.0, tau - d2), axis=1) / tf.maximum(n_dis, 1.0)
    w_sim = tf.where(n_dis > 0, 0.5, 1.0) * tf.cast(n_sim > 0, d2.dtype)
    w_dis = tf.where(n_sim > 0, 0.5, 1.0) * tf.cast(n_dis > 0, d2.dtype)
    return w_sim * l_sim + w_dis * l_dis


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
