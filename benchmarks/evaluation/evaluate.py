"""The benchmark: every registered method on MNIST (faithfulness of the margin) and on three ground-truth sets.

Commands (from the project root; TFDS_DATA_DIR must point at MNIST, as for
`make reproduce`):

    python -m benchmarks.evaluation.evaluate --run runs/paper            # full (`make evaluate`)
    python -m benchmarks.evaluation.evaluate --run runs/paper --medium   # 100 images (labelled medium)
    python -m benchmarks.evaluation.evaluate --run RUN --quick --out DIR # a few images (the test)

docs/evaluation.md declares the metrics and the verdict rule. The methods
and the metrics are those of `benchmarks/evaluation/registry.py`. Writes, atomically:

- `benchmarks/evaluation/results.json`: per data set and method, the mean and 95%
  Student-t interval of every metric, stability, f calls and seconds per
  explanation; the paired verdicts (`benchmarks/evaluation/verdicts.py`); the targets;
  the settings, the machine, the wall time and the load;
- `benchmarks/evaluation/per_image.npz`: every per-image value, key
  `dataset/metric/method`, so each verdict can be re-tested;
- `benchmarks/evaluation/RESULTS.md` (`evaluate_report.render_markdown`) and
  `figures/road_curves.png`.

The first full run also trains the constant-square, varying-square and
shapes networks into `runs/synthetic`, `runs/varying` and `runs/shapes`
(later runs reuse them). `--from-results` re-renders RESULTS.md and the figure
from results.json and per_image.npz (recomputing the verdicts); `--readme README.md`
also rewrites the README's faithfulness row and verdict paragraph
(`evaluate_report.update_readme`), so no verdict there is written by hand.
"""

from __future__ import annotations

import argparse
import datetime
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.evaluation import evaluate_report as report  # noqa: E402
from benchmarks.evaluation import ground_truth as gtx  # noqa: E402
from benchmarks.evaluation import registry, verdicts  # noqa: E402
from benchmarks.evaluation.synthetic_varying import train_synthetic_run, train_varying_run  # noqa: E402
from siamese_xai.evaluation import baselines as bl  # noqa: E402
from siamese_xai.evaluation import faithfulness as fa  # noqa: E402
from siamese_xai import files
from siamese_xai.evaluation import metrics  # noqa: E402
from siamese_xai.data.mnist import load_mnist  # noqa: E402
from siamese_xai.config import ExplainConfig
from siamese_xai.explainers.questions import runner_up  # noqa: E402
from siamese_xai.explainers.siamese import SiameseExplainer  # noqa: E402
from siamese_xai.machine import machine_description  # noqa: E402
from siamese_xai.evaluation.synthetic import make_shapes, make_synthetic, make_varying_synthetic  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
# Per mode: MNIST images, images and seeds for stability, images timed one by one, the baselines' budgets,
# images per ground-truth set, the synthetic networks' training (images, epochs f/AE/decoder, pairs per epoch; the
# shapes network's f is trained as a classifier: benchmarks/evaluation/synthetic_varying.py, train_classifier_embedding).
MODES = {
    "quick": dict(n_images=8, n_gt=8, n_stability=3, seeds=(0, 1), n_cost=1, shap_nsamples=60, rise_masks=100,
                  ig_steps=8, synth_train=1000, synth_test=60, synth_epochs=(1, 1, 1), synth_pairs=2000,
                  varying_train=1000, varying_epochs=(1, 1, 1), varying_pairs=2000,
                  shapes_train=1000, shapes_epochs=(1, 1, 1), shapes_pairs=2000, shapes_objective="classifier",
                  n_mechanism=4),
    "medium": dict(n_images=100, n_gt=50, n_stability=20, seeds=(0, 1, 2), n_cost=5, shap_nsamples=300,
                   rise_masks=1000, ig_steps=32, synth_train=20000, synth_test=1000, synth_epochs=(2, 8, 8),
                   synth_pairs=20000, varying_train=5000, varying_epochs=(2, 8, 8), varying_pairs=10000,
                   shapes_train=6000, shapes_epochs=(12, 8, 8), shapes_pairs=12000, shapes_objective="classifier",
                   n_mechanism=50),
    "full": dict(n_images=500, n_gt=100, n_stability=30, seeds=(0, 1, 2), n_cost=10, shap_nsamples=300,
                 rise_masks=1000, ig_steps=32, synth_train=20000, synth_test=1000, synth_epochs=(2, 8, 8),
                 synth_pairs=20000, varying_train=5000, varying_epochs=(2, 8, 8), varying_pairs=10000,
                 shapes_train=6000, shapes_epochs=(12, 8, 8), shapes_pairs=12000, shapes_objective="classifier",
                 n_mechanism=100),
}
Q = 100  # top-q for stability: the explainer's own default mask size
MEAN_IMAGES = 10000  # training images averaged into the `mean` fill


