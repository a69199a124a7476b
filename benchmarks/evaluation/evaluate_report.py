"""RESULTS.md, the targets and the figure of the benchmark, computed from results.json alone.

`python -m benchmarks.evaluation.evaluate` measures; this module only reads its numbers
(and `benchmarks/evaluation/randomisation.json`) and turns them into words by the rules
of docs/evaluation.md (`benchmarks/evaluation/verdicts.py`), so no conclusion is written
by hand.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.evaluation import registry
from siamese_xai import files

# The method that asks f (registered in `registry.METHODS` when present) and the targets it is held to.
ASKS_F = "probe"
TARGET_RIVALS = ("occlusion", "kernelshap", "distance_explainer", "integrated_gradients")
CALL_RIVALS = ("kernelshap", "distance_explainer")
FLIP_TARGET = 0.9
MINUTES_TARGET = 25
# A ground-truth set is scored only when its network is right on at least this share of its test images
# (docs/evaluation.md): a network near chance decides by something other than the true region, so a map
# that finds the region would not be faithful to it, and one that misses it would not be wrong.
MIN_GT_ACCURACY = 0.9


def scored_ground_truth(results: dict) -> list:
    """The ground-truth sets whose network reaches `MIN_GT_ACCURACY` on its test images."""
    return [ds for ds, meta in results["datasets"].items()
            if ds != "mnist" and meta.get("test_accuracy", 0.0) >= MIN_GT_ACCURACY]
# The verdict words of `benchmarks.evaluation.verdicts.verdict_from_edges`, as RESULTS.md writes them.
WORDS = {"better": "better", "worse": "worse", "equivalent": "equivalent", "not worse": "not worse",
         "not better": "not better", "not shown": "not shown"}
DATASET_ORDER = ("mnist", "constant", "varying", "shapes")
TARGET_ORDER = ("make_evaluate_minutes", "asks_f", "beats_rivals_on_margin", "f_calls", "flips", "randomisation",
                "shapes_rank_accuracy")
POWER_TARGET = 0.8  # the power RESULTS.md counts comparisons against (the usual planning value)


def read_randomisation(path, run_id) -> dict | None:
    """The randomisation check's verdicts (method -> dict) when the file is of this run, else None."""
    path = Path(path)
    if not path.is_file():
        return None
    data = files.read_json(path)
    if data.get("run_id") != run_id:
        return None
    return {"seconds": data.get("seconds"), "load_average_1_5_15_min": data.get("load_average_1_5_15_min"),
            "methods": {name: {k: m.get(k) for k in ("verdict", "variant", "relative") if k in m}
                        for name, m in data.get("methods", {}).items()}}


def _record(results, ds, method):
    return next((r for r in results["records"] if r["dataset"] == ds and r["method"] == method), None)


