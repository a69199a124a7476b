"""Quality against cost: ROAD (most relevant first) of the margin against f calls per image, per budget.

Three methods that ask f about the margin, each at a range of its own budget,
on the first `--n` MNIST test images (the benchmark's images, fewer of them):

- `kernelshap_margin`: KernelSHAP of m on 49 superpixels, nsamples 100 .. shap's
  automatic budget (`nsamples="auto"`: 2 M + 2048 = 2146 for M = 49);
- `distance_explainer_margin`: the RISE distance explainer ranking its masks by m, 50 .. 1000 masks;
- `probe`: the probe with `max_regions` 10 .. 80.

Each map is scored as it is and with the probe's post-processing
(`benchmarks.evaluation.registry.post_process`: smoothed, then gated by the
probe's proposal; for the probe, "as it is" is its raw drop map and the
post-processed one its ranking), so the curves separate what a budget buys
from what the post-processing adds. f calls are counted per image (the
methods count their own). Per point: the mean ROAD MoRF over the images with
its 95% Student-t interval (lower is better).

Command (from the project root; `make cost-curves`; its wall time and load are in the JSON):

    python -m benchmarks.evaluation.cost_curves --run runs/paper --n 20

Writes `benchmarks/evaluation/cost_curves.json` and `docs/cost_curves.png`.
"""

from __future__ import annotations

import argparse
import datetime
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from benchmarks.evaluation import registry  # noqa: E402
from siamese_xai import files  # noqa: E402
from siamese_xai.evaluation import faithfulness as fa  # noqa: E402
from siamese_xai.evaluation import metrics  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
# Each method's budget: the setting it reads, and the values swept (the benchmark's own value is among them).
BUDGETS = {
    "kernelshap_margin": ("shap_nsamples", (100, 200, 300, 500, 1000, "auto")),
    "distance_explainer_margin": ("rise_masks", (50, 100, 200, 500, 1000)),
    "probe": ("max_regions", (10, 20, 40, 80)),
}


def method_maps(name, budget, explainer, scalar, xs, classes):
    """`(maps, raw, n_calls, proposal)` of one method at one budget; raw is the map before the method's own steps."""
    if name == "probe":
        from siamese_xai.explainers.probe import ProbeExplainer

        probe = ProbeExplainer(explainer.embed, explainer.decoder, explainer.prototypes).replace(max_regions=budget)
        maps, result = registry.explained_maps(probe, xs, classes)
        raw = np.asarray(result.drop_map, np.float32)[..., 0]
        return maps, raw, np.asarray(result.n_calls, np.float64), np.asarray(result.proposal, np.float32)[..., 0]
    key = BUDGETS[name][0]
    fn = registry.method_functions(explainer, scalar, {key: budget}, names=[name])[name]
    maps, extras = registry.split(fn(xs, classes, 0))
    return maps, maps, np.asarray(extras["n_calls"], np.float64), None


def run(explainer, xs, log=print) -> dict:
    """Every method at every budget on `xs`: name -> list of points (see the module docstring)."""
    scalar = metrics.DistanceScalar(explainer.embed, explainer.prototypes)
    classes = scalar.classify(xs)
    from siamese_xai.explainers.questions import runner_up

    contrasts = runner_up(scalar.all_distances(xs), classes)
    sigma = registry.probe_sigma(xs.shape[1:])
    proposal = None
    out = {}
    # the probe first: its proposal gates every method's post-processed map
    for name in ("probe", *(n for n in BUDGETS if n != "probe")):
        points = []
        for budget in BUDGETS[name][1]:
            t0 = time.perf_counter()
            maps, raw, calls, p = method_maps(name, budget, explainer, scalar, xs, classes)
            seconds = (time.perf_counter() - t0) / len(xs)
            proposal = p if proposal is None else proposal
            post = registry.post_process(raw, registry.PROBE_PROCESSING, xs, proposal, sigma)
            scored = {"raw": raw, "post_processed": post} if name == "probe" else {"raw": maps, "post_processed": post}
            point = {"budget": budget, "f_calls": metrics.mean_ci(calls), "seconds_per_image": seconds}
            for label, m in scored.items():
                point[label] = metrics.mean_ci(fa.road_curves(scalar, xs, classes, contrasts, m)["morf_auc"])
            points.append(point)
            log(f"{name} {BUDGETS[name][0]}={budget}: {point['f_calls']['mean']:.0f} f calls, ROAD MoRF raw "
                f"{point['raw']['mean']:.3f} ± {point['raw']['ci95']:.3f}, post-processed "
                f"{point['post_processed']['mean']:.3f} ± {point['post_processed']['ci95']:.3f} ({seconds:.2f} s/image)")
        out[name] = points
    return out


def plot(results: dict, path) -> None:
    """ROAD MoRF (mean, 95% interval) against f calls per image, raw (solid) and post-processed (dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (name, points) in enumerate(results["curves"].items()):
        x = [p["f_calls"]["mean"] for p in points]
        for label, style in (("raw", "-"), ("post_processed", "--")):
            y = [p[label]["mean"] for p in points]
            err = [p[label]["ci95"] for p in points]
            words = ("its drop map" if label == "raw" else "its ranking (as shipped)") if name == "probe" else \
                ("as it is" if label == "raw" else "+ the probe's post-processing")
            ax.errorbar(x, y, yerr=err, fmt=style + "o", color=f"C{i}", ms=3, capsize=2, label=f"{name}: {words}")
    ax.set_xscale("log")
    ax.set_xlabel("f calls per image (log scale)")
    ax.set_ylabel("ROAD MoRF of the margin (lower is better)")
    ax.set_title(f"Quality against cost on the first {results['n_images']} MNIST test images (95% intervals)",
                 fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with files.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default=str(ROOT / "runs" / "paper"), help="the trained MNIST run folder")
    p.add_argument("--n", type=int, default=20, help="the first N MNIST test images")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "evaluation" / "cost_curves.json"))
    p.add_argument("--figure", default=str(ROOT / "docs" / "cost_curves.png"))
    p.add_argument("--data-dir", default=None, help="MNIST's location (see load_mnist)")
    args = p.parse_args(argv)
    if args.n < 2:
        raise ValueError(f"`--n` must be at least 2 (an interval needs two images). Received: {args.n}")
    import keras

    from siamese_xai.config import ExplainConfig
    from siamese_xai.data.mnist import load_mnist
    from siamese_xai.explainers.siamese import SiameseExplainer
    from siamese_xai.machine import machine_description

    t0 = time.perf_counter()
    keras.utils.set_random_seed(0)
    x_test, _ = load_mnist("test", args.data_dir)
    explainer = SiameseExplainer.from_run(args.run, ExplainConfig())
    curves = run(explainer, x_test[: args.n])
    results = {"n_images": args.n, "run": str(args.run), "run_id": explainer.run_id,
               "budgets": {k: {"setting": s, "values": list(v)} for k, (s, v) in BUDGETS.items()},
               "metric": "road_morf", "interval": "95% Student-t interval of the mean over images",
               "curves": curves, "machine": machine_description(),
               "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "seconds": round(time.perf_counter() - t0, 1),
               "load_average_1_5_15_min": [round(v, 2) for v in os.getloadavg()]}
    files.write_json(args.out, results)
    plot(results, args.figure)
    print(f"wrote {args.out}, {args.figure} ({results['seconds']:.0f} s)")
    return results


if __name__ == "__main__":
    main()
