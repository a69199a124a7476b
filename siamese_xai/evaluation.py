"""Evaluation of the explainer against the baselines a user would reach for.

Every method explains the same scalar, the squared distance from f(x) to the
prototype of x's class k (the nearest prototype, the SNN's own class):

    d(x) = ||f(x) - c_k||^2

and returns an importance map `(B, 28, 28)` where a larger value means "more
of what keeps x close to c_k". The metrics are

- deletion / insertion curves: pixels are set to the baseline (0, MNIST's
  background) in the order of importance, or added back to a blank image in
  that order; the curves track the raw d (not normalised: d(x) is often close
  to 0 for well-classified images, so a ratio to it would explode) and
  whether the nearest prototype is still class k. Area under each curve by the
  trapezoid rule over the fraction of pixels. A faithful map gives a *large*
  deletion AUC of d (the distance grows as soon as the important pixels go)
  and a *small* insertion AUC of d;
- stability: the mean pairwise top-q IoU of the maps of one image under 5
  seeds (1 by construction for deterministic methods);
- ground truth on `make_synthetic` data: the share of the top-|R| pixels
  inside the true region R, and the pointing game (is the top pixel in R).

Baselines (see `benchmarks/RESULTS.md` for what was used and why):
random ordering; occlusion with a sliding patch; KernelSHAP on a grid of
superpixels (the `shap` package); a RISE-style distance explainer following
the `distance-explainer` package's algorithm (the package itself needs torch
through `dianna`, so it is re-implemented here in a few lines); gradient
saliency and Integrated Gradients (white-box; they need f's gradients).
"""

from __future__ import annotations

import math
import time

import numpy as np
import tensorflow as tf

from siamese_xai.paper import mask_iou
from siamese_xai.prototypes import embed_in_batches

# Ten 4x4 squares, five along the top edge and five along the bottom edge,
# outside the 20x20 box in which MNIST centres its digits.
SQUARE = 4
SQUARE_POSITIONS = tuple((r, c) for r in (0, 24) for c in (0, 6, 12, 18, 24))


def _check_images(xs, name="xs"):
    xs = np.asarray(xs, np.float32)
    if xs.ndim != 4 or xs.shape[-1] != 1:
        raise ValueError(f"`{name}` must be (B, H, W, 1) images. Received: {name}.shape={xs.shape}")
    return xs


# ---------------------------------------------------------------------------
# the scalar


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
        return embed_in_batches(self.embed, xs, self.batch_size).astype(np.float32)

    def __call__(self, xs, classes):
        """Squared distances to the prototypes of `classes`, and the nearest class.

        Args:
            xs: `(B, H, W, 1)` images.
            classes: `(B,)` the class k of each image.

        Returns:
            `(d, nearest)`: `(B,)` float64 ||f(x_b) - c_{k_b}||^2 and `(B,)`
            int the nearest prototype of each image.
        """
        h = self.embeddings(xs).astype(np.float64)
        d_all = ((h[:, None, :] - self.prototypes[None].astype(np.float64)) ** 2).sum(-1)
        classes = np.asarray(classes, np.int64)
        if classes.shape != (len(h),):
            raise ValueError(f"`classes` must be ({len(h)},). Received: classes.shape={classes.shape}")
        return d_all[np.arange(len(h)), classes], d_all.argmin(1)

    def classify(self, xs) -> np.ndarray:
        """`(B,)` nearest-prototype classes of `xs`."""
        h = self.embeddings(xs)
        return ((h[:, None, :] - self.prototypes[None]) ** 2).sum(-1).argmin(1)


# ---------------------------------------------------------------------------
# explainers: each maps (xs (B,H,W,1), classes (B,), seed) -> (B, H, W) importance


