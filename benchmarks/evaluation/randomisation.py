"""The model-parameter randomisation check (Adebayo et al. 2018), able to fail: floors, ceilings, a retrained explainer.

Commands (from the project root; TFDS_DATA_DIR must point at MNIST):

    python -m benchmarks.evaluation.randomisation --run runs/paper                 # full: 100 images
    python -m benchmarks.evaluation.randomisation --run RUN --quick --out FILE.json  # a few images (the test)

Writes `benchmarks/evaluation/randomisation.json` (or `--out`) atomically, with its wall
time (`seconds`, `seconds_by_part`), the machine and its load.

Cascading randomisation: the Siamese subnetwork f is copied (the run folder
is never written) and its weighted layers are re-initialised one at a time
from the top (the embedding layer) down to the first convolution, each with
the layer's own initializers, seeded by `--seed` and the stage. After each
step every registered method (`benchmarks/evaluation/registry.py`) explains the same
images again and its map is compared with its trained-f map: top-q IoU
(q = 100), SSIM of the min-max-normalised maps (`tf.image.ssim`), Spearman
rank correlation of the maps and of their absolute values.

The verdict (docs/evaluation.md) puts the similarity s at full randomisation
between a floor and a ceiling, per image: the floor is the similarity of the
trained-f maps of two *different* images (image i and i + 1), what any two
maps of the method share (a template shares a lot); the ceiling is the
similarity of the same image's map computed twice with two seeds (1 for a
deterministic method). r = (s - floor) / (ceiling - floor); the map
**changes** when the upper end of the 95% interval of mean r is below 0.5 on
both IoU and SSIM; it is **undecided (template)** when ceiling - floor is
under 0.05 (the map barely depends on the image).

The decoder methods also depend on the explainer trained for f. Their
verdict is decided by the **retrained** variant: at full randomisation the
explainable autoencoder and the decoder are trained from scratch on the
randomised f (the paper's stages 2 and 3, shortened: `n_retrain_images`
images, `retrain_epochs` epochs), and k and l are recomputed from the
randomised f. The variant with the trained decoder kept (suffix `_kept`)
is a diagnostic. The prototypes are recomputed with each stage's f from the
same training images. Model-free orderings read no model: they must come
out "does not change" (a check of the check). The Spearman rule of earlier
versions is kept beside each verdict as `changes_spearman` (a diagnostic).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import time
import zlib
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[2]

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from scipy.stats import rankdata  # noqa: E402

from benchmarks.evaluation import registry  # noqa: E402
from siamese_xai import files, runs
from siamese_xai.evaluation import metrics
from siamese_xai.training import stages as training  # noqa: E402
from siamese_xai.config import TrainConfig  # noqa: E402
from siamese_xai.data.mnist import load_mnist  # noqa: E402
from siamese_xai.config import ExplainConfig, TemplateContrastConfig
from siamese_xai.explainers.siamese import SiameseExplainer  # noqa: E402
from siamese_xai.explainers.explanation import ranking_map  # noqa: E402
from siamese_xai.explainers.prototypes import compute_prototypes, nearest_prototype  # noqa: E402
from siamese_xai.explainers.questions import runner_up  # noqa: E402

Q = 100  # top-q masks: the explainer's own default mask size
THRESHOLD = 0.5  # `changes`: the upper 95% bound of the Spearman correlation at full randomisation is below this
MODES = {
    "quick": dict(n_images=4, n_prototype_images=1000, n_retrain_images=500, retrain_epochs=(1, 1),
                  n_perturbations=500, contrast_points=200, shap_nsamples=60, rise_masks=200, ig_steps=8),
    "full": dict(n_images=100, n_prototype_images=5000, n_retrain_images=5000, retrain_epochs=(4, 4),
                 n_perturbations=5000, contrast_points=1000, shap_nsamples=100, rise_masks=300, ig_steps=32),
}
RELATIVE_THRESHOLD = 0.5  # `changes`: the upper 95% bound of mean relative similarity is below this, on IoU and SSIM
TEMPLATE_GAP = 0.05  # ceiling - floor below this: the map barely depends on the image (undecided)
VERDICT_KEYS = ("iou_top_q", "ssim")


# ---------------------------------------------------------------------------
# randomisation


def cascade_layers(model) -> list:
    """The names of the model's layers that hold weights, top (output) first: the cascade's order."""
    names = [layer.name for layer in model.layers if layer.weights]
    if not names:
        raise ValueError(f"`model` must have layers with weights to randomise. Received: {model.name!r} has none")
    return names[::-1]


def randomised_copy(model) -> keras.Model:
    """A copy of a Keras model with the same weights (randomising the copy leaves `model` untouched)."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a Keras model (f's layers are re-initialised). Received: model={model!r}")
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def reinitialise_layer(layer, seed: int) -> None:
    """Sets every weight of `layer` to a fresh draw of the layer's own initializer for it, seeded.

    Args:
        layer: a built Keras layer whose weights are named like their
            initializers (`kernel` <- `kernel_initializer`, `bias` <- `bias_initializer`, ...).
        seed: the same seed gives the same weights.

    Raises:
        ValueError: a weight has no initializer on the layer (named in the message).
    """
    for i, var in enumerate(layer.weights):
        short = var.path.split("/")[-1]
        init = getattr(layer, f"{short}_initializer", None)
        if init is None:
            raise ValueError(f"`layer` {layer.name!r} must have a `{short}_initializer` for its weight {var.path!r}")
        config = keras.initializers.serialize(init)
        if "seed" in config.get("config", {}):
            config = {**config, "config": {**config["config"], "seed": int(seed) * 100 + i}}
        var.assign(keras.initializers.deserialize(config)(tuple(var.shape), dtype=var.dtype))


