"""The benchmark's verdicts from the per-image values alone, by the rule of docs/evaluation.md.

Every method of this project is compared with every other method on the same
images. On one number, with d the per-image difference A - B signed so that
d > 0 is A's better side and delta the number's margin (`margins`), two
paired t-tests ask whether the mean of d differs from +delta and from -delta
(`edge_test`); all tests of one kind of number (faithfulness; ground truth)
over every data set form one family, adjusted by Holm's method
(`siamese_xai.evaluation.metrics.holm`). The two edges' conclusions give the
verdict (`verdict_from_edges`): better / worse beyond the margin, equivalent,
not worse, not better, or not shown. A *beats* B when it is better on the
primary metric and better, equivalent or not worse on every other number of
the kind. Beside the verdicts: each comparison's power (`power`) and, per
data set, the mean rank of every method over the numbers with their
disagreement (`rank_aggregate`, `kendalls_w`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from benchmarks.evaluation import registry
from siamese_xai.evaluation import metrics

ALPHA = 0.05
# The smallest effect of interest, declared before any verdict was computed under it (docs/evaluation.md):
# one twentieth of the span a number can take. A ground-truth score spans [0, 1]; an area under the margin
# curve spans the area of a curve that stays at the unperturbed margin m-bar over its fraction axis.
MARGIN_FRACTION = 0.05
GROUND_TRUTH_SPAN = 1.0
AXIS_LENGTH = {"road": 0.9, "removal": 1.0}  # the fraction axis of ROAD (0 to 0.9) and of deletion / insertion
# The "beats" verdicts are also counted with every margin scaled by these factors (a sensitivity check).
SENSITIVITY = (0.5, 2.0)
# A number is shown "not worse" (non-inferior) under these verdicts; anything else blocks a "beats".
NOT_WORSE = ("better", "equivalent", "not worse")
_FLIP = {"better": "worse", "worse": "better", "not worse": "not better", "not better": "not worse"}


# -- the pure statistics ---------------------------------------------------------------------------------------

def edge_test(d, edge: float) -> tuple:
    """Two-sided paired t-test of mean(d) = edge.

    Args:
        d: `(n,)` per-image differences, signed so that d > 0 is the better side.
        edge: the tested mean (+delta or -delta).

    Returns:
        `(p, side)`: the two-sided p (t with n - 1 degrees of freedom) and +1 / -1 / 0 the side of
        mean(d) from the edge. Where every d_i is equal (no spread) p = 0, or 1 where they equal the edge;
        fewer than 2 values give p = 1.
    """
    d = np.asarray(d, np.float64).ravel()
    if d.size == 0 or not np.isfinite(d).all():
        raise ValueError(f"`d` must be a non-empty finite array. Received: {d.size} values, finite: {np.isfinite(d).all()}")
    mean = float(d.mean())
    side = int(np.sign(mean - edge))
    if d.size < 2:
        return 1.0, side
    sd = float(d.std(ddof=1))
    if sd == 0.0 or math.isclose(sd, 0.0, abs_tol=1e-15 * max(1.0, abs(mean))):
        return (1.0 if math.isclose(mean, edge, rel_tol=0.0, abs_tol=1e-12) else 0.0), side
    t = (mean - edge) / (sd / math.sqrt(d.size))
    return float(2 * stats.t.sf(abs(t), d.size - 1)), side


def verdict_from_edges(lower: int, upper: int) -> str:
    """The verdict on one number from the conclusions at -delta (`lower`) and +delta (`upper`).

    Args:
        lower, upper: +1 where the mean difference was shown above that edge, -1 below, 0 nothing shown.

    Returns:
        "better" (above +delta), "worse" (below -delta), "equivalent" (above -delta and below +delta),
        "not worse" (above -delta only), "not better" (below +delta only) or "not shown".
    """
    if upper > 0:
        return "better"
    if lower < 0:
        return "worse"
    if lower > 0 and upper < 0:
        return "equivalent"
    return "not worse" if lower > 0 else "not better" if upper < 0 else "not shown"


def power(delta: float, sd: float, n: int, family_size: int, alpha: float = ALPHA) -> float:
    """The probability that a test at one edge rejects when the true mean lies delta from it.

    Normal approximation with the observed standard deviation `sd` of the paired differences, at the
    Bonferroni level alpha / family_size (two-sided): Phi(delta sqrt(n) / sd - z_{1 - alpha / (2 m)}).
    No spread (sd = 0) gives 1.
    """
    if delta <= 0 or n < 1 or family_size < 1:
        raise ValueError(f"`delta`, `n` and `family_size` must be positive. Received: {delta}, {n}, {family_size}")
    if sd == 0:
        return 1.0
    return float(stats.norm.cdf(delta * math.sqrt(n) / sd - stats.norm.ppf(1 - alpha / (2 * family_size))))


def kendalls_w(ranks) -> float:
    """Kendall's coefficient of concordance of m rankings of n items, with the tie correction.

    Args:
        ranks: `(m, n)` each row one number's ranks of the n methods (ties as mean ranks).

    Returns:
        W = 12 S / (m^2 (n^3 - n) - m sum_j T_j), S the squared deviations of the methods' rank sums from
        their mean, T_j = sum over tie groups of row j of (t^3 - t). 1 where every ranking is the same.
    """
    r = np.asarray(ranks, np.float64)
    if r.ndim != 2 or r.shape[0] < 2 or r.shape[1] < 2:
        raise ValueError(f"`ranks` must be (m >= 2, n >= 2). Received: {r.shape}")
    m, n = r.shape
    sums = r.sum(0)
    s = float(((sums - sums.mean()) ** 2).sum())
    ties = sum(float((c ** 3 - c).sum()) for c in (np.unique(row, return_counts=True)[1] for row in r))
    denominator = m * m * (n ** 3 - n) - m * ties
    return 1.0 if denominator == 0 else 12 * s / denominator


def discordant_share(ranks) -> float:
    """The share of (pair of rows, pair of items) that the two rows order oppositely (ties: not opposite)."""
    r = np.asarray(ranks, np.float64)
    m, n = r.shape
    i, j = np.triu_indices(n, 1)
    signs = np.sign(r[:, i] - r[:, j])  # (m, pairs of items)
    a, b = np.triu_indices(m, 1)
    return float((signs[a] * signs[b] < 0).mean())


def _higher(kind: str, higher: dict | None) -> dict:
    """metric -> higher is better: `higher` where given (another benchmark's numbers), else the registry's of `kind`."""
    if higher is not None:
        return dict(higher)
    return {m.name: m.higher_is_better for m in registry.METRICS if m.kind == kind}


def rank_aggregate(means: dict, higher: dict | None = None) -> dict:
    """Mean rank of each method over the numbers, and the numbers' disagreement.

    Args:
        means: metric -> method -> mean value (every metric over the same methods).
        higher: metric -> higher is better (default: the registry's).

    Returns:
        `{"metrics", "ranks" (metric -> method -> rank, 1 = best), "mean_rank" (method -> mean rank),
        "kendalls_w", "discordant_share"}`.
    """
    names = list(means)
    methods = list(means[names[0]])
    rows = []
    for metric in names:
        v = np.array([means[metric][m] for m in methods], np.float64)
        up = higher[metric] if higher is not None else registry.METRIC_BY_NAME[metric].higher_is_better
        better_first = -v if up else v
        rows.append(stats.rankdata(better_first))
    ranks = np.array(rows)
    out = {"metrics": names, "ranks": {metric: dict(zip(methods, map(float, row))) for metric, row in zip(names, ranks)},
           "mean_rank": dict(zip(methods, map(float, ranks.mean(0))))}
    if len(names) >= 2:
        out["kendalls_w"], out["discordant_share"] = kendalls_w(ranks), discordant_share(ranks)
    return out


# -- the benchmark's verdicts ----------------------------------------------------------------------------------

def margins(kind: str, datasets, curves: dict | None = None, scale: float = 1.0) -> dict:
    """data set -> metric -> delta, the declared smallest effect of interest (docs/evaluation.md).

    Args:
        kind: "faithfulness" or "ground truth".
        datasets: the data sets of the kind.
        curves: results.json's `curves` (faithfulness: the first point of a ROAD curve is m-bar, the mean
            margin of the unperturbed images).
        scale: a factor on every margin (the sensitivity check).
    """
    out = {}
    for ds in datasets:
        out[ds] = {}
        for m in (m for m in registry.METRICS if m.kind == kind):
            if kind == "ground truth":
                span = GROUND_TRUTH_SPAN
            else:
                if not curves or ds not in curves:
                    raise ValueError(f"`curves` must hold {ds!r}'s ROAD curves (m-bar). Received: {sorted(curves or {})}")
                first = next(iter(curves[ds].values()))
                span = AXIS_LENGTH[m.operator[0]] * float(first["morf"][0])
            out[ds][m.name] = scale * MARGIN_FRACTION * span
    return out


def _pairs(methods, judged):
    for a in (m for m in methods if m in judged):
        for b in methods:
            if b != a and not (b in judged and methods.index(b) < methods.index(a)):
                yield a, b  # each pair of judged methods is tested once


def comparisons(per_image: dict, kind: str, margin: dict, higher: dict | None = None,
                judged: tuple | None = None) -> list:
    """Every (data set, A, B, metric) compared at both edges of its margin, Holm-adjusted over the family `kind`.

    Args:
        per_image: data set -> method -> metric -> `(n,)` values (the npz's content).
        kind: "faithfulness" or "ground truth" (or another benchmark's kind, with `higher`).
        margin: data set -> metric -> delta (`margins`).
        higher: metric -> higher is better, the numbers of the kind (default: the registry's of `kind`).
        judged: the methods whose verdicts are given (default: this project's, `registry.JUDGED`).

    Returns:
        A list of dicts `{"dataset", "a", "b", "metric", "n", "margin", "mean_difference", "median_difference"
        (of A - B), "sd_difference", "p_lower", "p_upper" (raw, at -delta / +delta), "p_lower_holm",
        "p_upper_holm", "power", "verdict"}`, the verdict of A against B.
    """
    up = _higher(kind, higher)
    rows, sides = [], []
    for ds, by_method in per_image.items():
        for a, b in _pairs(list(by_method), registry.JUDGED if judged is None else judged):
            for metric in (n for n in up if n in by_method[a] and n in by_method[b]):
                va, vb = np.asarray(by_method[a][metric], np.float64), np.asarray(by_method[b][metric], np.float64)
                ok = np.isfinite(va) & np.isfinite(vb)
                raw = va[ok] - vb[ok]
                d = raw if up[metric] else -raw
                delta = margin[ds][metric]
                (p_lo, s_lo), (p_up, s_up) = edge_test(d, -delta), edge_test(d, delta)
                rows.append({"dataset": ds, "a": a, "b": b, "metric": metric, "n": int(d.size), "margin": delta,
                             "mean_difference": float(raw.mean()), "median_difference": float(np.median(raw)),
                             "sd_difference": float(d.std(ddof=1)) if d.size > 1 else 0.0,
                             "p_lower": p_lo, "p_upper": p_up})
                sides.append((s_lo, s_up))
    if rows:
        adjusted = metrics.holm([p for r in rows for p in (r["p_lower"], r["p_upper"])])
        for i, (r, (s_lo, s_up)) in enumerate(zip(rows, sides)):
            r["p_lower_holm"], r["p_upper_holm"] = float(adjusted[2 * i]), float(adjusted[2 * i + 1])
            r["power"] = power(r["margin"], r["sd_difference"], r["n"], len(adjusted))
            r["verdict"] = verdict_from_edges(s_lo if r["p_lower_holm"] < ALPHA else 0,
                                              s_up if r["p_upper_holm"] < ALPHA else 0)
    return rows


def beats(rows: list, kind: str, primary: str | None = None, judged: tuple | None = None) -> dict:
    """data set -> A -> B -> `{"beats", "primary", "worse_on", "not_shown_on"}` (both directions for judged pairs).

    `primary` (default: the registry's of `kind`) decides "better"; `judged` as in `comparisons`.

    `worse_on`: the other numbers where A is worse beyond the margin; `not_shown_on`: those where A's
    non-inferiority is not shown (not better, not shown). A beats B when the primary verdict is "better"
    and both lists are empty.
    """
    primary = registry.PRIMARY[kind] if primary is None else primary
    judged = registry.JUDGED if judged is None else judged
    table = {}
    for r in rows:
        for a, b, verdict in ((r["a"], r["b"], r["verdict"]), (r["b"], r["a"], _FLIP.get(r["verdict"], r["verdict"]))):
            if a not in judged:
                continue
            cell = table.setdefault(r["dataset"], {}).setdefault(a, {}).setdefault(
                b, {"primary": None, "worse_on": [], "not_shown_on": []})
            if r["metric"] == primary:
                cell["primary"] = verdict
            elif verdict == "worse":
                cell["worse_on"].append(r["metric"])
            elif verdict not in NOT_WORSE:
                cell["not_shown_on"].append(r["metric"])
    for by_a in table.values():
        for by_b in by_a.values():
            for cell in by_b.values():
                cell["beats"] = cell["primary"] == "better" and not cell["worse_on"] and not cell["not_shown_on"]
    return table


def _beaten(table: dict) -> list:
    return sorted([ds, a, b] for ds, by_a in table.items() for a, by_b in by_a.items()
                  for b, cell in by_b.items() if cell["beats"])


def all_verdicts(per_image_by_kind: dict, margins_by_kind: dict) -> dict:
    """kind -> the verdicts of `comparisons` and `beats`, the rank aggregate per data set and the sensitivity check.

    Args:
        per_image_by_kind: kind -> data set -> method -> metric -> `(n,)` values.
        margins_by_kind: kind -> data set -> metric -> delta (`margins`; the sensitivity check scales it).
    """
    out = {}
    for kind, per_image in per_image_by_kind.items():
        margin = margins_by_kind[kind]
        rows = comparisons(per_image, kind, margin)
        table = beats(rows, kind)
        names = [m.name for m in registry.METRICS if m.kind == kind]
        ranks = {ds: rank_aggregate({n: {m: float(np.nanmean(v[n])) for m, v in by_method.items()} for n in names})
                 for ds, by_method in per_image.items()}
        sensitivity = {}
        for factor in SENSITIVITY:
            scaled = {ds: {n: factor * v for n, v in d.items()} for ds, d in margin.items()}
            sensitivity[str(factor)] = {"beats": _beaten(beats(comparisons(per_image, kind, scaled), kind))}
        out[kind] = {"family_size": 2 * len(rows), "n_comparisons": len(rows), "alpha": ALPHA,
                     "primary": registry.PRIMARY[kind], "margins": margin, "margin_fraction": MARGIN_FRACTION,
                     "comparisons": rows, "beats": table, "rank_aggregate": ranks,
                     "sensitivity": {"factors": list(SENSITIVITY), "beats_at_1": _beaten(table), **sensitivity}}
    return out
