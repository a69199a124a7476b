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
    if claims:
        for name in CLAIM_NAMES:
            if name in claims["claims"]:
                out[f"claims.{name}.effect"] = float(claims["claims"][name]["effect"])
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
        return f"claim {key.split('.')[0]}: effect"
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


def across_seeds_verdict(verdicts) -> str:
    """A claim's verdict over seeds: the common verdict when all seeds agree, else "not shown"."""
    verdicts = list(verdicts)
    if len(verdicts) < MIN_SEEDS:
        return f"not shown ({len(verdicts)} of {MIN_SEEDS} seeds)"
    if len(set(verdicts)) == 1:
        return verdicts[0]
    counts = ", ".join(f"{verdicts.count(v)} {v}" for v in sorted(set(verdicts)))
    return f"not shown (seeds disagree: {counts})"


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


def render_claims_table(claims: dict | None, seeds_record: dict | None, min_seeds: int = MIN_SEEDS) -> list:
    """Markdown lines: one verdict row per paper claim, for this run and across seeds (see reproduce/claims.py)."""
    lines = ["## The paper's claims as statistics", ""]
    if not claims:
        return lines + ["No figures/claims.json: run `python -m reproduce.claims` (part of `make reproduce`).", ""]
    per_image = claims.get("per_image", {})
    lines += [
        "Computed by reproduce/claims.py by the rules in its docstring, declared before any number was seen: masks "
        "scored against class differences of the mean training images (data, not the decoder g), paired tests, "
        f"Holm's correction over the three claims. This run: {len(per_image.get('correct_index', []))} correctly "
        f"classified images of a fixed subset of {claims.get('subset_size')} test images and all "
        f"{len(per_image.get('confused_index', []))} misclassified test images.",
        "",
    ]
    enough = bool(seeds_record) and len(seeds_record.get("seeds_done", [])) >= min_seeds
    lines += ["| claim | measure | this run: value [95% CI], n | Holm p | this run | seeds | across seeds |",
              "|---|---|---|---|---|---|---|"]
    for name in CLAIM_NAMES:
        c = claims["claims"][name]
        if enough:
            s = seeds_record["claims"][name]
            by_seed = ", ".join(f"{seed}: {v}" for seed, v in s["verdicts"].items())
            overall = s["verdict"]
        else:
            done = len(seeds_record.get("seeds_done", [])) if seeds_record else 0
            by_seed, overall = f"{done} of {min_seeds} seeds done", "not shown (no seed band yet)"
        lines.append(
            f"| {c['statement']} | {c['measure']} | {c['effect']:.3f} [{c['ci95'][0]:.3f}, {c['ci95'][1]:.3f}], "
            f"n = {c['n']} | {c['p_holm']:.2g} | {c['verdict']} | {by_seed} | **{overall}** |"
        )
    return lines + [""]
