"""How faithful, stable and fast each explainer is, on MNIST and two ground-truth sets, against baselines.

Commands (from the project root; TFDS_DATA_DIR must point at MNIST, as for
`make reproduce`):

    .venv/bin/python benchmarks/evaluate.py --run runs/paper            # full (`make evaluate`)
    .venv/bin/python benchmarks/evaluate.py --run runs/paper --medium   # 100 images (labelled medium)
    .venv/bin/python benchmarks/evaluate.py --run RUN --quick --out DIR # a few images (the test)

Run time on the 2-core CPU: the full mode's wall time is written into
results.json (`seconds`) and RESULTS.md; the first full run also trains the
constant-square run into `runs/synthetic` and the varying run into
`runs/varying` (later runs reuse them). `--from-results` only re-renders
RESULTS.md and the figure from results.json (reading
`benchmarks/randomisation.json` again). Writes, atomically:

- `benchmarks/results.json`: one record per data set and method (deletion
  and insertion AUCs of d, raw and normalised, and of the margin, class AUCs,
  stability, ground-truth share and ceiling, pointing, seconds per
  explanation, each with its 95% Student-t interval), the mean curves, the
  negative control's measured mechanism, the contrast ablations, the
  verdicts and the targets, the settings and the machine;
- `benchmarks/RESULTS.md` (`evaluate_report.render_markdown`);
- `figures/deletion_curves.png`: the mean deletion curves of d and of the margin.

The three sets: MNIST with the trained run; the constant-square synthetic
set (`baselines.make_synthetic`, a negative control for the paper's method);
the varying-square set (`synthetic_varying.py`). Every method explains
d(x) = ||f(x) - c_k||^2, k the network's class, and is also scored on the
margin d(x, c_l) - d(x, c_k), l the runner-up (see `siamese_xai.metrics`;
the baselines are in `siamese_xai/baselines.py`). The library holds the
logic; this script chooses the settings, loops over methods and writes files.
"""

from __future__ import annotations

import argparse
import datetime
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]

import keras  # noqa: E402
import numpy as np  # noqa: E402

from siamese_xai import baselines as bl  # noqa: E402
from benchmarks import evaluate_report as report  # noqa: E402
from benchmarks import ground_truth as gtx  # noqa: E402
from siamese_xai.machine import machine_description  # noqa: E402
from siamese_xai import files, metrics, runs  # noqa: E402
from siamese_xai.config import AutoencoderConfig, DecoderConfig, SNNConfig, TrainConfig  # noqa: E402
from siamese_xai.data import load_mnist  # noqa: E402
from siamese_xai.explain import ExplainConfig, SiameseExplainer  # noqa: E402
from benchmarks.synthetic_varying import CELL, CLASS_CELLS, make_varying_synthetic, train_varying_run  # noqa: E402

# Per mode: images per set, images and seeds for stability, images timed one
# by one, the baselines' budgets, the synthetic runs' training, images for the
# negative control's mechanism. Full mode is sized to stay under 20 minutes on
# 2 cores (results.json records the time it took).
MODES = {
    "quick": dict(n_images=12, n_stability=3, seeds=(0, 1), n_cost=1, shap_nsamples=100, rise_masks=200,
                  ig_steps=8, synth_train=1000, synth_test=60, synth_epochs=(1, 1, 1), synth_pairs=2000,
                  varying_train=2000, varying_epochs=(2, 2, 2), varying_pairs=4000, n_mechanism=4),
    "medium": dict(n_images=100, n_stability=30, seeds=(0, 1, 2), n_cost=5, shap_nsamples=300, rise_masks=1000,
                   ig_steps=32, synth_train=20000, synth_test=1000, synth_epochs=(2, 8, 8), synth_pairs=20000,
                   varying_train=5000, varying_epochs=(2, 8, 8), varying_pairs=10000, n_mechanism=50),
    "full": dict(n_images=500, n_stability=50, seeds=(0, 1, 2), n_cost=10, shap_nsamples=300, rise_masks=1000,
                 ig_steps=32, synth_train=20000, synth_test=1000, synth_epochs=(2, 8, 8), synth_pairs=20000,
                 varying_train=5000, varying_epochs=(2, 8, 8), varying_pairs=10000, n_mechanism=100),
}
Q = 100  # top-q for stability: the explainer's own default mask size