# ---------------------------------------------------------------------------
# similarity of two maps (pure functions)


def rank_correlation(a, b) -> np.ndarray:
    """Spearman rank correlation of each pair of maps (ties get their average rank).

    A constant map has no ranking: its correlation with a non-constant map is
    0 (it shares none of that map's ordering) and with another constant map 1.

    Args:
        a, b: `(B, H, W)` maps.

    Returns:
        `(B,)` float64 in [-1, 1].
    """
    a, b = _pair(a, b)
    ra = rankdata(a, axis=1)
    rb = rankdata(b, axis=1)
    ra -= ra.mean(1, keepdims=True)
    rb -= rb.mean(1, keepdims=True)
    va, vb = (ra * ra).sum(1), (rb * rb).sum(1)
    den = np.sqrt(va * vb)
    rho = np.where(den > 0, (ra * rb).sum(1) / np.where(den > 0, den, 1.0), 0.0)
    return np.where((va == 0) & (vb == 0), 1.0, rho)


def top_q_masks(maps, q: int = Q) -> np.ndarray:
    """`(B, H, W)` bool: each map's q largest values (`metrics.top_q_mask`); ties broken by a permutation seeded by the map itself.

    Seeding the tie-break by the map's content means that identical maps give
    identical masks, while pixels tied at one value in two *different* maps
    (e.g. the zeros that fill the mask of a map marking fewer than q pixels)
    coincide only by chance, not because both masks fill them in raster order,
    which the package's default tie-break (the lower flat index) would make
    them do and so inflate the IoU of unrelated maps.
    """
    maps = np.asarray(maps, np.float64)
    flat = maps.reshape(len(maps), -1)
    tie = np.stack([np.random.default_rng(zlib.crc32(np.ascontiguousarray(row).tobytes())).permutation(row.size)
                    for row in flat]) if len(flat) else np.zeros(flat.shape, np.int64)
    return metrics.top_q_mask(maps, q, tie_order=tie)


def map_ssim(a, b) -> np.ndarray:
    """`(B,)` SSIM (`tf.image.ssim`, its 11x11 Gaussian window) of each pair of maps, each min-max scaled to [0, 1].

    A constant map scales to 0 everywhere. The maps must be at least 11x11.
    """
    shape = np.shape(a) + (1,)
    a, b = _pair(a, b)

    def scale(m):
        lo, hi = m.min(1, keepdims=True), m.max(1, keepdims=True)
        return np.where(hi > lo, (m - lo) / np.where(hi > lo, hi - lo, 1.0), 0.0).reshape(shape)

    ssim = tf.image.ssim(tf.constant(scale(a), tf.float32), tf.constant(scale(b), tf.float32), max_val=1.0)
    return ssim.numpy().astype(np.float64)


