"""The evaluation's verdicts, targets, RESULTS.md and figure, computed from results.json alone.

`benchmarks/evaluate.py` measures; this module only reads its numbers (and
`benchmarks/randomisation.json`, the randomisation check written by
`benchmarks/randomisation.py`) and turns them into words by fixed rules, so
no conclusion is written by hand:

- "better" / "worse" / "no difference shown" between two methods: their 95%
  intervals do not overlap, in the metric's better direction
  (`siamese_xai.metrics.interval_verdict`);
- a method *beats* a model-free ordering when it is better on at least one
  of the deletion AUC of d and the deletion AUC of the margin and worse on
  neither;
- a method *has shown that it reads the model* when it beats both model-free
  orderings (input intensity and edge map) and its map changes under the
  model-parameter randomisation check; otherwise it has not (also when the
  check was not run on the evaluated network).

This is the evaluation harness, not part of the library.
"""

from __future__ import annotations

from pathlib import Path

from siamese_xai import baselines as bl
from siamese_xai import files, metrics

METHODS = (
    # name, kind, deterministic
    ("mc", "this method (paper)", False),
    ("linear", "this method (paper)", False),
    ("contrast", "contrastive (this project)", True),
    ("random", "model-free ordering", False),
    ("intensity", "model-free ordering", True),
    ("edge", "model-free ordering", True),
    ("occlusion", "black-box baseline", True),
    ("kernelshap", "black-box baseline", False),
    ("distance_explainer", "black-box baseline", False),
    ("gradient", "white-box reference", True),
    ("integrated_gradients", "white-box reference", True),
)
DESCRIPTIONS = {
    "mc": "the paper's method, N = 5000 decoded perturbations, s = 5 (the defaults); map = Delta_p",
    "linear": "the paper's method, the decoder's first-order expansion over the same draws",
    "contrast": "why k rather than the runner-up l: the decoded path from h to c_l, map E_p = max(-S_p, 0) x_p",
    "random": "uniformly random pixel ordering",
    "intensity": "the input intensity x_p (no model)",
    "edge": "the Sobel gradient magnitude of x (scipy.ndimage.sobel; no model)",
    "occlusion": "6x6 zero patch, stride 2; map = mean rise of d over covering patches",
    "kernelshap": "shap.KernelExplainer on 49 superpixels (4x4 grid), blank background, value -d",
    "distance_explainer": "the distance-explainer algorithm (RISE masks, 8x8 grid, p_keep 0.5, top/bottom 20%), d as distance",
    "gradient": "|grad_x d| (white-box)",
    "integrated_gradients": "Integrated Gradients of -d from the blank image (white-box)",
}
ORDERINGS = ("intensity", "edge")
VERDICT_KEYS = (("deletion_auc", True, "d"), ("deletion_margin_auc", False, "margin"))
THIS_PROJECT = ("mc", "linear", "contrast")
KERNELSHAP_CELL = 4  # baselines.kernelshap_maps' default superpixel side
GT_TARGET = 0.8  # the target for the contrastive explanation's ground-truth share on the varying set


def randomisation_changes(path, run_id):
    """method -> bool from the randomisation check, or None when the file is missing or is of another run."""
    path = Path(path)
    if not path.is_file():
        return None
    data = files.read_json(path)
    if data.get("run_id") != run_id:
        return None
    return {name: bool(m["changes"]) for name, m in data.get("methods", {}).items() if "changes" in m}


def method_verdict(recs: dict, method: str, changes) -> dict:
    """The verdict row of one method on one data set (see the module docstring for the rules).

    Args:
        recs: method -> its record on the data set.
        method: the judged method.
        changes: True / False from the randomisation check, None if not measured.
    """
    row = {}
    for o in ORDERINGS:
        per = {label: metrics.interval_verdict(recs[method][key], recs[o][key], higher)
               for key, higher, label in VERDICT_KEYS}
        row[f"vs_{o}"] = per
        row[f"beats_{o}"] = "better" in per.values() and "worse" not in per.values()
    row["changes_under_randomisation"] = changes
    reasons = [f"does not beat the {o} ordering" for o in ORDERINGS if not row[f"beats_{o}"]]
    if changes is None:
        reasons.append("its randomisation check was not measured on this network")
    elif not changes:
        reasons.append("its map does not change under the randomisation check")
    row["reads_model"] = not reasons
    row["verdict"] = ("has shown that it reads the model" if not reasons
                      else "has not shown that it reads the model: " + "; ".join(reasons))
    return row


