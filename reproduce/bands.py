"""The REPORT.md quantities of one run, their band across training seeds, and whether a run falls inside it.

Part of the reproduction harness (imported as `reproduce.bands` by reproduce/seeds.py and
reproduce/report.py). Pure functions of the JSON records the other scripts
write: no TensorFlow.

The band of a quantity is the 95% prediction interval for one more seed under
a normal model of the seeds' values: mean ± t_{0.975, n-1} · sd · sqrt(1 + 1/n)
(n seeds, sd with n - 1 degrees of freedom). With five seeds the range
[min, max] would miss a sixth seed's value one time in three even when nothing
is wrong, so the range is shown but the check uses the prediction interval.
Wall times are left out: they measure the machine, not the seed.
"""

from __future__ import annotations

import math

import numpy as np

MIN_SEEDS = 5  # a band from fewer seeds is not shown or checked
FIGURES = ("fig4", "fig5", "fig6", "fig7", "fig8", "fig9")
METRICS = (
    ("prototype_accuracy", "nearest-prototype test accuracy"),
    ("train_prototype_accuracy", "nearest-prototype training accuracy"),
    ("recon_sse_decoder", "mean SSE of g(f(x))"),
    ("recon_sse_autoencoder", "mean SSE of g(e(x)), final decoder"),
    ("recon_sse_autoencoder_before_finetune", "mean SSE of g(e(x)) before fine-tuning"),
    ("recon_sse_decoder_before_finetune", "mean SSE of g(f(x)) before fine-tuning"),
    ("alignment_sse", "mean ‖e(x) − f(x)‖²"),
    ("recon_sse_class_mean_image", "SSE of the class-mean image"),
    ("embedding_within_class_sq_spread", "within-class spread of f(x)"),
    ("embedding_between_class_sq_distance", "squared distance between class means of f(x)"),
)
FIGURE_FIELDS = (
    ("recon_sse", "SSE of g(f(x))"),
    ("nearest_distance", "distance to the nearest prototype"),
    ("sigma", "sigma"),
    ("mask_on_ink", "mask on ink"),
    ("share_in_top_abs", "mask share where g(c_k), g(c_l) differ most (diagnostic, uses g)"),
    ("share_in_top_k_over_l", "mask share on g(c_k)'s extra ink (diagnostic, uses g)"),
)
CONVERGENCE_N = (50, 500, 5000)
CLAIM_NAMES = ("fig4_7", "fig8", "fig9")
# a claim's per-run estimates kept per seed: the uncontrolled statistic and the four contrasts of reproduce/claims.py
CONTROLS = ("intensity", "random")
CONTRASTS = tuple(f"{prefix}minus_{c}" for c in CONTROLS for prefix in ("", "within_"))


def run_quantities(metrics: dict, figures: list, convergence: dict | None = None, claims: dict | None = None) -> dict:
    """Every numeric REPORT.md quantity of one run, by a stable name.

    Args:
        metrics: the run's metrics.json.
        figures: the records of Figs. 4-9 (`paper.PaperRun.explain_figure` / figures/figN.json).
        convergence: figures/convergence.json's record (`iou_mean` by N), or None.
        claims: figures/claims.json's record, or None.

    Returns:
        `{name: float}`; names are `metrics.KEY`, `figN.FIELD`, `figs4_7.mask_on_ink`,
        `convergence.iou_N` and `claims.NAME.effect`.
    """
    out = {f"metrics.{key}": float(metrics[key]) for key, _ in METRICS if key in metrics}
    for f in figures:
        name = f["figure"]
        values = {
            "recon_sse": f["recon_sse"], "nearest_distance": f["nearest_prototypes"][0]["distance"],
            "sigma": f["sigma"], "mask_on_ink": f["mask_on_ink"],
        }
        for key in ("share_in_top_abs", "share_in_top_k_over_l"):
            if "class_difference" in f:
                values[key] = f["class_difference"][key]
        out.update({f"{name}.{k}": float(v) for k, v in values.items()})
    good = [f["mask_on_ink"] for f in figures if f["figure"] in FIGURES[:4]]
    if good:
        out["figs4_7.mask_on_ink"] = float(np.mean(good))
    if convergence:
        iou = convergence["iou_mean"]
        for n in CONVERGENCE_N:
            value = iou.get(str(n), iou.get(n))
            if value is not None:
                out[f"convergence.iou_{n}"] = float(value)
    for name in CLAIM_NAMES if claims else ():
        c = claims["claims"].get(name)
        if c is None:
            continue
        out[f"claims.{name}.effect"] = float(c.get("uncontrolled", c)["effect"])  # a record without controls: "effect"
        for control, parts in c.get("contrasts", {}).items():
            for part, t in parts.items():
                out[f"claims.{name}.{'within_' if part == 'within_class' else ''}minus_{control}"] = float(t["effect"])
    return out


