"""The pair benchmark's verdicts and targets from its per-pair values alone, by the class benchmark's rule.

The rule and its code are `benchmarks.evaluation.verdicts` (docs/evaluation.md, "Verdict rule"); the
pair benchmark's scores, kinds and margins are declared in docs/pairs.md ("Verdict rule and margins"):
one twentieth of each score's span, the region shares' [0, 1] and, for the areas under the oriented
pair distance, a curve that stays at the data set's verification threshold tau over the fraction axis.
The probe is compared with every other method; Holm runs over both edges of every comparison of a kind.

    python -m benchmarks.evaluation.pairs --from-results    # the verdicts, targets and PAIRS.md again
"""

from __future__ import annotations

import numpy as np

from benchmarks.evaluation import verdicts

# score -> (higher is better, kind); the kind "region" needs a known region
SCORES = {"rank_accuracy": (True, "region"), "relevance_mass": (True, "region"), "distractor_share": (False, "region"),
          "deletion_zero": (False, "removal"), "deletion_blur": (False, "removal"), "road_morf": (False, "removal"),
          "road_lerf": (True, "removal")}
PRIMARY = {"region": "rank_accuracy", "removal": "road_morf"}
JUDGED = ("probe",)
TARGET_RIVALS = ("distance_explainer", "sbsm", "occlusion")
REGION_SPAN = 1.0
# the fraction axis of each removal area: deletion runs from 0 to 1, ROAD from 0 to 0.9 (verdicts.AXIS_LENGTH)
AXIS = {"deletion_zero": verdicts.AXIS_LENGTH["removal"], "deletion_blur": verdicts.AXIS_LENGTH["removal"],
        "road_morf": verdicts.AXIS_LENGTH["road"], "road_lerf": verdicts.AXIS_LENGTH["road"]}


def margins(kind: str, thresholds: dict, datasets) -> dict:
    """data set -> score -> delta of the scores of `kind`, the margins of docs/pairs.md.

    Args:
        kind: "region" or "removal".
        thresholds: data set -> tau, the calibrated verification threshold (pairs.json's `calibration`).
        datasets: the data sets compared on the kind.
    """
    if kind not in PRIMARY:
        raise ValueError(f"`kind` must be one of {sorted(PRIMARY)}. Received: {kind!r}")
    out = {}
    for ds in datasets:
        if kind == "removal" and not thresholds.get(ds, 0) > 0:
            raise ValueError(f"`thresholds` must hold a positive tau for {ds!r}. Received: {thresholds.get(ds)}")
        out[ds] = {s: verdicts.MARGIN_FRACTION * (REGION_SPAN if kind == "region" else AXIS[s] * thresholds[ds])
                   for s, (_, k) in SCORES.items() if k == kind}
    return out


def all_verdicts(per_pair_by_set: dict, thresholds: dict) -> dict:
    """kind -> the comparisons (`verdicts.comparisons`), the beats table, the margins and the family size.

    Args:
        per_pair_by_set: data set -> method -> score -> `(n_scored,)` per-pair values.
        thresholds: data set -> tau.
    """
    out = {}
    for kind in PRIMARY:
        higher = {s: up for s, (up, k) in SCORES.items() if k == kind}
        per_pair = {ds: {m: {s: v for s, v in by.items() if s in higher and np.size(v)} for m, by in by_method.items()}
                    for ds, by_method in per_pair_by_set.items()}
        per_pair = {ds: by for ds, by in per_pair.items() if any(by_m for by_m in by.values())}
        if not per_pair:
            continue
        margin = margins(kind, thresholds, per_pair)
        rows = verdicts.comparisons(per_pair, kind, margin, higher=higher, judged=JUDGED)
        out[kind] = {"family_size": 2 * len(rows), "n_comparisons": len(rows), "alpha": verdicts.ALPHA,
                     "primary": PRIMARY[kind], "margin_fraction": verdicts.MARGIN_FRACTION, "margins": margin,
                     "comparisons": rows,
                     "beats": verdicts.beats(rows, kind, primary=PRIMARY[kind], judged=JUDGED)}
    return out


def targets(results: dict) -> list:
    """The declared targets, each with the numbers that decide it and `met` (results: pairs.json with `verdicts`)."""
    out = []
    pairs = results["datasets"].get("pairs", {}).get("methods", {})
    probe = pairs.get("probe")
    if probe is None:
        return out
    table = results["verdicts"].get("region", {}).get("beats", {}).get("pairs", {}).get("probe", {})
    for rival in TARGET_RIVALS:
        name = f"beats {rival} on the region scores (better on rank accuracy, not worse shown on the others)"
        if rival not in pairs:
            out.append({"target": name, "met": None, "note": "not run"})
            continue
        cell = table.get(rival)
        if cell is None:
            out.append({"target": name, "met": None, "note": "no scored pair"})
        else:
            out.append({"target": name, "probe": probe["scores"]["rank_accuracy"]["mean"],
                        "rival": pairs[rival]["scores"]["rank_accuracy"]["mean"], "verdict": cell["primary"],
                        "worse_on": cell["worse_on"], "not_shown_on": cell["not_shown_on"], "met": cell["beats"]})
        out.append({"target": f"f calls at most a fifth of {rival}'s", "probe": probe["n_calls"],
                    "rival": pairs[rival]["n_calls"], "ratio": probe["n_calls"] / pairs[rival]["n_calls"],
                    "met": probe["n_calls"] <= pairs[rival]["n_calls"] / 5})
    share = probe["scores"]["distractor_share"]
    out.append({"target": "at most 0.05 of the top-|R| pixels on the shared distractors",
                "probe": None if share is None else share["mean"], "met": None if share is None else share["mean"] <= 0.05})
    flips = [results["datasets"][ds]["methods"]["probe"]["flip_rate"] for ds in results["datasets"]]
    asked = [2 * results["datasets"][ds]["pairs"] for ds in results["datasets"]]
    rate = float(np.average(flips, weights=asked))
    out.append({"target": "verification counterfactuals flip the verdict on at least 90% of the pairs asked about",
                "probe": rate, "by_dataset": dict(zip(results["datasets"], flips)), "met": rate >= 0.9})
    return out


def load_per_pair(npz, methods_order) -> dict:
    """data set -> method -> score -> `(n_scored,)` from pairs_per_pair.npz (keys `dataset/score/method`), methods
    in `methods_order` (the probe first), scores of `SCORES` only."""
    out = {}
    for key in npz.files:
        ds, score, method = key.split("/")
        if score in SCORES:
            out.setdefault(ds, {}).setdefault(method, {})[score] = np.asarray(npz[key], np.float64)
    rank = {m: i for i, m in enumerate(methods_order)}
    return {ds: {m: by[m] for m in sorted(by, key=lambda m: rank.get(m, len(rank)))} for ds, by in out.items()}


def recompute(results: dict, per_pair_by_set: dict) -> dict:
    """`results` with its `verdicts` and `targets` recomputed from the per-pair values (nothing measured again)."""
    thresholds = {ds: cal["threshold"] for ds, cal in results["calibration"].items()}
    results = {k: v for k, v in results.items() if k != "tests"}  # the earlier rule's Wilcoxon rows
    results["verdicts"] = all_verdicts(per_pair_by_set, thresholds)
    results["targets"] = targets(results)
    return results
