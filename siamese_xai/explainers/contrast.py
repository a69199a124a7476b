"""A contrast of decoded class templates, gated by the input: the decoded path's estimator (`TemplateContrastConfig`).

It answers "why class k rather than class l" from the decoder alone: it never
runs f on a changed input, and its map is close to max(g(h) - g(c_l), 0) * x,
the difference of two decoded templates kept where x has ink. It is the cheap
variant; `siamese_xai.explainers.probe.ProbeExplainer` asks the same question of f itself.
The question ("why k rather than l", or "rather than this reference
image") is asked when explaining; this estimator's parameters are N, s and
q (`siamese_xai.config.TemplateContrastConfig`).

Why another question. At the paper's scale, sigma = 0.1 min_j |h_j - c_j|
(often 1e-5..2e-4, a fraction of a percent of the within-class spread), the
paper's Delta_p is exactly first order, Delta_p ~ sigma E|sum_j a_pj eps_j|
(a_pj = dg_p/dh_j), so its mask does not depend on sigma_scale; and since h
moves toward its *own* prototype c_k, it explores the variation within class
k only. What every member of class k shares never changes along that move,
so the paper's method cannot show it. Yet the paper's own test of an
explanation (Figs. 4-9) is whether it shows what makes the digit differ from
digits of *other* classes. The same ingredients (prototypes, the decoder g of
the embedding space, moves of h toward a reference) answer that question when
they are used at its scale.

The computation, for an input with embedding h = f(x):

1. k: the explained class (the nearest prototype, or `target_class`).
   l: the contrast class: the runner-up, argmin_{j != k} ||h - c_j||, or
   `contrast_class`; or no class at all when a reference image x' is given,
   whose embedding f(x') then takes the place of c_l (`contrast_class` = -1).
2. The path from x's embedding to the contrast: Delta = c_l - h,
   h_i = h + t_i Delta with t_i = (i - 1/2) / N, i = 1..N (N =
   `n_path_points`): steps of the size of ||h - c_l||, not of sigma.
   A path shorter than `ZERO_PATH_RTOL` (1e-5) x max(||h||, ||c_l||) is
   rounding, not a move: it has length 0 and every change is exactly 0.
3. Decode every point and average the change of each pixel p:
       S_p = (1/N) sum_i (g(h_i)_p - g(h)_p)      (`mean_signed_change`)
       A_p = (1/N) sum_i |g(h_i)_p - g(h)_p|      (`mean_abs_change`)
   S is the midpoint-rule value of the path integral
   int_0^1 (g(h + t Delta) - g(h))_p dt. For a linear decoder
   g(z) = z W + b it is exactly S = (1/2) Delta W and A = (1/2) |Delta W|.
4. Signs. S_p < 0: the pixel darkens as x leaves class k for l: class k
   has ink there that class l lacks. S_p > 0: it brightens: class l has ink
   there that class k lacks.
5. What x has. g(h) is the decoder's image of what f keeps of x, and f
   keeps little detail within a class (the contrastive loss pulls a class
   together; on MNIST the mean squared within-class spread of f is two orders
   of magnitude below the squared distance between class means, see the
   training run's `metrics.json`: `embedding_within_class_sq_spread` and
   `embedding_between_class_sq_distance`), so S marks where f *expects*
   class-k ink, not which of those pixels x inks: where f does not tell two
   placements of a feature apart, S marks both. The input decides that:
       E_p = max(-S_p, 0) * x_p
   is the evidence for k that x has, and the mask holds the q pixels with
   the largest E_p (only E_p > 0, so fewer than q when fewer pixels of x
   qualify; ties: lower flat index first): "what in x makes it k rather
   than l". The evidence for l that x lacks is max(S_p, 0) * (1 - x_p);
   both are computed from `mean_signed_change` and `input`.

Why weight by x_p and not rank S alone: on the varying synthetic set
(`benchmarks/evaluation/synthetic_varying.py`, a square in one of two cells per class)
f places both cells of a class at nearly the same embedding, so S alone puts
half its top pixels in the cell x does not use (ground-truth share 0.51);
E puts them on x's square (0.94; measured by `benchmarks/evaluation/evaluate.py`,
results.json's `contrast_ablations`).

Why a deterministic path: the move toward c_l is one-dimensional, so a
quadrature rule converges far faster (O(1/N^2) for a smooth g) than random
draws (O(1/sqrt N)) and the result is exactly reproducible. The `seed` is
recorded but does not enter. Each input's path depends only on its own h
and c_l, so a result does not depend on the rest of the batch or on the tiling.

Other fields, as the `Explanation` reports them for this estimator:
`reference` is c_l (the point the question moves h toward),
`reference_distance` is ||h - c_l||, `path_length` the length of the move
(||h - c_l||, or 0 below `ZERO_PATH_RTOL`; the paper's sigma = 0.1 min_j
|h_j - c_j| has no place here, so `sigma` is None), `moved_indices` the s
coordinates that the path moves most (largest |c_l,j - h_j|, ties: lower
index first; the perturbed set J, `indices`, is None),
`explained_class` is k, `contrast_class` is l (-1 for a reference image).

This module is a pure function of tensors (traceable by `tf.function`); the
static settings are keyword arguments, as in `siamese_xai.explainers._graph`.
"""