def label(name: str) -> str:
    """A reader's label for a quantity name of `run_quantities`."""
    head, _, key = name.partition(".")
    if head == "metrics":
        return dict(METRICS).get(key, key)
    if head in FIGURES:
        return f"{head}: {dict(FIGURE_FIELDS).get(key, key)}"
    if head == "figs4_7":
        return "Figs. 4-7: mean mask on ink"
    if head == "convergence":
        return f"top-q IoU at N = {key.split('_')[1]} against N = 20,000"
    if head == "claims":
        claim, _, stat = key.partition(".")
        if stat == "effect":
            return f"claim {claim}: uncontrolled statistic"
        within = stat.startswith("within_")
        return f"claim {claim}: method minus {stat.split('_')[-1]} mask ({'within classes' if within else 'pooled'})"
    return name


def band(values) -> dict:
    """Summary of one quantity across seeds.

    Args:
        values: the seeds' values, `(n,)`.

    Returns:
        `{"n", "mean", "sd", "min", "max", "band"}`, `band` = [low, high], the
        95% prediction interval for one more seed (None for n < 2; sd is None for n < 2).
    """
    from scipy import stats

    v = np.asarray(values, np.float64).ravel()
    if v.size == 0:
        raise ValueError("`values` must hold at least one seed's value. Received: 0 values")
    n = int(v.size)
    out = {"n": n, "mean": float(v.mean()), "min": float(v.min()), "max": float(v.max()), "sd": None, "band": None}
    if n >= 2:
        sd = float(v.std(ddof=1))
        half = float(stats.t.ppf(0.975, n - 1)) * sd * math.sqrt(1 + 1 / n)
        out.update(sd=sd, band=[out["mean"] - half, out["mean"] + half])
    return out


def summarise(per_seed: dict) -> dict:
    """`{name: band(values)}` over the quantities every seed has, with the values by seed.

    Args:
        per_seed: `{seed: run_quantities(...)}`.
    """
    if not per_seed:
        raise ValueError("`per_seed` must hold at least one seed. Received: none")
    names = sorted(set.intersection(*(set(q) for q in per_seed.values())))
    seeds = sorted(per_seed, key=int)
    return {name: {"values": {str(s): per_seed[s][name] for s in seeds}, **band([per_seed[s][name] for s in seeds])}
            for name in names}


def inside(value: float, summary: dict) -> bool | None:
    """Whether `value` lies in the quantity's band (None when there is no band)."""
    if summary.get("band") is None:
        return None
    low, high = summary["band"]
    # a quantity equal on every seed (sd = 0) has a zero-width band: equality is inside
    return bool(low - 1e-12 * max(1.0, abs(low)) <= value <= high + 1e-12 * max(1.0, abs(high)))


def check_lines(own: dict, seeds_record: dict, min_seeds: int = MIN_SEEDS) -> list:
    """One line per quantity: this run's value, the band, and whether it falls inside.

    Args:
        own: `run_quantities` of the user's run.
        seeds_record: figures/seeds.json.
        min_seeds: fewer finished seeds give one line saying there is no band.
    """
    done = seeds_record.get("seeds_done", [])
    if len(done) < min_seeds:
        return [f"seed band: not available ({len(done)} of the {min_seeds} seeds needed are in seeds.json)"]
    lines = []
    for name, s in seeds_record["quantities"].items():
        if name not in own:
            continue
        ok = inside(own[name], s)
        word = "inside" if ok else "OUTSIDE"
        lines.append(f"{word:7s} {name} = {own[name]:.4g}; band over {s['n']} seeds [{s['band'][0]:.4g}, "
                     f"{s['band'][1]:.4g}] (mean {s['mean']:.4g}, sd {s['sd']:.2g}, range {s['min']:.4g}-{s['max']:.4g})")
    return lines


