"""Where the explanations of the 96 px photos fall: each method's share of its top pixels on the object.

Command (after `benchmarks.speed.photos run --sizes 96 --paths train`, which trains the run and writes the masks):

    python -m siamese_xai.startup -m benchmarks.speed.photos_objects --run runs/photos/train-96 \\
        --data runs/photos/data-96 --n 50

writes `benchmarks/speed/photos_objects.json`. Run time: about 10 minutes for 50
images on 2 CPU cores shared with other jobs.

The rules, fixed before any number was seen:

- Images: the first n / 5 test images of each of the five classes, in the
  order of `masks.npz` (sorted paths), each with its object mask R
  (`photos.make_data`).
- The question: why the image is its nearest-prototype class, the same for
  every method; mc and linear with seed 0 and the package's defaults
  (N = 5000, s = 5), template_contrast with its defaults, the probe as the
  benchmark builds it (`benchmarks.evaluation.registry`: no training examples).
- A pixel's score: the method's `ranking` `(H, W, C)` summed over the C
  channels; the input-intensity floor: the image x summed over its channels;
  the random floor: U(0, 1) per pixel (seed 0).
- The object share: the share of the |R| top-scored pixels that lie in R
  (`siamese_xai.evaluation.metrics.region_scores`' `rank_accuracy`; ties to the
  first in raster order): 1 for a map that ranks the object first, about
  |R| / (H W) for a random one.
- Tests: each method (and random) against intensity, paired over the images
  (`metrics.paired_test`, Wilcoxon, two-sided), Holm-adjusted over the five
  comparisons (`metrics.holm`), verdict at alpha 0.05 (`metrics.paired_verdict`).
- The target (docs/photos.md): the best method's mean share >= 0.8 and its
  verdict against intensity "better".
- Time and memory: each image is explained alone (a batch of one) after one
  untimed call on another test image (the trace); `seconds` are the wall
  seconds of each call; `peak_rss_gb` the process's resident memory sampled
  every 0.1 s during a method's calls (TensorFlow and the networks included),
  `base_rss_gb` before the first method.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).with_name("photos_objects.json")
METHODS = ("mc", "linear", "template_contrast", "probe")
FLOORS = ("intensity", "random")
TARGET_SHARE = 0.8


def pick(labels, n: int, num_classes: int) -> np.ndarray:
    """The first n // num_classes indices of each class, in index order (the rule of the module docstring)."""
    if n < num_classes or n % num_classes:
        raise ValueError(f"`n` must be a positive multiple of the {num_classes} classes. Received: n={n}")
    labels = np.asarray(labels)
    per = n // num_classes
    found = [np.flatnonzero(labels == k)[:per] for k in range(num_classes)]
    if any(len(f) < per for f in found):
        raise ValueError(f"every class needs {per} test images. Received: {[len(f) for f in found]}")
    return np.sort(np.concatenate(found))


def pixel_scores(ranking) -> np.ndarray:
    """`(B, H, W, C)` a method's ranking -> `(B, H, W)` each pixel's score, the sum over its channels."""
    ranking = np.asarray(ranking, np.float64)
    if ranking.ndim != 4:
        raise ValueError(f"`ranking` must be (B, H, W, C). Received: shape={ranking.shape}")
    return ranking.sum(axis=-1)


def object_share(maps, masks) -> np.ndarray:
    """`(B,)` the share of each map's |R| top pixels inside R (`metrics.region_scores`' rank accuracy)."""
    from siamese_xai.evaluation import metrics

    return metrics.region_scores(maps, masks)["rank_accuracy"]


def compare(shares: dict, floor: str = "intensity", alpha: float = 0.05) -> dict:
    """Each entry of `shares` but `floor` against it, paired, Holm-adjusted together (module docstring)."""
    from siamese_xai.evaluation import metrics

    names = [k for k in shares if k != floor]
    tests = [metrics.paired_test(shares[k], shares[floor], higher_is_better=True) for k in names]
    adjusted = metrics.holm([t["p"] for t in tests])
    return {k: {**t, "p_holm": float(p), "verdict": metrics.paired_verdict(t, p, alpha)}
            for k, t, p in zip(names, tests, adjusted)}


def verdict(summary: dict, tests: dict) -> dict:
    """The best method (largest mean share) and whether it meets the target."""
    best = max(METHODS, key=lambda k: summary[k]["mean"])
    met = summary[best]["mean"] >= TARGET_SHARE and tests[best]["verdict"] == "better"
    return {"best": best, "share": summary[best]["mean"], "target": TARGET_SHARE, "met": bool(met)}