from __future__ import annotations

import tensorflow as tf

from siamese_xai.explainers._graph import nearest_prototype_tensors, tiled_images, top_q_mask


# Relative to max(||h||, ||c_l||): a path shorter than this is treated as length 0. The same image
# embedded twice (in one batch, or by oneDNN's AVX2 and AVX-512 kernels) differs by a few float32
# units in the last place: for the trained paper network, the same test image embedded in batches of
# 1 to 64 differed by up to 6e-7 ||h|| (default and AVX2 kernels alike), while the closest two of 64
# test images of one class were 4e-2 ||h|| apart; 1e-5 lies between the two. Without
# it, the decodings of h in blocks of different sizes (which a CPU's kernels need not round alike)
# gave a non-empty mask for x against itself on an AVX2 CPU.
ZERO_PATH_RTOL = 1e-5


def runner_up_tensor(distances, explained):
    """The nearest prototype other than the explained class, in the graph: `siamese_xai.explainers.questions.runner_up`'s rule.

    Args:
        distances: `(B, C)` float32 distances to every prototype (C >= 2).
        explained: `(B,)` int64 the explained class k.

    Returns:
        `(B,)` int64 argmin_{j != k} distances[:, j] (ties: lower index first).
    """
    num_classes = tf.shape(distances)[1]
    own = tf.one_hot(explained, num_classes, on_value=True, off_value=False)
    others = tf.where(own, tf.fill(tf.shape(distances), tf.constant(float("inf"), distances.dtype)), distances)
    return tf.argmin(others, axis=1, output_type=tf.int64)


def path_points(n):
    """`(N,)` float32 t_i = (i - 1/2) / N, i = 1..N: the midpoint rule on (0, 1]."""
    return (tf.range(n, dtype=tf.float32) + 0.5) / tf.cast(n, tf.float32)


def _group_sums(decoder, hg, dg, t, n, num_chunks):
    """Sums over the path of the change and its absolute value, for a group of G inputs.

    Args:
        decoder: the decoder's evaluation (`internal(codes)`).
        hg: `(G, D)` embeddings; dg: `(G, D)` their c_l - h.
        t: `(N,)` path points.
        n: points per block; num_chunks: ceil(N / n).

    Returns:
        `(x0, sum_abs, sum_signed)`, each `(G, P)` in the decoder's internal layout.
    """
    dim = hg.shape[-1]
    g = tf.shape(hg)[0]
    x0 = tf.reshape(decoder.internal(hg), (g, -1))
    sum_abs = tf.zeros_like(x0)
    sum_sgn = tf.zeros_like(x0)
    for k in tf.range(num_chunks):
        tk = t[k * n : (k + 1) * n]
        codes = hg[:, None, :] + tk[None, :, None] * dg[:, None, :]
        y = decoder.internal(tf.reshape(codes, (-1, dim)))
        diff = tf.reshape(y, (g, tf.shape(tk)[0], -1)) - x0[:, None, :]
        sum_sgn += tf.reduce_sum(diff, axis=1)
        sum_abs += tf.reduce_sum(tf.abs(diff), axis=1)
    return x0, sum_abs, sum_sgn


