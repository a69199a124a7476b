"""The model-parameter randomisation check (Adebayo et al. 2018): one question for every method, several seeds.

Commands (from the project root; TFDS_DATA_DIR must point at MNIST):

    python -m benchmarks.evaluation.randomisation --run runs/paper                 # full (its time: randomisation.json)
    python -m benchmarks.evaluation.randomisation --run RUN --quick --out FILE.json  # a few images (the test)
    python -m benchmarks.evaluation.randomisation --docs-only                       # re-render docs from the JSON

Writes `benchmarks/evaluation/randomisation.json` (or `--out`) atomically, with its wall
time (`seconds`, `seconds_by_part`), the machine and its load, and (full mode, default
`--out`) the results block of docs/evaluation.md (`randomisation_verdict.render_markdown`).

Every registered method (`registry.METHODS`, so a new entry enters by itself)
explains the first `n_images` MNIST test images with the trained f, then again
with f fully randomised: its weighted layers re-initialised from the top down on
a copy of f (the run folder is never written), with the layers' own
initializers, for each randomisation seed of the mode. The question stays the
trained model's for every method: k is the trained f's nearest prototype and l
its runner-up (`Context.contrast`), while the prototypes are the random f's
class means. The baselines' budgets are the benchmark's (`evaluate.MODES`), and
each method's own seed is 0 on both f, so the same f would give the same map.
The methods with a decoder are explained with an explainer retrained from
scratch on the random f (the paper's stages 2 and 3) at each budget of `budgets`
(images, autoencoder epochs, decoder epochs), the largest deciding; with the
trained decoder kept (suffix `_kept`) as a diagnostic. Where the mode sets
`cascade` (quick: the test), the first seed's intermediate cascade stages are
recorded as a diagnostic too, and where it sets `seed_noise`, each drawing
method's trained-f map under a second seed; the full mode leaves both out for
time.

The similarities (SSIM of min-max-scaled maps, Spearman rank correlation,
top-q IoU and |map| rank correlation as diagnostics), the floors, the relative
similarity and the verdict rule are declared in
`benchmarks.evaluation.randomisation_verdict` and docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[2]

import keras  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.evaluation import registry  # noqa: E402
from benchmarks.evaluation import randomisation_verdict as rule  # noqa: E402
from benchmarks.evaluation.evaluate import MODES as BENCHMARK_MODES  # noqa: E402
from siamese_xai import files, runs  # noqa: E402
from siamese_xai.evaluation import metrics  # noqa: E402
from siamese_xai.training import stages as training  # noqa: E402
from siamese_xai.config import ExplainConfig, TrainConfig  # noqa: E402
from siamese_xai.data.mnist import load_mnist  # noqa: E402
from siamese_xai.explainers.siamese import SiameseExplainer  # noqa: E402
from siamese_xai.explainers.prototypes import compute_prototypes  # noqa: E402
from siamese_xai.explainers.questions import runner_up  # noqa: E402

# Per mode: images explained, randomisation seeds, the explainer's retraining budgets (training images, autoencoder
# epochs, decoder epochs), whether the first seed records the intermediate cascade stages; the baselines' budgets are
# the benchmark's own mode of the same name (`evaluate.MODES`).
MODES = {
    "quick": {**BENCHMARK_MODES["quick"], "n_images": 4, "randomisation_seeds": (0, 1), "n_prototype_images": 1000,
              "budgets": ((300, 1, 1), (500, 1, 1)), "cascade": True, "seed_noise": True},
    "full": {**BENCHMARK_MODES["full"], "n_images": 12, "randomisation_seeds": (0, 1, 2), "n_prototype_images": 60000,
             "budgets": ((2000, 1, 1), (5000, 2, 2), (5000, 4, 4)), "cascade": False, "seed_noise": False},
}
DEFAULT_OUT = ROOT / "benchmarks" / "evaluation" / "randomisation.json"
METHOD_SEED = 0  # every map's own seed, on the trained and the random f


# ---------------------------------------------------------------------------
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


def _reconstruction_sse(decoder, h, xs) -> float:
    """Mean over images of ||g(h) - x||^2."""
    rec = np.asarray(decoder(np.asarray(h, np.float32), training=False), np.float64)
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


# ---------------------------------------------------------------------------
# the question, fixed from the trained f


class TrainedContrast:
    """`Context.contrast` for every stage: l = the trained f's runner-up to k, whatever f the method explains.

    Counts its calls, so the check can record which methods asked for l.
    """

    def __init__(self, trained_scalar):
        self._scalar = trained_scalar
        self.calls = 0

    def __call__(self, xs, classes) -> np.ndarray:
        self.calls += 1
        return runner_up(self._scalar.all_distances(xs), classes)


def trained_question(trained_scalar, xs) -> tuple:
    """`(k, l)`: `(B,)` the trained f's nearest prototype and runner-up for each image (the question asked at every stage)."""
    d = trained_scalar.all_distances(xs)
    k = d.argmin(1).astype(np.int64)
    return k, runner_up(d, k)


