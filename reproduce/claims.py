"""The paper's claims about Figs. 4-9 as measured statements over many test images, with verdicts.

Command (run by `make reproduce` after training; `reproduce/seeds.py` runs it on every seed):

    .venv/bin/python -m reproduce.claims --run runs/paper --out figures

Run time: about 1-2 minutes on a 2-core CPU (about 2,100 explanations at N = 5000). Writes
figures/claims.json.

The paper shows one picture per claim. Here each claim becomes a test over many
images, scored against class differences taken from the DATA (the mean training
image m_k of each class, over all 60,000 training images), never from the
decoder g: the explanation is made by decoding, so judging it against g's own
class templates would be circular.

Rules (declared before any number was looked at; the script applies them):

Images. C: the correctly classified images (nearest prototype = label) among a
fixed subset of the test set, the first 2,000 indices of
`numpy.random.default_rng(0).permutation(10000)` (the same images for every
run). M: every misclassified image of the whole test set. Every image is
explained with the paper's settings (N = 5000, s = 5, q = 100, perturbations
toward the prototype of the SNN's class k), seed 0.

Scores, for a mask of q pixels: share(mask, T) = |mask ∩ T| / q, where T is a
set of q pixels. T_abs(a, b) = the q pixels of largest |m_a - m_b| (where the
classes a and b differ); T_pos(a, b) = the q pixels of largest m_a - m_b (ink
of a that b lacks). Ties: first in raster order.

- specificity(i) = share(mask_i, T_abs(k_i, l_i)) minus the mean of
  share(mask_i, T_abs(a, b)) over the 44 other unordered class pairs {a, b},
  with k_i the SNN's class and l_i the nearest other prototype's class. It is
  positive when the mask lies where k and l differ more than where any two
  classes differ: a generic "where digits are" mask scores about 0.

Claims and tests (paired: each image is compared with itself):

1. Figs. 4-7, "the explanation of a well reconstructed digit shows what
   distinguishes its class": over the images of C whose SSE of g(f(x)) is at
   most the median over C, mean specificity > 0. Test: Wilcoxon signed-rank of
   specificity against 0.
2. Fig. 8, "a poorly reconstructed digit gets an incorrect explanation": over
   all of C, Spearman's rank correlation between the SSE of g(f(x)) and
   specificity is negative. Test: the Spearman test; interval: Fisher's z with
   the Bonett-Wright variance (1 + rho^2 / 2) / (n - 3).
3. Fig. 9, "a misclassified digit is explained with features of the class it
   was put in": over M, with k the SNN's (wrong) class and t the true one,
   share(mask, T_pos(k, t)) - share(mask, T_pos(t, k)) > 0 on average: the
   mask lies more on ink of k that t lacks than on ink of t that k lacks. Test:
   Wilcoxon signed-rank against 0.

Controls (each claim is tested as the method minus a mask computed from the
input alone, so that what any mask of the same image would score is not
credited to the explanation):

- intensity mask: the q = 100 brightest pixels of x (ties first in raster
  order, `metrics.top_q_mask`);
- random mask: q pixels of the 784 drawn without replacement by
  `numpy.random.default_rng([RANDOM_MASK_SEED, test index])`, fixed per image.

Each control mask gets the same score as the method's mask (specificity with
the same k and l; ink contrast with the same k and t) and the same statistic
(its mean, or its Spearman rho with the SSE). The contrasts, d = score(method)
- score(control), per image and per control:

- Figs. 4-7 and Fig. 9 (means): pooled, Wilcoxon signed-rank of d against 0;
  class-stratified, the mean over classes of the per-class mean of d (each
  class with at least 2 images weighs the same, so that one numerous class,
  e.g. the 1s, does not carry the mean), with the interval est ± 1.96 ·
  sqrt(sum_k s_k^2 / n_k) / K and a sign-flip randomisation test (each image's
  d keeps or flips its sign; PERMUTATIONS draws of seed PERMUTATION_SEED;
  p = (1 + #{|T*| >= |T|}) / (PERMUTATIONS + 1)), exact under the paired null
  that method and control are exchangeable on every image.
- Fig. 8 (rank correlation): pooled, Spearman's rho(SSE, d) over C with
  Spearman's test; within classes, the mean of the per-class rho(SSE, d)
  weighted by the class's number of images (classes of at least 3 images whose
  values are not constant), tested by permuting d among the images of each
  class (PERMUTATIONS draws, p as above). rho(SSE, d) rather than a difference
  of two correlations: it is the per-image paired contrast, as for the mean
  claims (what the input alone predicts of an image's specificity is removed
  image by image before ranking), and Spearman's test of it needs no
  resampling; the difference rho(SSE, method) - rho(SSE, control) is reported
  beside it as a description.

Classes: the true label (for C it is also the SNN's class). Per class, the
mean of the method's and of each control's score (for Fig. 8 each one's rho)
is reported.

Family and verdicts: the 12 contrasts (3 claims x 2 controls x pooled and
within classes), two-sided p-values, are adjusted together by Holm's method. A
claim "holds" when all four of its contrasts have an adjusted p < 0.05 with the
claimed sign: the explanation beats both input-only masks, pooled and within
classes; "does not hold" when all four have an adjusted p < 0.05 with the
opposite sign; "not shown" otherwise (mixed signs, any contrast not
significant), or when fewer than MIN_IMAGES images are available. Intervals
are 95%.

Beside these, the uncontrolled statistic of the first version of these rules
is kept with its own verdict (`uncontrolled`): the method's statistic against
0 (Wilcoxon signed-rank for the means, Spearman's test, Fisher's z interval
with the Bonett-Wright variance (1 + rho^2 / 2) / (n - 3) for rho; Student t
intervals for means), its three p-values adjusted together by Holm, "holds" /
"does not hold" / "not shown" by the same sign rule. It cannot tell the method
from the input, so it decides nothing.

Across seeds (reproduce/seeds.py, reproduce/bands.py `claims_across_seeds`): a
random-effects estimate in two stages: per statistic, the mean of the seeds'
estimates with a Student-t 95% interval over seeds, mean ± t_{0.975, n-1} ·
sd / sqrt(n), and a one-sample t-test of the seeds' estimates against 0 (their
spread holds both the sampling error within a seed and the variation between
seeds). The verdict across seeds applies the rule above to the pooled
contrasts (Holm over the 12 pooled tests), from at least 5 seeds; a seeds
file without per-seed contrasts gives "not shown" with the reason. The pooled
uncontrolled statistic gets the uncontrolled verdict beside, and each seed's
own verdict is listed. More seeds narrow the interval; no seed can veto.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import time

import numpy as np

from siamese_xai.evaluation import metrics
from siamese_xai.explainers.questions import runner_up

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SUBSET_SEED = 0
SUBSET_SIZE = 2000
ALPHA = 0.05
MIN_IMAGES = 10
CLAIMS = (
    ("fig4_7", "Figs. 4-7: a well reconstructed digit's explanation shows what distinguishes its class",
     "mean specificity of the mask", 1),
    ("fig8", "Fig. 8: a poorly reconstructed digit gets an incorrect explanation",
     "Spearman rho(SSE of g(f(x)), specificity)", -1),
    ("fig9", "Fig. 9: a misclassified digit is explained with features of the class it was put in",
     "mean share on ink of the SNN's class minus share on ink of the true class", 1),
)


def class_mean_images(x, y, num_classes: int = 10) -> np.ndarray:
    """`(C, P)` float64: the mean image of each class, flattened (the data's class templates)."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    y = np.asarray(y)
    missing = [k for k in range(num_classes) if not np.any(y == k)]
    if missing:
        raise ValueError(f"`y` must hold every class 0..{num_classes - 1}. Received: no image of class {missing}")
    return np.stack([x[y == k].mean(0) for k in range(num_classes)])


def _top(values, q):
    """The q largest of a flat map (`metrics.top_q_mask`: ties to the lower index); none for q = 0 (`share` refuses it)."""
    if q == 0:
        return np.zeros(values.shape, bool)
    return metrics.top_q_mask(values[None], q)[0]


def share(mask, region) -> float:
    """|mask ∩ region| / |mask| for boolean pixel sets of the same size."""
    mask, region = np.asarray(mask, bool).ravel(), np.asarray(region, bool).ravel()
    if mask.shape != region.shape:
        raise ValueError(f"`mask` and `region` must have the same size. Received: {mask.size} and {region.size}")
    q = int(mask.sum())
    if q == 0:
        raise ValueError("`mask` must mark at least one pixel. Received: an empty mask")
    return float((mask & region).sum() / q)


def specificity(mask, k: int, l: int, means) -> float:
    """How much more a mask lies where classes k and l differ than where any other two classes differ.

    Args:
        mask: `(H, W, 1)` or `(P,)` boolean mask of q pixels.
        k, l: the explained class and the class it is set against.
        means: `(C, P)` class-mean images (`class_mean_images`).

    Returns:
        share(mask, T_abs(k, l)) - mean over the other unordered pairs {a, b} of share(mask, T_abs(a, b)).
    """
    mask = np.asarray(mask, bool).ravel()
    q = int(mask.sum())
    c = len(means)
    pair = lambda a, b: share(mask, _top(np.abs(means[a] - means[b]), q))
    others = [pair(a, b) for a in range(c) for b in range(a + 1, c) if {a, b} != {k, l}]
    return pair(k, l) - float(np.mean(others))


def ink_contrast(mask, k: int, t: int, means) -> float:
    """share(mask, T_pos(k, t)) - share(mask, T_pos(t, k)): the mask on ink of k that t lacks, minus the reverse."""
    mask = np.asarray(mask, bool).ravel()
    q = int(mask.sum())
    return share(mask, _top(means[k] - means[t], q)) - share(mask, _top(means[t] - means[k], q))


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjustment of p-values (NaN stays NaN and is not counted)."""
    p = np.asarray(p_values, np.float64)
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(~np.isnan(p))
    order = idx[np.argsort(p[idx], kind="stable")]
    m, running = len(order), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def verdict(effect: float, p_adjusted: float, sign: int, n: int) -> str:
    """"holds", "does not hold" or "not shown", by the rule in the module docstring."""
    if n < MIN_IMAGES or not np.isfinite(p_adjusted) or p_adjusted >= ALPHA or effect == 0:
        return "not shown"
    return "holds" if np.sign(effect) == sign else "does not hold"


def _mean_test(values) -> dict:
    from scipy import stats

    from siamese_xai.evaluation.metrics import mean_ci

    v = np.asarray(values, np.float64)
    if len(v) < 2:
        return {"effect": float(v.mean()) if len(v) else float("nan"), "ci95": [float("nan")] * 2, "p": float("nan"), "n": len(v)}
    ci = mean_ci(v)
    p = 1.0 if np.all(v == 0) else float(stats.wilcoxon(v).pvalue)
    return {"effect": ci["mean"], "ci95": [ci["mean"] - ci["ci95"], ci["mean"] + ci["ci95"]], "p": p, "n": len(v),
            "test": "Wilcoxon signed-rank"}


def _rank_test(a, b) -> dict:
    from scipy import stats

    n = len(a)
    if n < 4:
        return {"effect": float("nan"), "ci95": [float("nan")] * 2, "p": float("nan"), "n": n}
    rho, p = stats.spearmanr(a, b)
    rho = float(np.clip(rho, -0.999999, 0.999999))
    half = 1.959964 * math.sqrt((1 + rho**2 / 2) / (n - 3))
    return {"effect": rho, "ci95": [math.tanh(math.atanh(rho) - half), math.tanh(math.atanh(rho) + half)],
            "p": float(p), "n": n, "test": "Spearman"}


def judge(per_image: dict) -> dict:
    """The three claims' effects, intervals, Holm-adjusted p-values and verdicts from per-image scores.

    Args:
        per_image: `{"correct_sse", "correct_specificity", "confused_ink_contrast"}`, 1-D arrays.

    Returns:
        `{claim name: {"statement", "measure", "effect", "ci95", "p", "p_holm", "n", "verdict"}}`.
    """
    sse = np.asarray(per_image["correct_sse"], np.float64)
    spec = np.asarray(per_image["correct_specificity"], np.float64)
    good = sse <= np.median(sse) if len(sse) else np.zeros(0, bool)
    tests = {
        "fig4_7": _mean_test(spec[good]),
        "fig8": _rank_test(sse, spec),
        "fig9": _mean_test(per_image["confused_ink_contrast"]),
    }
    adjusted = holm([tests[name]["p"] for name, *_ in CLAIMS])
    out = {}
    for (name, statement, measure, sign), p_holm in zip(CLAIMS, adjusted):
        t = tests[name]
        out[name] = {"statement": statement, "measure": measure, **t, "p_holm": float(p_holm),
                     "verdict": verdict(t["effect"], p_holm, sign, t["n"])}
    return out


def subset_indices(n_test: int, size: int = SUBSET_SIZE) -> np.ndarray:
    """The fixed test subset: the first `size` indices of a seed-0 permutation of the test set."""
    return np.random.default_rng(SUBSET_SEED).permutation(n_test)[: min(size, n_test)]


def per_image_scores(explainer, x, y, means, subset_size: int = SUBSET_SIZE, chunk: int = 250, seed: int = 0,
                     summary: dict | None = None) -> dict:
    """Explains C and M (see the module docstring) and scores every mask.

    Args:
        explainer: a `SiameseExplainer`.
        x: `(n, 28, 28, 1)` test images; y: `(n,)` labels.
        means: `(C, P)` class-mean training images.
        subset_size: the size of the fixed subset that C is drawn from.
        chunk: images per `explain` call (memory only: results do not depend on it).
        seed: the perturbation seed.
        summary: `paper.test_set_summary` of (x, y) if already computed.

    Returns:
        A dict of per-image arrays: `correct_index`, `correct_sse`, `correct_specificity`,
        `confused_index`, `confused_true`, `confused_class`, `confused_ink_contrast`.
    """
    y = np.asarray(y)
    if summary is None:
        from reproduce.paper import test_set_summary

        summary = test_set_summary(explainer.embed, explainer.decoder, explainer.prototypes, x)
    predicted = summary["predicted"]
    subset = np.sort(subset_indices(len(x), subset_size))
    correct = subset[predicted[subset] == y[subset]]
    confused = np.flatnonzero(predicted != y)

    def explain(indices):
        parts = [explainer.explain(x[indices[i:i + chunk]], seed=seed) for i in range(0, len(indices), chunk)]
        if not parts:
            return np.zeros((0, means.shape[1]), bool), np.zeros((0, len(means)))
        return (np.concatenate([p.mask.reshape(len(p), -1) for p in parts]),
                np.concatenate([p.distances for p in parts]))

    masks, dist = explain(correct)
    ks = predicted[correct]
    ls = runner_up(dist, ks).tolist()
    spec = [specificity(m, int(k), l, means) for m, k, l in zip(masks, ks, ls)]
    masks_m, _ = explain(confused)
    ink = [ink_contrast(m, int(k), int(t), means) for m, k, t in zip(masks_m, predicted[confused], y[confused])]
    return {
        "correct_index": correct.tolist(), "correct_sse": summary["recon_sse"][correct].astype(float).tolist(),
        "correct_specificity": spec, "confused_index": confused.tolist(), "confused_true": y[confused].tolist(),
        "confused_class": predicted[confused].tolist(), "confused_ink_contrast": ink,
    }


def claims_record(run_dir, data_dir=None, subset_size: int = SUBSET_SIZE, config=None) -> dict:
    """Scores a run folder's explanations and judges the claims (the content of claims.json)."""
    from siamese_xai.data import mnist as data
    from siamese_xai.explainers.siamese import SiameseExplainer

    t0 = time.perf_counter()
    explainer = SiameseExplainer.from_run(run_dir, config)
    x_train, y_train = data.load_mnist("train", data_dir)
    x, y = data.load_mnist("test", data_dir)
    means = class_mean_images(x_train, y_train, len(explainer.prototypes))
    scores = per_image_scores(explainer, x, y, means, subset_size)
    return {"claims": judge(scores), "per_image": scores, "subset_size": subset_size, "subset_seed": SUBSET_SEED,
            "explain_config": dataclasses.asdict(explainer.config),
            "seconds": round(time.perf_counter() - t0, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/paper", help="the trained run folder")
    parser.add_argument("--out", default="figures", help="where claims.json goes")
    parser.add_argument("--data-dir", help="MNIST's location (default: $TFDS_DATA_DIR)")
    args = parser.parse_args()
    from siamese_xai import files

    record = claims_record(args.run, args.data_dir)
    files.write_json(os.path.join(args.out, "claims.json"), record)
    for name, c in record["claims"].items():
        print(f"{name}: {c['verdict']} ({c['measure']} = {c['effect']:.3f}, 95% CI [{c['ci95'][0]:.3f}, "
              f"{c['ci95'][1]:.3f}], n = {c['n']}, Holm p = {c['p_holm']:.2g})")


if __name__ == "__main__":
    main()
