"""The paper's claims about Figs. 4-9 as measured statements over many test images, with verdicts.

Command (run by `make reproduce` after training; `reproduce/seeds.py` runs it on every seed):

    .venv/bin/python -m reproduce.claims --run runs/paper --out figures

Run time: about 1-2 minutes on a quiet 2-core CPU (about 2,100 explanations at N = 5000, then the
permutation tests). Writes figures/claims.json.

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
  d keeps or flips its sign; 9,999 draws of seed 0, `claim_stats.PERMUTATIONS`;
  p = (1 + #{|T*| >= |T|}) / (PERMUTATIONS + 1)), exact under the paired null
  that method and control are exchangeable on every image.
- Fig. 8 (rank correlation): pooled, Spearman's rho(SSE, d) over C with
  Spearman's test; within classes, the mean of the per-class rho(SSE, d)
  weighted by the class's number of images (classes of at least 3 images whose
  values are not constant), tested by permuting d among the images of each
  class (9,999 draws, p as above). rho(SSE, d) rather than a difference
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
import os
import time

import numpy as np

from reproduce import claim_stats as st
from siamese_xai.evaluation import metrics
from siamese_xai.explainers.questions import runner_up

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SUBSET_SEED = 0
SUBSET_SIZE = 2000
RANDOM_MASK_SEED = 1
MIN_IMAGES = st.MIN_IMAGES
CONTROLS = ("intensity", "random")
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


def intensity_masks(x, q: int) -> np.ndarray:
    """The intensity control: `(n, P)` bool, the q brightest pixels of each image, ties first in raster order.

    Args:
        x: `(n, 28, 28, 1)` or `(n, P)` images.
        q: pixels per mask.
    """
    x = np.asarray(x, np.float64)
    return metrics.top_q_mask(x.reshape(len(x), -1), q)


def random_masks(indices, q: int, size: int) -> np.ndarray:
    """The random control: `(n, size)` bool, q pixels per image drawn by `default_rng([RANDOM_MASK_SEED, index])`.

    Args:
        indices: `(n,)` the images' test-set indices (each image's draw depends on its index only).
        q: pixels per mask, in [1, size].
        size: pixels per image P.
    """
    if not 1 <= q <= size:
        raise ValueError(f"`q` must be in [1, {size}]. Received: q={q}")
    out = np.zeros((len(indices), size), bool)
    for row, index in zip(out, indices):
        row[np.random.default_rng([RANDOM_MASK_SEED, int(index)]).choice(size, q, replace=False)] = True
    return out


def _top(values, q):
    """The q largest of a flat map (`metrics.top_q_mask`: ties to the lower index)."""
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


def _shares(masks, regions_of_q):
    """`(n, R)` share of each mask in each region, the regions built for each mask's own q."""
    masks = np.asarray(masks, bool).reshape(len(masks), -1)
    q = masks.sum(1)
    if np.any(q == 0):
        raise ValueError("`masks` must mark at least one pixel each. Received: an empty mask")
    out = np.zeros((len(masks), 0))
    for value in np.unique(q):
        regions = regions_of_q(int(value)).astype(np.float64)
        if out.shape[1] == 0:
            out = np.zeros((len(masks), len(regions)))
        out[q == value] = masks[q == value] @ regions.T / value
    return out


def specificities(masks, ks, ls, means) -> np.ndarray:
    """`(n,)` specificity of each mask: share where k and l differ minus the mean share over the other class pairs.

    Args:
        masks: `(n, H, W, 1)` or `(n, P)` boolean masks (q = each mask's number of pixels).
        ks, ls: `(n,)` the explained class and the class it is set against.
        means: `(C, P)` class-mean images (`class_mean_images`).
    """
    c = len(means)
    pairs = [(a, b) for a in range(c) for b in range(a + 1, c)]
    shares = _shares(masks, lambda q: np.stack([_top(np.abs(means[a] - means[b]), q) for a, b in pairs]))
    column = {pair: j for j, pair in enumerate(pairs)}
    out = np.empty(len(shares))
    for i, (k, l) in enumerate(zip(ks, ls)):
        j = column[(min(k, l), max(k, l))]
        out[i] = shares[i, j] - np.delete(shares[i], j).mean()
    return out


def specificity(mask, k: int, l: int, means) -> float:
    """`specificities` of one `(H, W, 1)` or `(P,)` mask."""
    return float(specificities(np.asarray(mask, bool).reshape(1, -1), [k], [l], means)[0])


def ink_contrasts(masks, ks, ts, means) -> np.ndarray:
    """`(n,)` share(mask, T_pos(k, t)) - share(mask, T_pos(t, k)): on ink of k that t lacks, minus the reverse.

    Args:
        masks: `(n, H, W, 1)` or `(n, P)` boolean masks; ks: `(n,)` the SNN's classes; ts: `(n,)` the true ones.
        means: `(C, P)` class-mean images.
    """
    c = len(means)
    pairs = [(a, b) for a in range(c) for b in range(c) if a != b]
    shares = _shares(masks, lambda q: np.stack([_top(means[a] - means[b], q) for a, b in pairs]))
    column = {pair: j for j, pair in enumerate(pairs)}
    return np.array([shares[i, column[(k, t)]] - shares[i, column[(t, k)]] for i, (k, t) in enumerate(zip(ks, ts))])


