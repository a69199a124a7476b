"""Metrics for explanations of a Siamese network: faithfulness, stability, ground truth.

What a user imports to score an explainer (like `captum.metrics`). Every map
is judged against the same scalar, the squared distance from f(x) to the
prototype of the explained class k:

    d(x) = ||f(x) - c_k||^2

An importance map is `(B, H, W)`, larger meaning "more of what keeps x close
to c_k". The metrics:

- deletion / insertion curves (`deletion_insertion`): pixels are set to the
  baseline (0, MNIST's background) in the order of importance, or added back
  to a blank image in that order; the curves track the raw d (not normalised:
  d(x) is often close to 0 for well-classified images, so a ratio to it would
  explode) and whether the nearest prototype is still class k. Area under
  each curve by the trapezoid rule over the fraction of pixels. A faithful
  map gives a *large* deletion AUC of d (the distance grows as soon as the
  important pixels go) and a *small* insertion AUC of d;
- stability (`stability`): the mean pairwise top-q IoU (`mask_iou`) of the
  maps of one image under several seeds;
- ground truth (`ground_truth_scores`): the share of the top-|R| pixels inside
  a known region R, and the pointing game (is the top pixel in R);
- `mean_ci`: a mean with its 95% interval, for any per-image value.
"""

from __future__ import annotations

import math

import numpy as np

from siamese_xai.prototypes import embed_in_batches, nearest_prototype


def _check_images(xs, name="xs"):
    xs = np.asarray(xs, np.float32)
    if xs.ndim != 4 or xs.shape[-1] != 1:
        raise ValueError(f"`{name}` must be (B, H, W, 1) images. Received: {name}.shape={xs.shape}")
    return xs