def targets(results: dict) -> dict:
    """The targets for the method that asks f, each with its measured figures and met / missed / not measured."""
    out = {}
    seconds = results.get("seconds")
    rand = results.get("randomisation") or {}
    total = None if seconds is None or rand.get("seconds") is None else seconds + rand["seconds"]
    out["make_evaluate_minutes"] = {
        "rule": f"randomisation check + evaluation under {MINUTES_TARGET} minutes on this 2-core machine (full mode)",
        "evaluation_seconds": seconds, "randomisation_seconds": rand.get("seconds"),
        "measured": f"evaluation {seconds} s ({results.get('mode')} mode), randomisation check {rand.get('seconds')} s",
        "met": None if total is None or results.get("mode") != "full" else total < MINUTES_TARGET * 60}
    if ASKS_F not in registry.BY_NAME or _record(results, "mnist", ASKS_F) is None:
        out["asks_f"] = {"met": None, "rule": f"`{ASKS_F}` is not registered in this run"}
        return out
    beats = results["verdicts"]["faithfulness"]["beats"].get("mnist", {}).get(ASKS_F, {})
    rows = {b: beats.get(b, {}) for b in TARGET_RIVALS}
    out["beats_rivals_on_margin"] = {
        "rule": f"{ASKS_F} beats {', '.join(TARGET_RIVALS)} (better beyond the margin on the primary metric, Holm "
                "p < 0.05, not worse shown on every other number)",
        "rows": rows, "met": all(r.get("beats") for r in rows.values()),
        "measured": "; ".join(f"vs {b}: {_cell_words(r, names=True)}" for b, r in rows.items())}
    calls = {m: _record(results, "mnist", m)["f_calls_per_image"] for m in (ASKS_F, *CALL_RIVALS)}
    out["f_calls"] = {"rule": f"{ASKS_F}'s f calls at most one fifth of {' and '.join(CALL_RIVALS)}'s",
                      "calls": calls, "met": all(calls[ASKS_F] <= calls[m] / 5 for m in CALL_RIVALS),
                      "measured": ", ".join(f"{m} {c:.0f}" for m, c in calls.items())}
    flips = _record(results, "mnist", ASKS_F).get("flip_rate")
    out["flips"] = {"rule": f"the found set flips the decision on at least {FLIP_TARGET:.0%} of the images",
                    "flip_rate": flips, "met": None if flips is None else flips["mean"] >= FLIP_TARGET,
                    "measured": f"flip rate {_fmt(flips)}"}
    verdict = (rand.get("methods") or {}).get(ASKS_F, {}).get("verdict")
    out["randomisation"] = {"rule": "its map changes under the randomisation check with the explainer retrained",
                            "verdict": verdict, "met": None if verdict is None else verdict == "changes",
                            "measured": f"verdict: {verdict or 'not measured on this run'}"}
    mine, shap = _record(results, "shapes", ASKS_F), _record(results, "shapes", "kernelshap")
    accuracy = results["datasets"].get("shapes", {}).get("test_accuracy")
    if "shapes" not in scored_ground_truth(results):
        mine = shap = None
    out["shapes_rank_accuracy"] = {
        "rule": f"relevance rank accuracy on the shapes set at least KernelSHAP's (means), when the set's network "
                f"is right on at least {MIN_GT_ACCURACY:.0%} of its test images",
        "network_test_accuracy": accuracy,
        "asks_f": None if mine is None else mine["rank_accuracy"], "kernelshap": None if shap is None else shap["rank_accuracy"],
        "met": None if mine is None or shap is None else mine["rank_accuracy"]["mean"] >= shap["rank_accuracy"]["mean"],
        "measured": (f"{ASKS_F} {_fmt(None if mine is None else mine['rank_accuracy'])}, "
                     f"kernelshap {_fmt(None if shap is None else shap['rank_accuracy'])}") if mine and shap else
                    f"not scored: the shapes network is right on {accuracy or 0.0:.1%} of its test images"}
    return out


def _fmt(stat, digits=3):
    if stat is None:
        return "n/a"
    if "ci95" not in stat:
        return f"{stat['mean']:.{digits}g}"
    return f"{stat['mean']:.{digits}f} ± {stat['ci95']:.{digits}f}"


def _met(flag):
    return "not measured" if flag is None else ("**met**" if flag else "**missed**")


def _arrow(metric):
    return "↑" if registry.METRIC_BY_NAME[metric].higher_is_better else "↓"


def _table(results, ds, names, extra=()):
    recs = [r for r in results["records"] if r["dataset"] == ds]
    head = ["method", "kind"] + [f"{n} {_arrow(n)}" for n in names] + [e for e, _ in extra]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in recs:
        cells = [r["method"], r["kind"]] + [_fmt(r.get(n)) for n in names] + [fn(r) for _, fn in extra]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _beats_table(results, kind, ds):
    v = results["verdicts"][kind]
    beats = v["beats"].get(ds, {})
    if not beats:
        return []
    others = [r["method"] for r in results["records"] if r["dataset"] == ds]
    judged = [m for m in registry.JUDGED if m in beats]
    lines = [f"Verdicts on {ds} ({kind}; primary metric `{v['primary']}`; {v['family_size']} tests in the Holm "
             f"family, two per comparison): the row method against the column method. **beats** = better beyond the "
             "margin on the primary metric and not worse shown on every other number; otherwise the primary verdict, "
             "the numbers it is worse on beyond the margin and those where it is not shown to be not worse.", "",
             "| method | " + " | ".join(others) + " |", "|" + "---|" * (len(others) + 1)]
    for a in judged:
        cells = []
        for b in others:
            c = beats[a].get(b)
            cells.append("—" if c is None else _cell_words(c))
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    return lines + [""]


def _cell_words(cell, names=False):
    """One beats cell in words: **beats**, or the primary verdict, where it is worse and where not-worse is not shown."""
    if cell.get("beats"):
        return "beats" if names else "**beats**"
    out = WORDS.get(cell.get("primary"), "n/a")
    for key, word in (("worse_on", "worse on"), ("not_shown_on", "not shown on")):
        if cell.get(key):
            out += f"; {word} {', '.join(cell[key]) if names else len(cell[key])}"
    return out