def ink_contrast(mask, k: int, t: int, means) -> float:
    """`ink_contrasts` of one mask."""
    return float(ink_contrasts(np.asarray(mask, bool).reshape(1, -1), [k], [t], means)[0])


def _claim_arrays(per_image: dict) -> dict:
    """Per claim: the method's scores, each control's, the classes, and the SSE for Fig. 8."""
    a = {key: np.asarray(value) for key, value in per_image.items()}
    for key in ("correct_class", *(f"correct_specificity_{c}" for c in CONTROLS),
                *(f"confused_ink_contrast_{c}" for c in CONTROLS)):
        if key not in a:
            raise ValueError(f"`per_image` must hold `{key}` (scores of the control masks). Received keys: {sorted(a)}")
    sse = a["correct_sse"].astype(np.float64)
    good = sse <= np.median(sse) if len(sse) else np.zeros(0, bool)
    correct = lambda key, rows: a[key][rows].astype(np.float64)
    all_rows = np.ones(len(sse), bool)
    return {
        "fig4_7": {"method": correct("correct_specificity", good), "classes": a["correct_class"][good],
                   **{c: correct(f"correct_specificity_{c}", good) for c in CONTROLS}},
        "fig8": {"method": correct("correct_specificity", all_rows), "classes": a["correct_class"], "sse": sse,
                 **{c: correct(f"correct_specificity_{c}", all_rows) for c in CONTROLS}},
        "fig9": {"method": a["confused_ink_contrast"].astype(np.float64), "classes": a["confused_true"],
                 **{c: a[f"confused_ink_contrast_{c}"].astype(np.float64) for c in CONTROLS}},
    }


def _statistic(name, values, arrays, permutations) -> dict:
    """The claim's statistic of per-image values, pooled and within classes."""
    if name == "fig8":
        return {"pooled": st.rank_test(arrays["sse"], values),
                "within_class": st.within_class_rank_test(arrays["sse"], values, arrays["classes"], permutations)}
    return {"pooled": st.mean_test(values),
            "within_class": st.stratified_mean_test(values, arrays["classes"], permutations)}


def _per_class(name, arrays, statistics) -> dict:
    """`{class: {"n", "method", "intensity", "random"}}`: per-class means, or per-class rho for Fig. 8."""
    if name == "fig8":
        rows = {who: statistics[who]["within_class"]["per_class"] for who in ("method", *CONTROLS)}
        return {c: {"n": v["n"], **{who: rows[who].get(c, {}).get("rho") for who in rows}} for c, v in rows["method"].items()}
    rows = {who: st.class_means(arrays[who], arrays["classes"]) for who in ("method", *CONTROLS)}
    return {c: {"n": v["n"], **{who: rows[who][c]["mean"] for who in rows}} for c, v in rows["method"].items()}


def judge(per_image: dict, permutations: int = st.PERMUTATIONS) -> dict:
    """The three claims' statistics, controls, contrasts, Holm-adjusted p-values and verdicts from per-image scores.

    Args:
        per_image: `per_image_scores`' dict: 1-D arrays `correct_sse`, `correct_class`, `correct_specificity`,
            `correct_specificity_{intensity,random}`, `confused_true`, `confused_ink_contrast`,
            `confused_ink_contrast_{intensity,random}`.
        permutations: draws of the randomisation tests.

    Returns:
        `{claim name: {"statement", "measure", "sign", "n", "verdict", "uncontrolled", "method", "controls",
        "contrasts", "per_class"}}` (the rules: the module docstring).
    """
    arrays = _claim_arrays(per_image)
    out = {}
    for name, statement, measure, sign in CLAIMS:
        a = arrays[name]
        stats = {who: _statistic(name, a[who], a, permutations) for who in ("method", *CONTROLS)}
        contrasts = {c: _statistic(name, a["method"] - a[c], a, permutations) for c in CONTROLS}
        out[name] = {"statement": statement, "measure": measure, "sign": sign, "n": len(a["method"]),
                     "uncontrolled": dict(stats["method"]["pooled"]), "method": stats["method"],
                     "controls": {c: stats[c] for c in CONTROLS}, "contrasts": contrasts,
                     "per_class": _per_class(name, a, stats)}
        if name == "fig8":
            out[name]["rho_difference"] = {c: stats["method"]["pooled"]["effect"] - stats[c]["pooled"]["effect"]
                                           for c in CONTROLS}
    old = st.holm([out[name]["uncontrolled"]["p"] for name, *_ in CLAIMS])
    keys = [(name, c, part) for name, *_ in CLAIMS for c in CONTROLS for part in ("pooled", "within_class")]
    new = st.holm([out[name]["contrasts"][c][part]["p"] for name, c, part in keys])
    for (name, c, part), p in zip(keys, new):
        out[name]["contrasts"][c][part]["p_holm"] = float(p)
    for (name, _, _, sign), p in zip(CLAIMS, old):
        u, claim = out[name]["uncontrolled"], out[name]
        u.update(p_holm=float(p), verdict=st.verdict(u["effect"], p, sign, u["n"]))
        tests = [(t["effect"], t["p_holm"]) for c in CONTROLS for t in claim["contrasts"][c].values()]
        claim["verdict"] = st.all_agree(tests, sign, claim["n"])
    return out


