"""Speed of the explainer on the Table 1 decoder, against a naive loop and a FLOP floor.

Command (from the project root):

    .venv/bin/python benchmarks/bench_speed.py [--run runs/paper] [--quick]

Run time on the 2-core CPU (quiet): about 1 min (full, with --run), about
20 s with --quick. Writes `benchmarks/speed.json` (atomically) and prints a table:

- the median ms per explanation (one `explain` call each) for `mc` at
  N = 5000 and for `linear`, with the chunk size and fused / plain decoder
  variants of `mc`, and an XLA (`jit_compile`) check of the decoding step;
- the naive explanation (one decoder call per perturbation, timed on a few
  hundred perturbations and scaled to N) and its ratio to `mc`;
- the floor: decoder FLOPs x N / this machine's float32 matmul throughput
  (a large `tf.matmul` timed in the same run), and `mc`'s ratio to it;
- with `--run`: how closely `linear` matches `mc` on MNIST test images (mean
  top-q mask IoU and Spearman rank correlation of the per-pixel change).

Without `--run` the timings use a randomly initialised Table 1 decoder (D =
20), random prototypes and a random linear "embedding" (a NumPy function);
timing does not depend on the weights.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras
import numpy as np
import tensorflow as tf

from siamese_xai import files
from siamese_xai.explain import ExplainConfig, SiameseExplainer, decoder_evaluator
from siamese_xai.metrics import mask_iou
from siamese_xai.models import build_decoder
from siamese_xai.prototypes import embed_in_batches, nearest_prototype

HERE = Path(__file__).resolve().parent


def median_ms(fn, repeats, warmup=1):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


def matmul_gflops(size=2048, repeats=7):
    """Float32 matmul throughput of this machine (GFLOP/s), median of `repeats`."""
    a = tf.random.normal((size, size), seed=1)
    b = tf.random.normal((size, size), seed=2)
    mm = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    ms = median_ms(lambda: mm().numpy(), repeats, warmup=2)
    return 2 * size**3 / (ms * 1e-3) / 1e9


def decoder_flops(decoder):
    """FLOPs of one decoder call (2 x multiply-adds of its Dense and Conv2D layers)."""
    flops = 0
    for layer in decoder.layers:
        if isinstance(layer, keras.layers.Dense):
            flops += 2 * int(np.prod(layer.kernel.shape))
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            oh, ow = layer.output.shape[1:3]
            flops += 2 * oh * ow * cout * kh * kw * cin
    return flops


def naive_ms(explainer, x, n_naive):
    """One eager decoder call per perturbation, `n_naive` of them, scaled to N."""
    cfg = explainer.config
    dec = explainer.decoder
    h = embed_in_batches(explainer.embed, x[None])[0]
    c = explainer.prototypes[nearest_prototype(h[None], explainer.prototypes)[0][0]]
    dist = np.abs(h - c)
    idx = np.argsort(dist, kind="stable")[: cfg.s]
    sigma = cfg.sigma_scale * dist.min()
    eps = np.abs(np.random.default_rng(0).normal(size=(n_naive, cfg.s))).astype(np.float32)
    t = time.perf_counter()
    x0 = dec(h[None], training=False).numpy()
    total = np.zeros_like(x0)
    for i in range(n_naive):
        code = h.copy()
        code[idx] += np.sign(c[idx] - h[idx]) * sigma * eps[i]
        total += np.abs(dec(code[None], training=False).numpy() - x0)
    elapsed = time.perf_counter() - t
    return 1e3 * elapsed * cfg.n_perturbations / n_naive


def jit_check(decoder, explainer, rows, repeats):
    """ms per N decoded rows for the plain and fused decoder, with and without XLA."""
    n = explainer.config.n_perturbations
    codes = tf.random.normal((rows, explainer.embedding_dim), seed=3)
    out = {}
    for fused in (False, True):
        # the decoder evaluation the explainer builds (checked against the decoder on the prototypes)
        dec = decoder_evaluator(decoder, fused, explainer.prototypes)
        for jit in (False, True):
            fn = tf.function(lambda c, dec=dec: tf.reduce_sum(tf.abs(dec.internal(c) - 0.5), axis=0), jit_compile=jit)
            ms = median_ms(lambda fn=fn: fn(codes).numpy(), repeats)
            out[f"{'fused' if fused else 'plain'}{'_jit' if jit else ''}"] = ms * n / rows
    return out


def rankdata(a):
    """Ranks with ties averaged (scipy.stats.rankdata's default)."""
    a = np.asarray(a).ravel()
    order = np.argsort(a, kind="stable")
    sorted_a = a[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_a)) + 1]
    ends = np.r_[starts[1:], len(a)]
    ranks = np.empty(len(a))
    ranks[order] = np.repeat((starts + ends - 1) / 2.0 + 1, ends - starts)
    return ranks