def explain_all(explainer, scalar, settings, xs, k, contrast, names, seed: int = METHOD_SEED) -> tuple:
    """Maps of the registered methods `names` for one f: `(name -> (B, H, W) map, name -> asked for l)`."""
    fns = registry.method_functions(explainer, scalar, settings, names=names, contrast=contrast)
    maps, asked = {}, {}
    for name, fn in fns.items():
        before, t = contrast.calls, time.perf_counter()
        maps[name] = registry.split(fn(xs, k, seed))[0]
        asked[name] = contrast.calls > before
        print(f"  {name}: {time.perf_counter() - t:.1f} s", flush=True)
    return maps, asked

# ---------------------------------------------------------------------------
# the check


def _decoder_names():
    return [m.name for m in registry.METHODS if m.decoder]


def _randomise(embed, seed: int, upto: int | None = None, on=None):
    """f's copy with the first `upto` cascade layers (all: None) re-initialised, seeded by seed * 1000 + stage."""
    work = randomised_copy(embed) if on is None else on
    order = cascade_layers(work)
    for i, name in enumerate(order[:upto], 1):
        reinitialise_layer(work.get_layer(name), seed * 1000 + i)
    return work


def _mean_similarity(a, b) -> dict:
    return {key: float(v.mean()) for key, v in rule.map_similarity(a, b).items()}


def cascade_stages(embed, decoder, trained, xs, k, contrast, xp, yp, settings, seed, log=print) -> list:
    """The first seed's cascade, a diagnostic: every method's mean similarity to its trained map after each stage.

    Decoder methods keep the trained decoder here. Returns one dict per stage
    (`stage`, `randomised_layers`, `class_agreement`, `methods`: name -> measure -> mean).
    """
    work, order, out = randomised_copy(embed), cascade_layers(embed), []
    num_classes = int(yp.max()) + 1
    for i, name in enumerate(order, 1):
        reinitialise_layer(work.get_layer(name), seed * 1000 + i)
        prototypes = compute_prototypes(work, xp, yp, num_classes=num_classes)
        scalar = metrics.DistanceScalar(work, prototypes)
        maps, _ = explain_all(SiameseExplainer(work, decoder, prototypes, ExplainConfig()), scalar, settings, xs, k,
                              contrast, [m.name for m in registry.METHODS])
        out.append({"stage": name, "randomised_layers": order[:i],
                    "class_agreement": float((scalar.classify(xs) == k).mean()),
                    "methods": {n: _mean_similarity(trained[n], m) for n, m in maps.items()}})
        log(f"[cascade, seed {seed}] {name}: agreement {out[-1]['class_agreement']:.2f}")
    return out