def subset_indices(n_test: int, size: int = SUBSET_SIZE) -> np.ndarray:
    """The fixed test subset: the first `size` indices of a seed-0 permutation of the test set."""
    return np.random.default_rng(SUBSET_SEED).permutation(n_test)[: min(size, n_test)]


def per_image_scores(explainer, x, y, means, subset_size: int = SUBSET_SIZE, chunk: int = 250, seed: int = 0,
                     summary: dict | None = None) -> dict:
    """Explains C and M (see the module docstring) and scores every mask and its two controls.

    Args:
        explainer: a `SiameseExplainer`.
        x: `(n, 28, 28, 1)` test images; y: `(n,)` labels.
        means: `(C, P)` class-mean training images.
        subset_size: the size of the fixed subset that C is drawn from.
        chunk: images per `explain` call (memory only: results do not depend on it).
        seed: the perturbation seed.
        summary: `paper.test_set_summary` of (x, y) if already computed.

    Returns:
        A dict of per-image arrays: `correct_index`, `correct_class`, `correct_sse`, `correct_specificity` and
        `correct_specificity_{intensity,random}`, `confused_index`, `confused_true`, `confused_class`,
        `confused_ink_contrast` and `confused_ink_contrast_{intensity,random}`.
    """
    y = np.asarray(y)
    if summary is None:
        from reproduce.paper import test_set_summary

        summary = test_set_summary(explainer.embed, explainer.decoder, explainer.prototypes, x)
    predicted = summary["predicted"]
    subset = np.sort(subset_indices(len(x), subset_size))
    correct = subset[predicted[subset] == y[subset]]
    confused = np.flatnonzero(predicted != y)
    q = explainer.config.q

    def explain(indices):
        parts = [explainer.explain(x[indices[i:i + chunk]], seed=seed) for i in range(0, len(indices), chunk)]
        if not parts:
            return np.zeros((0, means.shape[1]), bool), np.zeros((0, len(means)))
        return (np.concatenate([p.mask.reshape(len(p), -1) for p in parts]),
                np.concatenate([p.distances for p in parts]))

    def with_controls(masks, indices, score):
        controls = {"intensity": intensity_masks(x[indices], q), "random": random_masks(indices, q, means.shape[1])}
        return {"": score(masks).tolist(), **{f"_{c}": score(m).tolist() for c, m in controls.items()}}

    masks, dist = explain(correct)
    ks = predicted[correct]
    ls = runner_up(dist, ks) if len(correct) else np.zeros(0, int)
    spec = with_controls(masks, correct, lambda m: specificities(m, ks, ls, means))
    masks_m, _ = explain(confused)
    ink = with_controls(masks_m, confused, lambda m: ink_contrasts(m, predicted[confused], y[confused], means))
    return {
        "correct_index": correct.tolist(), "correct_class": y[correct].tolist(),
        "correct_sse": summary["recon_sse"][correct].astype(float).tolist(),
        **{f"correct_specificity{key}": v for key, v in spec.items()},
        "confused_index": confused.tolist(), "confused_true": y[confused].tolist(),
        "confused_class": predicted[confused].tolist(),
        **{f"confused_ink_contrast{key}": v for key, v in ink.items()},
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
            "random_mask_seed": RANDOM_MASK_SEED, "permutations": st.PERMUTATIONS,
            "permutation_seed": st.PERMUTATION_SEED, "explain_config": dataclasses.asdict(explainer.config),
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
        print("\n".join(summary_lines(name, c)))


def summary_lines(name: str, claim: dict) -> list:
    """A claim's verdict, its uncontrolled statistic and its four contrasts, one line each (printed by `main`)."""
    u = claim["uncontrolled"]
    lines = [f"{name}: {claim['verdict']} (n = {claim['n']}); uncontrolled {claim['measure']} = {u['effect']:.3f} "
             f"[{u['ci95'][0]:.3f}, {u['ci95'][1]:.3f}], Holm p = {u['p_holm']:.2g}: {u['verdict']}"]
    for c in CONTROLS:
        for part, t in claim["contrasts"][c].items():
            lines.append(f"  minus {c} ({part.replace('_', ' ')}): {t['effect']:+.3f}, Holm p = {t['p_holm']:.2g}")
    return lines


if __name__ == "__main__":
    main()
