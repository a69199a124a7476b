"""How often the paper's draws cross a ReLU kink, and where `mc`'s time goes (per part), on MNIST.

Command (from the project root; `make bench` runs `kink_stats` and `profile`
inside `bench_speed.py`):

    .venv/bin/python -m benchmarks.speed.bench_kinks [--run runs/paper] [--images 100]

For each of the first `--images` MNIST test images (seed 0, N = 5000, the
paper's defaults) it runs the float64 pass of `siamese_xai.decoding.kinks` and
reports: the fraction of draws that move some ReLU unit across its kink
(a draw-level split, cheap path for the others, would save only the rest),
the candidate units (those whose bound reaches their kink), the units some
draw actually moves across (each becomes a source), the sources r per image
(s + crossed units: the change before the sigmoid is `coef @ S`, r x P per
draw), and how many images take the layer-by-layer fallback (more than the
explainer's cap candidates in one layer).

The profile times, on one image, the parts of both exact paths in ms per
1000 perturbations (each part a `tf.function` on inputs of the right
shapes, timed in interleaved rounds): the layer path's steps (each affine
map with its activation rule) and the sources path's float64 pass (per
image, for all N), its `coef @ S` and the last activation's rule with the
sums. About 1 min on the 2-core CPU. Writes `benchmarks/speed/kinks.json`.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent


def basis_of(e):
    """`(B, s, D)` code change per unit |eps_j| of an Explanation's inputs (as `explain_graph` forms it)."""
    b, s = e.indices.shape
    h, c = e.embedding.astype(np.float32), e.reference.astype(np.float32)
    sign = np.sign(np.take_along_axis(c, e.indices, 1) - np.take_along_axis(h, e.indices, 1))
    basis = np.zeros((b, s, h.shape[1]), np.float32)
    for i in range(b):
        basis[i, np.arange(s), e.indices[i]] = e.sigma[i] * sign[i]
    return basis


def kink_stats(explainer, images, seed=0):
    """The crossing fraction, candidates, crossed units and sources on `images`, one image at a time."""
    import tensorflow as tf

    plan = explainer.decoder_evaluation.kinks
    if plan is None:
        return None
    cfg = explainer.config
    e = explainer.explain(images, seed=seed)
    basis = basis_of(e)
    eps = tf.constant(explainer.perturbation_draws(seed))
    cap = explainer.kink_cap
    prepare = tf.function(lambda h, b: plan.prepare(h, b, eps, cap))
    rows = []
    for i in range(len(images)):
        p = prepare(tf.constant(e.embedding[i : i + 1].astype(np.float32)), tf.constant(basis[i : i + 1]))
        rows.append((float(p["crossing_draws"].numpy().mean()), int(p["candidates"]), int(p["crossed"]),
                     int(p["coef"].shape[2]), not bool(p["ok"])))
    rows = np.array(rows, np.float64)
    return {
        "images": len(images),
        "n_perturbations": cfg.n_perturbations,
        "sigma_range": [float(e.sigma.min()), float(e.sigma.max())],
        "draws_crossing_a_kink": float(rows[:, 0].mean()),
        "images_with_a_crossing": int((rows[:, 0] > 0).sum()),
        "max_draws_crossing_in_an_image": float(rows[:, 0].max()),
        "candidate_units_mean": float(rows[:, 1].mean()),
        "candidate_units_max": int(rows[:, 1].max()),
        "crossed_units_mean": float(rows[:, 2].mean()),
        "crossed_units_max": int(rows[:, 2].max()),
        "sources_mean": float(rows[:, 3].mean()),
        "sources_max": int(rows[:, 3].max()),
        "cap": int(cap),
        "images_on_the_layer_path": int(rows[:, 4].sum()),
    }