def randomised_maps(embed, decoder, xs, k, contrast, xp, yp, xr, train_config, settings, seed, log=print) -> tuple:
    """Every method's maps at full randomisation for one seed: `(name -> map, name -> asked l, details)`.

    Names: the registered names (decoder methods with the explainer retrained at
    the largest budget), `name@budget_i` for each budget i of a decoder method,
    `name_kept` with the trained decoder.
    """
    work = _randomise(embed, seed)
    prototypes = compute_prototypes(work, xp, yp, num_classes=int(yp.max()) + 1)
    scalar = metrics.DistanceScalar(work, prototypes)
    h = scalar.embeddings(xs)
    decoders = _decoder_names()
    maps, asked = explain_all(SiameseExplainer(work, decoder, prototypes, ExplainConfig()), scalar, settings, xs, k,
                              contrast, [m.name for m in registry.METHODS])
    for name in decoders:
        maps[f"{name}_kept"] = maps.pop(name)
    details = {"seed": seed, "class_agreement": float((scalar.classify(xs) == k).mean()),
               "sse_decoder_kept": _reconstruction_sse(decoder, h, xs), "budgets": []}
    for b, (n_images, ae_epochs, dec_epochs) in enumerate(settings["budgets"]):
        keras.utils.set_random_seed(seed * 100 + b)
        t = time.perf_counter()
        retrained, steps = retrain_explainer(work, xr[:n_images], train_config, (ae_epochs, dec_epochs))
        seconds = round(time.perf_counter() - t, 1)
        got, _ = explain_all(SiameseExplainer(work, retrained, prototypes, ExplainConfig()), scalar, settings, xs, k,
                             contrast, decoders)
        maps.update({f"{name}@{b}": m for name, m in got.items()})
        details["budgets"].append({"images": n_images, "epochs": [ae_epochs, dec_epochs], "steps": steps,
                                   "retrain_seconds": seconds, "sse": _reconstruction_sse(retrained, h, xs)})
        log(f"[seed {seed}] budget {b}: {steps} steps in {seconds} s, SSE {details['budgets'][-1]['sse']:.1f}")
    last = len(settings["budgets"]) - 1
    maps.update({name: maps[f"{name}@{last}"] for name in decoders})
    return maps, asked, details


def _per_method(trained, random_by_seed, names, base_of) -> dict:
    """measure -> `(n, S)` similarity per image and seed, for each name (compared with the trained map of `base_of`)."""
    out = {}
    for name in names:
        sims = [rule.map_similarity(trained[base_of(name)], maps[name]) for maps in random_by_seed]
        out[name] = {key: np.stack([s[key] for s in sims], 1) for key in sims[0]}
    return out


def _entry(name, similarity, floor, asked, extra=None) -> dict:
    judged = rule.judge(similarity, floor)
    base = name.split("@")[0].removesuffix("_kept")
    m = registry.BY_NAME[base]
    return {"kind": m.kind, "description": m.description, **judged,
            "question": ("k and l fixed from the trained f" if asked.get(base) else
                         "k fixed from the trained f (the method asks no l)"),
            "similarity_mean_per_seed": {key: v.mean(0).round(4).tolist() for key, v in similarity.items()},
            "per_image_similarity": {key: np.round(similarity[key], 4).tolist() for key in rule.VERDICT_KEYS},
            "floor": {key: float(np.mean(v)) for key, v in floor.items()},
            "per_image_floor": {key: np.round(floor[key], 4).tolist() for key in rule.VERDICT_KEYS},
            **(extra or {})}


def judge_all(trained, again, random_by_seed, asked, settings) -> dict:
    """Every method's verdict (the decoder methods' at the largest budget, each budget and `_kept` beside it)."""
    decoders, budgets = _decoder_names(), settings["budgets"]
    floor = {name: rule.floors(m) for name, m in trained.items() if not name.endswith("_kept")}
    names = list(random_by_seed[0])
    sims = _per_method(trained, random_by_seed, names, lambda n: n.split("@")[0].removesuffix("_kept"))
    methods = {}
    for name in names:
        if "@" in name:
            continue
        base = name.removesuffix("_kept")
        extra = {}
        if name in again:
            noise = rule.map_similarity(trained[name], again[name])
            rel = {key: rule.relative_similarity(noise[key], floor[name][key]) for key in rule.VERDICT_KEYS}
            extra["seed_relative"] = {key: rule.student_interval(r[np.isfinite(r)]) if np.isfinite(r).sum() else None
                                      for key, r in rel.items()}
        if name in decoders:
            sweep = []
            for b, budget in enumerate(budgets):
                one = rule.judge(sims[f"{name}@{b}"], floor[name])
                sweep.append({"images": budget[0], "epochs": list(budget[1:]), "verdict": one["verdict"],
                              "reason": one["reason"], "relative": one["relative"], "per_seed": one["per_seed"]})
            extra.update(variant="explainer retrained from scratch on the random f, largest budget (decides)",
                         budgets=sweep, depends_on_budget=len({s["verdict"] for s in sweep}) > 1)
        elif name.endswith("_kept"):
            extra["variant"] = "the trained decoder kept with the random f (diagnostic)"
        else:
            extra["variant"] = None
        methods[name] = _entry(name, sims[name], floor[base], asked, extra)
    return methods