METHODS = report.METHODS
# Every per-image metric: its key in the curves, and whether a higher value is better.
CURVE_METRICS = (
    ("deletion_auc", True), ("insertion_auc", False),
    ("deletion_auc_normalised", True), ("insertion_auc_normalised", False),
    ("deletion_margin_auc", False), ("insertion_margin_auc", True),
    ("deletion_class_auc", False), ("insertion_class_auc", True),
)


def method_functions(explainer: SiameseExplainer, scalar, settings: dict) -> dict:
    """name -> fn(xs (B, 28, 28, 1), classes (B,), seed) -> (B, 28, 28) importance."""
    linear = explainer.replace(method="linear")
    contrast = explainer.replace(method="contrast")
    return {
        "mc": lambda x, c, s: bl.method_maps(explainer, x, c, s),
        "linear": lambda x, c, s: bl.method_maps(linear, x, c, s),
        "contrast": lambda x, c, s: bl.contrast_maps(contrast, x, c, s),
        **scalar_functions(scalar, settings),
        "gradient": lambda x, c, s: bl.gradient_maps(scalar, x, c),
        "integrated_gradients": lambda x, c, s: bl.integrated_gradients_maps(scalar, x, c, steps=settings["ig_steps"]),
    }


def scalar_functions(scalar, settings: dict) -> dict:
    """The methods that only call `scalar(xs, classes)` (so an `OracleScalar` can drive them)."""
    return {
        "random": lambda x, c, s: bl.random_maps(x, c, s),
        "intensity": lambda x, c, s: bl.intensity_maps(x, c, s),
        "edge": lambda x, c, s: bl.edge_maps(x, c, s),
        "occlusion": lambda x, c, s: bl.occlusion_maps(scalar, x, c),
        "kernelshap": lambda x, c, s: bl.kernelshap_maps(scalar, x, c, s, nsamples=settings["shap_nsamples"]),
        "distance_explainer": lambda x, c, s: bl.rise_distance_maps(scalar, x, c, s, n_masks=settings["rise_masks"]),
    }


def evaluate_dataset(name, explainer, x, regions, settings, log=print):
    """All metrics of every method on one data set.

    Args:
        name: the data set's name.
        explainer: a `SiameseExplainer` (the paper's defaults).
        x: `(n, 28, 28, 1)` the evaluated images.
        regions: `(n, 28, 28)` bool true regions, or None (no ground truth).
        settings: one of `MODES`.

    Returns:
        `(records, mean_curves)`: one record per method; name -> mean curves.
    """
    scalar = metrics.DistanceScalar(explainer.embed, explainer.prototypes)
    classes = scalar.classify(x)
    fns = method_functions(explainer, scalar, settings)
    n_stab = min(settings["n_stability"], len(x))
    records, curves = [], {}
    for method, kind, deterministic in METHODS:
        t0 = time.perf_counter()
        fn = fns[method]
        maps = fn(x, classes, settings["seeds"][0])
        cur = metrics.deletion_insertion(scalar, x, classes, maps)
        rec = {"dataset": name, "method": method, "kind": kind, "description": report.DESCRIPTIONS[method],
               "n_images": int(len(x))}
        for key, _ in CURVE_METRICS:
            rec[key] = metrics.mean_ci(cur[key], drop_nan=key.endswith("_normalised"))
        # A deterministic method is measured too (one rerun with another seed), not assumed to be 1.
        seeds = settings["seeds"][1:2] if deterministic else settings["seeds"][1:]
        per_seed = [maps[:n_stab]] + [fn(x[:n_stab], classes[:n_stab], s) for s in seeds]
        rec["stability"] = metrics.mean_ci(metrics.stability(np.stack(per_seed), Q))
        rec["stability"]["seeds"] = len(per_seed)
        if regions is not None:
            gt = metrics.ground_truth_scores(maps, regions)
            rec["gt_share"] = metrics.mean_ci(gt["share"])
            rec["pointing"] = metrics.mean_ci(gt["pointing"])
        else:
            rec["gt_share"] = rec["pointing"] = None
        rec["seconds_per_explanation"] = bl.median_seconds(lambda b, c: fn(b, c, 0), x, classes, settings["n_cost"])
        rec["wall_seconds"] = round(time.perf_counter() - t0, 1)
        curves[method] = {k: cur[k].mean(0).tolist() for k in ("deletion_distance", "insertion_distance",
                                                               "deletion_margin", "insertion_margin",
                                                               "deletion_same_class", "insertion_same_class")}
        curves["fraction"] = cur["fraction"].tolist()
        records.append(rec)
        log(f"[{name}] {method}: deletion d {rec['deletion_auc']['mean']:.3f}, margin "
            f"{rec['deletion_margin_auc']['mean']:.3f}, stability {rec['stability']['mean']:.3f}"
            + (f", GT {rec['gt_share']['mean']:.3f}" if regions is not None else "")
            + f", {rec['seconds_per_explanation'] * 1e3:.1f} ms ({rec['wall_seconds']} s)")
    return records, curves


