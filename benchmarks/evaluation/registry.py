"""Every explanation method and every metric of the benchmark, each declared once.

A method is added here and nowhere else: `python -m benchmarks.evaluation.evaluate`,
`benchmarks.evaluation.evaluate_report`, `benchmarks.evaluation.randomisation` and
`benchmarks.evaluation.ground_truth` read `METHODS` (name, kind, deterministic or not,
description, and how to build its map function) and `METRICS` (name, kind,
direction, description, whether it is the primary one). docs/evaluation.md
states the rules the metrics enter.

A map function is `fn(xs (B, H, W, 1), classes (B,), seed) -> (B, H, W)`,
larger meaning more important to the decision for class k. This project's
methods are read through the result protocol every explainer shares
(`explained_maps`: `explain(x, target_class=..., seed=...)` and the result's
`ranking`), so any explainer enters the benchmark the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from siamese_xai.evaluation import baselines as bl
from siamese_xai.evaluation.faithfulness import FILLS

THIS_PROJECT = "this project"
MODEL_FREE = "model-free ordering"
BLACK_BOX = "black-box baseline"
WHITE_BOX = "white-box reference"


@dataclass(frozen=True)
class Context:
    """What a method's map function may use: the explainer of the run, its scalar d, the mode's settings.

    `explainer` is None where a method without `decoder=True` is built by the
    randomisation check and for the ground-truth ceilings, so such a method
    reads f and the prototypes from `scalar` (`scalar.embed`,
    `scalar.prototypes`). `settings` is one mode of `benchmarks.evaluation.evaluate.MODES`
    or of `benchmarks.evaluation.randomisation.MODES`; a budget a method reads from it
    is a key of every mode of both. `contrast`, where given, names l of "k rather
    than l" for every method that asks one: `contrast(xs, classes) -> (B,)` (the
    randomisation check fixes it from the trained f); None: each image's
    runner-up under `scalar`'s f.
    """

    explainer: object
    scalar: object
    settings: dict
    contrast: Callable | None = None


@dataclass(frozen=True)
class Method:
    """One explanation method.

    Args:
        name: its key in every JSON file.
        kind: one of THIS_PROJECT, MODEL_FREE, BLACK_BOX, WHITE_BOX.
        deterministic: the same map for every seed.
        description: one line for RESULTS.md.
        build: `Context -> map function`.
        scalar_only: the map only calls `ctx.scalar(xs, classes)` (an oracle scalar can drive it).
        decoder: the map uses the explainer's decoder g (the randomisation check retrains it).
    """

    name: str
    kind: str
    deterministic: bool
    description: str
    build: Callable = field(repr=False, compare=False)
    scalar_only: bool = False
    decoder: bool = False


# Per-image fields a result may carry that the benchmark records: f calls the explainer counted itself, whether
# its answer flipped the decision, the size of the set it found.
RESULT_EXTRAS = ("n_calls", "flips", "set_size")
# The key of `extras` under which a map function hands on whole arrays (name -> `(B, H, W)`), not per-image numbers.
ARRAYS = "arrays"


def explained_maps(explainer, xs, classes, seed: int = 0, contrasts=None):
    """Any explainer's maps through the result protocol: why each image is its class k.

    Args:
        explainer: anything with `explain(x, target_class=..., seed=...)` returning a
            `siamese_xai.explainers.results.BatchResult` (every result has `ranking`).
        xs: `(B, H, W, 1)` images; classes: `(B,)` the explained classes k.
        seed: the explainer's seed.
        contrasts: None, or `(B,)` l, passed as `contrast_class` to an explainer that
            answers "k rather than l" (`"contrast" in explainer.answers`).

    Returns:
        `(maps, result)`: `(B, H, W)` float32 the result's `ranking` (the map
        its mask holds the top of), and the result itself.
    """
    asks = {} if contrasts is None or "contrast" not in getattr(explainer, "answers", ()) else \
        {"contrast_class": [int(c) for c in contrasts]}
    result = explainer.explain(xs, target_class=[int(c) for c in classes], seed=seed, **asks)
    ranking = np.asarray(result.ranking, np.float32)
    if ranking.shape != (len(xs), *np.shape(xs)[1:3], 1):
        raise ValueError(f"`explainer`'s ranking must be one gray map per image, {(len(xs), *np.shape(xs)[1:3], 1)}. "
                         f"Received: {ranking.shape}")
    return ranking[..., 0], result


def _explained(make, arrays=()):
    """A method of this project: `make(ctx)` builds its explainer, read through `explained_maps`.

    `arrays`: result fields `(B, H, W, 1)` handed on under `extras[ARRAYS]` (gray, channel dropped), for `VARIANTS`.
    """
    def build(ctx):
        explainer = make(ctx)

        def fn(x, c, s):
            asks_l = ctx.contrast is not None and "contrast" in getattr(explainer, "answers", ())
            maps, result = explained_maps(explainer, x, c, s, ctx.contrast(x, c) if asks_l else None)
            extras = {k: np.asarray(getattr(result, k), np.float64) for k in RESULT_EXTRAS if k in result.fields}
            if arrays:
                extras[ARRAYS] = {k: np.asarray(getattr(result, k), np.float32)[..., 0] for k in arrays}
            return (maps, extras) if extras else maps
        return fn
    return build


def _probe(ctx):
    from siamese_xai.explainers.probe import ProbeExplainer

    return ProbeExplainer(ctx.explainer.embed, ctx.explainer.decoder, ctx.explainer.prototypes)


class MarginScalar:
    """-m(x) = d(x, c_k) - d(x, c_l) in the shape of `DistanceScalar`, for baselines written for d.

    A baseline calls `scalar(xs, classes)` and explains the value's rise;
    here each entry of `classes` carries the pair as `k * C + l` (C
    prototypes), so the baselines' own bookkeeping (repeating the classes of
    the images they perturb) keeps k and l together. A rise of -m is a drop of
    the margin the benchmark scores. f's images are counted by `scalar`.
    `contrast` (`Context.contrast`) names l; None: the runner-up under `scalar`'s f.
    """

    def __init__(self, scalar, contrast=None):
        self.scalar, self.embed, self.prototypes = scalar, scalar.embed, scalar.prototypes
        self.num_classes = len(scalar.prototypes)
        self.contrast = contrast

    def codes(self, xs, classes) -> np.ndarray:
        """`(B,)` k * C + l, l the runner-up prototype of each unperturbed image (one f call per image)."""
        from siamese_xai.explainers.questions import runner_up

        classes = np.asarray(classes, np.int64)
        l = runner_up(self.scalar.all_distances(xs), classes) if self.contrast is None else self.contrast(xs, classes)
        return classes * self.num_classes + np.asarray(l, np.int64)

    def __call__(self, xs, codes):
        codes = np.asarray(codes, np.int64)
        d = self.scalar.all_distances(xs)
        rows = np.arange(len(d))
        k, l = codes // self.num_classes, codes % self.num_classes
        return d[rows, k] - d[rows, l], d.argmin(1)


def _white_margin(maps):
    """A white-box baseline `maps(ctx, xs, classes, contrasts)` of the margin: l from `ctx.contrast` where the
    context names it (the randomisation check: l of the trained f), else the runner-up of each unperturbed image."""
    def build(ctx):
        from siamese_xai.explainers.questions import runner_up

        def fn(x, c, s):
            c = np.asarray(c, np.int64)
            l = runner_up(ctx.scalar.all_distances(x), c) if ctx.contrast is None else ctx.contrast(x, c)
            return maps(ctx, x, c, np.asarray(l, np.int64))
        return fn
    return build


def _by_margin(maps):
    """A baseline `maps(ctx, scalar, xs, classes, seed)` driven by the margin m instead of d (`MarginScalar`)."""
    def build(ctx):
        margin = MarginScalar(ctx.scalar, ctx.contrast)

        def fn(x, c, s):
            calls = ctx.scalar.calls
            out = maps(ctx, margin, x, margin.codes(x, c), s)
            per_image = (ctx.scalar.calls - calls) / len(x)
            return out, {"n_calls": np.full(len(x), per_image, np.float64)}
        return fn
    return build


METHODS = (
    Method("mc", THIS_PROJECT, False,
           "the paper's method, N = 5000 decoded perturbations, s = 5 (the defaults); map = Delta_p",
           _explained(lambda ctx: ctx.explainer.replace(estimator="mc")), decoder=True),
    Method("linear", THIS_PROJECT, False,
           "the paper's method, the decoder's first-order expansion over the same draws",
           _explained(lambda ctx: ctx.explainer.replace(estimator="linear")), decoder=True),
    Method("template_contrast", THIS_PROJECT, True,
           "a contrast of the decoded class templates along the path from h to c_l (l the runner-up), gated by "
           "the input: E_p = max(-S_p, 0) x_p; f is never run on a changed input",
           _explained(lambda ctx: ctx.explainer.replace(estimator="template_contrast")), decoder=True),
    Method("probe", THIS_PROJECT, True,
           "asks f: cells of the image painted with the decoder's proposal g(c_l), each scored by the measured "
           "drop of the margin; the smallest flipping set found by bisection and checked by f (siamese_xai.explainers.probe); "
           "map = its ranking: the drop map smoothed and gated (what x has first)",
           _explained(_probe, arrays=("drop_map", "proposal")), decoder=True),
    Method("random", MODEL_FREE, False, "uniformly random pixel ordering",
           lambda ctx: bl.random_maps, scalar_only=True),
    Method("intensity", MODEL_FREE, True, "the input intensity x_p (no model)",
           lambda ctx: bl.intensity_maps, scalar_only=True),
    Method("edge", MODEL_FREE, True, "the Sobel gradient magnitude of x (scipy.ndimage.sobel; no model)",
           lambda ctx: bl.edge_maps, scalar_only=True),
    Method("occlusion", BLACK_BOX, True, "6x6 zero patch, stride 2; map = mean rise of d over covering patches",
           lambda ctx: lambda x, c, s: bl.occlusion_maps(ctx.scalar, x, c), scalar_only=True),
    Method("kernelshap", BLACK_BOX, False,
           "shap.KernelExplainer on 49 superpixels (4x4 grid), blank background, value -d",
           lambda ctx: lambda x, c, s: bl.kernelshap_maps(ctx.scalar, x, c, s, nsamples=ctx.settings["shap_nsamples"]),
           scalar_only=True),
    Method("occlusion_margin", BLACK_BOX, True,
           "occlusion as above, driven by the margin: map = mean drop of m = d(x, c_l) - d(x, c_k), l the runner-up",
           _by_margin(lambda ctx, sc, x, c, s: bl.occlusion_maps(sc, x, c))),
    Method("kernelshap_margin", BLACK_BOX, False,
           "KernelSHAP as above, driven by the margin: value m = d(x, c_l) - d(x, c_k), l the runner-up",
           _by_margin(lambda ctx, sc, x, c, s: bl.kernelshap_maps(sc, x, c, s,
                                                                  nsamples=ctx.settings["shap_nsamples"]))),
    Method("distance_explainer", BLACK_BOX, False,
           "the distance-explainer algorithm (RISE masks, 8x8 grid, p_keep 0.5, top/bottom 20%), d as distance",
           lambda ctx: lambda x, c, s: bl.rise_distance_maps(ctx.scalar, x, c, s, n_masks=ctx.settings["rise_masks"]),
           scalar_only=True),
    Method("distance_explainer_margin", BLACK_BOX, False,
           "the distance-explainer algorithm as above, driven by the margin: masks ranked by m, l the runner-up",
           _by_margin(lambda ctx, sc, x, c, s: bl.rise_distance_maps(sc, x, c, s, n_masks=ctx.settings["rise_masks"]))),
    Method("gradient", WHITE_BOX, True, "|grad_x d| (white-box)",
           lambda ctx: lambda x, c, s: bl.gradient_maps(ctx.scalar, x, c)),
    Method("gradient_margin", WHITE_BOX, True, "|grad_x m|, m = d(x, c_l) - d(x, c_k), l the runner-up (white-box)",
           _white_margin(lambda ctx, x, c, l: bl.gradient_maps(ctx.scalar, x, c, contrasts=l))),
    Method("integrated_gradients", WHITE_BOX, True, "Integrated Gradients of -d from the blank image (white-box)",
           lambda ctx: lambda x, c, s: bl.integrated_gradients_maps(ctx.scalar, x, c, steps=ctx.settings["ig_steps"])),
    Method("integrated_gradients_margin", WHITE_BOX, True,
           "Integrated Gradients of the margin m from the blank image, l the runner-up (white-box)",
           _white_margin(lambda ctx, x, c, l: bl.integrated_gradients_maps(ctx.scalar, x, c, steps=ctx.settings["ig_steps"],
                                                                           contrasts=l))),
)
BY_NAME = {m.name: m for m in METHODS}


# -- matched post-processing -------------------------------------------------------------------------------------
# The probe's map is post-processed before it is ranked (siamese_xai.explainers.regions.post_processed): smoothed by a
# Gaussian of half a cell, then gated (the positive pixels where x exceeds the probe's proposal p lifted above all
# others). A variant applies the same steps, with the same sigma and the probe's own p of each image, to a method's
# map; it is derived from maps already computed (no call of f), so its f calls and seconds are its base's.
SMOOTHED, GATED = "smoothed", "gated"
PROBE_PROCESSING = (SMOOTHED, GATED)  # the probe's steps, in its order
GATE_SOURCE = "probe"  # the method whose per-image proposal p the gate compares x with


@dataclass(frozen=True)
class Variant:
    """A method's map with post-processing steps applied, scored as an entry of its own.

    Args:
        name: its key in every JSON file.
        base: the `METHODS` entry it is derived from.
        source: the base's array it starts from: "map" (the base's map) or a name in the base's `extras[ARRAYS]`.
        steps: `SMOOTHED` and / or `GATED`, applied in this order.
        description: one line for RESULTS.md.
    """

    name: str
    base: str
    source: str
    steps: tuple
    description: str

    @property
    def kind(self) -> str:
        return BY_NAME[self.base].kind

    @property
    def deterministic(self) -> bool:
        return BY_NAME[self.base].deterministic


def _steps_words(steps) -> str:
    return " then ".join({SMOOTHED: "smoothed as the probe smooths", GATED: "gated as the probe gates"}[s] for s in steps)


# Every map-producing method with the probe's exact post-processing; the probe's raw map (its drop map) alone and with
# each step alone. The variants with one step of the other methods are not scored (docs/evaluation.md says why).
VARIANTS = (
    Variant("probe_raw", "probe", "drop_map", (), "the probe's raw map: its drop map, neither smoothed nor gated"),
    Variant("probe_raw+smoothed", "probe", "drop_map", (SMOOTHED,), "the probe's drop map smoothed, not gated"),
    Variant("probe_raw+gated", "probe", "drop_map", (GATED,), "the probe's drop map gated, not smoothed"),
    *(Variant(f"{m.name}+{'+'.join(PROBE_PROCESSING)}", m.name, "map", PROBE_PROCESSING,
              f"`{m.name}`'s map {_steps_words(PROBE_PROCESSING)} (the probe's post-processing)")
      for m in METHODS if m.name != "probe"),
)
VARIANT_BY_NAME = {v.name: v for v in VARIANTS}
ENTRIES = tuple(m.name for m in METHODS) + tuple(v.name for v in VARIANTS)  # every scored entry, in order
# The methods whose verdicts are given: this project's, and the probe's raw map (the comparison of raw maps).
JUDGED = tuple(m.name for m in METHODS if m.kind == THIS_PROJECT) + ("probe_raw",)


def probe_sigma(image_shape) -> float:
    """The sigma in pixels the benchmark's probe smooths with (its default config)."""
    from siamese_xai.config import ProbeConfig

    return ProbeConfig().smooth_for(image_shape)