def method_maps(explainer, xs, classes, seed=0) -> np.ndarray:
    """This method's importance map, `mean_abs_change` (Delta_p), for the given classes.

    Args:
        explainer: a `SiameseExplainer` (its config picks `mc` or `linear`).
        xs: `(B, H, W, 1)` images; classes: `(B,)` the explained classes.

    Returns:
        `(B, H, W)` float32.
    """
    e = explainer.explain(xs, target_class=[int(c) for c in classes], seed=seed)
    return e.mean_abs_change[..., 0].astype(np.float32)


def random_maps(xs, classes, seed=0) -> np.ndarray:
    """A uniformly random ordering: `(B, H, W)` draws from U(0, 1)."""
    xs = _check_images(xs)
    return np.random.default_rng(seed).random(xs.shape[:3]).astype(np.float32)


def occlusion_maps(scalar: DistanceScalar, xs, classes, patch: int = 6, stride: int = 2, value: float = 0.0) -> np.ndarray:
    """Occlusion: how much d rises when a sliding `patch` x `patch` square is set to `value`.

    Each pixel gets the mean rise over the patches that cover it. All occluded
    images of the batch go through f in one call.

    Args:
        scalar: the `DistanceScalar`.
        xs: `(B, H, W, 1)`; classes: `(B,)`.
        patch, stride: the square's side and step, in pixels.
        value: what the occluded pixels are set to.

    Returns:
        `(B, H, W)` float32; larger = occluding it moves x further from c_k.
    """
    xs = _check_images(xs)
    b, h, w, _ = xs.shape
    if patch < 1 or patch > min(h, w):
        raise ValueError(f"`patch` must be in [1, {min(h, w)}]. Received: patch={patch}")
    rows = list(range(0, h - patch + 1, stride))
    cols = list(range(0, w - patch + 1, stride))
    if rows[-1] != h - patch:
        rows.append(h - patch)
    if cols[-1] != w - patch:
        cols.append(w - patch)
    windows = [(r, c) for r in rows for c in cols]
    occl = np.repeat(xs[:, None], len(windows), axis=1)  # (B, P, H, W, 1)
    for i, (r, c) in enumerate(windows):
        occl[:, i, r : r + patch, c : c + patch] = value
    d0, _ = scalar(xs, classes)
    d, _ = scalar(occl.reshape(-1, h, w, 1), np.repeat(classes, len(windows)))
    rise = d.reshape(b, len(windows)) - d0[:, None]
    total = np.zeros((b, h, w))
    count = np.zeros((h, w))
    for i, (r, c) in enumerate(windows):
        total[:, r : r + patch, c : c + patch] += rise[:, i, None, None]
        count[r : r + patch, c : c + patch] += 1
    return (total / count).astype(np.float32)