def faithfulness_values(scalar, xs, classes, contrasts, maps, mean_image, seed: int = 0):
    """metric name -> `(B,)` for every faithfulness metric of the registry; and the mean ROAD curves."""
    out, curves = {}, {}
    for fill in fa.FILLS:
        filled = fa.fill_images(xs, fill, mean_image)
        for support in (False, True):
            cur = fa.removal_curves(scalar, xs, classes, contrasts, maps, filled, support=support, seed=seed)
            for direction in ("deletion", "insertion"):
                out[f"{direction}_{fill}{'_support' if support else ''}"] = cur[f"{direction}_auc"]
    road = fa.road_curves(scalar, xs, classes, contrasts, maps, seed=seed)
    out["road_morf"], out["road_lerf"] = road["morf_auc"], road["lerf_auc"]
    curves = {"fraction": road["fraction"].tolist(), "morf": road["morf"].mean(0).tolist(),
              "lerf": road["lerf"].mean(0).tolist()}
    missing = {m.name for m in registry.METRICS if m.kind == "faithfulness"} - set(out)
    if missing:
        raise RuntimeError(f"registered faithfulness metrics without a computation: {sorted(missing)}")
    return out, curves


def evaluate_dataset(name, explainer, x, regions, settings, mean_image=None, log=print):
    """Every registered method and variant (`registry.METHODS`, `registry.VARIANTS`) on one data set.

    Args:
        name: the data set's name.
        explainer: its `SiameseExplainer`.
        x: `(n, 28, 28, 1)` images.
        regions: `(n, 28, 28)` bool true regions (ground-truth sets), or None (MNIST: faithfulness).
        settings: one of `MODES`.
        mean_image: `(28, 28, 1)` the `mean` fill (faithfulness only).

    Returns:
        `(records, per_image, curves, maps)`: one record per entry; metric -> entry -> `(n,)`;
        entry -> mean ROAD curves (faithfulness only); entry -> `(n, 28, 28)` maps.
    """
    scalar = metrics.DistanceScalar(explainer.embed, explainer.prototypes)
    classes = scalar.classify(x)
    contrasts = runner_up(scalar.all_distances(x), classes)
    fns = registry.method_functions(explainer, scalar, settings)
    n_stab = min(settings["n_stability"], len(x))
    records, per_image, curves, all_maps = [], {}, {}, {}
    arrays, seed_maps, seed_arrays, base_rec = {}, {}, {}, {}

    def score(entry, maps, per_seed, rec, extras, t0):
        """Fills `rec` with the entry's scores of `maps` and stability over `per_seed`; appends it."""
        all_maps[entry] = maps
        for key, v in extras.items():
            rec["flip_rate" if key == "flips" else key] = metrics.mean_ci(v)
            per_image.setdefault("flip_rate" if key == "flips" else key, {})[entry] = np.asarray(v, np.float64)
        if regions is None:
            values, curves[entry] = faithfulness_values(scalar, x, classes, contrasts, maps, mean_image)
        else:
            scores = metrics.region_scores(maps, regions)
            values = {"rank_accuracy": scores["rank_accuracy"], "relevance_mass": scores["mass"],
                      "roc_auc": scores["roc_auc"]}
        for key, v in values.items():
            per_image.setdefault(key, {})[entry] = v
            rec[key] = metrics.mean_ci(v)
        rec["stability"] = metrics.mean_ci(metrics.stability(np.stack(per_seed), Q))
        rec["wall_seconds"] = round(time.perf_counter() - t0, 1)
        records.append(rec)
        primary = "road_morf" if regions is None else "rank_accuracy"
        log(f"[{name}] {entry}: {primary} {rec[primary]['mean']:.3f} ± {rec[primary]['ci95']:.3f}, "
            f"stability {rec['stability']['mean']:.3f}, {rec['f_calls_per_image']:.0f} f calls, "
            f"{rec['seconds_per_explanation'] * 1e3:.1f} ms ({rec['wall_seconds']} s)")

    for method in registry.METHODS:
        t0 = time.perf_counter()
        fn = fns[method.name]
        calls = scalar.calls
        maps, extras, arrays[method.name] = registry.split_arrays(fn(x, classes, settings["seeds"][0]))
        if "n_calls" in extras:  # the method counts its own calls of f
            f_calls = float(np.mean(extras["n_calls"]))
        else:  # a decoder method runs f once, on x; the others through the scalar
            f_calls = (scalar.calls - calls) / len(x) if method.scalar_only or method.kind == registry.WHITE_BOX else 1.0
        rec = {"dataset": name, "method": method.name, "kind": method.kind, "description": method.description,
               "n_images": int(len(x)), "f_calls_per_image": float(f_calls)}
        # A deterministic method is measured too (one rerun with another seed), not assumed to be stable.
        seeds = settings["seeds"][1:2] if method.deterministic else settings["seeds"][1:]
        reruns = [registry.split_arrays(fn(x[:n_stab], classes[:n_stab], s)) for s in seeds]
        seed_maps[method.name] = [maps[:n_stab]] + [r[0] for r in reruns]
        seed_arrays[method.name] = [{k: v[:n_stab] for k, v in arrays[method.name].items()}] + [r[2] for r in reruns]
        rec["seconds_per_explanation"] = bl.median_seconds(lambda b, c: fn(b, c, 0), x, classes, settings["n_cost"])
        base_rec[method.name] = rec
        score(method.name, maps, seed_maps[method.name], rec, extras, t0)
    sigma = registry.probe_sigma(x.shape[1:])
    proposal = arrays.get(registry.GATE_SOURCE, {}).get("proposal")
    for variant in registry.VARIANTS:
        t0 = time.perf_counter()
        maps = registry.variant_maps(variant, all_maps[variant.base], arrays[variant.base], proposal, x, sigma)
        post_seconds = (time.perf_counter() - t0) / len(x)
        per_seed = [registry.variant_maps(variant, m, a, None if proposal is None else proposal[:n_stab], x[:n_stab], sigma)
                    for m, a in zip(seed_maps[variant.base], seed_arrays[variant.base])]
        base = base_rec[variant.base]
        # derived from the base's maps: its f calls, and its seconds plus the post-processing's
        rec = {"dataset": name, "method": variant.name, "kind": variant.kind, "description": variant.description,
               "n_images": int(len(x)), "f_calls_per_image": base["f_calls_per_image"], "base": variant.base,
               "steps": list(variant.steps), "seconds_per_explanation": base["seconds_per_explanation"] + post_seconds}
        score(variant.name, maps, per_seed, rec, {}, t0)
    return records, per_image, curves, all_maps