def add_ceilings(records, name, settings, xs, regions):
    """Puts each method's ground-truth ceiling (`ground_truth.ceilings`) into its record."""
    recs = {r["method"]: r for r in records if r["dataset"] == name}
    oracle_fns = {k: v for k, v in scalar_functions(bl.OracleScalar(regions), settings).items()
                  if k in gtx.ORACLE_MEASURED}
    found = gtx.ceilings(list(recs), {k: r["gt_share"] for k, r in recs.items()}, oracle_fns, xs, regions)
    for k, r in recs.items():
        r["ceiling"] = found[k]


# What the synthetic run folder was trained with, written beside the run's files
# (last, so its presence means the models are complete) and checked before reuse.
SYNTHETIC_STAMP_FILE = "evaluation_config.json"


def synthetic_run(run_dir, mnist_train, settings, verbose=0):
    """Trains (or loads) f, the autoencoder and the decoder on the constant-square set.

    The same training code as `train_run` (`train_siamese`, then
    `fit_explainer` for the autoencoder, the decoder and the prototypes), on
    `make_synthetic(mnist_train, ...)`; the run folder is written by
    `runs.save_run`.

    Returns:
        `(explainer, train_accuracy)`.
    """
    from siamese_xai import training
    from siamese_xai.fitting import fit_explainer

    run_dir = Path(run_dir)
    e_snn, e_ae, e_dec = settings["synth_epochs"]
    config = TrainConfig(
        snn=SNNConfig(epochs=e_snn, pairs_per_epoch=settings["synth_pairs"]),
        autoencoder=AutoencoderConfig(epochs=e_ae),
        decoder=DecoderConfig(epochs=e_dec),
    )
    x, y, _ = bl.make_synthetic(mnist_train, settings["synth_train"], seed=0)
    stamp = {"config": config.to_dict(), "synth_train": settings["synth_train"], "seed": 0}
    stamp_path = run_dir / SYNTHETIC_STAMP_FILE
    if stamp_path.exists() and files.read_json(stamp_path) == stamp:
        explainer = SiameseExplainer.from_run(run_dir, ExplainConfig())
    else:
        snn = training.train_siamese(x, y, config, verbose=verbose)
        explainer = fit_explainer(snn, x, y, config, num_classes=10, explain_config=ExplainConfig(), verbose=verbose)
        runs.save_run(run_dir, snn, explainer.decoder, explainer.prototypes)
        files.write_json(stamp_path, stamp)
        explainer = SiameseExplainer.from_run(run_dir, ExplainConfig())  # carries the run_id
    scalar = metrics.DistanceScalar(explainer.embed, explainer.prototypes)
    return explainer, float((scalar.classify(x) == y).mean())


