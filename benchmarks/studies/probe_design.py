"""How `ProbeExplainer`'s defaults were chosen: variants scored on MNIST *training* images only.

Command (from the repository root; TFDS_DATA_DIR must point at MNIST; needs
`siamese_xai.evaluation.faithfulness`, the benchmark's ROAD and removal curves):

    .venv/bin/python -m benchmarks.studies.probe_design --run runs/paper          # 8-25 minutes on 2 shared cores

Writes `benchmarks/studies/probe_design.json`. The images are `--n` training images
drawn with a fixed seed from the last 10,000 of MNIST's training split, never
test images (a benchmark scores the test images) and never a ground-truth set.
Every image is explained as its nearest prototype k rather than the runner-up
l; each variant's map is scored by the margin m = d(x, c_l) - d(x, c_k)
(squared distances) under ROAD most-relevant-first (MoRF, lower is better)
and least-relevant-first (LeRF, higher is better), and by deletion with zero
fill over all pixels (lower is better), with the flip rate and the mean f
calls per image beside them. The baselines of `benchmarks/baselines.py`
(occlusion, KernelSHAP, the RISE distance explainer, Integrated Gradients;
each explains the distance d of class k) and the intensity ordering are
scored on the same images, and the default is compared with each by a
paired two-sided Wilcoxon signed-rank test (Holm over the five references,
per metric): a design-time estimate on training images, not the benchmark's
verdict. Per-image values go to `benchmarks/studies/probe_design.npz`.

Variants (`VARIANTS`, each a change of `ProbeConfig`'s defaults): stage A,
the ranking rule: the spread of a region's drop over its pixels
(`siamese_xai.explainers.regions.spread_drops`) with and without `has_first`
(`siamese_xai.explainers.regions.ranking_of`), recomputed from one explanation so they
cost no extra f calls; stage B, the other choices with the default ranking:
the cell side (3, 5 px against the size rule's 4 on 28x28), the proposal
(`shift`), the candidates (`ink`), fewer regions (20).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

import numpy as np  # noqa: E402

from siamese_xai.evaluation import baselines as bl  # noqa: E402
from siamese_xai import files, runs  # noqa: E402
from siamese_xai.data.mnist import load_mnist  # noqa: E402
from siamese_xai.evaluation.faithfulness import fill_images, removal_curves, road_curves  # noqa: E402
from siamese_xai.evaluation.metrics import DistanceScalar  # noqa: E402
from siamese_xai.config import SPREADS, ProbeConfig
from siamese_xai.explainers.probe import ProbeExplainer  # noqa: E402
from siamese_xai.explainers.questions import runner_up  # noqa: E402
from siamese_xai.explainers.regions import ranking_of, smoothed, spread_drops  # noqa: E402

# Stage A: the ranking rule on the first configuration; stage B: the other choices, with the default ranking rule.
VARIANTS = ([{"spread": spread, "has_first": has_first} for spread in SPREADS for has_first in (True, False)]
            + [{"smooth": 0.0}, {"smooth": 1.0}, {"cell": 3}, {"cell": 5}, {"proposal": "shift"}, {"candidates": "ink"},
               {"max_regions": 20}])


def spread_maps(e, rule: str) -> np.ndarray:
    """`(B, H, W)` the ranking of every image of `e` under the spread `rule`."""
    out = np.zeros(e.input.shape[:3], np.float32)
    for i in range(len(e)):
        n = int(e.regions[i].max()) + 1
        out[i] = spread_drops(e.input[i], e.proposal[i], e.regions[i], e.region_drop[i, :n], rule)[..., 0]
    return out


def score(scalar, xs, k, l, maps, mean_image, per_image=None, name=None) -> dict:
    """The three areas' means; their per-image values go to `per_image[name + "/" + metric]`."""
    road = road_curves(scalar, xs, k, l, maps)
    zero = removal_curves(scalar, xs, k, l, maps, fill_images(xs, "zero", mean_image))
    values = {"road_morf": road["morf_auc"], "road_lerf": road["lerf_auc"], "deletion_zero": zero["deletion_auc"]}
    if per_image is not None:
        per_image.update({f"{name}/{m}": np.asarray(v, np.float64) for m, v in values.items()})
    return {m: float(np.mean(v)) for m, v in values.items()}


REFERENCES = {
    "occlusion": lambda scalar, xs, k: bl.occlusion_maps(scalar, xs, k),
    "kernelshap": lambda scalar, xs, k: bl.kernelshap_maps(scalar, xs, k, seed=0),
    "distance_explainer": lambda scalar, xs, k: bl.rise_distance_maps(scalar, xs, k, seed=0),
    "integrated_gradients": lambda scalar, xs, k: bl.integrated_gradients_maps(scalar, xs, k),
    "intensity": lambda scalar, xs, k: xs[..., 0].copy(),
}


