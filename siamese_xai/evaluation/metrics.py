"""Metrics for explanations of a Siamese network: faithfulness, stability, ground truth.

What a user imports to score an explainer (like `captum.metrics`). Every map
is judged against the same scalar, the squared distance from f(x) to the
prototype of the explained class k:

    d(x) = ||f(x) - c_k||^2

An importance map is `(B, H, W)`, larger meaning "more of what keeps x close
to c_k". The metrics:

- the deletion / insertion curves of d and of the margin
  m(x) = d(x, c_l) - d(x, c_k) (l the runner-up prototype of the unperturbed
  x, `siamese_xai.explainers.questions.runner_up`) under a removal operator
  are `siamese_xai.evaluation.faithfulness.removal_curves`;
- stability (`stability`): the mean pairwise top-q IoU (`mask_iou`) of the
  maps of one image under several seeds;
- ground truth (`region_scores`): the share of the top-|R| pixels inside a
  known region R, the share of the map's positive mass in R, the ROC-AUC of
  the map as a detector of R, and the pointing game (is the top pixel in R);
- `mean_ci`: a mean with its 95% Student-t interval, for any per-image value;
  `interval_verdict`: is one mean better than another with the two 95%
  intervals not overlapping.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from siamese_xai._checks import check_gray_batch
from siamese_xai.explainers.prototypes import embed_in_batches, nearest_prototype


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
        xs = check_gray_batch(xs)
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

    def all_distances(self, xs) -> np.ndarray:
        """`(B, C)` float64 squared distances ||f(x_b) - c_j||^2 to every prototype."""
        h = self.embeddings(xs).astype(np.float64)
        diff = h[:, None, :] - self.prototypes[None].astype(np.float64)
        return (diff * diff).sum(-1)

    def classify(self, xs) -> np.ndarray:
        """`(B,)` int64 nearest-prototype classes of `xs`."""
        return nearest_prototype(self.embeddings(xs), self.prototypes)[0]


def mean_ci(values, drop_nan: bool = False) -> dict:
    """Mean and 95% Student-t confidence half-width of per-image values.

    Args:
        values: per-image values.
        drop_nan: leave out NaN values (counted in `"dropped"`) instead of failing.

    Returns:
        `{"mean", "ci95", "n"}` (ci95 = t_{0.975, n-1} * sd / sqrt(n); 0 for
        n = 1), plus `"dropped"` when `drop_nan`.
    """
    v = np.asarray(values, np.float64).ravel()
    dropped = int(np.isnan(v).sum())
    if drop_nan:
        v = v[~np.isnan(v)]
    if v.size == 0:
        raise ValueError(f"`values` must not be empty. Received: 0 values{f' ({dropped} NaN dropped)' if dropped else ''}")
    if not np.isfinite(v).all():
        raise ValueError("`values` must be finite. Received: NaN or inf (pass drop_nan=True to leave NaN out)")
    half = float(stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else 0.0
    out = {"mean": float(v.mean()), "ci95": half, "n": int(v.size)}
    if drop_nan:
        out["dropped"] = dropped
    return out


def interval_verdict(a: dict, b: dict, higher_is_better: bool) -> str:
    """Whether `a` is better than `b` with their 95% intervals not overlapping.

    Args:
        a, b: `mean_ci` results.
        higher_is_better: the direction in which a value is better.

    Returns:
        `"better"` (a's whole interval on the better side of b's), `"worse"`
        (the reverse) or `"overlap"`.
    """
    lo_a, hi_a = a["mean"] - a["ci95"], a["mean"] + a["ci95"]
    lo_b, hi_b = b["mean"] - b["ci95"], b["mean"] + b["ci95"]
    if lo_a > hi_b:
        return "better" if higher_is_better else "worse"
    if hi_a < lo_b:
        return "worse" if higher_is_better else "better"
    return "overlap"


def top_q_mask(maps, q: int, tie_order=None) -> np.ndarray:
    """The package's one top-q rule: each map's q largest values, ties to the lower flat index.

    Every top-q set in the package is this one (explanation masks, metrics,
    benchmarks, the reproduction's claims). The explainer's TensorFlow graph
    (`siamese_xai.explainers._graph.top_q_mask`, `tf.math.top_k`) applies the same
    rule and then drops the values <= 0: its mask equals
    `top_q_mask(maps, q) & (maps > 0)` (tests/test_metrics.py checks them on ties).

    Args:
        maps: `(B, ...)` B maps of any shape (e.g. `(B, H, W)` or `(B, H, W, C)`).
        q: values kept per map, in `[1, size of one map]`.
        tie_order: `(B, size of one map)` keys that break ties instead of the
            flat index (the lower key first), or None. A benchmark that must
            not favour raster order passes a permutation here.

    Returns:
        `(B, ...)` bool, `maps`' shape, q True per map.

    Raises:
        ValueError: `q` is out of range, or `tie_order` has the wrong shape.
    """
    maps = np.asarray(maps)
    b = len(maps)
    flat = maps.reshape(b, -1)
    if not 1 <= q <= flat.shape[1]:
        raise ValueError(f"`q` must be in [1, {flat.shape[1]}]. Received: q={q}")
    if tie_order is None:
        idx = np.argsort(-flat, axis=1, kind="stable")[:, :q]  # stable: equal values keep the index order
    else:
        tie_order = np.asarray(tie_order)
        if tie_order.shape != flat.shape:
            raise ValueError(f"`tie_order` must have shape {flat.shape}, one key per value. "
                             f"Received: tie_order.shape={tie_order.shape}")
        idx = np.lexsort((tie_order, -flat), axis=-1)[:, :q]
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


def paired_test(a, b, higher_is_better: bool) -> dict:
    """Two-sided Wilcoxon signed-rank test of paired per-image values a - b (zero differences dropped).

    Args:
        a, b: `(n,)` the two methods' values on the same images.
        higher_is_better: the direction in which a value is better.

    Returns:
        `{"p", "median_difference", "mean_difference", "a_better_side", "n"}`:
        `a_better_side` is True when the median of a - b (its mean if the
        median is 0) lies on the better side; p = 1 when every difference is 0.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1 or not np.isfinite(a).all() or not np.isfinite(b).all():
        raise ValueError(f"`a` and `b` must be finite (n,) arrays of one shape. Received: {a.shape}, {b.shape}")
    diff = a - b
    p = 1.0 if not np.any(diff != 0) else float(stats.wilcoxon(diff, zero_method="wilcox").pvalue)
    med, mean = float(np.median(diff)), float(diff.mean())
    lean = med if med != 0 else mean
    return {"p": p, "median_difference": med, "mean_difference": mean,
            "a_better_side": bool(lean > 0 if higher_is_better else lean < 0), "n": int(a.size)}


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control), in the input's order.

    The i-th smallest p becomes max over j <= i of min(1, (m - j + 1) p_(j)).
    """
    p = np.asarray(pvalues, np.float64).ravel()
    if not ((p >= 0) & (p <= 1)).all():
        raise ValueError(f"`pvalues` must lie in [0, 1]. Received: {p.tolist()}")
    m = p.size
    order = np.argsort(p, kind="stable")
    adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adj
    return out


def paired_verdict(test: dict, adjusted_p: float, alpha: float = 0.05) -> str:
    """`"better"`, `"worse"` or `"overlap"` (no difference shown) from a `paired_test` and its adjusted p."""
    if adjusted_p >= alpha:
        return "overlap"
    return "better" if test["a_better_side"] else "worse"


def region_scores(maps, regions) -> dict:
    """Soft and hard ground-truth scores for regions of any size.

    Args:
        maps: `(B, H, W)` importance; regions: `(B, H, W)` bool, each non-empty and not the whole image.

    Returns:
        `{"rank_accuracy", "mass", "roc_auc", "pointing"}`, each `(B,)`
        float64: the share of the |R| top pixels (ties: first in raster order,
        as `top_q_mask`) inside R (Arras et al.'s relevance rank accuracy, the
        top-|R| share); the share of the positive part of the map inside R (0
        where the map has no positive value); the ROC-AUC of the map as a
        detector of R's pixels (ties count one half); the pointing game, 1.0
        where the map's largest value (the first in raster order) is inside R.
    """
    maps = np.asarray(maps, np.float64)
    regions = np.asarray(regions, bool)
    if maps.shape != regions.shape or maps.ndim != 3:
        raise ValueError(f"`regions` must have the maps' shape (B, H, W). Received: {regions.shape} vs {maps.shape}")
    b = len(maps)
    flat, reg = maps.reshape(b, -1), regions.reshape(b, -1)
    sizes = reg.sum(1)
    if (sizes == 0).any() or (sizes == reg.shape[1]).any():
        raise ValueError("`regions` must each be non-empty and smaller than the image. Received: an empty or full region")
    rank_acc = np.empty(b)
    for i in range(b):
        top = top_q_mask(flat[i][None], int(sizes[i]))[0]
        rank_acc[i] = reg[i, top].sum() / sizes[i]
    pos = np.maximum(flat, 0)
    total = pos.sum(1)
    mass = np.where(total > 0, (pos * reg).sum(1) / np.where(total > 0, total, 1), 0.0)
    auc = np.empty(b)
    for i in range(b):
        r = stats.rankdata(flat[i])  # average ranks: ties count one half
        n1, n0 = sizes[i], reg.shape[1] - sizes[i]
        auc[i] = (r[reg[i]].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)
    pointing = reg[np.arange(b), np.argmax(flat, axis=1)].astype(np.float64)
    return {"rank_accuracy": rank_acc, "mass": mass, "roc_auc": auc, "pointing": pointing}