def correctly_classified(explainer, xs, ys, n):
    """Indices of the first n images the network classifies correctly (ground truth is defined there).

    An under-trained quick run is padded with misclassified images so that the
    test still has n. Returns `(keep, test_accuracy, n_correct_kept)`.
    """
    pred = metrics.DistanceScalar(explainer.embed, explainer.prototypes).classify(xs)
    keep = np.flatnonzero(pred == ys)[:n]
    if len(keep) < min(n, len(ys)):
        keep = np.concatenate([keep, np.flatnonzero(pred != ys)])[: min(n, len(ys))]
    return keep, float((pred == ys).mean()), int((pred[keep] == ys[keep]).sum())


def ground_truth_set(name, explainer, xs, ys, regions, settings, records, per_image, log=print, ceilings=True):
    """Scores one ground-truth set's first n correctly classified images; returns its metadata."""
    keep, test_acc, n_correct = correctly_classified(explainer, xs, ys, settings["n_gt"])
    recs, values, _, _ = evaluate_dataset(name, explainer, xs[keep], regions[keep], settings, log=log)
    if ceilings:
        gtx.add_ceilings(recs, explainer, settings, xs[keep], regions[keep])
    records += recs
    per_image[name] = values
    return keep, {"n_images": int(len(keep)), "run_id": explainer.run_id, "test_accuracy": test_acc,
                  "correct_scored": n_correct, "n_test": int(len(xs))}


