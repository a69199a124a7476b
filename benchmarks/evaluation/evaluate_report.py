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
WORDS = {"better": "better", "worse": "worse", "overlap": "no difference shown"}


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
        "rule": f"{ASKS_F} beats {', '.join(TARGET_RIVALS)} (primary metric, Holm p < 0.05, worse under no baseline)",
        "rows": rows, "met": all(r.get("beats") for r in rows.values()),
        "measured": "; ".join(f"vs {b}: {'beats' if r.get('beats') else WORDS.get(r.get('primary'), 'n/a')}"
                              + (f", worse on {', '.join(r['worse_on'])}" if r.get("worse_on") else "")
                              for b, r in rows.items())}
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
             f"family): the row method against the column method. **beats** = better on the primary metric "
             "and worse on no other; otherwise the primary verdict, and the metrics it is worse on.", "",
             "| method | " + " | ".join(others) + " |", "|" + "---|" * (len(others) + 1)]
    for a in judged:
        cells = []
        for b in others:
            c = beats[a].get(b)
            if c is None:
                cells.append("—")
            elif c["beats"]:
                cells.append("**beats**")
            else:
                worse = f"; worse on {len(c['worse_on'])}" if c["worse_on"] else ""
                cells.append(f"{WORDS.get(c['primary'], 'n/a')}{worse}")
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    return lines + [""]


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
        "The metrics, the removal operators and the verdict rule are declared in docs/evaluation.md (fixed before "
        "the numbers). Every number is the mean over images with its "
        f"{results['interval']}; per-image values: `benchmarks/evaluation/per_image.npz`.",
        "",
        "## Targets",
        "",
    ]
    for name, t in results.get("targets", {}).items():
        lines.append(f"- `{name}`: {t['rule']}: {_met(t['met'])}" + (f" ({t['measured']})." if t.get("measured") else "."))
    lines.append("")
    for ds, meta in results["datasets"].items():
        lines += [f"## {ds}", ""]
        if ds == "mnist":
            lines += [f"The run `{meta['run']}`, the first {meta['n_images']} MNIST test images.", ""]
            lines += _beats_table(results, "faithfulness", ds)
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
                lines += _beats_table(results, "ground truth", ds)
            else:
                lines += [f"Not scored: the network is right on {meta['test_accuracy']:.1%} of the test images, below "
                          f"the {MIN_GT_ACCURACY:.0%} a ground-truth set needs (docs/evaluation.md); the table is "
                          "kept for reference, and no verdict is drawn from it.", ""]
            lines += _table(results, ds, gt, extra=(("ceiling", lambda r: _fmt(r.get("ceiling"))),
                                                   ("stability", lambda r: _fmt(r["stability"])))) + [""]
    lines += ["![Mean ROAD curves of the margin on MNIST](../figures/road_curves.png)", "", "## Methods", ""]
    lines += [f"- `{m.name}` ({m.kind}): {m.description}" for m in registry.METHODS]
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