def map_similarity(original, randomised, q: int = Q) -> dict:
    """How similar each randomised-model map stays to the trained model's map of the same image.

    Args:
        original: `(B, H, W)` maps for the trained f.
        randomised: `(B, H, W)` maps of the same images for a randomised f.
        q: the top-q mask size.

    Returns:
        A dict of `(B,)` float64 arrays: `spearman` (signed maps),
        `spearman_abs` (absolute values), `ssim`, and `iou_top_q` (the IoU of
        the two top-q masks).
    """
    original, randomised = np.asarray(original, np.float64), np.asarray(randomised, np.float64)
    _pair(original, randomised)
    mo, mr = top_q_masks(original, q), top_q_masks(randomised, q)
    return {
        "spearman": rank_correlation(original, randomised),
        "spearman_abs": rank_correlation(np.abs(original), np.abs(randomised)),
        "ssim": map_ssim(original, randomised),
        "iou_top_q": np.array([metrics.mask_iou(x, y) for x, y in zip(mo, mr)]),
    }


def summarise(values) -> dict:
    """`{"mean", "lo", "hi", "n"}`: the mean of per-image values and its 95% interval (`metrics.mean_ci`)."""
    s = metrics.mean_ci(values)
    return {"mean": s["mean"], "lo": s["mean"] - s["ci95"], "hi": s["mean"] + s["ci95"], "n": s["n"]}


def changes(last_stage: dict, key: str = "spearman", threshold: float = THRESHOLD) -> bool:
    """Whether a map changed: the upper 95% bound of `last_stage[key]` (at full randomisation) is below `threshold`."""
    return bool(last_stage[key]["hi"] < threshold)


def _pair(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"The maps must be two (B, H, W) arrays of one shape. Received: {a.shape} and {b.shape}")
    return a.reshape(len(a), -1), b.reshape(len(b), -1)


# ---------------------------------------------------------------------------
# every method's maps at one stage

DECODER_MAPS = ("mc", "linear", "template_contrast")  # `DecoderMethods` computes these from one traced graph each


def method_info(name: str) -> dict:
    """Kind, variant and description of a method's entry in randomisation.json (from `benchmarks.evaluation.registry`)."""
    base = name[: -len("_kept")] if name.endswith("_kept") else name
    m = registry.BY_NAME.get(base)
    if m is None:
        return {"kind": "unregistered", "variant": None, "description": name}
    if not m.decoder:
        return {"kind": m.kind, "variant": None, "description": m.description}
    if name.endswith("_kept"):
        return {"kind": m.kind, "variant": "decoder kept (diagnostic)", "description": m.description}
    return {"kind": m.kind, "variant": "explainer retrained from scratch on the randomised f (decides)",
            "description": m.description}


class DecoderMethods:
    """The maps of `mc`, `linear` and `contrast` for one decoder g, for any f and prototypes.

    Each method's explanation graph (`SiameseExplainer.graph`) is traced once
    and then fed every stage's embeddings, with the stage's prototype c_k
    (mc, linear) or c_l (contrast) passed as the reference embedding: by the
    graph's definition of a reference (it replaces the prototype), that is
    the explanation of class k (rather than l) with the stage's prototypes,
    without rebuilding and retracing the explainer at every stage
    (`tests/test_randomisation.py` checks the two agree).

    Args:
        decoder: g.
        embed, prototypes: an f and its `(C, D)` prototypes (only to build the
            explainers; the maps use the ones given to `__call__`).
        n_perturbations: N (mc, linear).
        contrast_points: the points of contrast's path (its midpoint rule
            converges as 1 / N^2, so fewer than mc's draws suffice).
    """

    def __init__(self, decoder, embed, prototypes, n_perturbations: int, contrast_points: int):
        configs = {m: ExplainConfig(n_perturbations=n_perturbations, estimator=m) for m in ("mc", "linear")}
        configs["template_contrast"] = TemplateContrastConfig(n_path_points=contrast_points)
        self._configs = configs
        self._graphs = {m: tf.function(SiameseExplainer(embed, decoder, prototypes, c).graph) for m, c in configs.items()}

    def __call__(self, h, xs, k, l, prototypes, seed: int = 0) -> dict:
        """The three maps.

        Args:
            h: `(B, D)` f(xs) for the stage's f; xs: `(B, 28, 28, 1)` the images.
            k: `(B,)` the explained classes; l: `(B,)` the contrast classes.
            prototypes: `(C, D)` the stage's prototypes.
            seed: the perturbations' seed (the same at every stage).

        Returns:
            name -> `(B, 28, 28)` float32 map: mc and linear's Delta_p
            (`mean_abs_change`), contrast's E_p = max(-S_p, 0) x_p.
        """
        p = np.asarray(prototypes, np.float32)
        k, l = np.asarray(k, np.int64), np.asarray(l, np.int64)
        args = dict(h=tf.constant(h, tf.float32), targets=tf.constant(k), use_reference=tf.ones(len(k), tf.bool),
                    seed=tf.constant(seed, tf.int64), contrasts=tf.constant(l), images=tf.constant(xs, tf.float32))
        out = {}
        for m, c in ((m, p[l] if m == "template_contrast" else p[k]) for m in self._configs):
            r = self._graphs[m](references=tf.constant(c), **args)
            out[m] = ranking_map(self._configs[m], r["mean_abs_change"].numpy(), r["mean_signed_change"].numpy(),
                                 xs)[..., 0]  # the map each mask is ranked by
        return {m: v.astype(np.float32) for m, v in out.items()}


