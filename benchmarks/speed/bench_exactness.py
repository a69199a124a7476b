"""How far `mc`'s Delta_p is from the paper's formula evaluated in float64, with the same draws.

Command (from the project root):

    .venv/bin/python -m benchmarks.speed.bench_exactness [--run runs/paper] [--images 100]

For each of the first `--images` MNIST test images (tfds order) it computes
Delta_p = mean_i |g(h + d_i) - g(h)| three ways, with the same h, J, sigma
and |eps| draws (seed 0, N = 5000, the paper's defaults):

- `float32`: the explainer with `exact_differences=False` (two float32
  decodings subtracted, as the explainer once computed it);
- `exact`: the explainer's default (the change carried through the layers);
- the reference: the same chain decoder in float64 (`h + d` formed in float64).

and reports, for each of the first two against the reference: the relative
error |Delta_p - Delta_p^64| / Delta_p^64 (max and mean over the pixels with
Delta_p^64 >= 1e-6 of the image's largest, and the max over the float64 top-q
pixels) and the top-q mask IoU. About 1.5 min on the 2-core CPU (the float64
decoding dominates). Writes `benchmarks/speed/exactness.json`.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from siamese_xai.evaluation import metrics  # noqa: E402

HERE = Path(__file__).resolve().parent


def float64_delta(explainer, e, seed=0, chunk=1000):
    """Delta_p (and the reconstruction) of each input of `e`, in float64, with the explainer's draws."""

    from siamese_xai.decoding.twin import float64_decoder

    cfg = explainer.config
    g64 = float64_decoder(explainer.decoder)
    eps = explainer.perturbation_draws(seed).astype(np.float64)
    out = []
    for b in range(len(e)):
        h = e.embedding[b].astype(np.float64)
        idx = e.indices[b]
        c = e.reference[b].astype(np.float64)
        sign = np.sign(c[idx] - h[idx]) if cfg.direction == "toward_prototype" else np.ones(len(idx))
        step = float(e.sigma[b]) * sign  # sigma as the float32 graph computed it
        x0 = g64(h[None])[0].reshape(-1)
        total = np.zeros_like(x0)
        for k in range(0, len(eps), chunk):
            codes = np.repeat(h[None], len(eps[k : k + chunk]), axis=0)
            codes[:, idx] += eps[k : k + chunk] * step
            total += np.abs(g64(codes).reshape(len(codes), -1) - x0).sum(axis=0)
        out.append(total / len(eps))
    return np.stack(out)


def compare(delta, ref, q):
    """Relative errors of `delta` against `ref` `(B, P)` and the top-q mask IoU per input."""
    rows = []
    for d, r in zip(delta, ref):
        keep = r >= 1e-6 * r.max()
        rel = np.abs(d - r)[keep] / r[keep]
        top_r, top_d = metrics.top_q_mask(np.stack([r, d]), q)
        inter = int((top_r & top_d).sum())
        rows.append((rel.max(), rel.mean(), (np.abs(d - r)[top_r] / r[top_r]).max(), inter / (2 * q - inter)))
    rows = np.array(rows)
    return {
        "max_rel_error": float(rows[:, 0].max()),
        "mean_rel_error": float(rows[:, 1].mean()),
        "max_rel_error_in_top_q": float(rows[:, 2].max()),
        "mask_iou_mean": float(rows[:, 3].mean()),
        "mask_iou_min": float(rows[:, 3].min()),
        "images_with_a_different_mask": int((rows[:, 3] < 1).sum()),
    }


def exactness(run, n_images=100, seed=0):
    """The float32-vs-float64 and exact-vs-float64 figures on the first `n_images` MNIST test images."""
    from siamese_xai import SiameseExplainer, load_mnist

    x, _ = load_mnist("test")
    x = x[:n_images]
    exact = SiameseExplainer.from_run(run)
    plain = SiameseExplainer.from_run(run, exact_differences=False)
    assert exact.decoder_exact and not plain.decoder_exact
    e_exact = exact.explain(x, seed=seed)
    e_plain = plain.explain(x, seed=seed)
    ref = float64_delta(exact, e_exact, seed=seed)
    q = exact.config.q
    flat = lambda e: e.mean_abs_change.reshape(len(e), -1).astype(np.float64)  # noqa: E731
    return {
        "images": int(n_images),
        "sigma_range": [float(e_exact.sigma.min()), float(e_exact.sigma.max())],
        "float32_subtraction_vs_float64": compare(flat(e_plain), ref, q),
        "exact_vs_float64": compare(flat(e_exact), ref, q),
    }


def print_table(result):
    print(f"Delta_p against float64, same draws, {result['images']} MNIST test images "
          f"(sigma {result['sigma_range'][0]:.1e}..{result['sigma_range'][1]:.1e}):")
    print(f"{'':34s} {'max rel':>9s} {'mean rel':>9s} {'max top-q':>9s} {'IoU mean':>9s} {'IoU min':>8s} {'#diff':>5s}")
    for name in ("float32_subtraction_vs_float64", "exact_vs_float64"):
        r = result[name]
        print(f"{name:34s} {r['max_rel_error']:9.2e} {r['mean_rel_error']:9.2e} {r['max_rel_error_in_top_q']:9.2e} "
              f"{r['mask_iou_mean']:9.4f} {r['mask_iou_min']:8.4f} {r['images_with_a_different_mask']:5d}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default="runs/paper")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--out", default=str(HERE / "exactness.json"))
    args = parser.parse_args(argv)
    from siamese_xai import files

    t = time.time()
    result = exactness(args.run, args.images)
    result["run"] = args.run
    result["seconds"] = round(time.time() - t, 1)
    files.write_json(args.out, result)
    print_table(result)
    print(f"-> {args.out}")
    return result


if __name__ == "__main__":
    main()
