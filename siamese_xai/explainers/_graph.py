"""The explanation as one pure function of tensors: nearest prototype, perturb, decode, average, top q.

`SiameseExplainer` and the exported SavedModel both call `explain_graph`, so
the two cannot drift apart. Everything here is TensorFlow ops (traceable by
`tf.function`); the static settings (the decoder's evaluation, the config,
the chunk size) are keyword arguments.
"""

from __future__ import annotations

import tensorflow as tf


def nearest_prototype_tensors(h, prototypes):
    """Euclidean distances to every prototype and the nearest one.

    Args:
        h: `(B, D)` float32 embeddings.
        prototypes: `(C, D)` float32.

    Returns:
        `(classes, distances)`: `(B,)` int64 and `(B, C)` float32.
    """
    diff = h[:, None, :] - prototypes[None, :, :]
    distances = tf.sqrt(tf.reduce_sum(diff * diff, axis=-1))
    return tf.argmin(distances, axis=1, output_type=tf.int64), distances


def top_q_mask(scores, q, shape):
    """The q largest of each row of `scores` `(B, P)` that are > 0 (ties: lower index first), reshaped to `shape`.

    `siamese_xai.evaluation.metrics.top_q_mask`'s rule (`tf.math.top_k` also puts the
    lower index first among equal values), less the values <= 0: the result
    is `metrics.top_q_mask(scores, q) & (scores > 0)`.
    """
    _, top = tf.math.top_k(scores, k=q)
    in_top = tf.reduce_any(tf.equal(top[:, :, None], tf.range(tf.shape(scores)[1])[None, None, :]), axis=1)
    return tf.reshape(tf.logical_and(in_top, scores > 0), shape)


def tiled_images(batch, group, group_sums, decoder, internal_shape, scale):
    """Runs `group_sums(g0, g1) -> (x0, sum_abs, sum_signed)` over tiles of `group` inputs; returns the three as images.

    The sums are multiplied by `scale` (`(B, 1)` or a scalar); the images are in
    `(B, *image_shape)`, rearranged from the decoder's internal layout once.
    """
    num_groups = (batch + group - 1) // group
    ta_x0 = tf.TensorArray(tf.float32, size=num_groups, infer_shape=False)
    ta_abs = tf.TensorArray(tf.float32, size=num_groups, infer_shape=False)
    ta_sgn = tf.TensorArray(tf.float32, size=num_groups, infer_shape=False)
    for gi in tf.range(num_groups):
        g0 = gi * group
        x0_flat, acc_abs, acc_sgn = group_sums(g0, tf.minimum(batch, g0 + group))
        ta_x0 = ta_x0.write(gi, x0_flat)
        ta_abs = ta_abs.write(gi, acc_abs)
        ta_sgn = ta_sgn.write(gi, acc_sgn)

    def image(ta, factor=None):
        flat = ta.concat()
        if factor is not None:
            flat = flat * factor
        return decoder.to_image(tf.reshape(flat, (-1,) + tuple(internal_shape)))

    return image(ta_x0), image(ta_abs, scale), image(ta_sgn, scale)


def perturbation_draws(seed, n, s):
    """`(N, s)` |eps|, the same block for every input: `|stateless_normal([N, s], seed=[seed, 0], philox)|`."""
    seeds = tf.stack([tf.cast(seed, tf.int64), tf.constant(0, tf.int64)])
    return tf.abs(tf.random.stateless_normal([n, s], seed=seeds, alg="philox"))