def add_verdicts(results: dict, randomisation_path) -> None:
    """Adds `verdicts` (data set -> method -> row) and `targets` to `results`, from its records."""
    results["verdicts"] = {}
    for ds, meta in results["datasets"].items():
        recs = {r["method"]: r for r in results["records"] if r["dataset"] == ds}
        changes = randomisation_changes(randomisation_path, meta.get("run_id"))
        results["verdicts"][ds] = {
            m: method_verdict(recs, m, None if changes is None else changes.get(m))
            for m in recs if m not in ORDERINGS
        }
        results["datasets"][ds]["randomisation"] = "read" if changes is not None else "not measured"
    # `make evaluate` runs the randomisation check first: its time counts toward the 20-minute target
    path = Path(randomisation_path)
    check = files.read_json(path) if path.is_file() else {}
    mnist_id = results["datasets"].get("mnist", {}).get("run_id")
    results["randomisation_seconds"] = check.get("seconds") if check.get("run_id") == mnist_id else None
    results["targets"] = targets(results)


def targets(results: dict) -> dict:
    """The issue's targets for the contrastive method, each with its measured figures and met / missed."""
    out = {}
    by = {(r["dataset"], r["method"]): r for r in results["records"]}
    if ("mnist", "contrast") in by:
        key = "deletion_margin_auc"
        con = by["mnist", "contrast"][key]
        vs = {o: metrics.interval_verdict(con, by["mnist", o][key], higher_is_better=False)
              for o in ("intensity", "occlusion")}
        out["contrast_mnist_margin_deletion"] = {
            "rule": "contrast's deletion AUC of the margin lower than intensity's and occlusion's, 95% intervals apart",
            "contrast": con, "intensity": by["mnist", "intensity"][key], "occlusion": by["mnist", "occlusion"][key],
            "verdicts": vs, "met": all(v == "better" for v in vs.values()),
        }
        row = results["verdicts"]["mnist"]["contrast"]
        out["contrast_mnist_changes_under_randomisation"] = {
            "changes": row["changes_under_randomisation"],
            "met": None if row["changes_under_randomisation"] is None else row["changes_under_randomisation"],
        }
    if ("varying", "contrast") in by:
        con = by["varying", "contrast"]["gt_share"]
        base = {m: by["varying", m]["gt_share"] for m, _, _ in METHODS
                if m not in THIS_PROJECT and ("varying", m) in by}
        best = max(base, key=lambda m: base[m]["mean"])
        out["contrast_varying_gt_share"] = {
            "rule": f"contrast's ground-truth share on the varying set >= {GT_TARGET}",
            "contrast": con, "threshold": GT_TARGET, "met": con["mean"] >= GT_TARGET,
            "best_baseline": best, "best_baseline_share": base[best],
            "vs_best_baseline": metrics.interval_verdict(con, base[best], higher_is_better=True),
        }
    return out


def _fmt(stat, digits=3):
    if stat is None:
        return "n/a"
    if "ci95" not in stat:
        return f"{stat['mean']:.{digits}g}"
    return f"{stat['mean']:.{digits}f} ± {stat['ci95']:.{digits}f}"


def _met(flag):
    return "not measured" if flag is None else ("**met**" if flag else "**missed**")


WORDS = {"better": "better", "worse": "worse", "overlap": "no difference shown"}


