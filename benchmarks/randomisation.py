"""The model-parameter randomisation check (Adebayo et al. 2018, "Sanity checks for saliency maps").

Commands (from the project root; TFDS_DATA_DIR must point at MNIST):

    .venv/bin/python benchmarks/randomisation.py --run runs/paper                 # full: 100 images
    .venv/bin/python benchmarks/randomisation.py --run RUN --quick --out FILE.json  # a few images (the test)

Writes `benchmarks/randomisation.json` (or `--out`) atomically. Run time on
the 2-core CPU: quick about 35-40 s; full 488 s measured while the machine was
shared (load average 8; the process used 254 s of user CPU time), recorded
in the JSON (`seconds`, `seconds_by_part`) with the machine and its load.

Cascading randomisation: the Siamese subnetwork f is copied (the run folder
is never written) and its weighted layers are re-initialised one at a time
from the top (the embedding layer) down to the first convolution, each with
the layer's own initializers (Glorot-uniform kernels, zero biases), seeded by
`--seed` and the stage. After each step every method explains the same
images again, and its map is compared with the map it gave for the trained
f: Spearman rank correlation of the maps (signed, and of their absolute
values), SSIM of the min-max-normalised maps (`tf.image.ssim`; scikit-image
is not installed), and the IoU of the top-q masks (q = 100). A method whose
map does not change when f does has not shown that it reads f.

What is kept and what is recomputed, and why (also in the JSON's "protocol"):

- The explained quantity is d(x) = ||f(x) - c_k||^2 for every method. The
  prototypes c_k are part of f's output by definition (class means of f over
  the training images), so after each step they are recomputed with the
  randomised f, from the same `n_prototype_images` training images at every
  stage, the trained stage included (so that only f differs between stages).
- The explained class k is kept fixed: the trained network's class of each
  image (its nearest prototype). The contrastive method's contrast class l is
  kept fixed too: the trained network's runner-up. Every stage asks the same
  question of a different network; a randomised f would otherwise change the
  question as well as the answer.
- The paper's method (`mc`, `linear`) and the contrastive one (`contrast`)
  also depend on the decoder g, which was trained for the original f. Two
  variants: (a) `decoder kept` (names without a suffix): g stays as trained,
  so the map can change only through what f gives the method (h, the
  coordinates J, sigma, the prototypes and the path to c_l); (b) `decoder
  refit` (suffix `_refit`): the paper's stage 3 run again for the randomised
  f, i.e. the trained decoder fine-tuned on (f(x) -> x) pairs of
  `n_refit_images` training images (`training.finetune_decoder`, the run's
  own decoder settings, `refit_epochs` epochs). The refit decoders'
  reconstruction error is reported beside the kept decoder's and beside that
  of the mean training image (what a decoder that ignores its input can
  reach), so a reader sees whether g could invert the random f. At the
  trained stage the two variants coincide (the trained g *is* stage 3's
  output for that f).
- The baselines (occlusion, KernelSHAP, the distance explainer, gradient,
  Integrated Gradients; `siamese_xai/baselines.py`) explain d with the
  randomised f and the recomputed prototypes; they use no decoder.
- Model-free controls (the input intensity x, from `baselines.intensity_maps`
  when that module has it, and `baselines.edge_maps` when it has that) do
  not read f at all: their maps must not change, a check of the check.

`changes` (per method) is computed from the numbers: the map changed when,
at full randomisation, the upper 95% bound of the mean Spearman correlation
of the signed maps with the trained ones is below `THRESHOLD` (0.5): a rank
correlation below it means that less than a quarter of the variance of the
ranks is shared with the trained map's. The signed map is the ordering each
method's evaluation ranks pixels by (`benchmarks/evaluate.py`) and its mask
takes. `changes_abs` applies the same rule to the absolute values (for maps
that are never negative the two coincide): a signed map can change its
signs while the magnitudes stay where the input has ink (Adebayo et al.'s
observation about gradient x input), so a reader sees both. The raw numbers
of every stage are kept beside the verdicts.
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
ROOT = Path(__file__).resolve().parents[1]

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from scipy.stats import rankdata  # noqa: E402

from siamese_xai import baselines as bl  # noqa: E402
from siamese_xai import files, metrics, runs, training  # noqa: E402
from siamese_xai.config import TrainConfig  # noqa: E402
from siamese_xai.data import load_mnist  # noqa: E402
from siamese_xai.explain import ExplainConfig, SiameseExplainer  # noqa: E402
from siamese_xai.prototypes import compute_prototypes, nearest_prototype  # noqa: E402

Q = 100  # top-q masks: the explainer's own default mask size
THRESHOLD = 0.5  # `changes`: the upper 95% bound of the Spearman correlation at full randomisation is below this
MODES = {
    "quick": dict(n_images=4, n_prototype_images=1000, n_refit_images=1000, refit_epochs=1, refit_stages="last",
                  n_perturbations=500, contrast_points=200, shap_nsamples=60, rise_masks=200, ig_steps=8),
    "full": dict(n_images=100, n_prototype_images=5000, n_refit_images=5000, refit_epochs=8, refit_stages="all",
                 n_perturbations=5000, contrast_points=1000, shap_nsamples=100, rise_masks=300, ig_steps=32),
}


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
    """`(B, H, W)` bool: each map's q largest values; ties broken by a permutation seeded by the map itself.

    Seeding the tie-break by the map's content means that identical maps give
    identical masks, while pixels tied at one value in two *different* maps
    (e.g. the zeros that fill the mask of a map marking fewer than q pixels)
    coincide only by chance, not because both masks fill them in raster order.
    """
    maps = np.asarray(maps, np.float64)
    flat = maps.reshape(len(maps), -1)
    if not 1 <= q <= flat.shape[1]:
        raise ValueError(f"`q` must be in [1, {flat.shape[1]}]. Received: q={q}")
    mask = np.zeros(flat.shape, bool)
    for i, row in enumerate(flat):
        tie = np.random.default_rng(zlib.crc32(np.ascontiguousarray(row).tobytes())).permutation(row.size)
        mask[i, np.lexsort((tie, -row))[:q]] = True
    return mask.reshape(maps.shape)


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

METHODS = {
    # name: (kind, decoder, description)
    "mc": ("this method", "kept", "the paper's method (s = 5, q = 100); map Delta_p (`mean_abs_change`)"),
    "linear": ("this method", "kept", "the paper's method, the decoder's first-order expansion; map Delta_p"),
    "contrast": ("contrastive method", "kept",
                 "method='contrast' against the trained f's runner-up l; map E_p = max(-S_p, 0) x_p"),
    "mc_refit": ("this method", "refit", "as mc, with the decoder fine-tuned on the randomised f"),
    "linear_refit": ("this method", "refit", "as linear, with the decoder fine-tuned on the randomised f"),
    "contrast_refit": ("contrastive method", "refit", "as contrast, with the decoder fine-tuned on the randomised f"),
    "occlusion": ("black-box baseline", None, "6x6 zero patch, stride 2; mean rise of d"),
    "kernelshap": ("black-box baseline", None, "shap.KernelExplainer of -d on 49 4x4 superpixels"),
    "distance_explainer": ("black-box baseline", None, "RISE masks (8x8 grid, p_keep 0.5), top/bottom 20% by d"),
    "gradient": ("white-box reference", None, "|grad_x d|"),
    "integrated_gradients": ("white-box reference", None, "Integrated Gradients of -d from the blank image"),
    "intensity": ("model-free control", None, "the input intensity x_p itself (reads no model)"),
    "edge": ("model-free control", None, "baselines.edge_maps (reads no model)"),
}


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
        configs = {m: ExplainConfig(n_perturbations=n_perturbations, method=m) for m in ("mc", "linear")}
        configs["contrast"] = ExplainConfig(n_perturbations=contrast_points, method="contrast")
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
        out = {m: self._graphs[m](references=tf.constant(p[k]), **args)["mean_abs_change"].numpy()[..., 0]
               for m in ("mc", "linear")}
        signed = self._graphs["contrast"](references=tf.constant(p[l]), **args)["mean_signed_change"].numpy()
        out["contrast"] = np.maximum(-signed[..., 0], 0) * np.asarray(xs)[..., 0]
        return {m: v.astype(np.float32) for m, v in out.items()}


def baseline_maps(embed, prototypes, xs, k, settings, seed: int = 0) -> dict:
    """The baselines' maps of d(x) = ||f(x) - c_k||^2 (`siamese_xai/baselines.py`) and the model-free controls'.

    Returns:
        name -> `(B, 28, 28)` float32 map.
    """
    scalar = metrics.DistanceScalar(embed, prototypes)
    out = {
        "occlusion": bl.occlusion_maps(scalar, xs, k),
        "kernelshap": bl.kernelshap_maps(scalar, xs, k, seed, nsamples=settings["shap_nsamples"]),
        "distance_explainer": bl.rise_distance_maps(scalar, xs, k, seed, n_masks=settings["rise_masks"]),
        "gradient": bl.gradient_maps(scalar, xs, k),
        "integrated_gradients": bl.integrated_gradients_maps(scalar, xs, k, steps=settings["ig_steps"]),
    }
    intensity = getattr(bl, "intensity_maps", None)
    out["intensity"] = intensity(xs, k) if intensity else np.asarray(xs[..., 0], np.float32)
    if getattr(bl, "edge_maps", None):
        out["edge"] = bl.edge_maps(xs, k)
    return out


def _reconstruction_sse(decoder, h, xs) -> float:
    """Mean over images of ||g(h) - x||^2."""
    rec = np.asarray(decoder(tf.constant(h), training=False), np.float64)
    return float(((rec - xs) ** 2).reshape(len(xs), -1).sum(1).mean())


def refit_decoder(decoder, embed, x, config: TrainConfig, epochs: int):
    """The paper's stage 3 for another f: the decoder fine-tuned on (f(x) -> x), starting from `decoder`.

    Returns:
        `(decoder, steps)`: the fine-tuned copy (the original is untouched) and the optimizer steps taken.
    """
    h = metrics.DistanceScalar(embed, np.zeros((1, 1))).embeddings(x)
    config = config.replace(decoder=dataclasses.replace(config.decoder, epochs=epochs), train_limit=None)
    tuned = training.finetune_decoder(decoder, x, h, config, verbose=0)
    return tuned, epochs * -(-len(x) // config.decoder.batch_size)


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
        "explained_class": "fixed at every stage: the trained f's nearest prototype of each image",
        "contrast_class": "fixed at every stage: the trained f's runner-up prototype of each image (contrast only)",
        "decoder_kept": ("methods without a suffix: g as trained for the original f, so the map can change only "
                         "through what f gives the method (h, J, sigma, the prototypes, the path to c_l)"),
        "decoder_refit": (f"methods with the suffix _refit: g fine-tuned on (f(x) -> x) for the stage's f, from the "
                          f"trained g, {settings['refit_epochs']} epochs over the first {settings['n_refit_images']} "
                          "training images, the run's decoder settings (training.finetune_decoder), at "
                          + ("every stage" if settings["refit_stages"] == "all" else "full randomisation only")
                          + "; at the trained stage g is the trained decoder"),
        "baselines": "explain d(x) = ||f(x) - c_k||^2 with the stage's f and prototypes (no decoder)",
        "reconstruction": ("stage_details: sse_decoder_kept / sse_decoder_refit, the mean ||g(f(x)) - x||^2 over the "
                           "evaluated images with the stage's f; sse_mean_training_image: the same error of the mean "
                           "training image, what a decoder that ignores its input can reach"),
        "controls": "model-free maps: they read no model, so they must not change",
        "similarity": (f"per image against the trained f's map of the same method: Spearman rank correlation of the "
                       f"maps and of their absolute values, SSIM of min-max scaled maps (tf.image.ssim), IoU of the "
                       f"top-{Q} masks; mean with a 95% normal interval (lo, hi) over the images"),
        "changes": (f"true when, at full randomisation, the upper 95% bound of the mean Spearman correlation of "
                    f"the signed maps is below {THRESHOLD}; changes_abs: the same for the absolute values"),
        "images": f"the first {settings['n_images']} MNIST test images (tfds order)",
        "settings": settings,
        "seed": seed,
    }


def cascade_check(embed, decoder, xs, xp, yp, xr, train_config: TrainConfig, settings: dict, seed: int = 0,
                  log=print) -> dict:
    """The cascading randomisation of f, and every method's similarity to its trained-f map at each stage.

    Args:
        embed: the trained f, a Keras model (a copy is randomised; `embed` is untouched).
        decoder: the trained g.
        xs: `(n, 28, 28, 1)` the explained images.
        xp, yp: `(m, 28, 28, 1)` images and `(m,)` labels the prototypes are computed from.
        xr: `(r, 28, 28, 1)` images the decoder is refitted on.
        train_config: the run's `TrainConfig` (its decoder settings are used for the refit).
        settings: one of `MODES` (`n_perturbations`, the baselines' budgets, `refit_epochs`,
            `refit_stages`: "all" or "last").
        seed: seeds the re-initialisation and every method's draws.
        log: called with one line per stage.

    Returns:
        A dict: `stages` (names), `stage_details` (per stage: the randomised
        layers, the agreement of the stage's classes with k, the decoders'
        reconstruction SSE, the refit's steps and seconds), `methods` (name ->
        the per-stage `summarise`d similarity stats), `protocol`, and
        `seconds_by_part`.
    """
    num_classes = int(yp.max()) + 1
    work = randomised_copy(embed)
    order = cascade_layers(work)
    stages = ["original"] + order
    kept = None
    first, k, l = {}, None, None
    per_method, stage_details, seconds = {}, [], {}

    def timed(part, fn):
        t = time.perf_counter()
        value = fn()
        seconds[part] = round(seconds.get(part, 0) + time.perf_counter() - t, 1)
        return value

    for i, stage in enumerate(stages):
        if i:
            reinitialise_layer(work.get_layer(stage), seed * 1000 + i)
        prototypes = compute_prototypes(work, xp, yp, num_classes=num_classes)
        h = metrics.DistanceScalar(work, prototypes).embeddings(xs)
        nearest, distances = nearest_prototype(h, prototypes)
        if k is None:
            k = nearest
            l = np.where(np.arange(num_classes)[None] == k[:, None], np.inf, distances).argmin(1)
            kept = DecoderMethods(decoder, work, prototypes, settings["n_perturbations"], settings["contrast_points"])
        maps = timed("this method, decoder kept", lambda: kept(h, xs, k, l, prototypes, seed))
        detail = {"stage": stage, "randomised_layers": order[:i], "class_agreement": float((nearest == k).mean()),
                  "sse_decoder_kept": _reconstruction_sse(decoder, h, xs)}
        if i == 0 or settings["refit_stages"] == "all" or i == len(stages) - 1:
            if i == 0:  # the trained g is stage 3's decoder for the trained f
                refit, steps, refit_maps = decoder, 0, maps
            else:
                t = time.perf_counter()
                refit, steps = refit_decoder(decoder, work, xr, train_config, settings["refit_epochs"])
                detail["refit_seconds"] = round(time.perf_counter() - t, 1)
                refit_maps = timed("this method, decoder refit", lambda: DecoderMethods(
                    refit, work, prototypes, settings["n_perturbations"], settings["contrast_points"])(h, xs, k, l, prototypes, seed))
            detail.update(sse_decoder_refit=_reconstruction_sse(refit, h, xs), refit_steps=steps)
            maps.update({f"{name}_refit": m for name, m in refit_maps.items()})
        maps.update(timed("baselines", lambda: baseline_maps(work, prototypes, xs, k, settings, seed)))
        for name, m in maps.items():
            first.setdefault(name, m)
            sim = map_similarity(first[name], m)
            per_method.setdefault(name, []).append({"stage": stage, **{key: summarise(v) for key, v in sim.items()}})
        stage_details.append(detail)
        log(f"[{stage}] class agreement {detail['class_agreement']:.2f}, SSE kept {detail['sse_decoder_kept']:.1f}"
            + (f" refit {detail['sse_decoder_refit']:.1f}" if "sse_decoder_refit" in detail else "") + "; "
            + ", ".join(f"{n} {st[-1]['spearman']['mean']:.2f}" for n, st in per_method.items() if st[-1]["stage"] == stage))
    return {"stages": stages, "stage_details": stage_details, "methods": per_method,
            "protocol": _protocol(settings, seed, order, work), "seconds_by_part": seconds}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default=str(ROOT / "runs" / "paper"), help="the trained MNIST run folder (read only)")
    p.add_argument("--quick", action="store_true", help="a few images (the test)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "randomisation.json"), help="the JSON file to write")
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
    xr = np.array(x_train[: settings["n_refit_images"]])
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
        "threshold": THRESHOLD,
        "protocol": out["protocol"],
        "stages": out["stages"],
        "stage_details": out["stage_details"],
        "sse_mean_training_image": float(((xs - mean_image) ** 2).reshape(len(xs), -1).sum(1).mean()),
        "methods": {
            name: {"kind": METHODS[name][0], "decoder": METHODS[name][1], "description": METHODS[name][2],
                   "changes": changes(stats[-1]), "changes_abs": changes(stats[-1], "spearman_abs"), "stages": stats}
            for name, stats in out["methods"].items()
        },
        "seconds_by_part": out["seconds_by_part"],
        "machine": _machine(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": round(time.perf_counter() - t_start, 1),
        "load_average_1_5_15_min": [round(v, 2) for v in os.getloadavg()],
    }
    files.write_json(args.out, result)
    print(f"wrote {args.out} ({result['seconds']:.0f} s, {mode} mode): changes = "
          + ", ".join(f"{n}: {m['changes']}" for n, m in result["methods"].items()))
    return result


def _machine() -> str:
    from siamese_xai.machine import machine_description

    return machine_description()


if __name__ == "__main__":
    main()
