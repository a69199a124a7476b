"""Faithfulness curves of the nearest-prototype margin under several removal operators, and ROAD.

An importance map `(B, H, W)` (larger = more important) is scored by what
happens to the margin m(x) = d(x, c_l) - d(x, c_k) (k the explained class,
l the runner-up of the unperturbed x, fixed per image; d the squared distance
of f(x) to a prototype, see `siamese_xai.evaluation.metrics.DistanceScalar`) when the
pixels it ranks first are removed. docs/evaluation.md fixes the settings:

- `fill_images`: what a removed pixel becomes: `zero`, `mean` (a mean image),
  `blur` (x blurred by a Gaussian);
- `removal_curves`: deletion and insertion of the margin, over all pixels or
  only over the image's support (x > 0, the ink);
- `noisy_linear_imputation` and `road_curves`: ROAD (Rong et al., ICML 2022),
  most- and least-relevant first, each fraction imputed from the original;
- `prototype_logits`: a Keras model whose outputs are -d(x, c_j) for every
  class j, so classifier tools (Quantus) see exactly the nearest-prototype
  decision.
"""

from __future__ import annotations

import numpy as np

from siamese_xai import _checks

FILLS = ("zero", "mean", "blur")
ROAD_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
# Rong et al.'s neighbour weights: 1/6 for the four direct neighbours, 1/12 for the four diagonal ones.
_NEIGHBOURS = (((0, 1), 1 / 6), ((0, -1), 1 / 6), ((1, 0), 1 / 6), ((-1, 0), 1 / 6),
               ((1, 1), 1 / 12), ((1, -1), 1 / 12), ((-1, 1), 1 / 12), ((-1, -1), 1 / 12))


def _one_blas_thread():
    import scipy.linalg  # noqa: F401  (loaded first: threadpoolctl limits only the libraries already loaded)

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn's dependency; without it the solve only runs slower
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def _check(xs, maps):
    xs = _checks.check_gray_batch(xs)
    maps = np.asarray(maps, np.float64)
    if maps.shape != xs.shape[:3]:
        raise ValueError(f"`maps` must be {xs.shape[:3]}. Received: maps.shape={maps.shape}")
    if not np.isfinite(maps).all():
        raise ValueError("`maps` must be finite. Received: NaN or inf")
    return xs, maps


def ranks(maps, seed: int = 0) -> np.ndarray:
    """`(B, P)` int rank of every pixel, 0 = most important (ties: a fixed random permutation from `seed`)."""
    maps = np.asarray(maps, np.float64)
    b = len(maps)
    flat = maps.reshape(b, -1)
    tie = np.random.default_rng(seed).permutation(flat.shape[1])
    order = np.stack([np.lexsort((tie, -flat[i])) for i in range(b)])
    out = np.empty_like(order)
    out[np.arange(b)[:, None], order] = np.arange(flat.shape[1])[None]
    return out


def fill_images(xs, kind: str, mean_image=None, blur_sigma: float = 2.0) -> np.ndarray:
    """`(B, H, W, 1)` float32: the value each pixel takes when removed.

    Args:
        xs: `(B, H, W, 1)` images.
        kind: one of `FILLS`.
        mean_image: `(H, W, 1)` the mean training image (for `mean`).
        blur_sigma: the Gaussian's sigma in pixels (for `blur`).
    """
    xs = np.asarray(xs, np.float32)
    if kind == "zero":
        return np.zeros_like(xs)
    if kind == "mean":
        if mean_image is None or np.shape(mean_image) != xs.shape[1:]:
            raise ValueError(f"`mean_image` must be {xs.shape[1:]} for kind='mean'. "
                             f"Received: {None if mean_image is None else np.shape(mean_image)}")
        return np.broadcast_to(np.asarray(mean_image, np.float32), xs.shape).copy()
    if kind == "blur":
        from scipy import ndimage

        return ndimage.gaussian_filter(xs, sigma=(0, blur_sigma, blur_sigma, 0), mode="nearest").astype(np.float32)
    raise ValueError(f"`kind` must be one of {FILLS}. Received: kind={kind!r}")