def mask_iou(a, b) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty).

    Args:
        a, b: boolean masks of the same shape, e.g. two explanations' `mask[i]`.

    Returns:
        |a and b| / |a or b|.
    """
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if a.shape != b.shape:
        raise ValueError(f"`a` and `b` must have the same shape. Received: a.shape={a.shape}, b.shape={b.shape}")
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


class DistanceScalar:
    """The explained scalar d(x) = ||f(x) - c_k||^2 and the nearest-prototype class.

    Args:
        embed: f, a callable from `(B, H, W, 1)` float32 images to `(B, D)`.
        prototypes: `(C, D)` class prototypes.
        batch_size: images per call of `embed`.
    """

    def __init__(self, embed, prototypes, batch_size: int = 2048):
        self.embed = embed
        self.prototypes = np.asarray(prototypes, np.float32)
        if self.prototypes.ndim != 2:
            raise ValueError(f"`prototypes` must be (C, D). Received: prototypes.shape={self.prototypes.shape}")
        self.batch_size = batch_size
        self.calls = 0  # images passed through f, for the cost accounting

    def embeddings(self, xs) -> np.ndarray:
        """`(B, D)` f(xs)."""
        xs = _check_images(xs)
        self.calls += len(xs)
        return embed_in_batches(self.embed, xs, self.batch_size)

    def __call__(self, xs, classes):
        """Squared distances to the prototypes of `classes`, and the nearest class.

        Args:
            xs: `(B, H, W, 1)` images.
            classes: `(B,)` the class k of each image.

        Returns:
            `(d, nearest)`: `(B,)` float64 ||f(x_b) - c_{k_b}||^2 and `(B,)`
            int64 the nearest prototype of each image.
        """
        h = self.embeddings(xs)
        classes = np.asarray(classes, np.int64)
        if classes.shape != (len(h),):
            raise ValueError(f"`classes` must be ({len(h)},). Received: classes.shape={classes.shape}")
        diff = h.astype(np.float64) - self.prototypes[classes].astype(np.float64)
        return (diff * diff).sum(-1), nearest_prototype(h, self.prototypes)[0]

    def classify(self, xs) -> np.ndarray:
        """`(B,)` int64 nearest-prototype classes of `xs`."""
        return nearest_prototype(self.embeddings(xs), self.prototypes)[0]


def deletion_insertion(scalar: DistanceScalar, xs, classes, maps, steps: int = 28, baseline: float = 0.0, seed: int = 0) -> dict:
    """Deletion and insertion curves of d and of "the nearest prototype is still class k".

    Pixels are ranked by `maps` (descending; ties broken by a fixed random
    permutation, so a constant map acts like a random ordering). At step t the
    first `t * ceil(P / steps)` pixels are set to `baseline` (deletion) or
    copied from x into a `baseline` image (insertion). All B x (steps + 1)
    images of each curve go through f in one call per curve.

    Args:
        scalar: the `DistanceScalar`.
        xs: `(B, H, W, 1)` images; classes: `(B,)` the explained classes.
        maps: `(B, H, W)` importance, larger = more important.
        steps: points of each curve after the first.
        baseline: the value of a removed pixel.
        seed: seeds the tie-break permutation.

    Returns:
        A dict with `fraction` `(steps + 1,)`, `deletion_distance`,
        `insertion_distance`, `deletion_same_class`, `insertion_same_class`
        (each `(B, steps + 1)`), and `deletion_auc`, `insertion_auc`,
        `deletion_class_auc`, `insertion_class_auc` (each `(B,)`).
    """
    xs = _check_images(xs)
    b, h, w, _ = xs.shape
    maps = np.asarray(maps, np.float64).reshape(b, -1)
    if maps.shape != (b, h * w):
        raise ValueError(f"`maps` must be ({b}, {h}, {w}). Received: maps of {maps.size} values")
    if not np.isfinite(maps).all():
        raise ValueError("`maps` must be finite. Received: NaN or inf")
    classes = np.asarray(classes, np.int64)
    p = h * w
    per_step = -(-p // steps)
    tie = np.random.default_rng(seed).permutation(p)
    # lexsort: last key is primary (descending importance), then the tie-break
    order = np.stack([np.lexsort((tie, -maps[i])) for i in range(b)])
    ranks = np.empty_like(order)
    ranks[np.arange(b)[:, None], order] = np.arange(p)[None]
    removed = ranks[:, None, :] < (np.arange(steps + 1) * per_step)[None, :, None]  # (B, T, P)
    flat = xs.reshape(b, 1, p)
    out = {"fraction": np.minimum(np.arange(steps + 1) * per_step, p) / p}
    rep = np.repeat(classes, steps + 1)
    for name, imgs in (
        ("deletion", np.where(removed, baseline, flat)),
        ("insertion", np.where(removed, flat, baseline)),
    ):
        d, near = scalar(imgs.reshape(-1, h, w, 1).astype(np.float32), rep)
        d = d.reshape(b, steps + 1)
        same = (near == rep).reshape(b, steps + 1).astype(np.float64)
        out[f"{name}_distance"] = d
        out[f"{name}_same_class"] = same
        out[f"{name}_auc"] = np.trapezoid(d, out["fraction"], axis=1)
        out[f"{name}_class_auc"] = np.trapezoid(same, out["fraction"], axis=1)
    return out


def mean_ci(values) -> dict:
    """Mean and 95% normal-approximation confidence half-width of per-image values.

    Returns:
        `{"mean", "ci95", "n"}` (ci95 = 1.96 * sd / sqrt(n); 0 for n = 1).
    """
    v = np.asarray(values, np.float64).ravel()
    if v.size == 0:
        raise ValueError("`values` must not be empty. Received: 0 values")
    half = 1.96 * v.std(ddof=1) / math.sqrt(v.size) if v.size > 1 else 0.0
    return {"mean": float(v.mean()), "ci95": float(half), "n": int(v.size)}


def top_q_mask(maps, q: int) -> np.ndarray:
    """`(B, H, W)` bool: the q largest values of each map (stable ties: first in raster order)."""
    maps = np.asarray(maps)
    b = len(maps)
    flat = maps.reshape(b, -1)
    if not 1 <= q <= flat.shape[1]:
        raise ValueError(f"`q` must be in [1, {flat.shape[1]}]. Received: q={q}")
    idx = np.argsort(-flat, axis=1, kind="stable")[:, :q]
    mask = np.zeros_like(flat, bool)
    np.put_along_axis(mask, idx, True, axis=1)
    return mask.reshape(maps.shape)


def stability(maps_per_seed, q: int = 100) -> np.ndarray:
    """Mean pairwise top-q IoU across seeds, per image.

    Args:
        maps_per_seed: `(S, B, H, W)` the maps of B images under S >= 2 seeds.
        q: pixels in each mask.

    Returns:
        `(B,)` mean IoU over the S(S-1)/2 pairs.
    """
    m = np.asarray(maps_per_seed)
    if m.ndim != 4 or m.shape[0] < 2:
        raise ValueError(f"`maps_per_seed` must be (S >= 2, B, H, W). Received: shape={m.shape}")
    masks = np.stack([top_q_mask(s, q) for s in m])
    s, b = m.shape[:2]
    pairs = [(i, j) for i in range(s) for j in range(i + 1, s)]
    return np.array([np.mean([mask_iou(masks[i, n], masks[j, n]) for i, j in pairs]) for n in range(b)])


def ground_truth_scores(maps, regions) -> dict:
    """Top-|R| share inside the true region and the pointing game.

    Args:
        maps: `(B, H, W)` importance.
        regions: `(B, H, W)` bool true regions (all of the same size |R|).

    Returns:
        `{"share": (B,), "pointing": (B,)}`: the share of the |R| top pixels
        inside R, and 1.0 where the top pixel is inside R.
    """
    maps = np.asarray(maps)
    regions = np.asarray(regions, bool)
    if maps.shape != regions.shape:
        raise ValueError(f"`regions` must have the maps' shape {maps.shape}. Received: {regions.shape}")
    sizes = regions.reshape(len(regions), -1).sum(1)
    if len(set(sizes.tolist())) != 1 or sizes[0] == 0:
        raise ValueError(f"`regions` must all have the same non-zero size. Received: sizes {sorted(set(sizes.tolist()))}")
    top = top_q_mask(maps, int(sizes[0]))
    share = (top & regions).reshape(len(maps), -1).sum(1) / sizes[0]
    best = np.argmax(maps.reshape(len(maps), -1), axis=1)
    pointing = regions.reshape(len(maps), -1)[np.arange(len(maps)), best].astype(np.float64)
    return {"share": share.astype(np.float64), "pointing": pointing}