def baseline_maps(embed, prototypes, xs, k, settings, seed: int = 0) -> dict:
    """The maps of every registered method that uses no decoder, for this f and its prototypes.

    Returns:
        name -> `(B, 28, 28)` float32 map.
    """
    scalar = metrics.DistanceScalar(embed, prototypes)
    fns = registry.method_functions(None, scalar, settings, names=[m.name for m in registry.METHODS if not m.decoder])
    return {name: registry.split(fn(xs, k, seed))[0] for name, fn in fns.items()}


def other_decoder_maps(embed, decoder, prototypes, xs, k, settings, seed: int = 0) -> dict:
    """The maps of registered decoder methods that `DecoderMethods` does not compute, through the registry."""
    names = [m.name for m in registry.METHODS if m.decoder and m.name not in DECODER_MAPS]
    if not names:
        return {}
    explainer = SiameseExplainer(embed, decoder, prototypes, ExplainConfig(n_perturbations=settings["n_perturbations"]))
    fns = registry.method_functions(explainer, metrics.DistanceScalar(embed, prototypes), settings, names=names)
    return {name: registry.split(fn(xs, k, seed))[0] for name, fn in fns.items()}


def _reconstruction_sse(decoder, h, xs) -> float:
    """Mean over images of ||g(h) - x||^2."""
    rec = np.asarray(decoder(tf.constant(h), training=False), np.float64)
    return float(((rec - xs) ** 2).reshape(len(xs), -1).sum(1).mean())