def correctly_classified(explainer, xs, ys, n):
    """Indices of the first n test images the network classifies correctly (ground truth is only defined there).

    An under-trained quick run is padded with misclassified images so the test
    still has n. Returns `(keep, test_accuracy, n_correct_kept)`.
    """
    pred = metrics.DistanceScalar(explainer.embed, explainer.prototypes).classify(xs)
    keep = np.flatnonzero(pred == ys)[:n]
    if len(keep) < min(n, len(ys)):
        keep = np.concatenate([keep, np.flatnonzero(pred != ys)])[: min(n, len(ys))]
    return keep, float((pred == ys).mean()), int((pred[keep] == ys[keep]).sum())


def other_cells(ys, cells):
    """`(n, 28, 28)` bool: the cell of each image's class that the image does not use."""
    out = np.zeros((len(ys), 28, 28), bool)
    for i, (k, c) in enumerate(zip(ys, cells)):
        r0, c0 = CLASS_CELLS[k][1 - c]
        out[i, r0 : r0 + CELL, c0 : c0 + CELL] = True
    return out


def evaluate_constant(x_train, x_test, settings, run_dir, records, log=print):
    """The constant-square set: records, curves and its metadata (with the negative control's mechanism)."""
    n = settings["n_images"]
    ts = time.perf_counter()
    synth, train_acc = synthetic_run(run_dir, x_train, settings)
    train_s = time.perf_counter() - ts
    xs, ys, regions = bl.make_synthetic(x_test, settings["synth_test"], seed=1)
    keep, test_acc, n_correct = correctly_classified(synth, xs, ys, n)
    recs, curves = evaluate_dataset("constant", synth, xs[keep], regions[keep], settings, log)
    records += recs
    add_ceilings(records, "constant", settings, xs[keep], regions[keep])
    m = keep[: settings["n_mechanism"]]
    mechanism = gtx.negative_control_mechanism(synth, xs[m], ys[m], regions[m])
    meta = {"n_images": int(len(keep)), "run_id": synth.run_id, "train_accuracy": train_acc,
            "test_accuracy": test_acc, "train_seconds": round(train_s, 1), "correct_scored": n_correct,
            "synth_train": settings["synth_train"], "synth_test": settings["synth_test"],
            "epochs": list(settings["synth_epochs"]), "mechanism": mechanism, "negative_control": True}
    return curves, meta