def square_columns(cell: int | None = None):
    """The constant set's square columns, and those whose 4 pixels fall in two superpixel columns of side `cell`."""
    cell = cell or KERNELSHAP_CELL
    cols = sorted({c for _, c in bl.SQUARE_POSITIONS})
    return cols, [c for c in cols if c // cell != (c + bl.SQUARE - 1) // cell]


def _about(ds, meta, mode):
    if ds == "mnist":
        return f"The trained run `{meta['run']}`, the first {meta['n_images']} MNIST test images (tfds order)."
    if ds == "constant":
        m = meta["mechanism"]
        cols, straddle = square_columns()
        ious = ", ".join(f"{s}: {_fmt(v)}" for s, v in m["mask_iou_vs_sigma_scale"].items())
        return (
            "**A negative control for the paper's method.** A 4×4 square of intensity 1 whose position (5 along "
            f"the top edge, 5 along the bottom; columns {cols}, so the squares at columns {straddle} straddle "
            f"KernelSHAP's {KERNELSHAP_CELL}-pixel superpixel grid, which caps its ceiling) decides the class, drawn "
            "over a random MNIST digit: "
            "the square is the same in every image of a class, and the paper's method moves h toward the class's "
            f"own prototype. Measured on {m['n_images']} of the scored images: the decoder ({m['decoder_output']} "
            f"output) decodes g(f(x)) = {_fmt(m['decoded_in_square'])} on average in the square (minimum "
            f"{m['decoded_in_square_min']:.3f}), where the sigmoid's slope y(1−y) is {_fmt(m['sigmoid_slope_ratio'])} "
            f"of its slope at mid-grey ({m['times_flatter']:.1f}× flatter); mean Delta_p in the square is "
            f"{_fmt(m['delta_in_square_over_outside'])}× its mean outside; {_fmt(m['mask_share_in_square'])} of the "
            f"mc mask's pixels are in the square; IoU of the mc mask at sigma_scale s with the one at the paper's "
            f"0.1: {ious}. f, the autoencoder and the decoder were trained with the project's training code on "
            f"{meta['synth_train']} such images (epochs SNN/autoencoder/decoder {meta['epochs']}); nearest-prototype "
            f"accuracy {meta['train_accuracy']:.1%} (train), {meta['test_accuracy']:.1%} (test, {meta['synth_test']} "
            f"images over MNIST test digits). Scored: the first {meta['n_images']} test images the network "
            f"classifies correctly ({meta['correct_scored']} of them are)."
        )
    a = meta["contrast_ablations"]
    return (
        "The deciding 4×4 square varies within each class (`benchmarks/synthetic_varying.py`: one of two "
        "grid-aligned cells per class on the border, intensity in [0.4, 1], over a random MNIST digit). Trained on "
        f"{meta['varying_train']} images (epochs {meta['epochs']}; train accuracy "
        f"{meta['training']['train_accuracy']:.1%}), test accuracy {meta['test_accuracy']:.1%} on {meta['synth_test']} "
        f"images; scored: the first {meta['n_images']} classified correctly ({meta['correct_scored']} are). "
        f"What the contrastive map's parts buy (ground-truth share): E_p = max(−S_p, 0) x_p "
        f"{_fmt(a['contrast'])}, −S_p alone {_fmt(a['contrast_S_only'])}, |change| {_fmt(a['contrast_unsigned'])}; "
        f"share of the top-16 pixels in the class's other cell: E {a['share_in_other_cell']['contrast']:.3f}, "
        f"−S alone {a['share_in_other_cell']['contrast_S_only']:.3f}; mean mask size {a['mask_pixels_mean']:.1f} "
        "pixels (only E_p > 0 enters)."
    )


def _verdict_table(results, ds):
    lines = [
        "| method | vs intensity (d / margin) | beats intensity? | vs edge (d / margin) | beats edge? "
        "| changes under randomisation? | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for m, row in results["verdicts"][ds].items():
        ch = row["changes_under_randomisation"]
        lines.append(
            f"| {m} | {WORDS[row['vs_intensity']['d']]} / {WORDS[row['vs_intensity']['margin']]} "
            f"| {'yes' if row['beats_intensity'] else 'no'} "
            f"| {WORDS[row['vs_edge']['d']]} / {WORDS[row['vs_edge']['margin']]} | {'yes' if row['beats_edge'] else 'no'} "
            f"| {'not measured' if ch is None else ('yes' if ch else 'no')} | {row['verdict']} |"
        )
    return lines


def render_markdown(results: dict) -> str:
    """RESULTS.md: definitions, then per data set the verdicts and the tables, then the targets."""
    mode, s = results["mode"], results["settings"]
    lines = [
        "# Evaluation: faithfulness, model-free sanity orderings, ground truth and cost",
        "",
        f"Generated by `benchmarks/evaluate.py` in **{mode} mode** on {results['date']}"
        + ("" if mode == "full" else f"; **these are {mode}-mode numbers, not the full evaluation** "
           "(`make evaluate` runs the full one)")
        + f". Machine: {results['machine']}. Total wall time: {results['seconds']:.0f} s"
        + (f" (load average at the end: {results['load_average_1_5_15_min']}, 1/5/15 min)."
           if "load_average_1_5_15_min" in results else "."),
        "",
        "Every method explains d(x) = ||f(x) − c_k||², k the network's own class (nearest prototype), and is "
        "also scored on the margin m(x) = d(x, c_l) − d(x, c_k), l the runner-up prototype of the unperturbed x "
        "(fixed per image). Deletion sets pixels to 0 (the background) in the order of the map, 28 steps of 28 "
        "pixels; insertion adds them back to a blank image. AUCs by the trapezoid rule over the fraction of "
        "pixels: raw d (**deletion ↑, insertion ↓**), d normalised per image to (d − d(x)) / (d(blank) − d(x)) "
        "(same directions; images where d(blank) ≤ d(x) are left out and counted), the margin "
        "(**deletion ↓, insertion ↑**), and the class AUCs of \"the nearest prototype is still k\" (deletion ↓, "
        f"insertion ↑). ± is the {results['interval']}. Stability: mean pairwise top-{results['q']} IoU over "
        f"{len(s['seeds'])} seeds on the first {s['n_stability']} images (deterministic methods: two runs, measured). "
        "Ground truth (synthetic sets): share of the top-16 pixels inside the 4×4 square that decides the class, "
        "its ceiling (the method's score with the network replaced by an oracle whose d is minus the ink in the "
        "true square, or 1 by construction for pixel-level maps, or the score itself for model-free maps), and "
        f"the pointing game. Seconds: median over {s['n_cost']} single-image explanations in this run (the "
        "machine's cores may be shared, so they are noisy; `make bench` times the explainer alone).",
        "",
        "Verdict rules (computed, `benchmarks/evaluate_report.py`): *better/worse* means the two 95% intervals do "
        "not overlap; a method *beats* a model-free ordering when it is better on the deletion AUC of d or of the "
        "margin and worse on neither; it *has shown that it reads the model* only when it beats both orderings "
        "and its map changes under the model-parameter randomisation check (Adebayo et al. 2018; "
        "`benchmarks/randomisation.json`, used only when its run_id is the evaluated network's).",
        "",
    ]
    lines += _targets_md(results)
    for ds, meta in results["datasets"].items():
        lines += [f"## {ds}", "", _about(ds, meta, mode), "", "### Verdicts", ""]
        lines += _verdict_table(results, ds) + [""]
        recs = [r for r in results["records"] if r["dataset"] == ds]
        lines += [
            "### d and its normalised form", "",
            "| method | kind | deletion AUC ↑ | normalised ↑ | insertion AUC ↓ | normalised ↓ |",
            "|---|---|---|---|---|---|",
        ]
        lines += [f"| {r['method']} | {r['kind']} | {_fmt(r['deletion_auc'])} | {_fmt(r['deletion_auc_normalised'])} "
                  f"| {_fmt(r['insertion_auc'])} | {_fmt(r['insertion_auc_normalised'])} |" for r in recs]
        dropped = recs[0]["deletion_auc_normalised"].get("dropped", 0)
        lines += ["", f"Normalised: {dropped} of {recs[0]['n_images']} images left out (d(blank) ≤ d(x)).", ""]
        lines += [
            "### The margin, the class, stability, ground truth, cost", "",
            "| method | margin deletion AUC ↓ | margin insertion AUC ↑ | class deletion AUC ↓ | class insertion AUC ↑ "
            "| stability | GT share | GT ceiling | pointing | s / explanation |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        lines += [f"| {r['method']} | {_fmt(r['deletion_margin_auc'])} | {_fmt(r['insertion_margin_auc'])} "
                  f"| {_fmt(r['deletion_class_auc'])} | {_fmt(r['insertion_class_auc'])} | {_fmt(r['stability'])} "
                  f"| {_fmt(r['gt_share'])} | {_fmt(r.get('ceiling'))} | {_fmt(r['pointing'])} "
                  f"| {r['seconds_per_explanation']:.3g} |" for r in recs]
        lines += ["", _ranking(recs, results["higher_is_better"]), ""]
    lines += ["![Mean deletion curves of d and of the margin](../figures/deletion_curves.png)", "", "## Methods", ""]
    lines += [f"- `{m}`, {kind}: {DESCRIPTIONS[m]}" for m, kind, _ in METHODS]
    lines += ["", TOOLS]
    return "\n".join(lines) + "\n"


def _targets_md(results):
    t = results.get("targets", {})
    lines = ["## Targets (issue 10)", ""]
    if "contrast_varying_gt_share" in t:
        v = t["contrast_varying_gt_share"]
        lines.append(f"- Contrast's ground-truth share on the varying set ≥ {v['threshold']}: {_met(v['met'])} "
                     f"({_fmt(v['contrast'])}); the best baseline in the same run, {v['best_baseline']}, "
                     f"{_fmt(v['best_baseline_share'])}: contrast {WORDS[v['vs_best_baseline']]}.")
    if "contrast_mnist_margin_deletion" in t:
        v = t["contrast_mnist_margin_deletion"]
        lines.append(f"- MNIST, contrast's deletion AUC of the margin better than the intensity ordering's and "
                     f"occlusion's (95% intervals apart): {_met(v['met'])} (contrast {_fmt(v['contrast'])}, "
                     f"intensity {_fmt(v['intensity'])}: {WORDS[v['verdicts']['intensity']]}; occlusion "
                     f"{_fmt(v['occlusion'])}: {WORDS[v['verdicts']['occlusion']]}).")
        c = t["contrast_mnist_changes_under_randomisation"]
        lines.append(f"- MNIST, contrast's map changes under the randomisation check: {_met(c['met'])}.")
    extra = results.get("randomisation_seconds")
    total = results["seconds"] + (extra or 0)
    lines.append(f"- `make evaluate` in full mode under 20 minutes: {results['mode']} mode here, "
                 f"{results['seconds']:.0f} s"
                 + (f" + {extra:.0f} s for the randomisation check = {total:.0f} s" if extra is not None
                    else " (the randomisation check's time not known)")
                 + (f" ({_met(total < 1200)})." if results["mode"] == "full" and extra is not None
                    else " (only a full run with its randomisation check decides it)."))
    return lines + [""]


def _ranking(recs, higher_is_better):
    """Per quantity, how many baselines and references each of this project's methods is better or worse than."""
    out = []
    others = [r for r in recs if r["method"] not in THIS_PROJECT]
    for method in THIS_PROJECT:
        mine = next(r for r in recs if r["method"] == method)
        parts = []
        for key, label in (("deletion_auc", "deletion of d"), ("deletion_margin_auc", "deletion of the margin"),
                           ("gt_share", "ground-truth share")):
            if mine.get(key) is None:
                continue
            v = [metrics.interval_verdict(mine[key], r[key], higher_is_better[key]) for r in others]
            parts.append(f"{label}: better than {v.count('better')}, worse than {v.count('worse')} "
                         f"of the {len(others)} others")
        out.append(f"`{method}`: " + "; ".join(parts) + ".")
    return "Counts (95% intervals apart): " + " ".join(out)


TOOLS = """## Tools

Quantus was not used for deletion/insertion: its faithfulness metrics track
one model output for a label, so f and the prototypes would need wrapping as
a model with -d per class as outputs, and it would not record the margin or
whether the nearest prototype is still class k. The curves are NumPy in
`siamese_xai.metrics`, with every model call batched, tested on a toy where
the right ordering is known. The `distance-explainer` package needs `dianna`,
which pulls torch, so its algorithm is re-implemented in
`siamese_xai/baselines.py` (`rise_distance_maps`, with d in place of its
cosine distance); gradient saliency and Integrated Gradients are short
`tf.GradientTape` functions."""


def plot_curves(results: dict, path) -> None:
    """Mean deletion curves of d (top row) and of the margin (bottom row), one column per data set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results["curves"])
    fig, axes = plt.subplots(2, len(names), figsize=(5.5 * len(names), 8), squeeze=False)
    for col, ds in enumerate(names):
        cur = results["curves"][ds]
        for row, (key, label) in enumerate((("deletion_distance", "mean ||f(x) − c_k||²"),
                                            ("deletion_margin", "mean margin d(x, c_l) − d(x, c_k)"))):
            ax = axes[row, col]
            for method, kind, _ in METHODS:
                style = "-" if method in THIS_PROJECT else (":" if kind.startswith("model-free") else "--")
                ax.plot(cur["fraction"], cur[method][key], style, label=method, lw=2 if method in THIS_PROJECT else 1.2)
            ax.set_xlabel("fraction of pixels removed (most important first)")
            ax.set_ylabel(label)
            ax.set_title(f"{ds} ({results['mode']} mode, n = {results['datasets'][ds]['n_images']})")
        axes[0, col].legend(fontsize=7)
    fig.tight_layout()
    with files.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