def post_process(maps, steps, xs, proposal, sigma: float) -> np.ndarray:
    """`maps` with the probe's post-processing `steps` applied (siamese_xai.explainers.regions), in order.

    Args:
        maps: `(B, H, W)`; xs: `(B, H, W, 1)` the images; proposal: `(B, H, W)` the probe's p of each image.
        steps: a sequence of `SMOOTHED`, `GATED`.
        sigma: the Gaussian's sigma in pixels (`probe_sigma`).

    Returns:
        `(B, H, W)` float32.
    """
    from siamese_xai.explainers.regions import ranking_of, smoothed

    out = np.asarray(maps, np.float32)[..., None]
    xs = np.asarray(xs, np.float32)
    for step in steps:
        if step == SMOOTHED:
            out = smoothed(out, sigma)
        elif step == GATED:
            out = ranking_of(xs, np.asarray(proposal, np.float32)[..., None], out)
        else:
            raise ValueError(f"`steps` must hold {SMOOTHED!r} or {GATED!r}. Received: {step!r}")
    return out[..., 0]


def variant_maps(variant: Variant, base_maps, base_arrays: dict, proposal, xs, sigma: float) -> np.ndarray:
    """`(B, H, W)` a variant's maps, derived without calling f.

    Args:
        variant: the `Variant`.
        base_maps: `(B, H, W)` its base's maps; base_arrays: the base's `extras[ARRAYS]` (name -> `(B, H, W)`).
        proposal: `(B, H, W)` the proposal of `GATE_SOURCE` for each image (None where no step gates).
        xs: `(B, H, W, 1)` the images; sigma: `probe_sigma`.
    """
    start = base_maps if variant.source == "map" else base_arrays[variant.source]
    if GATED in variant.steps and proposal is None:
        raise ValueError(f"variant {variant.name!r} is gated by {GATE_SOURCE!r}'s proposal. Received: proposal=None")
    return post_process(start, variant.steps, xs, proposal, sigma)