def claims_across_seeds(seeds_record: dict, signs: dict, min_seeds: int = MIN_SEEDS) -> dict:
    """Each claim pooled over seeds (reproduce/claims.py's rule): random-effects estimates and verdicts.

    Args:
        seeds_record: figures/seeds.json (its `quantities` hold `claims.NAME.STAT` by seed; its `claims` the
            seeds' own verdicts).
        signs: `{claim name: claimed sign}` (reproduce/claims.py's CLAIMS).
        min_seeds: fewer seeds give no verdict.

    Returns:
        `{name: {"pooled": {STAT: claim_stats.pool_over_seeds(...)}, "verdict", "uncontrolled_verdict",
        "verdicts"}}`: STAT is "effect" (the uncontrolled statistic) and, when every seed has them, the four
        contrasts; "verdict" applies the run's rule to the pooled contrasts (Holm over all of them),
        "uncontrolled_verdict" the uncontrolled rule to the pooled statistic (Holm over the claims).
    """
    from reproduce import claim_stats as st

    quantities = seeds_record.get("quantities", {})
    n = len(seeds_record.get("seeds_done", []))
    out = {}
    for name in CLAIM_NAMES:
        stats = {stat: quantities[f"claims.{name}.{stat}"]["values"] for stat in ("effect", *CONTRASTS)
                 if f"claims.{name}.{stat}" in quantities}
        out[name] = {"pooled": {stat: st.pool_over_seeds(v) for stat, v in stats.items()},
                     "verdicts": seeds_record.get("claims", {}).get(name, {}).get("verdicts", {})}
    keys = [(name, stat) for name in CLAIM_NAMES for stat in CONTRASTS]
    complete = all(stat in out[name]["pooled"] for name, stat in keys)
    adjusted = dict(zip(keys, st.holm([out[k[0]]["pooled"][k[1]]["p"] for k in keys]))) if complete else {}
    old = dict(zip(CLAIM_NAMES, st.holm([out[name]["pooled"].get("effect", {"p": float("nan")})["p"]
                                          for name in CLAIM_NAMES])))
    for name in CLAIM_NAMES:
        pooled, sign = out[name]["pooled"], signs[name]
        for stat, p in [(stat, adjusted.get((name, stat))) for stat in CONTRASTS] + [("effect", old[name])]:
            if stat in pooled:
                pooled[stat]["p_holm"] = float(p) if p is not None else float("nan")
        if n < min_seeds:
            out[name]["verdict"] = out[name]["uncontrolled_verdict"] = f"not shown ({n} of {min_seeds} seeds)"
            continue
        out[name]["verdict"] = (st.all_agree([(pooled[s]["mean"], pooled[s]["p_holm"]) for s in CONTRASTS], sign, n,
                                             min_seeds) if complete
                                else "not shown (seeds.json holds no per-seed control contrasts)")
        e = pooled.get("effect")
        out[name]["uncontrolled_verdict"] = (st.verdict(e["mean"], e["p_holm"], sign, n, min_seeds) if e
                                             else "not shown (no per-seed statistic)")
    return out


