"""The baselines the explainer is evaluated against, the ground truth as a scalar (`OracleScalar`), and timing.

Every baseline maps `(xs (B, H, W, 1), classes (B,))` to an importance map
`(B, H, W)` of the scalar `siamese_xai.evaluation.metrics.DistanceScalar` explains,
d(x) = ||f(x) - c_k||^2, larger meaning "more of what keeps x close to c_k":
random ordering; occlusion with a sliding patch; KernelSHAP on a grid of
superpixels (the `shap` package); a RISE-style distance explainer following
the `distance-explainer` package's algorithm (the package itself needs torch
through `dianna`, so it is re-implemented here in a few lines); gradient
saliency and Integrated Gradients (white-box; they need f's gradients); and
two model-free sanity orderings that never look at f: the input intensity
x_p (`intensity_maps`) and the Sobel edge magnitude of x (`edge_maps`).
This project's own maps are its explainers' `ranking`, read through the
result protocol (`benchmarks/evaluation/registry.py`). `OracleScalar` replaces the network by the ground truth itself, to
measure what a baseline can score at best on a synthetic set. See
`benchmarks/evaluation/RESULTS.md` for what was used and why.

The benchmark (`python -m benchmarks.evaluation.evaluate`) and `reproduce/digits.py` use
them; `benchmarks/evaluation/registry.py` names them.
"""

from __future__ import annotations

import math
import time

import numpy as np
import tensorflow as tf

from siamese_xai import _checks
from siamese_xai.evaluation.metrics import DistanceScalar

_check_images = _checks.check_gray_batch


# ---------------------------------------------------------------------------
# explainers: each maps (xs (B,H,W,1), classes (B,), seed) -> (B, H, W) importance


def random_maps(xs, classes, seed=0) -> np.ndarray:
    """A uniformly random ordering: `(B, H, W)` draws from U(0, 1)."""
    xs = _check_images(xs)
    return np.random.default_rng(seed).random(xs.shape[:3]).astype(np.float32)


def intensity_maps(xs, classes=None, seed=0) -> np.ndarray:
    """The input-intensity ordering x_p: model-free (deletion then removes ink first).

    Returns:
        `(B, H, W)` float32, the images themselves.
    """
    return _check_images(xs)[..., 0].copy()


def edge_maps(xs, classes=None, seed=0) -> np.ndarray:
    """The edge-map ordering: Sobel gradient magnitude of x (`scipy.ndimage.sobel`), model-free.

    Returns:
        `(B, H, W)` float32 sqrt(Sx^2 + Sy^2) of each image (borders: nearest-pixel extension).
    """
    from scipy import ndimage

    xs = _check_images(xs)[..., 0].astype(np.float64)
    # one image at a time: on a (B, H, W) array sobel would also smooth across the batch axis
    return np.stack([np.hypot(ndimage.sobel(x, axis=1, mode="nearest"), ndimage.sobel(x, axis=0, mode="nearest"))
                     for x in xs]).astype(np.float32)


class OracleScalar:
    """A model of the ground truth itself: d(x) = -(ink of x inside image b's true region), b = `classes[i]`.

    Duck-types `DistanceScalar.__call__` for the black-box baselines, with the
    image's index in place of its class, so a baseline's code runs unchanged
    and its score with this scalar is the most it can reach on the set (its
    ceiling). The nearest class it returns is always 0 (not used).

    Args:
        regions: `(n, H, W)` bool true regions.
    """

    def __init__(self, regions):
        self.regions = np.asarray(regions, np.float64)
        if self.regions.ndim != 3:
            raise ValueError(f"`regions` must be (n, H, W). Received: regions.shape={self.regions.shape}")

    def __call__(self, xs, classes):
        xs = np.asarray(xs, np.float64)[..., 0]
        d = -(xs * self.regions[np.asarray(classes, np.int64)]).sum(axis=(1, 2))
        return d, np.zeros(len(xs), np.int64)


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


def _distance_tf(embed, prototypes, xs, classes, contrasts=None):
    """`(B,)` d(x, c_k) = ||f(x) - c_k||^2, or -m(x) = d(x, c_k) - d(x, c_l) where `contrasts` gives l."""
    protos = tf.constant(prototypes, tf.float32)
    h = embed(xs, training=False)
    d = tf.reduce_sum((h - tf.gather(protos, tf.constant(classes, tf.int32))) ** 2, axis=-1)
    if contrasts is None:
        return d
    return d - tf.reduce_sum((h - tf.gather(protos, tf.constant(contrasts, tf.int32))) ** 2, axis=-1)


def gradient_maps(scalar: DistanceScalar, xs, classes, contrasts=None) -> np.ndarray:
    """Gradient saliency |d d / d x|, or |d m / d x| with `contrasts` (white-box: f a differentiable Keras model).

    Args:
        scalar: the `DistanceScalar`.
        xs: `(B, H, W, 1)`; classes: `(B,)` k.
        contrasts: None (explain d(x, c_k)), or `(B,)` l: explain the margin m = d(x, c_l) - d(x, c_k).

    Returns:
        `(B, H, W)` float32.
    """
    xs = tf.constant(_check_images(xs))
    with tf.GradientTape() as tape:
        tape.watch(xs)
        d = _distance_tf(scalar.embed, scalar.prototypes, xs, np.asarray(classes),
                         None if contrasts is None else np.asarray(contrasts))
    g = tape.gradient(d, xs).numpy()
    scalar.calls += len(xs)
    return np.abs(g[..., 0]).astype(np.float32)


def integrated_gradients_maps(scalar: DistanceScalar, xs, classes, steps: int = 32, contrasts=None) -> np.ndarray:
    """Integrated Gradients of -d from the blank image (white-box), or of the margin m with `contrasts`.

    `(x - 0) * mean_t grad(-d)(t x)` over `steps` midpoints t; positive values
    mark pixels that bring x toward c_k. The attributions sum to about
    d(0) - d(x) (completeness); with `contrasts` (`(B,)` l) the value is
    m = d(x, c_l) - d(x, c_k) and they sum to about m(x) - m(0).

    Returns:
        `(B, H, W)` float32.
    """
    xs = _check_images(xs)
    b = len(xs)
    alphas = (np.arange(steps, dtype=np.float32) + 0.5) / steps
    path = tf.constant((alphas[None, :, None, None, None] * xs[:, None]).reshape(-1, *xs.shape[1:]))
    with tf.GradientTape() as tape:
        tape.watch(path)
        neg = -_distance_tf(scalar.embed, scalar.prototypes, path, np.repeat(np.asarray(classes), steps),
                            None if contrasts is None else np.repeat(np.asarray(contrasts), steps))
    g = tape.gradient(neg, path).numpy().reshape(b, steps, *xs.shape[1:]).mean(1)
    scalar.calls += b * steps
    return (xs * g)[..., 0].astype(np.float32)


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