def randomisation_check(run, xs, xp, yp, xr, train_config, settings, log=print) -> dict:
    """The check on one run: trained maps, each seed's random-f maps, verdicts, the check of the check.

    Args:
        run: `runs.load_run`'s run (f, g, prototypes; never written).
        xs: `(n, 28, 28, 1)` the explained images (n >= 2).
        xp, yp: `(m, 28, 28, 1)` images and `(m,)` labels the random f's prototypes are computed from.
        xr: `(r, 28, 28, 1)` images the explainer is retrained on (a budget takes the first ones).
        train_config: the run's `TrainConfig` (the retraining's settings but the budget).
        settings: one of `MODES`.

    Returns:
        A dict: `question`, `methods`, `seeds`, `cascade`, `check_of_the_check`, `seconds_by_part`.
    """
    seconds = {}

    def timed(part, fn):
        t = time.perf_counter()
        value = fn()
        seconds[part] = round(seconds.get(part, 0) + time.perf_counter() - t, 1)
        return value

    trained_scalar = metrics.DistanceScalar(run.embed, run.prototypes)
    k, l = trained_question(trained_scalar, xs)
    contrast = TrainedContrast(trained_scalar)
    explainer = SiameseExplainer(run.embed, run.decoder, run.prototypes, ExplainConfig())
    all_names = [m.name for m in registry.METHODS]
    trained, asked = timed("trained f", lambda: explain_all(explainer, trained_scalar, settings, xs, k, contrast,
                                                            all_names))
    drawing = [m.name for m in registry.METHODS if not m.deterministic] if settings["seed_noise"] else []
    again, _ = timed("trained f, seed 1", lambda: explain_all(explainer, trained_scalar, settings, xs, k, contrast,
                                                              drawing, seed=METHOD_SEED + 1))
    trained.update({f"{n}_kept": trained[n] for n in _decoder_names()})
    seeds = settings["randomisation_seeds"]
    cascade = timed("cascade (first seed)", lambda: cascade_stages(
        run.embed, run.decoder, trained, xs, k, contrast, xp, yp, settings, seeds[0], log)) if settings["cascade"] else []
    random_by_seed, details = [], []
    for seed in seeds:
        maps, _, detail = timed("random f", lambda: randomised_maps(
            run.embed, run.decoder, xs, k, contrast, xp, yp, xr, train_config, settings, seed, log))
        random_by_seed.append(maps)
        details.append(detail)
        log(f"[seed {seed}] class agreement with the trained f {detail['class_agreement']:.2f}")
    methods = timed("similarities", lambda: judge_all(trained, again, random_by_seed, asked, settings))
    controls = [m.name for m in registry.METHODS if m.kind == registry.MODEL_FREE]
    return {"question": {"k": k.tolist(), "l": l.tolist()}, "methods": methods, "seeds": details,
            "cascade": cascade, "check_of_the_check": rule.check_of_the_check(methods, controls),
            "seconds_by_part": seconds}