def split(result):
    """`(maps, extras)` from a map function's return value (maps alone, or maps and a dict of per-image values).

    Whole arrays a function hands on (`extras[ARRAYS]`) are left out; `split_arrays` returns them too.
    """
    maps, extras, _ = split_arrays(result)
    return maps, extras


def split_arrays(result):
    """`(maps, extras, arrays)`: `split`'s pair and the arrays under `extras[ARRAYS]` (an empty dict if none)."""
    maps, extras = result if isinstance(result, tuple) else (result, {})
    extras = dict(extras)
    arrays = extras.pop(ARRAYS, {})
    return np.asarray(maps, np.float32), extras, arrays


def method_functions(explainer, scalar, settings: dict, names=None, contrast=None) -> dict:
    """name -> map function for every registered method (or those in `names`); `contrast`: `Context.contrast`."""
    ctx = Context(explainer, scalar, settings, contrast)
    return {m.name: m.build(ctx) for m in METHODS if names is None or m.name in names}


@dataclass(frozen=True)
class Metric:
    """One per-image number of the benchmark.

    Args:
        name: its key in results.json and per_image.npz.
        kind: "faithfulness" (margin curves) or "ground truth".
        higher_is_better: the better direction.
        description: one line for RESULTS.md.
        operator: for faithfulness: ("removal", fill, support, "deletion" / "insertion") or ("road", order).
        primary: the metric that decides "better" in the verdict rule (one per kind).
    """

    name: str
    kind: str
    higher_is_better: bool
    description: str
    operator: tuple = ()
    primary: bool = False


