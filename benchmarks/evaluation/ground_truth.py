"""Ground-truth extras of the evaluation: ceilings, the negative control's mechanism, the contrast ablations.

`python -m benchmarks.evaluation.evaluate` calls these on the constant and varying sets:

- `ceilings`: each method's relevance rank accuracy when the network is replaced
  by `baselines.OracleScalar` (a model of the ground truth itself), i.e. the
  most the method can score on the set. Measured for the black-box baselines;
  a model-free ordering's map does not depend on the model, so its ceiling is
  its own score; a pixel-level map of the oracle (gradient, Integrated
  Gradients, and the decoder methods, which rank single pixels) marks
  exactly the square, so theirs is 1 by construction.
- `negative_control_mechanism`: on the constant-square set, why the paper's
  method cannot find the square, measured: the decoded value g(f(x)) in the
  square, the decoder's sigmoid slope there relative to its slope at
  mid-grey, how much of Delta_p falls in the square, and whether the mc mask
  changes with `sigma_scale`.
- `contrast_ablations`: on the varying set, what the contrastive map's sign
  and its weighting by x_p each buy (the same path ranked by -S_p alone, and
  by |change|), and where its misses go.

This is the evaluation harness, not part of the library.
"""

from __future__ import annotations

import numpy as np

from benchmarks.evaluation import registry
from siamese_xai.evaluation import baselines as bl
from siamese_xai.evaluation import metrics
from siamese_xai.evaluation.synthetic import CELL, CLASS_CELLS

MODEL_FREE = tuple(m.name for m in registry.METHODS if m.kind == registry.MODEL_FREE)
ORACLE_MEASURED = tuple(m.name for m in registry.METHODS if m.scalar_only and m.kind != registry.MODEL_FREE)
SIGMA_SCALES = (0.01, 0.1, 1.0)  # the paper's 0.1, and ten times smaller and larger


def ceilings(method_names, scores: dict, oracle_fns: dict, xs, regions) -> dict:
    """Each method's ground-truth ceiling on a synthetic set.

    Args:
        method_names: the evaluated methods.
        scores: name -> the method's own `mean_ci` relevance rank accuracy (model-free methods reuse it).
        oracle_fns: name -> fn(xs, index, seed) -> `(B, H, W)` maps, the baseline driven by the oracle.
        xs: `(n, H, W, 1)` images; regions: `(n, H, W)` bool their squares.

    Returns:
        name -> `{"mean", "ci95", "n", "how"}` (ci95 and n absent for "by construction").
    """
    out = {}
    index = np.arange(len(xs))
    for name in method_names:
        if name in MODEL_FREE:
            out[name] = {**scores[name], "how": "model-free: the map does not depend on the model, so its score"}
        elif name in oracle_fns:
            share = metrics.region_scores(oracle_fns[name](xs, index, 0), regions)["rank_accuracy"]
            out[name] = {**metrics.mean_ci(share), "how": "measured with the oracle scalar"}
        else:
            out[name] = {"mean": 1.0, "how": "pixel-level map: 1 by construction"}
    return out


def sigmoid_slope_ratio(y) -> np.ndarray:
    """The slope of a sigmoid at output y relative to its slope at 0.5: y (1 - y) / 0.25."""
    y = np.asarray(y, np.float64)
    return y * (1.0 - y) / 0.25