def _margin_table(results, kind, ds):
    """Per number: its margin and the power of the comparisons (docs/evaluation.md), with the verdicts' counts."""
    v = results["verdicts"][kind]
    rows = [r for r in v["comparisons"] if r["dataset"] == ds]
    lines = [f"Margins and power on {ds}: power = the probability that a test at one edge of the margin rejects when "
             "the true mean difference lies one margin from it (normal approximation with the observed SD of the "
             f"paired differences, Bonferroni level {v['alpha']} / {v['family_size']}).", "",
             f"| number | margin | comparisons | power ≥ {POWER_TARGET} | median power | better or worse | equivalent "
             "| not worse or not better | not shown |", "|---|---|---|---|---|---|---|---|---|"]
    for metric in (m.name for m in registry.METRICS if m.name in v["margins"][ds]):
        delta = v["margins"][ds][metric]
        rs = [r for r in rows if r["metric"] == metric]
        if not rs:
            continue
        count = lambda *words: sum(r["verdict"] in words for r in rs)  # noqa: E731
        power = sorted(r["power"] for r in rs)
        lines.append(f"| {metric} | {delta:.4f} | {len(rs)} | {sum(p >= POWER_TARGET for p in power)} | "
                     f"{power[len(power) // 2]:.2f} | {count('better', 'worse')} | {count('equivalent')} | "
                     f"{count('not worse', 'not better')} | {count('not shown')} |")
    return lines + [""]


def _rank_table(results, kind, ds):
    """The rank aggregate on one data set: each method's mean rank over the numbers, and their disagreement."""
    agg = results["verdicts"][kind]["rank_aggregate"].get(ds)
    if not agg:
        return []
    primary = results["verdicts"][kind]["primary"]
    order = sorted(agg["mean_rank"], key=lambda m: (agg["mean_rank"][m], m))
    lines = [f"Rank aggregate on {ds} (as in LATEC): each method ranked by its mean on each of the {len(agg['metrics'])} "
             "numbers (1 = best), the ranks averaged. The numbers' agreement: Kendall's W = "
             f"{agg['kendalls_w']:.2f} (1 = all order the methods alike); {agg['discordant_share']:.0%} of the (pair of "
             "numbers, pair of methods) are ordered oppositely by the two numbers.", "",
             f"| method | mean rank | rank on `{primary}` |", "|---|---|---|"]
    lines += [f"| {m} | {agg['mean_rank'][m]:.2f} | {agg['ranks'][primary][m]:g} |" for m in order]
    return lines + [""]


def _sensitivity(results, kind):
    s = results["verdicts"][kind]["sensitivity"]
    base = {tuple(b) for b in s["beats_at_1"]}
    parts = []
    for f in s["factors"]:
        other = {tuple(b) for b in s[str(f)]["beats"]}
        change = [f"{a} beats {b} ({ds})" for ds, a, b in sorted(other - base)]
        change += [f"{a} no longer beats {b} ({ds})" for ds, a, b in sorted(base - other)]
        parts.append(f"at {f}x the margins {len(other)}" + (f" ({'; '.join(change)})" if change else ""))
    return [f"Sensitivity ({kind}): {len(base)} **beats** verdicts at the declared margins; " + ", ".join(parts) + ".", ""]


def _matched_table(results, kind, ds):
    """Each method raw and with the probe's post-processing, beside `probe_raw` and `probe` judged against each."""
    v = results["verdicts"][kind]
    beats = v["beats"].get(ds, {})
    recs = {r["method"]: r for r in results["records"] if r["dataset"] == ds}
    primary = v["primary"]
    post = "+" + "+".join(registry.PROBE_PROCESSING)
    if ASKS_F not in beats or "probe_raw" not in beats:
        return []
    lines = [f"Matched post-processing on {ds} (`{primary}`): each method's map as it is and with the probe's own "
             f"steps (`{post}`), and the verdicts that compare like with like: `probe_raw` (the probe's drop map, "
             f"neither smoothed nor gated) against the map as it is, `{ASKS_F}` (smoothed and gated) against the map "
             "with the same steps. `probe_raw` " + _fmt(recs["probe_raw"][primary]) + f", `{ASKS_F}` "
             + _fmt(recs[ASKS_F][primary]) + ".", "",
             f"| method | as it is | {post} | probe_raw vs as it is | {ASKS_F} vs {post} |", "|---|---|---|---|---|"]
    for m in registry.METHODS:
        if m.name == ASKS_F or m.name not in recs or m.name + post not in recs:
            continue
        raw_cell, post_cell = beats["probe_raw"].get(m.name), beats[ASKS_F].get(m.name + post)
        lines.append(f"| {m.name} | {_fmt(recs[m.name][primary])} | {_fmt(recs[m.name + post][primary])} | "
                     f"{'—' if raw_cell is None else _cell_words(raw_cell)} | "
                     f"{'—' if post_cell is None else _cell_words(post_cell)} |")
    return lines + [""]