def run_ground_truth(x_train, x_test, settings, dirs, records, per_image, log=print) -> dict:
    """The three ground-truth sets (constant, varying, shapes): trained or reused networks, scores, metadata."""
    meta = {}
    # constant: a case built for the paper's method to fail
    x, y, _ = make_synthetic(x_train, settings["synth_train"], seed=0)
    synth, info = train_synthetic_run(dirs["constant"], x, y, settings["synth_epochs"], settings["synth_pairs"],
                                      stamp={"set": "constant", "n_train": settings["synth_train"]})
    xs, ys, regions = make_synthetic(x_test, settings["synth_test"], seed=1)
    keep, meta["constant"] = ground_truth_set("constant", synth, xs, ys, regions, settings, records, per_image, log)
    m = keep[: settings["n_mechanism"]]
    meta["constant"].update(training=info, mechanism=gtx.negative_control_mechanism(synth, xs[m], ys[m], regions[m]),
                            role="a case built for the paper's method to fail")
    # varying: designed together with the template-contrast method
    vary, info = train_varying_run(dirs["varying"], x_train, n_train=settings["varying_train"],
                                   epochs=settings["varying_epochs"], pairs=settings["varying_pairs"])
    xs, ys, regions, cells = make_varying_synthetic(x_test, settings["synth_test"], seed=1)
    keep, meta["varying"] = ground_truth_set("varying", vary, xs, ys, regions, settings, records, per_image, log)
    classes = metrics.DistanceScalar(vary.embed, vary.prototypes).classify(xs[keep])
    meta["varying"].update(training=info, role="designed together with the template-contrast method",
                           contrast_ablations=gtx.contrast_ablations(vary, xs[keep], classes, regions[keep],
                                                                     gtx.other_cells(ys[keep], cells[keep])))
    # shapes: fixed before any method was scored on it
    x, y, _ = make_shapes(settings["shapes_train"], seed=0)
    shapes, info = train_synthetic_run(dirs["shapes"], x, y, settings["shapes_epochs"], settings["shapes_pairs"],
                                       stamp={"set": "shapes", "n_train": settings["shapes_train"]}, num_classes=5,
                                       objective=settings["shapes_objective"])
    xs, ys, regions = make_shapes(settings["synth_test"], seed=1)
    keep, meta["shapes"] = ground_truth_set("shapes", shapes, xs, ys, regions, settings, records, per_image, log,
                                            ceilings=False)
    meta["shapes"].update(training=info, role="not designed with any method; fixed before any method's numbers",
                          gap_images=int((ys[keep] == 4).sum()))
    return meta


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default=str(ROOT / "runs" / "paper"), help="the trained MNIST run folder")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="a few images (the test)")
    group.add_argument("--medium", action="store_true", help="100 images; labelled as such in RESULTS.md")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "evaluation"), help="folder for results.json, per_image.npz, RESULTS.md")
    p.add_argument("--figures", default=str(ROOT / "figures"), help="folder for road_curves.png")
    p.add_argument("--synthetic-runs", default=None,
                   help="folder of the ground-truth sets' trained networks (default: runs/; quick: a temporary folder)")
    p.add_argument("--randomisation", default=str(ROOT / "benchmarks" / "evaluation" / "randomisation.json"),
                   help="the randomisation check's results (python -m benchmarks.evaluation.randomisation), read if present")
    p.add_argument("--data-dir", default=None, help="MNIST's location (see load_mnist)")
    p.add_argument("--from-results", action="store_true",
                   help="only re-render RESULTS.md and the figure from OUT/results.json and OUT/per_image.npz")
    p.add_argument("--readme", default=None,
                   help="also rewrite this README's faithfulness row and verdict paragraph from the results")
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.from_results:
        results = files.read_json(out / "results.json")
        per_image = load_per_image(out / "per_image.npz")
        finish(results, per_image, args.randomisation)
        write_reports(results, None, out, Path(args.figures))
        if args.readme:
            report.update_readme(args.readme, results)
        return results
    mode = "quick" if args.quick else "medium" if args.medium else "full"
    settings = MODES[mode]
    t0 = time.perf_counter()
    keras.utils.set_random_seed(0)
    x_test, _ = load_mnist("test", args.data_dir)
    x_train, _ = load_mnist("train", args.data_dir)
    n = settings["n_images"]
    mean_image = x_train[:MEAN_IMAGES].mean(0)
    explainer = SiameseExplainer.from_run(args.run, ExplainConfig())
    records, per_image, curves = [], {}, {}
    recs, per_image["mnist"], curves["mnist"], _ = evaluate_dataset("mnist", explainer, x_test[:n], None, settings,
                                                                     mean_image)
    records += recs
    datasets = {"mnist": {"n_images": n, "run": str(args.run), "run_id": explainer.run_id}}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.synthetic_runs) if args.synthetic_runs else Path(tmp) if mode == "quick" else ROOT / "runs"
        dirs = {"constant": base / "synthetic", "varying": base / "varying", "shapes": base / "shapes"}
        datasets.update(run_ground_truth(x_train, x_test, settings, dirs, records, per_image))
    machine = machine_description()
    results = {
        "mode": mode,
        "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()},
        "q": Q,
        "interval": "95% Student-t interval of the mean over images (t_{0.975, n-1} * sd / sqrt(n))",
        "metrics": {m.name: {"kind": m.kind, "higher_is_better": m.higher_is_better, "primary": m.primary,
                             "description": m.description} for m in registry.METRICS},
        "machine": machine,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "datasets": datasets,
        "records": records,
        "curves": curves,
    }
    # the time first: the 25-minute target in finish() reads it
    results["seconds"] = round(time.perf_counter() - t0, 1)
    results["load_average_1_5_15_min"] = [round(v, 2) for v in os.getloadavg()]
    finish(results, per_image, args.randomisation)
    write_reports(results, per_image, out, Path(args.figures))
    if args.readme:
        report.update_readme(args.readme, results)
    return results