def evaluate_varying(x_train, x_test, settings, run_dir, records, log=print):
    """The varying-square set: records, curves and its metadata (with the contrast ablations)."""
    n = settings["n_images"]
    explainer, info = train_varying_run(run_dir, x_train, n_train=settings["varying_train"],
                                        epochs=settings["varying_epochs"], pairs=settings["varying_pairs"])
    xs, ys, regions, cells = make_varying_synthetic(x_test, settings["synth_test"], seed=1)
    keep, test_acc, n_correct = correctly_classified(explainer, xs, ys, n)
    xs, ys, regions, cells = xs[keep], ys[keep], regions[keep], cells[keep]
    recs, curves = evaluate_dataset("varying", explainer, xs, regions, settings, log)
    records += recs
    add_ceilings(records, "varying", settings, xs, regions)
    classes = metrics.DistanceScalar(explainer.embed, explainer.prototypes).classify(xs)
    ablations = gtx.contrast_ablations(explainer, xs, classes, regions, other_cells(ys, cells))
    meta = {"n_images": int(len(keep)), "run_id": explainer.run_id, "training": info, "test_accuracy": test_acc,
            "correct_scored": n_correct, "varying_train": settings["varying_train"],
            "synth_test": settings["synth_test"], "epochs": list(settings["varying_epochs"]),
            "contrast_ablations": ablations}
    return curves, meta


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default=str(ROOT / "runs" / "paper"), help="the trained MNIST run folder")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="a few images (the test)")
    group.add_argument("--medium", action="store_true", help="100 images; labelled as such in RESULTS.md")
    p.add_argument("--out", default=str(ROOT / "benchmarks"), help="folder for results.json and RESULTS.md")
    p.add_argument("--figures", default=str(ROOT / "figures"), help="folder for deletion_curves.png")
    p.add_argument("--synthetic-run", default=None,
                   help="where the constant-square models are trained or reused (default: runs/synthetic; quick: a temporary folder)")
    p.add_argument("--varying-run", default=None,
                   help="where the varying-square models are trained or reused (default: runs/varying; quick: a temporary folder)")
    p.add_argument("--randomisation", default=str(ROOT / "benchmarks" / "randomisation.json"),
                   help="the randomisation check's results (benchmarks/randomisation.py), read if present")
    p.add_argument("--data-dir", default=None, help="MNIST's location (see load_mnist)")
    p.add_argument("--from-results", action="store_true",
                   help="only re-render RESULTS.md and the figure from OUT/results.json (no computation)")
    args = p.parse_args(argv)
    if args.from_results:
        results = files.read_json(Path(args.out) / "results.json")
        report.add_verdicts(results, args.randomisation)
        write_reports(results, Path(args.out), Path(args.figures), write_json=True)
        return results
    mode = "quick" if args.quick else "medium" if args.medium else "full"
    settings = MODES[mode]
    t0 = time.perf_counter()
    keras.utils.set_random_seed(0)

    x_test, _ = load_mnist("test", args.data_dir)
    x_train, _ = load_mnist("train", args.data_dir)
    n = settings["n_images"]
    datasets, records, curves = {}, [], {}

    explainer = SiameseExplainer.from_run(args.run, ExplainConfig())
    recs, curves["mnist"] = evaluate_dataset("mnist", explainer, x_test[:n], None, settings)
    records += recs
    datasets["mnist"] = {"n_images": n, "run": str(args.run), "run_id": explainer.run_id}

    with tempfile.TemporaryDirectory() as tmp:
        quick = mode == "quick"
        synth_dir = args.synthetic_run or (os.path.join(tmp, "constant") if quick else str(ROOT / "runs" / "synthetic"))
        vary_dir = args.varying_run or (os.path.join(tmp, "varying") if quick else str(ROOT / "runs" / "varying"))
        curves["constant"], datasets["constant"] = evaluate_constant(x_train, x_test, settings, synth_dir, records)
        curves["varying"], datasets["varying"] = evaluate_varying(x_train, x_test, settings, vary_dir, records)

    machine = machine_description()
    results = {
        "mode": mode,
        "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()},
        "q": Q,
        "interval": "95% Student-t interval of the mean over images (t_{0.975, n-1} * sd / sqrt(n))",
        "higher_is_better": {k: v for k, v in CURVE_METRICS} | {"stability": True, "gt_share": True, "pointing": True},
        "machine": machine,
        "machine_short": machine.split(",")[0] + f", {os.cpu_count()} cores",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "datasets": datasets,
        "records": records,
        "curves": curves,
    }
    report.add_verdicts(results, args.randomisation)
    results["seconds"] = round(time.perf_counter() - t0, 1)
    results["load_average_1_5_15_min"] = [round(v, 2) for v in os.getloadavg()]
    write_reports(results, Path(args.out), Path(args.figures), write_json=True)
    return results


def write_reports(results: dict, out: Path, figures: Path, write_json: bool = False) -> None:
    """Writes results.json (when asked) and RESULTS.md into `out`, deletion_curves.png into `figures`, atomically."""
    if write_json:
        files.write_json(out / "results.json", results)
    with files.atomic_path(out / "RESULTS.md") as tmp:
        tmp.write_text(report.render_markdown(results))
    report.plot_curves(results, figures / "deletion_curves.png")
    print(f"wrote {out / 'results.json'}, {out / 'RESULTS.md'}, {figures / 'deletion_curves.png'} "
          f"({results['seconds']:.0f} s, {results['mode']} mode)")


if __name__ == "__main__":
    main()
