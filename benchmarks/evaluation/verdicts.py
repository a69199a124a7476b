"""The benchmark's verdicts from the per-image values alone, by the rule of docs/evaluation.md.

Every method of this project is compared with every other method on the same
images: a two-sided Wilcoxon signed-rank test per metric
(`siamese_xai.evaluation.metrics.paired_test`); all p-values of one kind of metric
(faithfulness; ground truth) over every data set form one family, adjusted by
Holm's method (`metrics.holm`). On one metric A is better / worse than B when
the adjusted p < 0.05 and the median difference lies on that side. A *beats*
B when it is better on the primary metric of the kind and worse on none of
the others of the kind.
"""

from __future__ import annotations

import numpy as np

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


def comparisons(per_image: dict, kind: str) -> list:
    """Every (data set, A, B, metric) compared, with its test and Holm-adjusted p over the family `kind`.

    Args:
        per_image: data set -> method -> metric -> `(n,)` values (the npz's content).
        kind: "faithfulness" or "ground truth".

    Returns:
        A list of dicts `{"dataset", "a", "b", "metric", "p", "p_holm", "median_difference",
        "mean_difference", "verdict"}` (verdict of A against B: better / worse / overlap).
    """
    names = [m.name for m in registry.METRICS if m.kind == kind]
    rows = []
    for ds, by_method in per_image.items():
        methods = list(by_method)
        for a in (m for m in methods if m in registry.JUDGED):
            for b in methods:
                if b == a or (b in registry.JUDGED and methods.index(b) < methods.index(a)):
                    continue  # each pair of judged methods is tested once
                for metric in names:
                    if metric not in by_method[a] or metric not in by_method[b]:
                        continue
                    va, vb = np.asarray(by_method[a][metric]), np.asarray(by_method[b][metric])
                    ok = np.isfinite(va) & np.isfinite(vb)
                    test = metrics.paired_test(va[ok], vb[ok], registry.METRIC_BY_NAME[metric].higher_is_better)
                    rows.append({"dataset": ds, "a": a, "b": b, "metric": metric, **test})
    if rows:
        adjusted = metrics.holm([r["p"] for r in rows])
        for r, p in zip(rows, adjusted):
            r["p_holm"] = float(p)
            r["verdict"] = metrics.paired_verdict(r, p, ALPHA)
    return rows


def _flip(verdict: str) -> str:
    return {"better": "worse", "worse": "better"}.get(verdict, verdict)


def beats(rows: list, kind: str) -> dict:
    """data set -> A -> B -> `{"beats", "primary", "worse_on"}` for every compared pair (both directions for judged pairs)."""
    primary = registry.PRIMARY[kind]
    table = {}
    for r in rows:
        for a, b, verdict in ((r["a"], r["b"], r["verdict"]), (r["b"], r["a"], _flip(r["verdict"]))):
            if a not in registry.JUDGED:
                continue
            cell = table.setdefault(r["dataset"], {}).setdefault(a, {}).setdefault(b, {"primary": None, "worse_on": []})
            if r["metric"] == primary:
                cell["primary"] = verdict
            elif verdict == "worse":
                cell["worse_on"].append(r["metric"])
    for by_a in table.values():
        for by_b in by_a.values():
            for cell in by_b.values():
                cell["beats"] = cell["primary"] == "better" and not cell["worse_on"]
    return table


def all_verdicts(per_image_by_kind: dict) -> dict:
    """kind -> `{"family_size", "comparisons", "beats"}` for each kind of metric present."""
    out = {}
    for kind, per_image in per_image_by_kind.items():
        rows = comparisons(per_image, kind)
        out[kind] = {"family_size": len(rows), "alpha": ALPHA, "primary": registry.PRIMARY[kind],
                     "comparisons": rows, "beats": beats(rows, kind)}
    return out