def paired(per_image, a, refs, metric="road_morf") -> dict:
    """Two-sided Wilcoxon signed-rank p of a - ref per reference, Holm-adjusted over the references."""
    from scipy.stats import wilcoxon

    raw = {r: float(wilcoxon(per_image[f"{a}/{metric}"] - per_image[f"{r}/{metric}"]).pvalue) for r in refs}
    order = sorted(raw, key=raw.get)
    adjusted, running = {}, 0.0
    for i, r in enumerate(order):
        running = max(running, min(1.0, (len(order) - i) * raw[r]))
        adjusted[r] = running
    return {r: {"median_difference": float(np.median(per_image[f"{a}/{metric}"] - per_image[f"{r}/{metric}"])),
                "p": raw[r], "p_holm": adjusted[r]} for r in refs}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=str(ROOT / "runs" / "paper"))
    ap.add_argument("--n", type=int, default=100, help="training images")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "studies" / "probe_design.json"))
    ap.add_argument("--data-dir", help="MNIST's location (default: $TFDS_DATA_DIR)")
    ap.add_argument("--variants", type=int, help="only the first few variants (a quick check)")
    args = ap.parse_args(argv)
    run = runs.load_run(args.run)
    x_train, _ = load_mnist("train", args.data_dir)
    rng = np.random.default_rng(20)
    idx = np.sort(rng.choice(np.arange(len(x_train) - 10_000, len(x_train)), args.n, replace=False))
    xs = x_train[idx]
    mean_image = x_train[:10_000].mean(0)
    scalar = DistanceScalar(run.embed, run.prototypes)
    dist = scalar.all_distances(xs)
    k = dist.argmin(1)
    l = runner_up(dist, k)
    rows = []
    explained, per_image = {}, {}
    for changes in VARIANTS if args.variants is None else VARIANTS[: args.variants]:
        cfg = ProbeConfig(**changes)
        key = (cfg.cell, cfg.proposal, cfg.candidates, cfg.max_regions)
        if key not in explained:  # the ranking rules reuse one explanation
            probe = ProbeExplainer(run.embed, run.decoder, run.prototypes, cfg)
            t = time.perf_counter()
            e = probe.explain(xs)
            explained[key] = (e, time.perf_counter() - t)
        e, seconds = explained[key]
        assert (e.explained_class == k).all() and (e.contrast_class == l).all()
        maps = smoothed(spread_maps(e, cfg.spread)[..., None], cfg.smooth_for(e.input.shape[1:]))[..., 0]
        if cfg.has_first:
            maps = ranking_of(e.input, e.proposal, maps[..., None])[..., 0]
        row = {"config": {**dataclasses.asdict(cfg), "cell": e.cell}, "flip_rate": float(e.flips.mean()),
               "mean_set_size": float(e.set_size.mean()), "mean_calls": float(e.n_calls.mean()),
               "max_calls": int(e.n_calls.max()), "explain_seconds": round(seconds, 2)}
        is_default = cfg == ProbeConfig()
        row.update(score(scalar, xs, k, l, maps, mean_image, per_image, "default" if is_default else None))
        row["default"] = is_default
        rows.append(row)
        print(row, flush=True)
    references = []
    for name, fn in REFERENCES.items():
        before = scalar.calls
        t = time.perf_counter()
        maps = fn(scalar, xs, k)
        row = {"method": name, "mean_calls": (scalar.calls - before) / len(xs),
               "explain_seconds": round(time.perf_counter() - t, 2), **score(scalar, xs, k, l, maps, mean_image,
                                                                              per_image, name)}
        references.append(row)
        print(row, flush=True)
    out = {"images": "MNIST training split, indices " + f"{int(idx.min())}..{int(idx.max())} (n={args.n}, seed 20)",
           "run_id": run.run_id, "load_average_at_end": os.getloadavg()[0],
           "lower_is_better": ["road_morf", "deletion_zero"], "higher_is_better": ["road_lerf"],
           "variants": rows, "references": references,
           "default_vs_references": {m: paired(per_image, "default", list(REFERENCES), m)
                                     for m in ("road_morf", "road_lerf", "deletion_zero")}}
    np.savez(Path(args.out).with_suffix(".npz"), **per_image)
    files.write_json(args.out, out)
    return out


if __name__ == "__main__":
    main()