def _verdict_details(results, kind, ds):
    if ds not in results["verdicts"][kind]["beats"]:
        return []
    return (_matched_table(results, kind, ds) + _sensitivity(results, kind) + _margin_table(results, kind, ds)
            + _rank_table(results, kind, ds))


def render_markdown(results: dict) -> str:
    """RESULTS.md: how it was run, the targets, then per data set the verdicts and the tables."""
    mode = results["mode"]
    faith = [m.name for m in registry.METRICS if m.kind == "faithfulness"]
    gt = [m.name for m in registry.METRICS if m.kind == "ground truth"]
    lines = [
        "# Benchmark: faithfulness of the margin, ground truth, cost",
        "",
        f"Generated by `python -m benchmarks.evaluation.evaluate` in **{mode} mode** on {results['date']}"
        + ("" if mode == "full" else f"; **{mode}-mode numbers, not the full benchmark** (`make evaluate`)")
        + f". Machine: {results['machine']}. Wall time {results['seconds']:.0f} s, load average at the end "
        f"{results.get('load_average_1_5_15_min')} (1/5/15 min).",
        "",
        "The metrics, the removal operators and the verdict rule are declared in docs/evaluation.md (the margins of "
        "the verdict rule were declared after the per-image values existed and before any verdict under them; "
        "`benchmarks/evaluation/verdicts.py` computes the verdicts from the per-image values, and "
        "`python -m benchmarks.evaluation.evaluate --from-results` recomputes them without measuring). Every number is "
        f"the mean over images with its {results['interval']}; per-image values: `benchmarks/evaluation/per_image.npz`.",
        "",
        "## Targets",
        "",
    ]
    # results.json is written with sorted keys: the page lists the targets in the order `targets` sets them
    targets_ = results.get("targets", {})
    for name in sorted(targets_, key=lambda k: TARGET_ORDER.index(k) if k in TARGET_ORDER else len(TARGET_ORDER)):
        t = targets_[name]
        lines.append(f"- `{name}`: {t['rule']}: {_met(t['met'])}" + (f" ({t['measured']})." if t.get("measured") else "."))
    lines.append("")
    # results.json is written with sorted keys: the page keeps the order in which the benchmark runs the sets
    for ds in sorted(results["datasets"], key=lambda d: DATASET_ORDER.index(d) if d in DATASET_ORDER else len(DATASET_ORDER)):
        meta = results["datasets"][ds]
        lines += [f"## {ds}", ""]
        if ds == "mnist":
            lines += [f"The run `{meta['run']}`, the first {meta['n_images']} MNIST test images.", ""]
            lines += _beats_table(results, "faithfulness", ds) + _verdict_details(results, "faithfulness", ds)
            lines += _table(results, ds, faith[:6])
            lines += [""] + _table(results, ds, faith[6:], extra=(
                ("stability", lambda r: _fmt(r["stability"])),
                ("f calls / image", lambda r: f"{r['f_calls_per_image']:.0f}"),
                ("s / explanation", lambda r: f"{r['seconds_per_explanation']:.3g}"))) + [""]
        else:
            tr = meta.get("training", {})
            lines += [f"*{meta.get('role', '')}*. Scored: the first {meta['n_images']} test images the network "
                      f"classifies correctly ({meta['correct_scored']} are; test accuracy {meta['test_accuracy']:.1%}, "
                      f"train accuracy {tr.get('train_accuracy', float('nan')):.1%}).", ""]
            if ds in scored_ground_truth(results):
                lines += _beats_table(results, "ground truth", ds) + _verdict_details(results, "ground truth", ds)
            else:
                lines += [f"Not scored: the network is right on {meta['test_accuracy']:.1%} of the test images, below "
                          f"the {MIN_GT_ACCURACY:.0%} a ground-truth set needs (docs/evaluation.md); the table is "
                          "kept for reference, and no verdict is drawn from it.", ""]
            lines += _table(results, ds, gt, extra=(("ceiling", lambda r: _fmt(r.get("ceiling"))),
                                                   ("stability", lambda r: _fmt(r["stability"])))) + [""]
    lines += ["![Mean ROAD curves of the margin on MNIST](../figures/road_curves.png)", "", "## Methods", ""]
    scored = {r["method"] for r in results["records"]}
    lines += [f"- `{m.name}` ({m.kind}): {m.description}" for m in registry.METHODS if m.name in scored]
    variants = [v for v in registry.VARIANTS if v.name in scored]
    if variants:
        lines += ["", "Entries derived from a method's maps (no call of f; its f calls and seconds are the method's, "
                  "plus the post-processing's seconds):", ""]
        lines += [f"- `{v.name}` (from `{v.base}`): {v.description}" for v in variants]
    lines += ["", "## Metrics", ""]
    lines += [f"- `{m.name}` ({m.kind}, {'higher' if m.higher_is_better else 'lower'} is better"
              f"{', primary' if m.primary else ''}): {m.description}" for m in registry.METRICS]
    return "\n".join(lines) + "\n"


