"""Speed of the explainer on the Table 1 decoder against a FLOP floor, and how exact `mc` is.

Command (from the project root; `make bench` runs it with `--run runs/paper`):

    .venv/bin/python -m benchmarks.speed.bench_speed [--run runs/paper] [--quick]

Run time on the 2-core CPU: about 5 min with `--run` (the float64 reference
of the exactness figures takes a third of it), about 1.5 min with --quick.
Writes `benchmarks/speed/speed.json` (atomically) and prints:

- the floor: decoder FLOPs (its Dense and Conv2D layers as Keras runs them)
  x N / this machine's float32 matmul throughput (a 2048^2 `tf.matmul`);
- `mc` at N = 5000 for one image and per image in a batch of 16, and
  `linear`, each as ms and as a multiple of the floor. The floor's matmul and
  these calls are timed in the same rounds, interleaved, and the medians are
  compared, so a machine shared with other work slows both alike;
- variants of `mc` (chunk size, fused / plain decoder, exact / subtracted
  changes, the exact change as sources split at the ReLU kinks (the default)
  or carried through every layer) and the decoding of 1000 perturbations
  alone, with and without XLA (`jit_compile`);
- how often the draws cross a ReLU kink, the sources per image, and a
  profile of both exact paths per part (`bench_kinks.py`);
- cost at size: `mc` and `linear` with randomly initialised generalised
  decoders for 28x28x1, 32x32x3 and 64x64x3 images, each with its own floor;
- the naive explanation (one decoder call per perturbation, timed on a few
  hundred perturbations and scaled to N) and its ratio to `mc`;
- with `--run`: Delta_p of `mc` with the subtraction of two float32 images
  (how the explainer once computed it) and with the exact change, both against the same
  draws evaluated in float64 (`bench_exactness.py`), and `linear` against
  the exact `mc` (top-q mask IoU and Spearman rank correlation) on the first
  100 MNIST test images.

Without `--run` the timings use a randomly initialised Table 1 decoder (D =
20), random prototypes and a random linear "embedding" (a NumPy function);
timing does not depend on the weights.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from siamese_xai import files

tf.get_logger().setLevel("ERROR")  # each explainer variant traces its own tf.function of the same models
from siamese_xai.config import ExplainConfig
from siamese_xai.explainers.siamese import SiameseExplainer
from siamese_xai.training.models import build_decoder
from siamese_xai.explainers.prototypes import embed_in_batches

HERE = Path(__file__).resolve().parent

from benchmarks.speed.bench_exactness import exactness, print_table  # noqa: E402
from benchmarks.speed.bench_kinks import kink_stats, print_kinks, print_profile, profile  # noqa: E402
from benchmarks.speed.timing import interleaved  # noqa: E402


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
    c = explainer.prototypes[np.argmin(np.linalg.norm(explainer.prototypes - h, axis=1))]
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


def decode_check(explainer, rows, repeats):
    """ms per N decoded perturbations of one input (exact change, fused and plain subtraction), with and without XLA."""
    cfg = explainer.config
    n, dim = cfg.n_perturbations, explainer.embedding_dim
    h = tf.constant(explainer.prototypes[:1] + 0.01)
    basis = tf.constant(np.eye(dim, dtype=np.float32)[None, : cfg.s] * 1e-4)
    eps = tf.abs(tf.random.normal((rows, cfg.s), seed=3))
    codes = h + tf.matmul(eps, basis[0])
    fns = {}
    for jit in (False, True):
        tag = "_jit" if jit else ""
        dec = explainer.decoder_evaluation
        if dec.exact is not None:
            _, terms = dec.exact.base(h)
            fns[f"exact{tag}"] = tf.function(
                lambda dec=dec, terms=terms: tf.reduce_sum(tf.abs(dec.exact.delta_from_basis(terms, eps, basis)), 0),
                jit_compile=jit)
        for fused in (True, False):
            d = SiameseExplainer(explainer.embed, explainer.decoder, explainer.prototypes, cfg, fuse_decoder=fused,
                                 exact_differences=False).decoder_evaluation
            fns[f"{'fused' if fused else 'plain'}_subtract{tag}"] = tf.function(
                lambda d=d: tf.reduce_sum(tf.abs(d.internal(codes) - 0.5), axis=0), jit_compile=jit)
    times = interleaved({k: (lambda f=f: f().numpy()) for k, f in fns.items()}, repeats)
    return {k: v * n / rows for k, v in times.items()}


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


def linear_vs_mc(explainer, images, seed=0):
    mc = explainer.replace(estimator="mc").explain(images, seed=seed)
    lin = explainer.replace(estimator="linear").explain(images, seed=seed)
    ious, rhos = [], []
    for a, b in zip(mc, lin):
        union = np.logical_or(a.mask, b.mask).sum()
        ious.append(np.logical_and(a.mask, b.mask).sum() / union if union else 1.0)
        rhos.append(spearman(a.mean_abs_change, b.mean_abs_change))
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


SIZES = ((28, 28, 1), (32, 32, 3), (64, 64, 3))


def cost_at_size(matmul_gflops_fn, repeats, dim=20, classes=10):
    """mc and linear on randomly initialised generalised decoders of other image shapes, each with its floor.

    Returns:
        `{"HxWxC": {decoder_flops, floor_ms, mc_ms, mc_over_floor, linear_ms, linear_over_floor, fused, exact}}`.
    """
    out = {}
    for shape in SIZES:
        keras.utils.set_random_seed(0)
        decoder = build_decoder(dim, image_shape=shape)
        rng = np.random.default_rng(0)
        proj = rng.normal(0, 0.1, (int(np.prod(shape)), dim)).astype(np.float32)
        prototypes = rng.normal(0, 1, (classes, dim)).astype(np.float32)
        images = rng.random((8,) + shape).astype(np.float32)
        embed = lambda x, proj=proj: np.asarray(x, np.float32).reshape(len(x), -1) @ proj
        mc = SiameseExplainer(embed, decoder, prototypes, ExplainConfig())
        linear = mc.replace(estimator="linear")
        it = iter(range(10**9))
        times = interleaved({
            "matmul": matmul_gflops_fn,
            "mc": lambda: mc.explain(images[next(it) % len(images)]),
            "linear": lambda: linear.explain(images[next(it) % len(images)]),
        }, repeats, warmup=1)
        gflops = 2 * 2048**3 / (times["matmul"] * 1e-3) / 1e9
        flops = decoder_flops(decoder)
        floor_ms = flops * mc.config.n_perturbations / (gflops * 1e9) * 1e3
        out["x".join(map(str, shape))] = {
            "decoder_flops": flops, "matmul_gflops": gflops, "floor_ms": floor_ms,
            "mc_ms": times["mc"], "mc_over_floor": times["mc"] / floor_ms,
            "linear_ms": times["linear"], "linear_over_floor": times["linear"] / floor_ms,
            "fused": mc.decoder_fused, "exact": mc.decoder_exact,
        }
    return out


def mnist_test_images(n):
    import tensorflow_datasets as tfds

    x, _ = tfds.load("mnist", split="test", batch_size=-1, as_supervised=True, data_dir=os.environ.get("TFDS_DATA_DIR"))
    return x.numpy()[:n]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", help="a trained run folder (adds the exactness and linear-vs-mc figures on MNIST)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and images (about 1 min)")
    parser.add_argument("--out", default=str(HERE / "speed.json"))
    args = parser.parse_args(argv)
    repeats = 5 if args.quick else 15
    started = time.time()
    load_start = os.getloadavg() if hasattr(os, "getloadavg") else None

    config = ExplainConfig()
    if args.run:
        explainer = SiameseExplainer.from_run(args.run, config)
        images = mnist_test_images(100 if not args.quick else 20)
    else:
        embed, decoder, prototypes, images = random_setup()
        explainer = SiameseExplainer(embed, decoder, prototypes, config)
    decoder = explainer.decoder
    n = config.n_perturbations
    flops = decoder_flops(decoder)
    size = 2048
    a = tf.random.normal((size, size), seed=1)
    b = tf.random.normal((size, size), seed=2)
    matmul = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))

    def one_image(ex):
        it = iter(range(10**9))
        return lambda: ex.explain(images[next(it) % len(images)])

    batch = images[:16]
    linear = explainer.replace(estimator="linear")
    main_fns = {
        "matmul": lambda: matmul().numpy(),
        "mc": one_image(explainer),
        "mc_batch16": lambda: explainer.explain(batch),
        "linear": one_image(linear),
    }
    times = interleaved(main_fns, repeats, warmup=2)
    gflops = 2 * size**3 / (times["matmul"] * 1e-3) / 1e9
    floor_ms = flops * n / (gflops * 1e9) * 1e3
    mc_ms, linear_ms = times["mc"], times["linear"]
    mc_batch_ms = times["mc_batch16"] / len(batch)

    variants = {}
    for chunk in (500, 1000, 2500) if args.quick else (250, 500, 1000, 2500, 5000):
        variants[f"fused_exact_chunk{chunk}"] = SiameseExplainer(
            explainer.embed, decoder, explainer.prototypes, config, chunk_size=chunk)
    variants["fused_subtract_chunk1000"] = SiameseExplainer(
        explainer.embed, decoder, explainer.prototypes, config, exact_differences=False)
    # The change carried through every layer (before the split at the kinks).
    variants["fused_exact_layers_chunk1000"] = SiameseExplainer(
        explainer.embed, decoder, explainer.prototypes, config, kink_split=False)
    variants["plain_exact_chunk1000"] = SiameseExplainer(
        explainer.embed, decoder, explainer.prototypes, config, fuse_decoder=False)
    variants["plain_subtract_chunk1000"] = SiameseExplainer(
        explainer.embed, decoder, explainer.prototypes, config, fuse_decoder=False, exact_differences=False)
    variant_ms = interleaved({k: one_image(v) for k, v in variants.items()}, max(3, repeats // 3))
    n_naive = 100 if args.quick else 300
    naive = naive_ms(explainer, images[0], n_naive)
    decode = decode_check(explainer, rows=1000, repeats=max(3, repeats // 2))
    parts = profile(explainer, images[0], repeats=max(3, repeats // 2))
    load_end = os.getloadavg() if hasattr(os, "getloadavg") else None
    kinks = kink_stats(explainer, images[:100])
    sizes = cost_at_size(lambda: matmul().numpy(), max(3, repeats // 3))
    exact = exactness(args.run, 20 if args.quick else 100) if args.run else None
    accuracy = linear_vs_mc(explainer, images) if args.run else None

    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "processor": platform.processor(),
            "tensorflow": tf.__version__,
            "load_average_at_start": load_start,
            "load_average_after_timing": load_end,
        },
        "config": {
            "n_perturbations": n,
            "s": config.s,
            "q": config.q,
            "chunk_size": explainer.chunk_size,
            "decoder_fused": explainer.decoder_fused,
            "decoder_exact": explainer.decoder_exact,
        },
        "quick": bool(args.quick),
        "run": args.run,
        "timing": "interleaved rounds, medians; floor and mc from the same rounds",
        "matmul_gflops": gflops,
        "decoder_flops": flops,
        "floor_ms": floor_ms,
        "mc_ms": mc_ms,
        "mc_over_floor": mc_ms / floor_ms,
        "mc_batch16_ms_per_explanation": mc_batch_ms,
        "mc_batch16_over_floor": mc_batch_ms / floor_ms,
        "linear_ms": linear_ms,
        "linear_over_floor": linear_ms / floor_ms,
        "naive_ms": naive,
        "naive_perturbations_timed": n_naive,
        "naive_over_mc": naive / mc_ms,
        "mc_variants_ms": variant_ms,
        "kinks": kinks,
        "profile": parts,
        "decode_n_rows_ms": decode,
        "exactness": exact,
        "linear_vs_exact_mc": accuracy,
        "cost_at_size": sizes,
        "targets": {
            "mc_within_3x_floor": mc_ms <= 3 * floor_ms,
            "mc_batch_within_2.5x_floor": mc_batch_ms <= 2.5 * floor_ms,
            "linear_under_10ms": linear_ms < 10,
            "linear_mean_iou_at_least_0.9": None if accuracy is None else accuracy["mean_iou"] >= 0.9,
        },
        "seconds": time.time() - started,
    }
    files.write_json(args.out, result)

    print(f"N = {n}, decoder {flops / 1e6:.3f} MFLOP/call, matmul {gflops:.1f} GFLOP/s, "
          f"load average {load_start} at start, {load_end} after timing ({os.cpu_count()} CPUs)")
    rows = [
        ("floor (FLOPs x N / matmul rate)", floor_ms, 1.0),
        (f"mc (fused={explainer.decoder_fused}, exact={explainer.decoder_exact}, chunk {explainer.chunk_size})",
         mc_ms, mc_ms / floor_ms),
        ("mc, batch of 16, per explanation", mc_batch_ms, mc_batch_ms / floor_ms),
        ("linear", linear_ms, linear_ms / floor_ms),
        (f"naive ({n_naive} calls, scaled)", naive, naive / floor_ms),
    ]
    rows += [(f"mc {k}", v, v / floor_ms) for k, v in variant_ms.items()]
    rows += [(f"decode {n} rows only: {k}", v, v / floor_ms) for k, v in decode.items()]
    print(f"{'':60s} {'ms':>9s} {'x floor':>8s}")
    for name, ms, ratio in rows:
        print(f"{name:60s} {ms:9.1f} {ratio:8.2f}")
    print(f"naive / mc = {naive / mc_ms:.1f}x")
    if kinks:
        print_kinks(kinks)
    print_profile(parts)
    print("cost at size (random generalised decoders, D = 20, N = 5000):")
    for shape, r in sizes.items():
        print(f"  {shape:9s} decoder {r['decoder_flops'] / 1e6:7.3f} MFLOP, floor {r['floor_ms']:7.1f} ms, "
              f"mc {r['mc_ms']:7.1f} ms ({r['mc_over_floor']:.2f}x), linear {r['linear_ms']:6.1f} ms "
              f"({r['linear_over_floor']:.2f}x), fused={r['fused']}, exact={r['exact']}")
    if exact:
        print_table(exact)
    if accuracy:
        print(
            f"linear vs exact mc on {accuracy['images']} MNIST test images: mean IoU {accuracy['mean_iou']:.3f} "
            f"(min {accuracy['min_iou']:.3f}), mean Spearman {accuracy['mean_spearman']:.4f} "
            f"(min {accuracy['min_spearman']:.4f})"
        )
    print(f"targets: {result['targets']}  ->  {args.out}")
    return result


if __name__ == "__main__":
    main()
