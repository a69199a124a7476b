"""The statistics behind reproduce/claims.py's verdicts: paired tests, class-stratified estimates, pooling over seeds.

Part of the reproduction harness (imported by reproduce/claims.py and
reproduce/bands.py). Pure functions of per-image or per-seed numbers: no
TensorFlow. The rules that use them are declared in reproduce/claims.py's
docstring.
"""

from __future__ import annotations

import math

import numpy as np

ALPHA = 0.05
MIN_IMAGES = 10
PERMUTATIONS = 9999
PERMUTATION_SEED = 0
MIN_CLASS_MEAN = 2  # images a class needs to enter the class-stratified mean
MIN_CLASS_RANK = 3  # images a class needs to enter the within-class rank correlation


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjustment of p-values (`metrics.holm`), where NaN stays NaN and is not counted."""
    from siamese_xai.evaluation import metrics

    p = np.asarray(p_values, np.float64)
    out = np.full(p.shape, np.nan)
    known = ~np.isnan(p)
    if known.any():
        out[known] = metrics.holm(p[known])
    return out


def verdict(effect: float, p_adjusted: float, sign: int, n: int, min_n: int = MIN_IMAGES) -> str:
    """One test's verdict: "holds" (significant, claimed sign), "does not hold" (opposite sign) or "not shown".

    Fewer than `min_n` images (or seeds) give "not shown".
    """
    if n < min_n or not np.isfinite(p_adjusted) or p_adjusted >= ALPHA or effect == 0 or not np.isfinite(effect):
        return "not shown"
    return "holds" if np.sign(effect) == sign else "does not hold"


def all_agree(tests, sign: int, n: int, min_n: int = MIN_IMAGES) -> str:
    """A claim's verdict from several tests: "holds" / "does not hold" only when every test says so.

    Args:
        tests: `[(effect, Holm-adjusted p), ...]`, the claim's contrasts.
        sign: the claimed sign of every effect, +1 or -1.
        n: the number of images or seeds (fewer than `min_n`: "not shown").
    """
    words = {verdict(effect, p, sign, n, min_n) for effect, p in tests}
    return words.pop() if len(words) == 1 and tests else "not shown"


def _nan_test(n: int) -> dict:
    return {"effect": float("nan"), "ci95": [float("nan")] * 2, "p": float("nan"), "n": n}


def mean_test(values) -> dict:
    """Mean with its Student-t 95% interval, and the Wilcoxon signed-rank p-value against 0.

    Args:
        values: `(n,)` per-image values (or differences).

    Returns:
        `{"effect", "ci95", "p", "n", "test"}`; NaN fields for fewer than 2 values.
    """
    from scipy import stats

    v = np.asarray(values, np.float64).ravel()
    if len(v) < 2:
        return _nan_test(len(v)) | ({"effect": float(v.mean())} if len(v) else {})
    half = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    p = 1.0 if np.all(v == 0) else float(stats.wilcoxon(v).pvalue)
    mean = float(v.mean())
    return {"effect": mean, "ci95": [mean - half, mean + half], "p": p, "n": len(v), "test": "Wilcoxon signed-rank"}


def rank_test(a, b) -> dict:
    """Spearman's rho(a, b) with Spearman's test and Fisher's z interval (Bonett-Wright variance).

    Args:
        a, b: `(n,)` paired values.

    Returns:
        `{"effect", "ci95", "p", "n", "test"}`; NaN fields for n < 4 or constant values.
    """
    from scipy import stats

    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    n = len(a)
    if n < 4 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return _nan_test(n)
    rho, p = stats.spearmanr(a, b)
    rho = float(np.clip(rho, -0.999999, 0.999999))
    half = 1.959964 * math.sqrt((1 + rho**2 / 2) / (n - 3))
    return {"effect": rho, "ci95": [math.tanh(math.atanh(rho) - half), math.tanh(math.atanh(rho) + half)],
            "p": float(p), "n": n, "test": "Spearman"}


def _permutation_p(observed: float, null) -> float:
    """Two-sided randomisation p-value: (1 + #{|T*| >= |T|}) / (draws + 1), with a relative tolerance for ties."""
    null = np.asarray(null, np.float64)
    hits = int(np.sum(np.abs(null) >= abs(observed) * (1 - 1e-12) - 1e-15))
    return (1 + hits) / (len(null) + 1)


def _class_groups(values, classes, minimum: int) -> list:
    """`[(class, values of that class)]` for the classes with at least `minimum` images, in class order."""
    values, classes = np.asarray(values, np.float64).ravel(), np.asarray(classes).ravel()
    if values.shape != classes.shape:
        raise ValueError(f"`classes` must give one class per value. Received: {classes.size} classes, {values.size} values")
    return [(int(c), values[classes == c]) for c in np.unique(classes) if np.sum(classes == c) >= minimum]


def class_means(values, classes) -> dict:
    """`{class: {"n", "mean"}}` of per-image values, for every class present."""
    return {str(c): {"n": len(v), "mean": float(v.mean())} for c, v in _class_groups(values, classes, 1)}


def stratified_mean_test(d, classes, permutations: int = PERMUTATIONS, seed: int = PERMUTATION_SEED) -> dict:
    """Class-stratified mean of paired differences: each class's mean weighs the same.

    Args:
        d: `(n,)` per-image differences (method minus control).
        classes: `(n,)` each image's class; classes with fewer than MIN_CLASS_MEAN images are left out.
        permutations: sign-flip draws of the randomisation test.
        seed: their seed.

    Returns:
        `{"effect", "ci95", "p", "n", "classes", "test"}`: effect = mean over the K classes of the class means;
        ci95 = effect ± 1.96 · sqrt(sum_k s_k^2 / n_k) / K; p from flipping the sign of each image's d.
    """
    groups = _class_groups(d, classes, MIN_CLASS_MEAN)
    n = sum(len(v) for _, v in groups)
    if not groups:
        return _nan_test(0) | {"classes": 0}
    k = len(groups)
    effect = float(np.mean([v.mean() for _, v in groups]))
    half = 1.959964 * math.sqrt(sum(v.var(ddof=1) / len(v) for _, v in groups)) / k
    rng = np.random.default_rng(seed)
    null = np.zeros(permutations)
    for _, v in groups:
        signs = rng.integers(0, 2, size=(permutations, len(v))) * 2 - 1
        null += (signs @ v) / len(v) / k
    return {"effect": effect, "ci95": [effect - half, effect + half], "p": _permutation_p(effect, null), "n": n,
            "classes": k, "test": "class-stratified mean, sign-flip randomisation"}


def _centred_ranks(v) -> np.ndarray:
    from scipy import stats

    r = stats.rankdata(v)
    r = r - r.mean()
    return r / np.linalg.norm(r)


def within_class_rank_test(a, b, classes, permutations: int = PERMUTATIONS, seed: int = PERMUTATION_SEED) -> dict:
    """Within-class Spearman: the per-class rho(a, b) averaged with weights n_k, tested by permuting b within classes.

    Args:
        a, b: `(n,)` paired values (e.g. SSE and a score difference).
        classes: `(n,)` each image's class; a class enters with at least MIN_CLASS_RANK images and
            neither a nor b constant in it.
        permutations: draws of the permutation test; seed: their seed.

    Returns:
        `{"effect", "p", "n", "classes", "per_class", "test"}`; per_class = `{class: {"n", "rho"}}`.
    """
    a, b, classes = (np.asarray(v).ravel() for v in (a, b, classes))
    if not a.shape == b.shape == classes.shape:
        raise ValueError(f"`a`, `b` and `classes` must have one value per image. Received: sizes {a.size}, {b.size}, "
                         f"{classes.size}")
    rng = np.random.default_rng(seed)
    per_class, total, null, n = {}, 0.0, np.zeros(permutations), 0
    for c in np.unique(classes):
        at = classes == c
        if at.sum() < MIN_CLASS_RANK or np.ptp(a[at]) == 0 or np.ptp(b[at]) == 0:
            continue
        ra, rb = _centred_ranks(a[at]), _centred_ranks(b[at])
        rho = float(ra @ rb)
        per_class[str(int(c))] = {"n": int(at.sum()), "rho": rho}
        total += at.sum() * rho
        null += at.sum() * (rng.permuted(np.tile(rb, (permutations, 1)), axis=1) @ ra)
        n += int(at.sum())
    if n == 0:
        return {"effect": float("nan"), "p": float("nan"), "n": 0, "classes": 0, "per_class": {}}
    effect = total / n
    return {"effect": float(effect), "p": _permutation_p(effect, null / n), "n": n, "classes": len(per_class),
            "per_class": per_class, "test": "within-class Spearman (weights n_k), permutation within classes"}


def pool_over_seeds(values) -> dict:
    """Two-stage random-effects estimate over seeds: the mean of the seeds' estimates, t interval and t-test.

    Args:
        values: `{seed: estimate}` or `(n,)` estimates, one per seed.

    Returns:
        `{"n", "mean", "sd", "ci95", "p"}`: ci95 = mean ± t_{0.975, n-1} · sd / sqrt(n); p: the two-sided one-sample
        t-test against 0. The spread of the seeds' estimates holds both the sampling error of each seed and the
        variation between seeds. sd, ci95 and p are None / NaN below 2 seeds.
    """
    from scipy import stats

    v = np.asarray(list(values.values()) if isinstance(values, dict) else values, np.float64).ravel()
    if v.size == 0:
        raise ValueError("`values` must hold at least one seed's estimate. Received: 0 values")
    out = {"n": int(v.size), "mean": float(v.mean()), "sd": None, "ci95": None, "p": float("nan")}
    if v.size >= 2:
        sd = float(v.std(ddof=1))
        half = float(stats.t.ppf(0.975, v.size - 1)) * sd / math.sqrt(v.size)
        p = 1.0 if sd == 0 and out["mean"] == 0 else (0.0 if sd == 0 else float(stats.ttest_1samp(v, 0.0).pvalue))
        out.update(sd=sd, ci95=[out["mean"] - half, out["mean"] + half], p=p)
    return out