def profile(explainer, image, repeats=7, rows=1000, seed=0):
    """ms per `rows` perturbations of each part of the layer path and of the sources path, on one image."""
    import tensorflow as tf

    from benchmarks.speed.timing import interleaved
    from siamese_xai.decoding.rules import act_delta, act_sums

    chain, plan = explainer.decoder_evaluation.exact, explainer.decoder_evaluation.kinks
    cfg = explainer.config
    e = explainer.explain(image[None], seed=seed)
    h, basis = tf.constant(e.embedding.astype(np.float32)), tf.constant(basis_of(e))
    eps_all = tf.constant(explainer.perturbation_draws(seed))
    eps = eps_all[:rows]
    _, terms = chain.base(h)
    parts = {}
    # The layer path, step by step (inputs: the previous step's output).
    first = chain.steps[0]
    dx = tf.matmul(eps, basis[0])  # the code changes, where the first step is not a Dense layer
    for i, (st, base) in enumerate(zip(chain.steps, terms)):
        last = i == len(chain.steps) - 1
        if i == 0 and chain.first_is_dense:
            first_rows = tf.reshape(first.fn(tf.reshape(basis, (-1, basis.shape[2]))), (1, cfg.s, -1))
            fn = tf.function(lambda st=st, base=base, r=first_rows: act_delta(
                st.act, base, tf.matmul(eps[None], r)[0], 1))
        elif st.kind == "shape":
            fn = tf.function(lambda st=st, x=dx: st.fn(x))
        elif last:
            fn = tf.function(lambda st=st, base=base, x=dx: act_sums(st.act, base, st.fn(x), 1))
        else:
            fn = tf.function(lambda st=st, base=base, x=dx: act_delta(
                st.act, base, st.fn(x) if st.kind == "affine" else x, 1))
        out = fn()
        parts[f"layers: {st.name} ({st.kind}{'' if st.kind == 'shape' else ', ' + st.act})"] = fn
        dx = out if not last else dx
    if plan is not None:
        prepared = plan.prepare(h, basis, eps_all, 10**6)
        coef, jac = prepared["coef"][:, :rows], prepared["jac"]
        last = chain.steps[plan.last]
        matmul = tf.function(lambda: tf.matmul(coef, jac))  # (1, rows, P): the image's positions only
        dz = tf.reshape(matmul(), (rows, -1))
        parts["sources: float64 pass, all N (per image)"] = tf.function(
            lambda: plan.prepare(h, basis, eps_all, 10**6)["coef"])
        parts[f"sources: coef @ S (r = {coef.shape[2]})"] = matmul
        parts[f"sources: {last.name} rule + sums"] = tf.function(
            lambda: act_sums(last.act, prepared["last_terms"], dz, 1))
    times = interleaved({k: (lambda f=f: tf.nest.map_structure(lambda t: t.numpy(), f())) for k, f in parts.items()},
                        repeats)
    return {"rows": rows, "ms": times}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default="runs/paper")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--out", default=str(HERE / "kinks.json"))
    args = parser.parse_args(argv)
    from siamese_xai import SiameseExplainer, files, load_mnist

    t = time.time()
    explainer = SiameseExplainer.from_run(args.run)
    x, _ = load_mnist("test")
    result = {"run": args.run, "kinks": kink_stats(explainer, x[: args.images]), "profile": profile(explainer, x[0])}
    result["seconds"] = round(time.time() - t, 1)
    files.write_json(args.out, result)
    print_kinks(result["kinks"])
    print_profile(result["profile"])
    print(f"-> {args.out}")
    return result


def print_kinks(k):
    print(f"ReLU kinks on {k['images']} MNIST test images (N = {k['n_perturbations']}, sigma "
          f"{k['sigma_range'][0]:.1e}..{k['sigma_range'][1]:.1e}): {100 * k['draws_crossing_a_kink']:.1f}% of draws "
          f"cross one ({k['images_with_a_crossing']} images have such draws, up to "
          f"{100 * k['max_draws_crossing_in_an_image']:.1f}% of one image's); per image "
          f"{k['candidate_units_mean']:.1f} candidate units (max {k['candidate_units_max']}), "
          f"{k['crossed_units_mean']:.1f} crossed (max {k['crossed_units_max']}), "
          f"{k['sources_mean']:.1f} sources (max {k['sources_max']}); "
          f"{k['images_on_the_layer_path']} images over the cap {k['cap']} (layer path)")


def print_profile(p):
    print(f"profile, ms per {p['rows']} perturbations of one image:")
    for name, ms in p["ms"].items():
        print(f"  {name:55s} {ms:7.2f}")


if __name__ == "__main__":
    main()