def superpixel_grid(shape=(28, 28), cell: int = 4) -> np.ndarray:
    """`(H, W)` int segment ids of a regular grid of `cell` x `cell` superpixels."""
    h, w = shape
    r = np.arange(h) // cell
    c = np.arange(w) // cell
    return (r[:, None] * (-(-w // cell)) + c[None, :]).astype(np.int64)


def kernelshap_maps(scalar: DistanceScalar, xs, classes, seed=0, cell: int = 4, nsamples: int = 300) -> np.ndarray:
    """KernelSHAP (`shap.KernelExplainer`) of -d on a grid of superpixels.

    A coalition keeps its superpixels and sets the others to 0 (the
    background is the blank image). The value is -d, so positive SHAP values
    mark superpixels that bring x toward c_k; each pixel gets its
    superpixel's value.

    Args:
        scalar: the `DistanceScalar`.
        xs: `(B, H, W, 1)`; classes: `(B,)`.
        seed: seeds NumPy's global generator, which shap samples with.
        cell: superpixel side in pixels (28 / 4 -> 49 superpixels).
        nsamples: coalitions per image.

    Returns:
        `(B, H, W)` float32.
    """
    import shap

    xs = _check_images(xs)
    b, h, w, _ = xs.shape
    seg = superpixel_grid((h, w), cell)
    m = int(seg.max()) + 1
    out = np.zeros((b, h, w), np.float32)
    for i in range(b):
        x, k = xs[i], int(classes[i])

        def value(z, x=x, k=k):
            z = np.asarray(z)
            imgs = x[None] * z[:, seg][..., None]
            return -scalar(imgs.astype(np.float32), np.full(len(z), k))[0]

        np.random.seed(seed)
        ex = shap.KernelExplainer(value, np.zeros((1, m)))
        phi = np.asarray(ex.shap_values(np.ones((1, m)), nsamples=nsamples, silent=True, l1_reg=False))
        out[i] = phi.reshape(-1)[:m][seg]
    return out


def rise_distance_maps(
    scalar: DistanceScalar,
    xs,
    classes,
    seed=0,
    n_masks: int = 1000,
    feature_res: int = 8,
    p_keep: float = 0.5,
    select: float = 0.2,
) -> np.ndarray:
    """The `distance-explainer` algorithm (RISE masks for a distance to a reference).

    As in `distance_explainer.DistanceExplainer.explain_image_distance`:
    draw `n_masks` RISE masks (a `feature_res` x `feature_res` grid kept with
    probability `p_keep`, bilinearly upsampled and randomly shifted), apply
    them to x, and return the mean of the masks whose distance to the
    reference is among the lowest `select` share minus the mean of those among
    the highest `select` share. The distance here is d (the package uses a
    cosine distance); the package is not used because it needs torch.

    Args:
        scalar: the `DistanceScalar`.
        xs: `(B, H, W, 1)`; classes: `(B,)`.
        seed: seeds the masks (the same masks for every image of the batch).
        n_masks, feature_res, p_keep, select: the package's `n_masks`,
            `feature_res`, `p_keep` and selection ranges (0..0.2, 0.8..1).

    Returns:
        `(B, H, W)` float32.
    """
    xs = _check_images(xs)
    b, h, w, _ = xs.shape
    masks = rise_masks((h, w), n_masks, feature_res, p_keep, seed)  # (M, H, W)
    n_sel = max(1, int(n_masks * select))
    out = np.zeros((b, h, w), np.float32)
    for i in range(b):
        d, _ = scalar((xs[i][None] * masks[..., None]).astype(np.float32), np.full(n_masks, int(classes[i])))
        order = np.argsort(d, kind="stable")
        out[i] = masks[order[:n_sel]].mean(0) - masks[order[-n_sel:]].mean(0)
    return out


def rise_masks(shape, n_masks: int, feature_res: int, p_keep: float, seed: int) -> np.ndarray:
    """`(n_masks, H, W)` float32 RISE masks (Petsiuk et al. 2018), as `dianna` makes them."""
    h, w = shape
    rng = np.random.default_rng(seed)
    cell_h, cell_w = math.ceil(h / feature_res), math.ceil(w / feature_res)
    up_h, up_w = (feature_res + 1) * cell_h, (feature_res + 1) * cell_w
    grid = (rng.random((n_masks, feature_res, feature_res, 1)) < p_keep).astype(np.float32)
    up = tf.image.resize(grid, (up_h, up_w), method="bilinear").numpy()[..., 0]
    dy = rng.integers(0, cell_h, n_masks)
    dx = rng.integers(0, cell_w, n_masks)
    return np.stack([up[i, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n_masks)]).astype(np.float32)


def _distance_tf(embed, prototypes, xs, classes):
    c = tf.gather(tf.constant(prototypes, tf.float32), tf.constant(classes, tf.int32))
    return tf.reduce_sum((embed(xs, training=False) - c) ** 2, axis=-1)


def gradient_maps(scalar: DistanceScalar, xs, classes) -> np.ndarray:
    """Gradient saliency |d d / d x| (white-box: needs f to be a differentiable Keras model).

    Returns:
        `(B, H, W)` float32.
    """
    xs = tf.constant(_check_images(xs))
    with tf.GradientTape() as tape:
        tape.watch(xs)
        d = _distance_tf(scalar.embed, scalar.prototypes, xs, np.asarray(classes))
    g = tape.gradient(d, xs).numpy()
    scalar.calls += len(xs)
    return np.abs(g[..., 0]).astype(np.float32)


def integrated_gradients_maps(scalar: DistanceScalar, xs, classes, steps: int = 32) -> np.ndarray:
    """Integrated Gradients of -d from the blank image (white-box).

    `(x - 0) * mean_t grad(-d)(t x)` over `steps` midpoints t; positive values
    mark pixels that bring x toward c_k. The attributions sum to about
    d(0) - d(x) (completeness).

    Returns:
        `(B, H, W)` float32.
    """
    xs = _check_images(xs)
    b = len(xs)
    alphas = (np.arange(steps, dtype=np.float32) + 0.5) / steps
    path = tf.constant((alphas[None, :, None, None, None] * xs[:, None]).reshape(-1, *xs.shape[1:]))
    with tf.GradientTape() as tape:
        tape.watch(path)
        neg = -_distance_tf(scalar.embed, scalar.prototypes, path, np.repeat(np.asarray(classes), steps))
    g = tape.gradient(neg, path).numpy().reshape(b, steps, *xs.shape[1:]).mean(1)
    scalar.calls += b * steps
    return (xs * g)[..., 0].astype(np.float32)


# ---------------------------------------------------------------------------
# deletion / insertion


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


# ---------------------------------------------------------------------------
# stability and ground truth


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


# ---------------------------------------------------------------------------
# the synthetic data set


def make_synthetic(digits, n: int, seed: int = 0, num_classes: int = 10):
    """Images whose class is decided by a bright square drawn over an unrelated digit.

    Image i takes a random digit from `digits` (its own label is ignored) and
    draws a 4x4 square of intensity 1 at the position of class y_i (five
    positions along the top edge, five along the bottom edge, outside the
    box where MNIST centres its digits).

    Args:
        digits: `(m, 28, 28, 1)` float images in [0, 1] (e.g. MNIST).
        n: images to make.
        seed: the same seed gives the same data set.
        num_classes: at most 10.

    Returns:
        `(x, y, regions)`: `(n, 28, 28, 1)` float32, `(n,)` int64 classes
        (balanced, shuffled), `(n, 28, 28)` bool the square of each image.
    """
    digits = _check_images(digits, "digits")
    if digits.shape[1:3] != (28, 28):
        raise ValueError(f"`digits` must be 28x28 images. Received: digits.shape={digits.shape}")
    if not 1 <= num_classes <= len(SQUARE_POSITIONS):
        raise ValueError(f"`num_classes` must be in [1, {len(SQUARE_POSITIONS)}]. Received: num_classes={num_classes}")
    if n < 1:
        raise ValueError(f"`n` must be positive. Received: n={n}")
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % num_classes).astype(np.int64)
    x = digits[rng.integers(0, len(digits), n)].copy()
    regions = np.zeros((n, 28, 28), bool)
    for k, (r, c) in enumerate(SQUARE_POSITIONS[:num_classes]):
        regions[y == k, r : r + SQUARE, c : c + SQUARE] = True
    x[regions] = 1.0
    return x, y, regions


def median_seconds(fn, xs, classes, repeats: int | None = None) -> float:
    """Median wall seconds of one explanation, `fn(xs[i:i+1], classes[i:i+1])`, after one warm-up call.

    Args:
        fn: the explainer, `(1, H, W, 1), (1,) -> (1, H, W)`.
        xs: `(B, H, W, 1)` images; classes: `(B,)` their classes.
        repeats: how many of the images to time (default all).
    """
    fn(xs[:1], classes[:1])
    times = []
    for i in range(len(xs) if repeats is None else min(repeats, len(xs))):
        t = time.perf_counter()
        fn(xs[i : i + 1], classes[i : i + 1])
        times.append(time.perf_counter() - t)
    return float(np.median(times))