def retrain_explainer(embed, x, config: TrainConfig, epochs=(4, 4)):
    """The paper's stages 2 and 3 from scratch for another f: a new explainable autoencoder, then its decoder tuned.

    Shortened: `len(x)` images and `epochs` = (autoencoder, decoder) epochs
    instead of the run's own, with the run's other settings.

    Returns:
        `(decoder, steps)`: the new g and the optimizer steps taken.
    """
    h = metrics.DistanceScalar(embed, np.zeros((1, 1))).embeddings(x)
    config = config.replace(autoencoder=dataclasses.replace(config.autoencoder, epochs=epochs[0]),
                            decoder=dataclasses.replace(config.decoder, epochs=epochs[1]), train_limit=None)
    _, decoder = training.train_autoencoder(x, h, config, verbose=0)
    decoder = training.finetune_decoder(decoder, x, h, config, verbose=0)
    steps = epochs[0] * -(-len(x) // config.autoencoder.batch_size) + epochs[1] * -(-len(x) // config.decoder.batch_size)
    return decoder, steps


def relative_similarity(similarity, floor, ceiling) -> np.ndarray:
    """Per image (s - floor) / (ceiling - floor); where ceiling <= floor, NaN (no room between them)."""
    s, f, c = (np.asarray(v, np.float64) for v in (similarity, floor, ceiling))
    gap = c - f
    return np.where(gap > 0, (s - f) / np.where(gap > 0, gap, 1.0), np.nan)


def verdict(similarity: dict, floor: dict, ceiling: dict) -> dict:
    """The rule of docs/evaluation.md on per-image similarities, floors and ceilings (dicts keyed by VERDICT_KEYS).

    Returns:
        `{"verdict": "changes" / "does not change" / "undecided (template)", "relative": key -> summary}`.
    """
    rel, gaps = {}, {}
    for key in VERDICT_KEYS:
        r = relative_similarity(similarity[key], floor[key], ceiling[key])
        gaps[key] = float(np.mean(ceiling[key]) - np.mean(floor[key]))
        rel[key] = summarise(r[np.isfinite(r)]) if np.isfinite(r).sum() >= 2 else None
    if any(g < TEMPLATE_GAP for g in gaps.values()) or any(v is None for v in rel.values()):
        word = "undecided (template)"
    else:
        word = "changes" if all(v["hi"] < RELATIVE_THRESHOLD for v in rel.values()) else "does not change"
    return {"verdict": word, "relative": rel, "ceiling_minus_floor": gaps}


def _layer_initializers(layer) -> dict:
    return {v.path.split("/")[-1]: type(getattr(layer, v.path.split("/")[-1] + "_initializer")).__name__
            for v in layer.weights}


def _protocol(settings, seed, order, work) -> dict:
    return {
        "randomised": ("f's weighted layers, cascading from the top: stage i re-initialises the first i layers of "
                       f"{order} with the layers' own initializers, seeded by {seed} * 1000 + i, on a copy of f"),
        "initializers": {name: _layer_initializers(work.get_layer(name)) for name in order},
        "prototypes": (f"recomputed at every stage (the trained one included) as the class means of the stage's f over "
                       f"the first {settings['n_prototype_images']} MNIST training images"),
        "explained_class": ("cascade stages: fixed, the trained f's nearest prototype (and runner-up l for the "
                            "contrast); the retrained variant at full randomisation: recomputed from the randomised f"),
        "decoder_kept": ("methods with the suffix _kept: g as trained for the original f, so the map can change only "
                         "through what f gives the method (diagnostic only)"),
        "retrained": (f"decoder methods without a suffix, at full randomisation: the explainable autoencoder and the "
                      f"decoder trained from scratch on the randomised f (the paper's stages 2-3, shortened to the "
                      f"first {settings['n_retrain_images']} training images and {list(settings['retrain_epochs'])} "
                      "(autoencoder, decoder) epochs), k and l recomputed from the randomised f; this variant "
                      "decides their verdict"),
        "baselines": "explain d(x) = ||f(x) - c_k||^2 with the stage's f and prototypes (no decoder)",
        "floor": ("per image, the similarity of the trained-f maps of image i and image i + 1 (the last with the "
                  "first): what two different images' maps share"),
        "ceiling": ("per image, the similarity of the trained-f maps of the same image under seeds s and s + 1 for a "
                    "method that draws at random; 1 for a deterministic one"),
        "verdict": (f"relative similarity r = (s - floor) / (ceiling - floor) per image at full randomisation; "
                    f"changes when the upper end of the 95% Student-t interval of mean r is below "
                    f"{RELATIVE_THRESHOLD} for both {VERDICT_KEYS}; undecided (template) when mean ceiling - mean "
                    f"floor < {TEMPLATE_GAP}"),
        "similarity": (f"per image against the trained f's map of the same method: Spearman rank correlation of the "
                       f"maps and of their absolute values, SSIM of min-max scaled maps (tf.image.ssim), IoU of the "
                       f"top-{Q} masks; mean with its 95% Student-t interval (lo, hi) over the images"),
        "images": f"the first {settings['n_images']} MNIST test images (tfds order)",
        "settings": settings,
        "seed": seed,
    }


def _all_maps(decoder_methods, embed, decoder, prototypes, h, xs, k, l, settings, seed):
    maps = decoder_methods(h, xs, k, l, prototypes, seed)
    maps.update(other_decoder_maps(embed, decoder, prototypes, xs, k, settings, seed))
    return maps


def cascade_check(embed, decoder, xs, xp, yp, xr, train_config: TrainConfig, settings: dict, seed: int = 0,
                  log=print) -> dict:
    """The cascading randomisation of f, every method's similarity to its trained-f map, floors, ceilings, verdicts.

    Args:
        embed: the trained f, a Keras model (a copy is randomised; `embed` is untouched).
        decoder: the trained g.
        xs: `(n, 28, 28, 1)` the explained images (n >= 2).
        xp, yp: `(m, 28, 28, 1)` images and `(m,)` labels the prototypes are computed from.
        xr: `(r, 28, 28, 1)` images the explainer is retrained on.
        train_config: the run's `TrainConfig` (its autoencoder and decoder settings are used for the retraining).
        settings: one of `MODES`.
        seed: seeds the re-initialisation and every method's draws.
        log: called with one line per stage.

    Returns:
        A dict: `stages`, `stage_details`, `methods` (name -> `{"stages": per-stage summaries, "floor",
        "ceiling", "verdict", "relative", ...}`), `protocol`, `seconds_by_part`.
    """
    num_classes = int(yp.max()) + 1
    work = randomised_copy(embed)
    order = cascade_layers(work)
    stages = ["original"] + order
    first, floor, ceiling, k, l = {}, {}, {}, None, None
    per_method, stage_details, seconds, last_sim = {}, [], {}, {}

    def timed(part, fn):
        t = time.perf_counter()
        value = fn()
        seconds[part] = round(seconds.get(part, 0) + time.perf_counter() - t, 1)
        return value

    def kl(h, prototypes):
        nearest, distances = nearest_prototype(h, prototypes)
        return nearest, runner_up(distances, nearest)

    kept = None
    for i, stage in enumerate(stages):
        if i:
            reinitialise_layer(work.get_layer(stage), seed * 1000 + i)
        prototypes = compute_prototypes(work, xp, yp, num_classes=num_classes)
        h = metrics.DistanceScalar(work, prototypes).embeddings(xs)
        nearest, _ = kl(h, prototypes)
        if k is None:
            k, l = kl(h, prototypes)
            kept = DecoderMethods(decoder, work, prototypes, settings["n_perturbations"], settings["contrast_points"])
        maps = timed("decoder methods, decoder kept", lambda: _all_maps(
            kept, work, decoder, prototypes, h, xs, k, l, settings, seed))
        maps = {f"{name}_kept": m for name, m in maps.items()}
        maps.update(timed("baselines", lambda: baseline_maps(work, prototypes, xs, k, settings, seed)))
        detail = {"stage": stage, "randomised_layers": order[:i], "class_agreement": float((nearest == k).mean()),
                  "sse_decoder_kept": _reconstruction_sse(decoder, h, xs)}
        if i == 0:
            # the trained g is stages 2-3's decoder for the trained f: the retrained variant starts from the same maps
            maps.update({name[: -len("_kept")]: m for name, m in maps.items() if name.endswith("_kept")})
            again = timed("ceilings", lambda: {
                **{f"{n}_kept": m for n, m in _all_maps(kept, work, decoder, prototypes, h, xs, k, l, settings,
                                                         seed + 1).items()},
                **baseline_maps(work, prototypes, xs, k, settings, seed + 1)})
            again.update({name[: -len("_kept")]: m for name, m in again.items() if name.endswith("_kept")})
            for name, m in maps.items():
                info = method_info(name)
                det = registry.BY_NAME[name[: -len("_kept")] if name.endswith("_kept") else name].deterministic \
                    if info["kind"] != "unregistered" else False
                floor[name] = map_similarity(m, np.roll(m, -1, axis=0))
                ceiling[name] = ({key: np.ones(len(xs)) for key in floor[name]} if det
                                 else map_similarity(m, again[name]))
        elif i == len(stages) - 1:
            t = time.perf_counter()
            retrained, steps = retrain_explainer(work, xr, train_config, settings["retrain_epochs"])
            detail.update(retrain_seconds=round(time.perf_counter() - t, 1), retrain_steps=steps,
                          sse_retrained=_reconstruction_sse(retrained, h, xs))
            k2, l2 = kl(h, prototypes)
            fresh = DecoderMethods(retrained, work, prototypes, settings["n_perturbations"], settings["contrast_points"])
            maps.update(timed("decoder methods, retrained", lambda: _all_maps(
                fresh, work, retrained, prototypes, h, xs, k2, l2, settings, seed)))
            detail["retrained_classes_agree_with_trained"] = float((k2 == k).mean())
        for name, m in maps.items():
            first.setdefault(name, m)
            sim = map_similarity(first[name], m)
            last_sim[name] = sim
            per_method.setdefault(name, []).append({"stage": stage, **{key: summarise(v) for key, v in sim.items()}})
        stage_details.append(detail)
        log(f"[{stage}] class agreement {detail['class_agreement']:.2f}, SSE kept {detail['sse_decoder_kept']:.1f}"
            + (f" retrained {detail['sse_retrained']:.1f}" if "sse_retrained" in detail else "") + "; "
            + ", ".join(f"{n} {st[-1]['iou_top_q']['mean']:.2f}" for n, st in per_method.items() if st[-1]["stage"] == stage))
    methods = {}
    for name, st in per_method.items():
        decided = verdict(last_sim[name], floor[name], ceiling[name])
        methods[name] = {**method_info(name), **decided, "stages": st,
                         "floor": {key: summarise(v) for key, v in floor[name].items()},
                         "ceiling": {key: summarise(v) for key, v in ceiling[name].items()},
                         "changes_spearman": changes(st[-1])}
    return {"stages": stages, "stage_details": stage_details, "methods": methods,
            "protocol": _protocol(settings, seed, order, work), "seconds_by_part": seconds}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default=str(ROOT / "runs" / "paper"), help="the trained MNIST run folder (read only)")
    p.add_argument("--quick", action="store_true", help="a few images (the test)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "evaluation" / "randomisation.json"), help="the JSON file to write")
    p.add_argument("--seed", type=int, default=0, help="seeds the re-initialisation and every method's draws")
    p.add_argument("--data-dir", default=None, help="MNIST's location (see load_mnist)")
    args = p.parse_args(argv)
    mode = "quick" if args.quick else "full"
    settings = MODES[mode]
    t_start = time.perf_counter()
    keras.utils.set_random_seed(args.seed)

    run = runs.load_run(args.run)
    config_path = Path(args.run) / runs.CONFIG_FILE
    train_config = (TrainConfig.from_dict(files.read_json(config_path)) if config_path.is_file()
                    else TrainConfig(embedding_dim=run.prototypes.shape[1]))
    x_test, _ = load_mnist("test", args.data_dir)
    x_train, y_train = load_mnist("train", args.data_dir)
    xs = np.array(x_test[: settings["n_images"]])
    xp, yp = x_train[: settings["n_prototype_images"]], y_train[: settings["n_prototype_images"]]
    xr = np.array(x_train[: settings["n_retrain_images"]])
    trained_weights = [np.array(w) for w in run.embed.get_weights()]
    out = cascade_check(run.embed, run.decoder, xs, xp, yp, xr, train_config, settings, args.seed)
    if any(not np.array_equal(a, b) for a, b in zip(trained_weights, run.embed.get_weights())):
        raise RuntimeError("the randomisation changed the trained f's weights; it must only change its copy")
    mean_image = xr.mean(0)
    result = {
        "run_id": run.run_id,
        "run": str(args.run),
        "mode": mode,
        "n_images": int(len(xs)),
        "q": Q,
        "relative_threshold": RELATIVE_THRESHOLD,
        "protocol": out["protocol"],
        "stages": out["stages"],
        "stage_details": out["stage_details"],
        "sse_mean_training_image": float(((xs - mean_image) ** 2).reshape(len(xs), -1).sum(1).mean()),
        "methods": out["methods"],
        "seconds_by_part": out["seconds_by_part"],
        "machine": _machine(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": round(time.perf_counter() - t_start, 1),
        "load_average_1_5_15_min": [round(v, 2) for v in os.getloadavg()],
    }
    files.write_json(args.out, result)
    print(f"wrote {args.out} ({result['seconds']:.0f} s, {mode} mode): "
          + ", ".join(f"{n}: {m['verdict']}" for n, m in result["methods"].items()))
    return result


def _machine() -> str:
    from siamese_xai.machine import machine_description

    return machine_description()


if __name__ == "__main__":
    main()