def finish(results: dict, per_image: dict, randomisation_path) -> None:
    """Adds the paired verdicts, the randomisation check's reading and the targets to `results`."""
    by_kind = {"faithfulness": {ds: v for ds, v in per_image.items() if ds == "mnist"},
               "ground truth": {ds: v for ds, v in per_image.items()
                                if ds == "shapes" and ds in report.scored_ground_truth(results)}}
    # per_image is dataset -> metric -> method; the verdicts want dataset -> method -> metric
    swapped = {kind: {ds: _by_method(v) for ds, v in d.items()} for kind, d in by_kind.items()}
    margins = {kind: verdicts.margins(kind, d, results.get("curves")) for kind, d in by_kind.items()}
    results["verdicts"] = verdicts.all_verdicts(swapped, margins)
    results["randomisation"] = report.read_randomisation(randomisation_path, results["datasets"]["mnist"]["run_id"])
    results["targets"] = report.targets(results)


def _by_method(values: dict) -> dict:
    out = {}
    for metric, by_method in values.items():
        for method, v in by_method.items():
            out.setdefault(method, {})[metric] = v
    return out


def save_per_image(path, per_image: dict) -> None:
    """Writes `dataset/metric/method` -> `(n,)` arrays into one npz, atomically."""
    flat = {f"{ds}/{metric}/{method}": np.asarray(v) for ds, d in per_image.items()
            for metric, by in d.items() for method, v in by.items()}
    with files.atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **flat)


def load_per_image(path) -> dict:
    """The inverse of `save_per_image`."""
    out = {}
    with np.load(path) as data:
        for key in data.files:
            ds, metric, method = key.split("/")
            out.setdefault(ds, {}).setdefault(metric, {})[method] = data[key]
    return out


def write_reports(results: dict, per_image, out: Path, figures: Path) -> None:
    """Writes per_image.npz (when given), results.json, RESULTS.md and road_curves.png, atomically.

    With `--from-results` the measurements are read back unchanged and only the verdicts and targets
    in results.json are recomputed, so RESULTS.md never shows a conclusion that the JSON lacks.
    """
    if per_image is not None:
        save_per_image(out / "per_image.npz", per_image)
    files.write_json(out / "results.json", results)
    with files.atomic_path(out / "RESULTS.md") as tmp:
        tmp.write_text(report.render_markdown(results))
    report.plot_curves(results, figures / "road_curves.png")
    print(f"wrote {out / 'results.json'}, {out / 'per_image.npz'}, {out / 'RESULTS.md'}, {figures / 'road_curves.png'} "
          f"({results['seconds']:.0f} s, {results['mode']} mode)")


if __name__ == "__main__":
    main()