def kink_cap(chunk_size, group, n_all, limit=None):
    """The most candidate units near a kink per input and layer (`siamese_xai.decoding.kinks`) before the layer path is used.

    Their per-draw changes (group x N x cap float64) then stay within about
    the memory of one block of the layer path (chunk_size rows of the widest
    activation). `limit` (the decoder evaluation's
    `kink_candidates_within_budget`; None: none) caps it further, so that
    the sources (rows of the widest activation) fit the memory budget.
    """
    cap = max(64, chunk_size * 2048 // (group * n_all))
    return cap if limit is None else min(cap, limit)


def _sum_blocks(num_chunks, block, like):
    """Sums `block(k) -> (part_abs, part_sgn)` over k < num_chunks, each reshaped like `like` `(G, P)`."""
    def body(k, acc_abs, acc_sgn):
        part_abs, part_sgn = block(k)
        return k + 1, acc_abs + tf.reshape(part_abs, tf.shape(like)), acc_sgn + tf.reshape(part_sgn, tf.shape(like))

    zeros = tf.zeros_like(like)
    _, sum_abs, sum_sgn = tf.while_loop(lambda k, *_: k < num_chunks, body, (tf.constant(0), zeros, zeros))
    return sum_abs, sum_sgn


def _group_sums(decoder, method, hg, bg, eps, n, num_chunks, cap, group=1):
    """Sums of |change| and change over all N perturbations, for a group of G inputs.

    Args:
        decoder: the decoder's evaluation (`internal(codes)`; `exact`: the
            exact change evaluation or None; `kinks`: its split into sources
            at the ReLU kinks, or None).
        method: the estimator, "mc" (with `decoder.exact`, the exact change: as
            `coef @ S` where `decoder.kinks` applies and at most `cap` units
            of a layer are near their kink, else carried through the layers;
            without, two float32 decodings are subtracted) or "linear".
        hg: `(G, D)` embeddings.
        bg: `(G, s, D)` code change per unit |eps_j|.
        eps: `(N, s)` |eps|.
        n: perturbations per block.
        num_chunks: blocks, ceil(N / n).
        cap: the most candidate units per input and layer for `decoder.kinks`.
        group: the most inputs in a group; `decoder.kinks` sums the draws in
            steps of `block_rows(group)` (at most n), which keep each step's
            block in the CPU's cache.

    Returns:
        `(x0, sum_abs, sum_signed)`, each `(G, P)` in the decoder's internal layout.
    """
    dim, s = hg.shape[-1], bg.shape[1]
    g = tf.shape(hg)[0]
    exact = decoder.exact if method == "mc" else None
    kinks = getattr(decoder, "kinks", None) if exact is not None else None

    def block(k):
        return eps[k * n : (k + 1) * n][None]  # (1, n, s), broadcast over the group

    if kinks is not None:
        prepared = kinks.prepare(hg, bg, eps, cap)
        x0 = tf.reshape(prepared["x0"], (g, -1))
        terms = prepared["terms"]
        rows = min(n, kinks.block_rows(group))
        sum_abs, sum_sgn = tf.cond(
            prepared["ok"],
            # One matmul and the last activation's rule per block (see siamese_xai.decoding.kinks).
            lambda: _sum_blocks(-(-eps.shape[0] // rows), lambda k: kinks.sums(prepared, k * rows, (k + 1) * rows),
                                x0),
            # Too many units near a kink (a large sigma): the change carried through every layer.
            lambda: _sum_blocks(num_chunks, lambda k: exact.sums_from_basis(terms, block(k)[0], bg), x0),
        )
        return x0, sum_abs, sum_sgn
    if exact is not None:
        x0, terms = exact.base(hg)
        x0 = tf.reshape(x0, (g, -1))
        # The change carried through the layers (no two nearby images are
        # subtracted), summed over the block inside the last activation.
        sum_abs, sum_sgn = _sum_blocks(num_chunks, lambda k: exact.sums_from_basis(terms, block(k)[0], bg), x0)
        return x0, sum_abs, sum_sgn
    x0 = tf.reshape(decoder.internal(hg), (g, -1))
    if method == "linear":
        codes = tf.repeat(hg, s, axis=0)
        with tf.autodiff.ForwardAccumulator(codes, tf.reshape(bg, (-1, dim))) as acc:
            y = decoder.internal(codes)
        # cols[g, j] = sigma * sign_j * dg/dh_{J_j}: the change per unit |eps_j|, to first order.
        cols = tf.reshape(acc.jvp(y, unconnected_gradients=tf.UnconnectedGradients.ZERO), (g, s, -1))
        sum_abs, _ = _sum_blocks(num_chunks, lambda k: (tf.reduce_sum(tf.abs(tf.matmul(block(k), cols)), axis=1),
                                                        tf.zeros_like(x0)), x0)
        # The signed change is linear in eps: its sum needs no N x P matrix.
        sum_sgn = tf.matmul(tf.reduce_sum(eps, axis=0)[None, None], cols)[:, 0]
        return x0, sum_abs, sum_sgn

    def subtract(k):
        e = block(k)
        codes = hg[:, None, :] + tf.matmul(e, bg)
        y = decoder.internal(tf.reshape(codes, (-1, dim)))
        diff = tf.reshape(y, (g, tf.shape(e)[1], -1)) - x0[:, None, :]
        return tf.reduce_sum(tf.abs(diff), axis=1), tf.reduce_sum(diff, axis=1)

    sum_abs, sum_sgn = _sum_blocks(num_chunks, subtract, x0)
    return x0, sum_abs, sum_sgn


def explain_graph(h, prototypes, targets, references, use_reference, seed, *, decoder, internal_shape, config,
                  chunk_size):
    """Explains B embeddings: the reference, J, sigma, the perturbations, Delta_p and the mask.

    Inputs are processed in tiles of G inputs x n perturbations (G * n <=
    chunk_size, n <= N), so memory stays bounded whatever B and N are, and
    the per-input draws do not depend on the tiling.

    Args:
        h: `(B, D)` float32 embeddings f(x).
        prototypes: `(C, D)` float32.
        targets: `(B,)` int64 class to explain, -1 for the nearest prototype's.
        references: `(B, D)` float32 embeddings that replace the prototype
            where `use_reference` (pair explanations); ignored elsewhere.
        use_reference: `(B,)` bool.
        seed: scalar int64, the seed of the perturbation draws.
        decoder: the decoder's evaluation (see `siamese_xai.decoding.evaluator`).
        internal_shape: the shape of one decoder output in its internal layout.
        config: an `ExplainConfig`.
        chunk_size: decoder rows per call.

    Returns:
        A dict of `(B, ...)` tensors named like `Explanation`'s fields:
        predicted_class, distances, explained_class (-1 where a reference was
        used), reference, reference_distance, indices, sigma, reconstruction,
        mean_abs_change, mean_signed_change, mask.
    """
    n_all, s, q = config.n_perturbations, config.s, config.q
    dim = prototypes.shape[-1]
    n = min(n_all, chunk_size)
    group = max(1, chunk_size // n_all)
    num_chunks = -(-n_all // n)
    budget_cap = getattr(decoder, "kink_candidates_within_budget", None)
    cap = kink_cap(chunk_size, group, n_all, budget_cap(s) if budget_cap is not None else None)

    predicted, distances = nearest_prototype_tensors(h, prototypes)
    explained = tf.where(use_reference, tf.constant(-1, tf.int64), tf.where(targets < 0, predicted, targets))
    c = tf.where(use_reference[:, None], references, tf.gather(prototypes, tf.maximum(explained, 0)))

    dist = tf.abs(h - c)
    _, idx = tf.math.top_k(-dist, k=s)  # smallest |h_j - c_j|; ties: lower index first
    sigma = tf.cast(config.sigma_scale, tf.float32) * tf.reduce_min(dist, axis=1)
    if config.direction == "toward_prototype":
        sign = tf.sign(tf.gather(c, idx, batch_dims=1) - tf.gather(h, idx, batch_dims=1))
    else:
        sign = tf.ones_like(idx, dtype=tf.float32)
    # basis[b, j] is the code change per unit |eps_j|: d = |eps| @ basis[b].
    basis = (sigma[:, None] * sign)[:, :, None] * tf.one_hot(idx, dim, dtype=tf.float32)
    eps = perturbation_draws(seed, n_all, s)

    batch = tf.shape(h)[0]
    nonzero = tf.cast(sigma > 0, tf.float32)[:, None]  # sigma == 0: no perturbation, no change
    x0, mean_abs, mean_sgn = tiled_images(
        batch, group,
        lambda g0, g1: _group_sums(decoder, config.estimator, h[g0:g1], basis[g0:g1], eps, n, num_chunks, cap, group),
        decoder, internal_shape, nonzero / n_all,
    )
    mask = top_q_mask(tf.reshape(mean_abs, (batch, -1)), q, tf.shape(mean_abs))
    return {
        "predicted_class": predicted,
        "distances": distances,
        "explained_class": explained,
        "reference": c,
        "reference_distance": tf.norm(h - c, axis=1),
        "indices": tf.cast(idx, tf.int64),
        "sigma": sigma,
        "reconstruction": x0,
        "mean_abs_change": mean_abs,
        "mean_signed_change": mean_sgn,
        "mask": mask,
    }