def negative_control_mechanism(explainer, xs, classes, regions, seed: int = 0) -> dict:
    """Why the paper's method cannot see the constant square, measured on the given images.

    Args:
        explainer: the `SiameseExplainer` of the constant-square run (paper defaults).
        xs: `(n, 28, 28, 1)` images; classes: `(n,)` the explained classes.
        regions: `(n, 28, 28)` bool the squares.

    Returns:
        A dict; per-image values as `mean_ci` over the images:
        `decoded_in_square` (g(f(x)) averaged over the square's pixels),
        `sigmoid_slope_ratio` (y (1 - y) / 0.25 there), `delta_in_square_over_outside`
        (mean Delta_p inside the square over mean Delta_p outside),
        `mask_share_in_square` (of the mc mask's pixels), `mask_iou_vs_sigma_scale`
        (sigma_scale -> IoU of the mc mask with the one at the paper's 0.1);
        and numbers: `decoded_in_square_min` (over all square pixels),
        `times_flatter` (1 / the mean slope ratio), `decoder_output` (the last
        layer's activation name), `n_images`.
    """
    classes = [int(c) for c in classes]
    base = explainer.replace(sigma_scale=0.1)
    e = base.explain(xs, target_class=classes, seed=seed)
    recon = np.asarray(e.reconstruction[..., 0], np.float64)
    inside = recon[regions]
    delta = np.asarray(e.mean_abs_change[..., 0], np.float64)
    mask = np.asarray(e.mask[..., 0], bool)
    ious = {}
    for scale in SIGMA_SCALES:
        other = e if scale == 0.1 else explainer.replace(sigma_scale=scale).explain(xs, target_class=classes, seed=seed)
        m = np.asarray(other.mask[..., 0], bool)
        ious[str(scale)] = metrics.mean_ci([metrics.mask_iou(mask[i], m[i]) for i in range(len(xs))])
    per_image = lambda v: metrics.mean_ci([v[i][regions[i]].mean() for i in range(len(xs))])  # noqa: E731
    slope = per_image(sigmoid_slope_ratio(recon))
    last = explainer.decoder.layers[-1] if hasattr(explainer.decoder, "layers") else None
    activation = getattr(getattr(last, "activation", None), "__name__", "unknown")
    return {
        "n_images": int(len(xs)),
        "decoder_output": activation,
        "decoded_in_square": per_image(recon),
        "decoded_in_square_min": float(inside.min()),
        "sigmoid_slope_ratio": slope,
        "times_flatter": float(1.0 / slope["mean"]),
        "delta_in_square_over_outside": metrics.mean_ci(
            [delta[i][regions[i]].mean() / delta[i][~regions[i]].mean() for i in range(len(xs))]),
        "mask_share_in_square": metrics.mean_ci((mask & regions).sum(axis=(1, 2)) / mask.sum(axis=(1, 2))),
        "mask_iou_vs_sigma_scale": ious,
    }


def contrast_ablations(explainer, xs, classes, regions, other_cells, seed: int = 0) -> dict:
    """What the contrastive map's sign and its x_p weighting each buy, on the varying set.

    Args:
        explainer: the varying run's `SiameseExplainer`.
        xs: `(n, 28, 28, 1)`; classes: `(n,)`; regions: `(n, 28, 28)` bool the squares.
        other_cells: `(n, 28, 28)` bool the cell of the same class that x does not use.

    Returns:
        `{"contrast", "contrast_S_only", "contrast_unsigned"}` -> `mean_ci` of the
        ground-truth share, plus `"share_in_other_cell"` of the first two (of
        their top-|R| pixels) and `"mask_pixels_mean"` (the mask's size: only
        pixels with E_p > 0 enter it).
    """
    maps, e = registry.explained_maps(explainer.replace(estimator="template_contrast"), xs, classes, seed)
    variants = {
        "contrast": maps,
        "contrast_S_only": -np.asarray(e.mean_signed_change[..., 0]),
        "contrast_unsigned": np.asarray(e.mean_abs_change[..., 0]),
    }
    size = int(regions[0].sum())
    out = {name: metrics.mean_ci(metrics.region_scores(m, regions)["rank_accuracy"]) for name, m in variants.items()}
    out["share_in_other_cell"] = {
        name: float((metrics.top_q_mask(variants[name], size) & other_cells).sum() / (len(xs) * size))
        for name in ("contrast", "contrast_S_only")
    }
    out["mask_pixels_mean"] = float(np.asarray(e.mask).sum(axis=(1, 2, 3)).mean())
    return out


def add_ceilings(records, explainer, settings, xs, regions) -> None:
    """Puts each method's relevance-rank-accuracy ceiling (`ceilings`) into its record (`"ceiling"`)."""
    recs = {r["method"]: r for r in records if r["method"] in registry.BY_NAME}  # a variant has no ceiling
    ctx_fns = registry.method_functions(None, bl.OracleScalar(regions), settings, names=ORACLE_MEASURED)
    found = ceilings(list(recs), {k: r["rank_accuracy"] for k, r in recs.items()}, ctx_fns, xs, regions)
    for k, r in recs.items():
        r["ceiling"] = found[k]


def other_cells(ys, cells):
    """`(n, 28, 28)` bool: the cell of each image's class (varying set) that the image does not use."""
    out = np.zeros((len(ys), 28, 28), bool)
    for i, (k, c) in enumerate(zip(ys, cells)):
        r0, c0 = CLASS_CELLS[k][1 - c]
        out[i, r0 : r0 + CELL, c0 : c0 + CELL] = True
    return out