def render_band_table(own: dict, seeds_record: dict | None, min_seeds: int = MIN_SEEDS) -> list:
    """Markdown lines: this run's value beside the band across seeds, for every quantity."""
    if not seeds_record or len(seeds_record.get("seeds_done", [])) < min_seeds:
        done = len(seeds_record.get("seeds_done", [])) if seeds_record else 0
        return ["## This run against the band across training seeds", "",
                f"No band yet: seeds.json holds {done} of the {min_seeds} finished seeds it needs (`make seeds`).", ""]
    seeds = ", ".join(str(s) for s in seeds_record["seeds_done"])
    lines = [
        "## This run against the band across training seeds",
        "",
        f"From figures/seeds.json (`make seeds`: the same reproduction with training seeds {seeds}). Band: the 95% "
        "prediction interval for one more seed, mean ± t·sd·√(1 + 1/n).",
        "",
        "| quantity | this run | seeds: mean (sd) | seeds: min-max | band | inside |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in seeds_record["quantities"].items():
        value = own.get(name)
        ok = None if value is None else inside(value, s)
        lines.append(
            f"| {label(name)} (`{name}`) | {'—' if value is None else f'{value:.4g}'} | {s['mean']:.4g} ({s['sd']:.2g}) | "
            f"{s['min']:.4g}-{s['max']:.4g} | [{s['band'][0]:.4g}, {s['band'][1]:.4g}] | "
            f"{'—' if ok is None else ('yes' if ok else '**no**')} |"
        )
    return lines + [""]


def across_seeds_record(claims: dict, seeds_record: dict | None) -> dict:
    """The content of figures/claims_seeds.json: `claims_across_seeds` of seeds.json, the signs from claims.json.

    Args:
        claims: figures/claims.json (each claim's "sign").
        seeds_record: figures/seeds.json, or None (no seeds: every verdict "not shown").
    """
    signs = {name: claims["claims"][name]["sign"] for name in CLAIM_NAMES}
    seeds_record = seeds_record or {}
    return {"source": "figures/seeds.json", "seeds_done": list(seeds_record.get("seeds_done", [])),
            "statistics": {"effect": "the uncontrolled statistic", **{k: k.replace("_", " ") for k in CONTRASTS}},
            "claims": claims_across_seeds(seeds_record, signs)}


def _interval(t: dict) -> str:
    ci = t.get("ci95")
    return f"{t['effect']:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci and all(map(math.isfinite, ci)) else "")


def _claims_contrast_rows(claims: dict) -> list:
    """Markdown rows: per claim, pooled and within classes, the method, each control and each contrast."""
    lines = ["| claim | estimate | method | intensity mask | random mask | method − intensity, Holm p | "
             "method − random, Holm p |", "|---|---|---|---|---|---|---|"]
    for name in CLAIM_NAMES:
        c = claims["claims"][name]
        for part, words in (("pooled", "pooled"), ("within_class", "within classes")):
            contrasts = [f"{_interval(c['contrasts'][k][part])}, {c['contrasts'][k][part]['p_holm']:.2g}" for k in CONTROLS]
            lines.append(f"| {name} | {words} | {_interval(c['method'][part])} | "
                         f"{' | '.join(_interval(c['controls'][k][part]) for k in CONTROLS)} | {' | '.join(contrasts)} |")
    return lines


def _claims_class_rows(claims: dict) -> list:
    """Markdown rows: per claim and class, n and the method's and each control's mean (Fig. 8: rho)."""
    classes = sorted({k for name in CLAIM_NAMES for k in claims["claims"][name]["per_class"]}, key=int)
    lines = [f"| claim | score | {' | '.join(classes)} |", "|---|---|" + "---|" * len(classes)]
    fmt = lambda v: "—" if v is None else (f"{v}" if isinstance(v, int) else f"{v:.3f}")
    for name in CLAIM_NAMES:
        per = claims["claims"][name]["per_class"]
        for who in ("n", "method", *CONTROLS):
            lines.append(f"| {name} | {who} | {' | '.join(fmt(per.get(k, {}).get(who)) for k in classes)} |")
    return lines


def render_claims_table(claims: dict | None, across: dict | None) -> list:
    """Markdown lines: each paper claim's verdict for this run and pooled over seeds, its controls and classes.

    Args:
        claims: figures/claims.json (reproduce/claims.py), or None.
        across: `across_seeds_record` of figures/seeds.json (figures/claims_seeds.json), or None.
    """
    lines = ["## The paper's claims as statistics", ""]
    if not claims:
        return lines + ["No figures/claims.json: run `python -m reproduce.claims` (part of `make reproduce`).", ""]
    per_image = claims.get("per_image", {})
    across = across or across_seeds_record(claims, None)
    done = len(across["seeds_done"])
    lines += [
        "Computed by reproduce/claims.py by the rules in its docstring, declared before any number was seen: masks "
        "scored against class differences of the mean training images (data, not the decoder g); each claim tested "
        "as the method minus two masks computed from the input alone (its q brightest pixels; q pixels drawn at "
        "random), pooled and within classes, Holm's correction over the 12 contrasts; a claim holds only when all "
        f"four of its contrasts agree. This run: {len(per_image.get('correct_index', []))} correctly classified "
        f"images of a fixed subset of {claims.get('subset_size')} test images and all "
        f"{len(per_image.get('confused_index', []))} misclassified test images. Across seeds: figures/seeds.json "
        f"({done} seeds), each statistic's mean over the seeds with a Student-t 95% interval over seeds; the "
        "uncontrolled statistic (method alone, against 0) is kept beside with its own verdict and decides nothing.",
        "",
        "| claim | measure | this run | this run, uncontrolled: value [95% CI], n, Holm p | uncontrolled verdict | "
        "seeds: pooled uncontrolled [95% CI] | seeds: uncontrolled verdict | each seed's verdict | **across seeds** |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in CLAIM_NAMES:
        c, s = claims["claims"][name], across["claims"][name]
        u, e = c["uncontrolled"], s["pooled"].get("effect")
        pooled = "—" if not e or e["ci95"] is None else f"{e['mean']:.3f} [{e['ci95'][0]:.3f}, {e['ci95'][1]:.3f}]"
        by_seed = ", ".join(f"{seed}: {v}" for seed, v in s["verdicts"].items()) or "—"
        lines.append(f"| {c['statement']} | {c['measure']} | **{c['verdict']}** | {_interval(u)}, n = {u['n']}, "
                     f"{u['p_holm']:.2g} | {u['verdict']} | {pooled} | {s['uncontrolled_verdict']} | {by_seed} | "
                     f"**{s['verdict']}** |")
    lines += ["", "This run's contrasts (Figs. 4-7 and 9: means of the scores, within classes the mean of the class "
              "means; Fig. 8: Spearman's rho with the SSE, within classes the mean of the per-class rho weighted by "
              "the class's images):", "", *_claims_contrast_rows(claims), "",
              "Per class (the true label): images, and the mean score of each mask (Fig. 8: rho with the SSE):", "",
              *_claims_class_rows(claims)]
    return lines + [""]