def contrast_graph(h, images, prototypes, targets, contrasts, references, use_reference, *, decoder, internal_shape,
                   config, chunk_size):
    """Contrastive explanations of B embeddings: why class k rather than class l (or than a reference image).

    Inputs are processed in tiles of G inputs x n path points (G * n <=
    chunk_size), so memory stays bounded whatever B and N are.

    Args:
        h: `(B, D)` float32 embeddings f(x).
        images: `(B, *image_shape)` float32 the inputs x in [0, 1] (they weigh the mask).
        prototypes: `(C, D)` float32.
        targets: `(B,)` int64 the class k to explain, -1 for the nearest prototype's.
        contrasts: `(B,)` int64 the contrast class l, -1 for the runner-up.
        references: `(B, D)` float32 embeddings that replace c_l where `use_reference`.
        use_reference: `(B,)` bool.
        decoder: the decoder's evaluation (see `siamese_xai.decoding.evaluator`).
        internal_shape: the shape of one decoder output in its internal layout.
        config: a `TemplateContrastConfig` (N = `n_path_points`, `s`, `q`).
        chunk_size: decoder rows per call.

    Returns:
        A dict of `(B, ...)` tensors named like `Explanation`'s fields:
        predicted_class, distances, explained_class, contrast_class,
        reference, reference_distance, moved_indices, path_length,
        reconstruction, mean_abs_change, mean_signed_change, mask.
    """
    n_all, s, q = config.n_path_points, config.s, config.q
    n = min(n_all, chunk_size)
    group = max(1, chunk_size // n_all)
    num_chunks = -(-n_all // n)

    predicted, distances = nearest_prototype_tensors(h, prototypes)
    explained = tf.where(targets < 0, predicted, targets)
    other = tf.where(contrasts < 0, runner_up_tensor(distances, explained), contrasts)
    contrast = tf.where(use_reference, tf.constant(-1, tf.int64), other)
    c = tf.where(use_reference[:, None], references, tf.gather(prototypes, tf.maximum(other, 0)))
    # A contrast numerically equal to h is a zero-length path, whatever its last bits (see ZERO_PATH_RTOL):
    # its move, length and sums are exactly zero, so the mask is empty on every CPU.
    moving = tf.norm(c - h, axis=1) > ZERO_PATH_RTOL * tf.maximum(tf.norm(h, axis=1), tf.norm(c, axis=1))
    delta = tf.where(moving[:, None], c - h, 0.0)
    length = tf.norm(delta, axis=1)
    _, idx = tf.math.top_k(tf.abs(delta), k=s)  # largest moves; ties: lower index first
    t = path_points(n_all)

    batch = tf.shape(h)[0]
    x0, mean_abs, mean_sgn = tiled_images(
        batch, group, lambda g0, g1: _group_sums(decoder, h[g0:g1], delta[g0:g1], t, n, num_chunks),
        decoder, internal_shape, tf.cast(moving, tf.float32)[:, None] / n_all,
    )
    flat = tf.reshape(mean_sgn, (batch, -1))
    evidence = tf.nn.relu(-flat) * tf.reshape(tf.cast(images, tf.float32), (batch, -1))  # E_p
    mask = top_q_mask(evidence, q, tf.shape(mean_sgn))
    return {
        "predicted_class": predicted,
        "distances": distances,
        "explained_class": explained,
        "contrast_class": contrast,
        "reference": c,
        "reference_distance": tf.norm(c - h, axis=1),
        "moved_indices": tf.cast(idx, tf.int64),
        "path_length": length,
        "reconstruction": x0,
        "mean_abs_change": mean_abs,
        "mean_signed_change": mean_sgn,
        "mask": mask,
    }