def spearman(a, b):
    try:
        from scipy.stats import spearmanr
    except ImportError:
        ra, rb = rankdata(a), rankdata(b)
        return float(np.corrcoef(ra, rb)[0, 1])
    return float(spearmanr(np.ravel(a), np.ravel(b)).statistic)


def variant(explainer, **options):
    """The same explainer with other `chunk_size` / `fuse_decoder` options."""
    return SiameseExplainer(explainer.embed, explainer.decoder, explainer.prototypes, explainer.config, **options)


def linear_vs_mc(explainer, images, seed=0):
    mc = explainer.replace(method="mc").explain(images, seed=seed)
    lin = explainer.replace(method="linear").explain(images, seed=seed)
    ious = [mask_iou(mc.mask[i], lin.mask[i]) for i in range(len(images))]
    rhos = [spearman(mc.mean_abs_change[i], lin.mean_abs_change[i]) for i in range(len(images))]
    return {
        "images": len(images),
        "mean_iou": float(np.mean(ious)),
        "min_iou": float(np.min(ious)),
        "mean_spearman": float(np.mean(rhos)),
        "min_spearman": float(np.min(rhos)),
    }


def random_setup(dim=20, classes=10):
    keras.utils.set_random_seed(0)
    decoder = build_decoder(dim)
    rng = np.random.default_rng(0)
    proj = rng.normal(0, 0.1, (28 * 28, dim)).astype(np.float32)
    prototypes = rng.normal(0, 1, (classes, dim)).astype(np.float32)

    def embed(x):
        return np.asarray(x, np.float32).reshape(len(x), -1) @ proj

    images = rng.random((32, 28, 28, 1)).astype(np.float32)
    return embed, decoder, prototypes, images