def plot_curves(results: dict, path) -> None:
    """The mean ROAD curves of the margin on MNIST, most relevant first (left) and least relevant first (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cur = results["curves"].get("mnist", {})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, key, title in ((axes[0], "morf", "ROAD, most relevant first (lower is better)"),
                           (axes[1], "lerf", "ROAD, least relevant first (higher is better)")):
        for m in registry.METHODS:
            if m.name in cur:
                ax.plot(cur[m.name]["fraction"], cur[m.name][key], "-" if m.kind == registry.THIS_PROJECT else "--",
                        label=m.name, lw=2 if m.kind == registry.THIS_PROJECT else 1.2)
        ax.set_xlabel("fraction of pixels imputed")
        ax.set_ylabel("mean margin d(x, c_l) − d(x, c_k)")
        ax.set_title(f"{title}\n({results['mode']} mode, n = {results['datasets']['mnist']['n_images']})", fontsize=9)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    with files.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


# -- the README's results: the faithfulness row of its table and the verdict paragraph, from results.json -----------

# The README's faithfulness row: (entry, the words it is shown with), in this order.
README_ROW = (("probe", "`probe`"), ("probe_raw", "its raw map `probe_raw`"),
              ("distance_explainer", "distance explainer"), ("distance_explainer_margin", "distance explainer by the margin"),
              ("intensity", "input intensity"), ("occlusion_margin", "occlusion by the margin"),
              ("kernelshap_margin", "KernelSHAP by the margin"), ("occlusion", "occlusion"), ("mc", "`mc`"),
              ("kernelshap", "KernelSHAP"), ("integrated_gradients_margin", "IG by the margin"),
              ("gradient_margin", "gradient by the margin"))
# The verdicts in the order the paragraph states them, with their words ("beats" is a verdict on every number).
_CLAUSES = (("better", "better on the primary metric than"), ("not worse", "not worse on the primary metric than"),
            ("equivalent", "equivalent on the primary metric to"), ("not shown", "not shown on the primary metric against"),
            ("not better", "not better on the primary metric than"), ("worse", "worse on the primary metric than"))
_SET_WORDS = {"mnist": "On MNIST", "shapes": "On the shapes ground-truth set"}


def _names(names) -> str:
    names = [f"`{n}`" for n in names]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _row_clauses(row: dict, a: str, rivals=None) -> list:
    """The clauses of one judged method's row (only `rivals` where given): whom it beats, then each primary verdict's."""
    out = []
    row = {b: c for b, c in row.items() if rivals is None or b in rivals}
    beaten = [b for b, c in row.items() if c["beats"]]
    if beaten:
        out.append(f"`{a}` beats {_names(beaten)}")
    for verdict, words in _CLAUSES:
        rivals = [b for b, c in row.items() if not c["beats"] and c["primary"] == verdict]
        if rivals:
            out.append(f"`{a}` is {words} {_names(rivals)}")
    return out


def readme_faithfulness_row(results: dict) -> str:
    """The README table's row of the MNIST faithfulness numbers (ROAD, most relevant first), as results.json holds them."""
    recs = {r["method"]: r for r in results["records"] if r["dataset"] == "mnist"}
    parts = []
    for name, words in README_ROW:
        r = recs[name]
        text = f"{words} {r['road_morf']['mean']:.3f} ± {r['road_morf']['ci95']:.3f}"
        if name == ASKS_F:
            text += f" ({r['f_calls_per_image']:.0f} f calls, its found set flips f on {r['flip_rate']['mean']:.0%})"
        elif name == "distance_explainer":
            text += f" ({r['f_calls_per_image']:,.0f} calls)"
        parts.append(text)
    n = results["datasets"]["mnist"]["n_images"]
    return (f"| faithfulness on {n:,} MNIST test images (ROAD, most relevant first, area under the margin; lower is "
            f"better) | {'; '.join(parts)} | `benchmarks/evaluation/results.json` ({results['mode']} mode) |")