_FILL_WORDS = {"zero": "0", "mean": "the mean training image", "blur": "x blurred (Gaussian, sigma 2 px)"}
METRICS = (
    Metric("road_morf", "faithfulness", False,
           "ROAD, most relevant first: area under the margin after noisy linear imputation of 10-90% of the pixels",
           ("road", "morf"), primary=True),
    Metric("road_lerf", "faithfulness", True, "ROAD, least relevant first: the same area", ("road", "lerf")),
    *(Metric(f"{direction}_{fill}{'_support' if support else ''}", "faithfulness", direction == "insertion",
             f"{direction} of the margin, removed pixels = {_FILL_WORDS[fill]}, "
             + ("only the ink (x > 0) ranked and removed" if support else "all pixels"),
             ("removal", fill, support, direction))
      for fill in FILLS for support in (False, True) for direction in ("deletion", "insertion")),
    Metric("rank_accuracy", "ground truth", True,
           "relevance rank accuracy: share of the |R| top pixels inside the true region R", primary=True),
    Metric("relevance_mass", "ground truth", True, "share of the map's positive mass inside R"),
    Metric("roc_auc", "ground truth", True, "ROC-AUC of the map as a detector of R's pixels"),
)
METRIC_BY_NAME = {m.name: m for m in METRICS}
PRIMARY = {m.kind: m.name for m in METRICS if m.primary}
