"""How often the probe's counterfactuals flip f's decision, off MNIST and on classes f never saw.

Commands (from the project root; TFDS_DATA_DIR must point at MNIST):

    python -m benchmarks.evaluation.probe_flips                  # full (`make probe-flips`)
    python -m benchmarks.evaluation.probe_flips --tiny --out DIR # seconds-scale networks and a handful of images
    python -m benchmarks.evaluation.probe_flips --dev            # the development sets instead (see below)

Writes `benchmarks/evaluation/probe_flips.json` (`probe_flips_dev.json` with `--dev`): per setting the networks'
accuracy, the number of explained images, the probe's flip rate (share of
images whose found set f classes otherwise, checked by f), the mean and
largest found-set size in cells and the mean and largest number of images
through f per explained image; the targets and whether each is met; the wall
time (`seconds`: this run; `training_seconds` per network: when it was trained, reused afterwards) and the
machine's load.

Networks, each trained by the package's `siamese_xai.training.stages.train_run` on a
class folder written here (reused from `--runs` when its `metrics.json` exists):

- `mnist`: the first `mnist_train` MNIST training images, 10 classes;
- `pairs`: `benchmarks.evaluation.pair_data`'s identity images (32 identities, the
  training seed of `benchmarks.pairs`, 100);
- `shapes`: `siamese_xai.evaluation.synthetic.make_shapes` (seed 0), 5 classes, trained as the evaluation
  benchmark trains it (`benchmarks.evaluation.synthetic_varying.train_synthetic_run`, f a classifier's embedding: the
  contrastive loss separates nothing on this set);
- `fewshot`: MNIST training images of the digits 0-4 only.

Per network the JSON also records `decoder_image_classed_as_its_class`: the share of classes l whose decoded
prototype g(c_l) f classes as l. Where it is low, painting g(c_l) cannot move x to l.

Settings scored (the probe's defaults, `ProbeConfig()`, everywhere but where a row names its proposal):

- `mnist`: the first `n_images` MNIST test images;
- `shapes`: `make_shapes(n_images, seed=1)` (the evaluation benchmark's test seed);
- `pairs`: first images of the pair benchmark's pairs (`make_pairs(80, 80, seed=1)`), half of mates and half
  of non-mates;
- `rank`: `Rank(above, below)` on triplets of the pair set: a query of an
  identity, `above` another image of that identity, `below` its twin with one
  slot's glyph swapped (the non-mate of the pair benchmark, same clutter); the
  triplets whose ranking f gets right are asked (the others are counted);
  the flip is `below` strictly nearer the painted query than `above`;
- `fewshot`: the `fewshot` network, prototypes of the digits 5-9 from 5
  support MNIST training images each (`ProbeExplainer.with_support`, no
  retraining), the first `n_images` test images of 5-9.

Each class setting has three rows (`class_scores`): `rather_than`, the target, `probe.explain(x)` (why k
rather than the runner-up l, flipped where f classes the painted image as l) with the examples given (5
training images of each class, `ProbeExplainer.with_examples`; the few-shot support set itself), so that
the default proposal paints a real image of l; `rather_than_decoder`, the same painting the decoder's g(c_l)
(the design before examples, and the default where none are given); `why_class`, `WhyClass()`, flipped
where any other class is nearest.

Development sets (`--dev`; the design's defaults were chosen on these, never
on the sets above): the pair set's identity images drawn with another image
seed (`make_identity_images(n, seed=11)`: other clutter and intensities), and
the shapes set with another seed and a variant (`make_shapes(n, seed=5,
distractors=3, noise=0.05)`); `--dev` also scores every proposal choice.

Targets (declared before the first run; a miss is reported with its numbers):
the class probe's flip rate >= 0.90 on `mnist`, `shapes`, `pairs` and
`fewshot`; rank swaps >= 0.90.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from benchmarks.evaluation import pair_data  # noqa: E402
from siamese_xai import files  # noqa: E402
from siamese_xai.machine import machine_description  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TARGET = 0.90
MODES = {
    "tiny": dict(n_images=6, n_triplets=6, support=5, mnist_train=600, pairs_train=640, shapes_train=600,
                 fewshot_train=600, epochs=(1, 1, 1), shapes_epochs=(1, 1, 1)),
    # a few hundred images in all keep a run near 20 minutes on 2 shared cores, training included
    "full": dict(n_images=60, n_triplets=60, support=5, mnist_train=4000, pairs_train=3200, shapes_train=3000,
                 fewshot_train=4000, epochs=(4, 3, 3), shapes_epochs=(8, 4, 4)),
}
FEWSHOT_TRAIN_CLASSES = (0, 1, 2, 3, 4)
FEWSHOT_NEW_CLASSES = (5, 6, 7, 8, 9)


# -- the networks --------------------------------------------------------------


def train(run_dir: Path, x, y, settings: dict, log=print) -> dict:
    """Trains f, the autoencoder and the decoder on `(x, y)` written as a class folder (or reuses the run)."""
    import dataclasses

    from siamese_xai.config import TrainConfig
    from siamese_xai.training import stages as training

    run_dir = Path(run_dir)
    if not (run_dir / "metrics.json").exists():
        folder = run_dir.parent / f"{run_dir.name}-images"
        if not folder.exists():
            pair_data.write_folder(folder, x, y)
        config = TrainConfig.paper()
        for stage, epochs in zip(("snn", "autoencoder", "decoder"), settings["epochs"]):
            config = config.replace(**{stage: dataclasses.replace(getattr(config, stage), epochs=epochs)})
        log(f"training {run_dir} on {len(x)} images of {len(np.unique(y))} classes")
        training.train_run(config, run_dir, data_dir=str(folder), verbose=0)
    return json.loads((run_dir / "metrics.json").read_text())


def train_shapes(run_dir: Path, x, y, settings: dict, log=print) -> dict:
    """The shapes network as the evaluation benchmark trains it: f a classifier's embedding (the contrastive loss
    separates nothing on this set), the autoencoder and the decoder by `siamese_xai.training.stages`."""
    from benchmarks.evaluation.synthetic_varying import train_synthetic_run

    if not (Path(run_dir) / "synthetic_config.json").exists():
        log(f"training {run_dir} on {len(x)} images of {len(np.unique(y))} classes (f a classifier's embedding)")
    _, info = train_synthetic_run(run_dir, x, y, settings["shapes_epochs"], num_classes=len(np.unique(y)),
                                  stamp={"set": "shapes", "n_train": len(x)}, objective="classifier")
    return {"prototype_accuracy": info["train_accuracy"], "accuracy_on": "training images", **info}


def training_sets(settings: dict) -> dict:
    """`name -> (x, y)`: the training images of each network."""
    from siamese_xai.data.mnist import load_mnist
    from siamese_xai.evaluation.synthetic import make_shapes

    xm, ym = load_mnist("train")
    few = np.flatnonzero(np.isin(ym, FEWSHOT_TRAIN_CLASSES))[: settings["fewshot_train"]]
    xs, ys, _ = make_shapes(settings["shapes_train"], seed=0)
    return {
        "mnist": (xm[: settings["mnist_train"]], ym[: settings["mnist_train"]]),
        "pairs": pair_data.make_identity_images(settings["pairs_train"], seed=100),
        "shapes": (xs, ys),
        "fewshot": (xm[few], ym[few]),
    }


# -- the sets explained ----------------------------------------------------------


def rank_triplets(n: int, seed: int) -> dict:
    """`n` (query, above, below) of the pair set: `above` a mate of the query (another image of its identity,
    other clutter), `below` the query's twin with one slot's glyph swapped (the same clutter and intensity).

    Returns:
        `query`, `above`, `below` `(n, 28, 28, 1)` float32.
    """
    layouts = pair_data.make_layouts(0)
    rng = np.random.default_rng(seed)
    out = {"query": [], "above": [], "below": []}
    for _ in range(n):
        a = int(rng.integers(0, pair_data.IDENTITIES))
        b = pair_data.swap_slot(a, int(rng.integers(0, pair_data.SLOTS)))
        background, v = pair_data.clutter(rng), rng.uniform(*pair_data.GLYPH_INTENSITY)
        out["query"].append(pair_data.render(a, layouts, background, v))
        out["below"].append(pair_data.render(b, layouts, background, v))
        out["above"].append(pair_data.render(a, layouts, pair_data.clutter(rng), rng.uniform(*pair_data.GLYPH_INTENSITY)))
    return {k: np.asarray(v, np.float32)[..., None] for k, v in out.items()}


def examples_of(x, y, per_class: int):
    """`(x, y)`: the first `per_class` images of each class of a labelled set (the examples a user hands over)."""
    pick = np.concatenate([np.flatnonzero(y == c)[:per_class] for c in np.unique(y)])
    return x[pick], y[pick]


def scored_sets(settings: dict, sets: dict, dev: bool) -> dict:
    """`setting -> (network, images, support, examples)`; support and examples `(x, y)` or None.

    The examples are the first `support` training images of each class of the network's training set (what the
    user of a trained network holds); the few-shot setting's support (5 training images of each of the digits
    5-9, labelled 0-4) is its prototypes and its examples at once.
    """
    from siamese_xai.data.mnist import load_mnist
    from siamese_xai.evaluation.synthetic import make_shapes

    n, k = settings["n_images"], settings["support"]
    examples = {name: examples_of(*sets[name], k) for name in ("pairs", "shapes", "mnist") if name in sets}
    if dev:
        return {"pairs": ("pairs", pair_data.make_identity_images(n, seed=11)[0], None, examples["pairs"]),
                "shapes": ("shapes", make_shapes(n, seed=5, distractors=3, noise=0.05)[0], None, examples["shapes"])}
    xt, yt = load_mnist("test")
    xr, yr = load_mnist("train")
    new = np.flatnonzero(np.isin(yt, FEWSHOT_NEW_CLASSES))[:n]
    support = np.concatenate([np.flatnonzero(yr == c)[:k] for c in FEWSHOT_NEW_CLASSES])
    labels = np.searchsorted(FEWSHOT_NEW_CLASSES, yr[support])
    pairs = pair_data.make_pairs(80, 80, seed=1)  # the pair benchmark's pairs (full mode)
    return {"mnist": ("mnist", xt[:n], None, examples["mnist"]),
            "shapes": ("shapes", make_shapes(n, seed=1)[0], None, examples["shapes"]),
            "pairs": ("pairs", np.concatenate([pairs["x1"][: n - n // 2], pairs["x1"][80: 80 + n // 2]]), None,
                      examples["pairs"]),
            "fewshot": ("fewshot", xt[new], (xr[support], labels), None)}


# -- the scores ------------------------------------------------------------------


def summary(e, asked=None) -> dict:
    """Flip rate, found-set size and f calls of a `ProbeExplanation` (over the rows `asked`, default all)."""
    rows = np.arange(len(e.flips)) if asked is None else np.flatnonzero(asked)
    from scipy.stats import binomtest

    flips, size, calls = e.flips[rows], e.set_size[rows], e.n_calls[rows]
    ci = binomtest(int(flips.sum()), len(rows)).proportion_ci(0.95) if len(rows) else None
    return {"n": int(len(rows)), "flip_rate": float(flips.mean()) if len(rows) else None,
            "flip_rate_95ci": [float(ci.low), float(ci.high)] if ci is not None else None,
            "set_size_mean": float(size[flips].mean()) if flips.any() else None,
            "set_size_max": int(size[flips].max()) if flips.any() else None,
            "n_calls_mean": float(calls.mean()) if len(rows) else None,
            "n_calls_max": int(calls.max()) if len(rows) else None}


def class_scores(probe, x, support, examples, dev: bool = False) -> dict:
    """The class probe's summaries on `x`.

    `rather_than` (the target): `probe.explain(x)`, why k (the nearest prototype) rather than l (the runner-up),
    flipped where f classes the found set's image as l, with the default proposal (`ProbeConfig()`: a real image
    of l, the examples given); `rather_than_decoder`: the same with the decoder's g(c_l) (`proposal="prototype"`,
    the default where no examples are given); `why_class`: `WhyClass()` (flipped where any other class is
    nearest), default proposal. `dev` adds every other proposal.
    """
    from siamese_xai.explainers.questions import WhyClass

    probe = probe.with_support(*support) if support is not None else probe.with_examples(*examples)
    rows = {"rather_than": (None, {}), "rather_than_decoder": (None, {"proposal": "prototype"}),
            "why_class": (WhyClass(), {})}
    if dev:
        rows.update({f"rather_than_{p}": (None, {"proposal": p}) for p in ("shift", "blur")})
        rows.update({f"why_class_{p}": (WhyClass(), {"proposal": p}) for p in ("prototype", "blur")})
    out = {}
    for name, (question, change) in rows.items():
        out[name] = summary((probe.replace(**change) if change else probe).explain(x, question))
    return out


def rank_scores(probe, triplets) -> dict:
    """Rank swaps on the triplets f ranks as built (`above` strictly nearer the query than `below`)."""
    from siamese_xai.explainers.questions import Rank

    e = probe.explain(triplets["query"], Rank(triplets["above"], triplets["below"]))
    right = e.margin > 0
    return {**summary(e, right), "triplets": int(len(right)), "ranked_wrong": int((~right).sum())}


def decoder_draws(probe) -> float:
    """Share of the classes l whose decoded prototype g(c_l) f classes as l (its nearest prototype is c_l)."""
    import tensorflow as tf

    from siamese_xai.explainers.questions import squared_distances

    g = np.clip(np.asarray(probe.decoder(tf.constant(probe.prototypes))), 0.0, 1.0).astype(np.float32)
    nearest = squared_distances(probe.embed_images(g), probe.prototypes).argmin(1)
    return float((nearest == np.arange(len(g))).mean())


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="seconds-scale networks and a handful of images")
    p.add_argument("--dev", action="store_true", help="the development sets and every proposal choice")
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / "probe-flips", help="folder of the trained networks")
    p.add_argument("--out", type=Path, default=None, help="the JSON's folder (default: benchmarks/evaluation/)")
    p.add_argument("--train-only", action="store_true", help="train (or reuse) the networks and stop")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    mode = "tiny" if args.tiny else "full"
    settings = MODES[mode]
    t0 = time.perf_counter()
    load = os.getloadavg()[0]
    from siamese_xai.explainers.probe import ProbeExplainer

    nets, runs_info = {}, {}
    needed = ("pairs", "shapes") if args.dev else ("pairs", "shapes", "mnist", "fewshot")
    sets = training_sets(settings)
    for name in needed:
        t1 = time.perf_counter()
        metrics = (train_shapes if name == "shapes" else train)(args.runs / name, *sets[name], settings)
        runs_info[name] = {"run": str(args.runs / name), "n_train": int(len(sets[name][1])),
                           "prototype_accuracy": metrics["prototype_accuracy"],
                           "accuracy_on": metrics.get("accuracy_on", "held-out images of the class folder"),
                           "training_seconds": round(sum(metrics["seconds"].values()), 1),
                           "recon_sse_decoder": metrics.get("recon_sse_decoder"),
                           "recon_sse_class_mean_image": metrics.get("recon_sse_class_mean_image"),
                           "seconds_in_this_run": round(time.perf_counter() - t1, 1)}
        nets[name] = ProbeExplainer.from_run(args.runs / name)
        runs_info[name]["decoder_image_classed_as_its_class"] = decoder_draws(nets[name])
    if args.train_only:
        print(json.dumps(runs_info, indent=1))
        return
    results = {}
    for setting, (net, x, support, examples) in scored_sets(settings, sets, args.dev).items():
        t1 = time.perf_counter()
        results[setting] = class_scores(nets[net], x, support, examples, args.dev)
        results[setting]["seconds"] = round(time.perf_counter() - t1, 1)
        print(setting, json.dumps(results[setting]), flush=True)
    if not args.dev:
        t1 = time.perf_counter()
        results["rank"] = rank_scores(nets["pairs"], rank_triplets(settings["n_triplets"], seed=3))
        results["rank"]["seconds"] = round(time.perf_counter() - t1, 1)
        print("rank", json.dumps(results["rank"]))
    targets = [] if args.dev else [
        {"setting": s, "target": f"{'rank swap' if s == 'rank' else 'class probe flip'} rate >= {TARGET}",
         "value": v, "met": v is not None and v >= TARGET}
        for s, v in ((s, (r if s == "rank" else r["rather_than"])["flip_rate"]) for s, r in results.items())]
    out = {"mode": mode, "dev": bool(args.dev), "settings": settings, "runs": runs_info, "results": results,
           "targets": targets, "seconds": round(time.perf_counter() - t0, 1), "load_average_at_start": load,
           "machine": machine_description(), "date": datetime.date.today().isoformat()}
    folder = args.out or ROOT / "benchmarks" / "evaluation"
    name = "probe_flips_dev.json" if args.dev else "probe_flips.json"
    files.write_json(Path(folder) / name, out)
    print(f"wrote {Path(folder) / name} in {out['seconds']} s")


if __name__ == "__main__":
    main()