def readme_paragraph(results: dict) -> str:
    """The README's verdict paragraph: every verdict of the judged rows on MNIST and on the shapes set, and what each rests on."""
    v = results["verdicts"]
    text = ["By the declared rule (docs/evaluation.md: paired t-tests at both edges of a margin of one twentieth of each "
            "number's span, Holm's correction; **beats** = better beyond the margin on the primary metric and shown "
            "not worse on every other number). `probe` is the probe as it ships (its drop map smoothed and gated), "
            "`probe_raw` its drop map alone, `X+smoothed+gated` method X with exactly those two steps; the matched "
            "comparisons come first (RESULTS.md has the power of each)."]
    for ds, kind in (("mnist", "faithfulness"), ("shapes", "ground truth")):
        table = v[kind]["beats"].get(ds)
        if not table:
            continue
        if ASKS_F not in table or "probe_raw" not in table:
            continue
        as_is = [m.name for m in registry.METHODS]
        matched = [v.name for v in registry.VARIANTS if v.base != ASKS_F]
        own = [v.name for v in registry.VARIANTS if v.base == ASKS_F]
        groups = ((ASKS_F, matched, "against every method with the same post-processing (matched)"),
                  ("probe_raw", as_is, "against every method as it is (matched: both raw)"),
                  (ASKS_F, own, "against its own raw map and each step alone"),
                  (ASKS_F, as_is, "against every method as it is (not matched: only the probe post-processed)"))
        parts = [f"{words}, " + "; ".join(clauses) for a, rivals, words in groups
                 if (clauses := _row_clauses(table[a], a, rivals))]
        if ds == "mnist":  # the shapes set's verdicts: RESULTS.md (the front page keeps to a page)
            text.append(f"{_SET_WORDS[ds]}, " + ". ".join(part if i == 0 else part[0].upper() + part[1:]
                                                           for i, part in enumerate(parts)) + ".")
        agg = v[kind]["rank_aggregate"].get(ds)
        if agg:
            order = sorted(agg["mean_rank"], key=lambda m: (agg["mean_rank"][m], m))
            text.append(f"{_SET_WORDS[ds]}, over its {len(agg['metrics'])} numbers, the rank aggregate puts "
                        + ", ".join(f"`{m}` {i + 1}{'st' if i == 0 else 'nd' if i == 1 else 'rd'} (mean rank "
                                    f"{agg['mean_rank'][m]:.2f})" for i, m in enumerate(order[:3]))
                        + (f"; the numbers agree only in part (Kendall's W {agg['kendalls_w']:.2f})."
                           if "kendalls_w" in agg else "."))
    shapes = {r["method"]: r for r in results["records"] if r["dataset"] == "shapes"}
    if "shapes" in scored_ground_truth(results):
        text.append("Relevance rank accuracy on the shapes set: " + "; ".join(
            f"`{m}` {_fmt(shapes[m]['rank_accuracy'])}" for m in
            ("probe", "probe_raw", "kernelshap_margin+smoothed+gated") if m in shapes)
            + ".")
    return " ".join(text)


def update_readme(path, results: dict) -> None:
    """Rewrites the README's faithfulness row and verdict paragraph (`readme_faithfulness_row`, `readme_paragraph`)."""
    import textwrap

    path = Path(path)
    text = path.read_text()
    lines = text.split("\n")
    row = [i for i, line in enumerate(lines) if line.startswith("| faithfulness on ")]
    if len(row) != 1:
        raise ValueError(f"`{path}` must hold one table row starting '| faithfulness on '. Received: {len(row)}")
    lines[row[0]] = readme_faithfulness_row(results)
    text = "\n".join(lines)
    start = text.find("By the declared rule")
    if start < 0:
        raise ValueError(f"`{path}` must hold a paragraph starting 'By the declared rule'. Received: none")
    end = text.index("\n\n", start)
    wrapped = textwrap.fill(readme_paragraph(results), width=76, break_long_words=False, break_on_hyphens=False)
    with files.atomic_path(path) as tmp:
        tmp.write_text(text[:start] + wrapped + text[end:])