def _protocol(settings, order) -> dict:
    return {
        "question": ("k = the trained f's nearest prototype, l = its runner-up, for every method at every stage and "
                     "seed (Context.contrast); prototypes recomputed for the random f"),
        "randomised": (f"all weighted layers of a copy of f, cascading from the top ({order}), each with its own "
                       "initializers, stage i seeded by seed * 1000 + i"),
        "seeds": list(settings["randomisation_seeds"]),
        "method_seed": METHOD_SEED,
        "budgets": {"shap_nsamples": settings["shap_nsamples"], "rise_masks": settings["rise_masks"],
                    "ig_steps": settings["ig_steps"], "decoder methods": "ExplainConfig() defaults, as evaluate"},
        "retraining": [{"images": b[0], "autoencoder_epochs": b[1], "decoder_epochs": b[2]} for b in settings["budgets"]],
        "floor": "per image, the mean similarity of its trained-f map to every other image's trained-f map",
        "rule": (f"r = (s - floor) / (1 - floor); pooled 95% interval over images and seeds (two-way crossed random "
                 f"effects, Satterthwaite df); changes: upper end < {rule.THRESHOLD} on {rule.VERDICT_KEYS}; does not "
                 f"change: lower end > {rule.THRESHOLD} on both; not shown otherwise or where mean 1 - floor < "
                 f"{rule.TEMPLATE_GAP}"),
        "images": f"the first {settings['n_images']} MNIST test images (tfds order)",
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default=str(ROOT / "runs" / "paper"), help="the trained MNIST run folder (read only)")
    p.add_argument("--quick", action="store_true", help="a few images (the test)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="the JSON file to write")
    p.add_argument("--docs", default=str(ROOT / "docs" / "evaluation.md"),
                   help="the page whose results block is re-rendered (full mode, default --out only)")
    p.add_argument("--docs-only", action="store_true", help="only re-render the docs' results block from --out")
    p.add_argument("--data-dir", default=None, help="MNIST's location (see load_mnist)")
    args = p.parse_args(argv)
    if args.docs_only:
        rule.write_docs(files.read_json(args.out), args.docs)
        return files.read_json(args.out)
    mode = "quick" if args.quick else "full"
    settings = MODES[mode]
    t_start = time.perf_counter()
    keras.utils.set_random_seed(0)
    run = runs.load_run(args.run)
    config_path = Path(args.run) / runs.CONFIG_FILE
    train_config = (TrainConfig.from_dict(files.read_json(config_path)) if config_path.is_file()
                    else TrainConfig(embedding_dim=run.prototypes.shape[1]))
    x_test, _ = load_mnist("test", args.data_dir)
    x_train, y_train = load_mnist("train", args.data_dir)
    xs = np.array(x_test[: settings["n_images"]])
    xp, yp = x_train[: settings["n_prototype_images"]], y_train[: settings["n_prototype_images"]]
    xr = np.array(x_train[: max(b[0] for b in settings["budgets"])])
    trained_weights = [np.array(w) for w in run.embed.get_weights()]
    out = randomisation_check(run, xs, xp, yp, xr, train_config, settings)
    if any(not np.array_equal(a, b) for a, b in zip(trained_weights, run.embed.get_weights())):
        raise RuntimeError("the randomisation changed the trained f's weights; it must only change its copy")
    result = {
        "run_id": run.run_id, "run": str(args.run), "mode": mode, "n_images": int(len(xs)), "q": rule.Q,
        "relative_threshold": rule.THRESHOLD, "verdict_keys": list(rule.VERDICT_KEYS),
        "protocol": _protocol(settings, cascade_layers(run.embed)),
        "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.items()},
        "prototype_rule_vs_run": float(np.abs(compute_prototypes(run.embed, xp, yp) - run.prototypes).max()),
        **out,
        "machine": _machine(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": round(time.perf_counter() - t_start, 1),
        "load_average_1_5_15_min": [round(v, 2) for v in os.getloadavg()],
    }
    files.write_json(args.out, result)
    if mode == "full" and Path(args.out) == DEFAULT_OUT:
        rule.write_docs(files.read_json(args.out), args.docs)  # as --docs-only renders it
    print(f"wrote {args.out} ({result['seconds']:.0f} s, {mode} mode): "
          + ", ".join(f"{n}: {m['verdict']}" for n, m in result["methods"].items()))
    check = result["check_of_the_check"]
    if not check["passed"]:
        raise RuntimeError(f"the check of the check failed: a model-free map must not change. Got {check['verdicts']}")
    return result


def _machine() -> str:
    from siamese_xai.machine import machine_description

    return machine_description()


if __name__ == "__main__":
    main()