def _margins(scalar, imgs, classes, contrasts):
    """`(B, T)` margins, same-class flags and squared distances to c_k of `imgs` `(B, T, H, W, 1)`."""
    b, t = imgs.shape[:2]
    dist = scalar.all_distances(imgs.reshape(b * t, *imgs.shape[2:]).astype(np.float32)).reshape(b, t, -1)
    rows = np.arange(b)
    margin = dist[rows, :, contrasts] - dist[rows, :, classes]
    same = (np.argmin(dist, axis=-1) == classes[:, None]).astype(np.float64)
    return margin, same, dist[rows, :, classes]


def removal_curves(scalar, xs, classes, contrasts, maps, fill, support: bool = False, steps: int | None = None,
                   seed: int = 0) -> dict:
    """Deletion and insertion curves of the margin and of d, removing pixels in the map's order.

    Pixels are ranked by `maps` (descending; ties broken by a fixed random
    permutation, so a constant map acts like a random ordering). All
    B x (steps + 1) images of each curve go through f in one call; the margin,
    d and the nearest class come from the same embeddings. A faithful map gives
    a small deletion AUC and a large insertion AUC of the margin (x stops being
    "k rather than l" at once), and a large deletion AUC of d.

    Args:
        scalar: a `DistanceScalar` (or anything with `all_distances(xs) -> (B, C)`).
        xs: `(B, H, W, 1)` images; classes: `(B,)` k; contrasts: `(B,)` l.
        maps: `(B, H, W)` importance.
        fill: `(B, H, W, 1)` the removed pixels' values (`fill_images`).
        support: rank and remove only the pixels with x > 0; the fraction
            axis is then the share of each image's ink.
        steps: curve points after the first (default 14, or 10 with `support`).
        seed: the tie-break permutation's seed.

    Returns:
        `{"fraction": (T,), "deletion": (B, T), "insertion": (B, T),
        "deletion_auc": (B,), "insertion_auc": (B,), "deletion_same_class",
        "insertion_same_class": (B, T), "deletion_distance",
        "insertion_distance": (B, T), "deletion_distance_auc",
        "insertion_distance_auc": (B,)}` (T = steps + 1): the margin curves
        and their areas (trapezoid rule over the fraction), whether the
        nearest prototype is still k, and d = ||f(.) - c_k||^2 along the same
        curves with its areas. Deletion starts at x; insertion starts at x with
        every removable pixel filled.
    """
    xs, maps = _check(xs, maps)
    b, h, w, _ = xs.shape
    p = h * w
    steps = steps or (10 if support else 14)
    classes, contrasts = np.asarray(classes, np.int64), np.asarray(contrasts, np.int64)
    flat = xs.reshape(b, p)
    fill = np.asarray(fill, np.float32).reshape(b, p)
    r = ranks(maps, seed)
    if support:
        ink = flat > 0
        # pixels off the support rank after every ink pixel and are never removed
        r = ranks(np.where(ink.reshape(b, h, w), maps, -np.inf), seed)
        n_removable = ink.sum(1)
        fraction = np.arange(steps + 1) / steps
        cut = np.ceil(fraction[None, :] * n_removable[:, None]).astype(np.int64)  # (B, T)
    else:
        per_step = -(-p // steps)
        fraction = np.minimum(np.arange(steps + 1) * per_step, p) / p
        cut = np.broadcast_to(np.minimum(np.arange(steps + 1) * per_step, p)[None], (b, steps + 1))
    removed = r[:, None, :] < cut[:, :, None]  # (B, T, P)
    out = {"fraction": fraction}
    for name, imgs in (("deletion", np.where(removed, fill[:, None], flat[:, None])),
                       ("insertion", np.where(removed, flat[:, None], fill[:, None]))):
        if name == "insertion" and support:
            # off the support, insertion keeps x (the background), not the fill
            imgs = np.where((flat > 0)[:, None], imgs, flat[:, None])
        margin, same, dist = _margins(scalar, imgs.reshape(b, steps + 1, h, w, 1), classes, contrasts)
        out[name], out[f"{name}_same_class"], out[f"{name}_distance"] = margin, same, dist
        out[f"{name}_auc"] = np.trapezoid(margin, fraction, axis=1)
        out[f"{name}_distance_auc"] = np.trapezoid(dist, fraction, axis=1)
    return out


def noisy_linear_imputation(x, removed, noise: float = 0.01, rng=None) -> np.ndarray:
    """ROAD's noisy linear imputation (Rong et al., ICML 2022) of one image or of a stack of images.

    The removed pixels are solved jointly so that each equals the weighted
    mean of its in-image neighbours (1/6 direct, 1/12 diagonal, renormalised
    at the border); then N(0, noise^2) is added to them. A stack is solved as
    one block-diagonal system (one sparse solve), with the same result as
    image by image.

    Args:
        x: `(H, W)`, `(H, W, 1)` or `(N, H, W, 1)` image(s).
        removed: `(H, W)` or `(N, H, W)` bool, the pixels to impute.
        noise: the added noise's standard deviation (0: none).
        rng: a `numpy.random.Generator` for the noise.

    Returns:
        The imputed image(s), x's shape, float32.
    """
    from scipy.linalg import solveh_banded

    x = np.asarray(x, np.float64)
    shape = x.shape
    removed = np.asarray(removed, bool)
    stack = x.reshape(-1, removed.shape[-2], removed.shape[-1]) if x.size == removed.size else None
    if stack is None or stack.shape != removed.reshape(-1, *removed.shape[-2:]).shape:
        raise ValueError(f"`removed` must have x's pixel shape. Received: removed.shape={removed.shape}, x.shape={shape}")
    removed = removed.reshape(stack.shape)
    out = stack.copy()
    n = int(removed.sum())
    if n == 0:
        return out.reshape(shape).astype(np.float32)
    _, h, w = stack.shape
    var = -np.ones(stack.shape, np.int64)
    bi, ri, ci = np.nonzero(removed)
    var[bi, ri, ci] = np.arange(n)
    rows, cols, vals = [], [], []
    diag = np.zeros(n)
    rhs = np.zeros(n)
    for (dr, dc), wgt in _NEIGHBOURS:
        nr, nc = ri + dr, ci + dc
        idx = np.flatnonzero((nr >= 0) & (nr < h) & (nc >= 0) & (nc < w))
        diag[idx] += wgt
        nb, nr, nc = bi[idx], nr[idx], nc[idx]
        nvar = var[nb, nr, nc]
        unknown = nvar >= 0
        rows.append(idx[unknown])
        cols.append(nvar[unknown])
        vals.append(np.full(unknown.sum(), -wgt))
        known = ~unknown
        np.add.at(rhs, idx[known], wgt * stack[nb[known], nr[known], nc[known]])
    # The matrix is symmetric and, in raster order, banded: a neighbour is at most w + 1 unknowns away.
    # A tiny ridge keeps it definite where a group of removed pixels touches no kept one (it imputes 0 there).
    rows, cols, vals = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    upper = cols > rows
    band = np.zeros((w + 2, n))
    band[w + 1] = diag + 1e-9
    band[w + 1 - (cols[upper] - rows[upper]), cols[upper]] = vals[upper]
    sol = solveh_banded(band, rhs, check_finite=False)
    if noise:
        sol = sol + (rng if rng is not None else np.random.default_rng(0)).normal(0.0, noise, n)
    out[bi, ri, ci] = sol
    return out.reshape(shape).astype(np.float32)


def road_curves(scalar, xs, classes, contrasts, maps, fractions=ROAD_FRACTIONS, noise: float = 0.01,
                seed: int = 0) -> dict:
    """ROAD: the margin after imputing the most (MoRF) or least (LeRF) relevant fraction p of the pixels.

    Each fraction is imputed from the original image (not cumulatively).

    Args:
        scalar: a `DistanceScalar`.
        xs: `(B, H, W, 1)`; classes: `(B,)` k; contrasts: `(B,)` l; maps: `(B, H, W)`.
        fractions: the removed shares (increasing, in (0, 1)).
        noise: the imputation noise's standard deviation.
        seed: seeds the noise and the tie-break permutation.

    Returns:
        `{"fraction": (T,) with 0 first, "morf": (B, T), "lerf": (B, T),
        "morf_auc": (B,), "lerf_auc": (B,), "morf_same_class", "lerf_same_class"}`.
    """
    xs, maps = _check(xs, maps)
    b, h, w, _ = xs.shape
    p = h * w
    fractions = np.asarray(fractions, np.float64)
    if fractions.ndim != 1 or not ((fractions > 0) & (fractions < 1)).all() or (np.diff(fractions) <= 0).any():
        raise ValueError(f"`fractions` must increase within (0, 1). Received: fractions={fractions.tolist()}")
    classes, contrasts = np.asarray(classes, np.int64), np.asarray(contrasts, np.int64)
    r = ranks(maps, seed)
    rng = np.random.default_rng(seed)
    counts = np.round(fractions * p).astype(np.int64)
    axis = np.concatenate([[0.0], fractions])
    out = {"fraction": axis}
    for name, rank in (("morf", r), ("lerf", p - 1 - r)):
        imgs = np.empty((b, len(axis), h, w, 1), np.float32)
        imgs[:, 0] = xs
        with _one_blas_thread():  # small banded solves: BLAS threads only contend (several times slower)
            for i in range(0, b, 8):  # one solve per 8 images: their fractions as one block-diagonal system
                masks = rank[i : i + 8, None, :] < counts[None, :, None]  # (b', T, P)
                nb = len(masks)
                imgs[i : i + nb, 1:] = noisy_linear_imputation(
                    np.repeat(xs[i : i + nb, None], len(counts), 1).reshape(-1, h, w, 1), masks.reshape(-1, h, w),
                    noise, rng).reshape(nb, len(counts), h, w, 1)
        margin, same, _ = _margins(scalar, imgs, classes, contrasts)
        out[name], out[f"{name}_same_class"] = margin, same
        out[f"{name}_auc"] = np.trapezoid(margin, axis, axis=1)
    return out


def prototype_logits(embed, prototypes, input_shape=(28, 28, 1)):
    """A Keras model `(B, H, W, C) -> (B, num_classes)` of -||f(x) - c_j||^2: its argmax is the nearest prototype.

    The last layer carries a linear `activation` attribute, which classifier
    tools inspect (Quantus' TensorFlow wrapper reads it to strip a softmax).

    Args:
        embed: f, a Keras model `(B, H, W, C) -> (B, D)`.
        prototypes: `(num_classes, D)`.
        input_shape: one image's shape.
    """
    import keras

    protos = np.asarray(prototypes, np.float32)
    if protos.ndim != 2:
        raise ValueError(f"`prototypes` must be (num_classes, D). Received: prototypes.shape={protos.shape}")

    class NegativeSquaredDistances(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.activation = keras.activations.linear

        def call(self, h):
            diff = keras.ops.expand_dims(h, 1) - keras.ops.expand_dims(keras.ops.convert_to_tensor(protos), 0)
            return -keras.ops.sum(diff * diff, axis=-1)

    inp = keras.Input(input_shape)
    return keras.Model(inp, NegativeSquaredDistances(name="negative_squared_distances")(embed(inp)),
                       name="prototype_logits")