def load_masks(data_dir, width: int, split="test"):
    """`(n, H, width)` bool object masks and their relative paths, from `masks.npz` (`photos.make_data`)."""
    with np.load(Path(data_dir) / "masks.npz") as f:
        packed, paths = f[split], f[f"{split}_paths"]
    return np.unpackbits(packed, axis=-1)[..., :width].astype(bool), [str(p) for p in paths]


def _explainers(run_dir):
    from siamese_xai.explainers.probe import ProbeExplainer
    from siamese_xai.explainers.siamese import SiameseExplainer

    mc = SiameseExplainer.from_run(run_dir)
    return {"mc": mc, "linear": mc.replace(estimator="linear"),
            "template_contrast": mc.replace(estimator="template_contrast"),
            "probe": ProbeExplainer(mc.embed, mc.decoder, mc.prototypes)}


def run(run_dir, data_dir, n: int = 50, out=OUT) -> dict:
    from benchmarks.speed.photos import Memory
    from siamese_xai.data import datasets
    from siamese_xai.evaluation import metrics
    from siamese_xai.explainers.prototypes import embed_in_batches, nearest_prototype

    x, y, names = datasets.load_dataset(data_dir, split="test")
    masks, paths = load_masks(data_dir, x.shape[2])
    if masks.shape != x.shape[:3]:
        raise ValueError(f"masks.npz's test masks {masks.shape} do not match the test images {x.shape}")
    idx = pick(y, n, len(names))
    xs, regions = x[idx], masks[idx]
    explainers = _explainers(run_dir)
    mc = explainers["mc"]
    classes = nearest_prototype(embed_in_batches(mc.embed, xs), mc.prototypes)[0]  # every method's question
    warm = int(np.setdiff1d(np.arange(len(x)), idx)[0])
    load_before = os.getloadavg()[0]
    memory = Memory()
    base = memory.rss()
    maps, seconds = {}, {}
    for name, explainer in explainers.items():
        explainer.explain(x[warm : warm + 1], target_class=0)  # the trace, untimed
        memory.stage = name
        got, secs = [], []
        for i in range(len(xs)):
            t0 = time.perf_counter()
            result = explainer.explain(xs[i : i + 1], target_class=int(classes[i]), seed=0)
            secs.append(time.perf_counter() - t0)
            got.append(pixel_scores(result.ranking)[0])
        memory.note()
        memory.stage = "floors"
        maps[name], seconds[name] = np.stack(got), secs
        print(f"{name}: {np.mean(secs):.2f} s per image", flush=True)
    maps["intensity"] = pixel_scores(xs)
    maps["random"] = np.random.default_rng(0).random(xs.shape[:3])
    mem = memory.stop()
    shares = {k: object_share(v, regions) for k, v in maps.items()}
    summary = {k: metrics.mean_ci(v) for k, v in shares.items()}
    tests = compare(shares)
    result = {
        "run": str(run_dir), "data": str(data_dir), "n_images": len(idx), "cpus": os.cpu_count(),
        "images": [paths[i] for i in idx], "explained_class": [int(c) for c in classes],
        "object_pixels": [int(r.sum()) for r in regions],
        "share": {k: {**summary[k], "per_image": [round(float(v), 4) for v in shares[k]]} for k in shares},
        "seconds_per_image": {k: {"mean": round(float(np.mean(v)), 3), "max": round(float(np.max(v)), 3)}
                              for k, v in seconds.items()},
        "peak_rss_gb": {k: mem["peak_rss_gb_by_stage"].get(k) for k in METHODS},
        "base_rss_gb": round(base / 2**30, 3),
        "tests_against_intensity": tests, "verdict": verdict(summary, tests),
        "load_before": round(load_before, 2), "load_during": mem["load_during"],
        "load_after": round(os.getloadavg()[0], 2),
    }
    Path(out).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(prog="benchmarks.speed.photos_objects", description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/photos/train-96")
    parser.add_argument("--data", default="runs/photos/data-96")
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    result = run(args.run, args.data, args.n, args.out)
    print(json.dumps({"share": {k: v["mean"] for k, v in result["share"].items()}, "verdict": result["verdict"]}))


if __name__ == "__main__":
    main()