def mnist_test_images(n):
    import tensorflow_datasets as tfds

    x, _ = tfds.load("mnist", split="test", batch_size=-1, as_supervised=True, data_dir=os.environ.get("TFDS_DATA_DIR"))
    return x.numpy()[:n]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", help="a trained run folder (adds the linear-vs-mc accuracy on MNIST)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and images (about 20 s)")
    parser.add_argument("--out", default=str(HERE / "speed.json"))
    args = parser.parse_args(argv)
    repeats = 3 if args.quick else 15
    started = time.time()
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None

    config = ExplainConfig()
    if args.run:
        explainer = SiameseExplainer.from_run(args.run, config)
        images = mnist_test_images(100 if not args.quick else 20)
        decoder = explainer.decoder
    else:
        embed, decoder, prototypes, images = random_setup()
        explainer = SiameseExplainer(embed, decoder, prototypes, config)
    n = config.n_perturbations
    gflops = matmul_gflops(repeats=repeats + 2)
    flops = decoder_flops(decoder)
    floor_ms = flops * n / (gflops * 1e9) * 1e3

    def per_explanation(ex, k=repeats):
        ex.explain(images[0])  # trace
        it = iter(range(10**9))
        return median_ms(lambda: ex.explain(images[next(it) % len(images)]), k)

    mc_ms = per_explanation(explainer)
    linear = explainer.replace(method="linear")
    linear_ms = per_explanation(linear, max(repeats, 10))
    variants = {}
    chunks = (500, 1000, 2500) if args.quick else (250, 500, 1000, 2500, 5000)
    for fused in (True, False):
        for chunk in chunks if fused else (explainer.chunk_size,):
            ex = variant(explainer, chunk_size=chunk, fuse_decoder=fused)
            variants[f"{'fused' if fused else 'plain'}_chunk{chunk}"] = per_explanation(ex)
    batch = images[:16]
    explainer.explain(batch)
    mc_batch_ms = median_ms(lambda: explainer.explain(batch), max(1, repeats // 3)) / len(batch)
    n_naive = 100 if args.quick else 300
    naive = naive_ms(explainer, images[0], n_naive)
    jit = jit_check(decoder, explainer, rows=explainer.chunk_size, repeats=repeats)
    accuracy = linear_vs_mc(explainer, images) if args.run else None

    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "tensorflow": tf.__version__,
            "load_average_at_start": load_start,
        },
        "config": {
            "n_perturbations": n,
            "s": config.s,
            "q": config.q,
            "chunk_size": explainer.chunk_size,
            "decoder_fused": explainer.decoder_fused,
        },
        "quick": bool(args.quick),
        "run": args.run,
        "matmul_gflops": gflops,
        "decoder_flops": flops,
        "floor_ms": floor_ms,
        "mc_ms": mc_ms,
        "mc_over_floor": mc_ms / floor_ms,
        "mc_batch16_ms_per_explanation": mc_batch_ms,
        "linear_ms": linear_ms,
        "naive_ms": naive,
        "naive_perturbations_timed": n_naive,
        "naive_over_mc": naive / mc_ms,
        "mc_variants_ms": variants,
        "decode_n_rows_ms": jit,
        "linear_vs_mc": accuracy,
        "targets": {
            "mc_within_3x_floor": mc_ms <= 3 * floor_ms,
            "linear_under_10ms": linear_ms < 10,
            "linear_mean_iou_at_least_0.9": None if accuracy is None else accuracy["mean_iou"] >= 0.9,
        },
        "seconds": time.time() - started,
    }
    files.write_json(args.out, result)

    print(f"N = {n}, decoder {flops / 1e6:.3f} MFLOP/call, matmul {gflops:.1f} GFLOP/s")
    rows = [
        ("floor (FLOPs x N / matmul rate)", floor_ms, 1.0),
        (f"mc (fused={explainer.decoder_fused}, chunk {explainer.chunk_size})", mc_ms, mc_ms / floor_ms),
        ("mc, batch of 16, per explanation", mc_batch_ms, mc_batch_ms / floor_ms),
        ("linear", linear_ms, linear_ms / floor_ms),
        (f"naive ({n_naive} calls, scaled)", naive, naive / floor_ms),
    ]
    rows += [(f"mc {k}", v, v / floor_ms) for k, v in variants.items()]
    rows += [(f"decode {n} rows only: {k}", v, v / floor_ms) for k, v in jit.items()]
    print(f"{'':48s} {'ms':>9s} {'x floor':>8s}")
    for name, ms, ratio in rows:
        print(f"{name:48s} {ms:9.1f} {ratio:8.2f}")
    print(f"naive / mc = {naive / mc_ms:.1f}x")
    if accuracy:
        print(
            f"linear vs mc on {accuracy['images']} MNIST test images: mean IoU {accuracy['mean_iou']:.3f} "
            f"(min {accuracy['min_iou']:.3f}), mean Spearman {accuracy['mean_spearman']:.3f}"
        )
    print(f"targets: {result['targets']}  ->  {args.out}")
    return result


if __name__ == "__main__":
    main()
