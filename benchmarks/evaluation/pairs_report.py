"""PAIRS.md from pairs.json alone: every number on the page is read from the JSON (`benchmarks.evaluation.pairs`).

    python -m benchmarks.evaluation.pairs_report [--out benchmarks]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ORDER = ("probe", "paper_pair", "distance_explainer", "sbsm", "occlusion", "kernelshap", "integrated_gradients",
         "random")
NAMES = {"probe": "probe (this project, Verify at tau)", "paper_pair": "paper's pair mode (this project)",
         "distance_explainer": "distance-explainer (pip, own environment)",
         "sbsm": "xaitk-saliency SBSM (pip, own environment)", "occlusion": "occlusion of d^2",
         "kernelshap": "KernelSHAP of -d^2", "integrated_gradients": "Integrated Gradients of -d^2",
         "random": "random order"}


def _ordered(methods: dict):
    return [(m, methods[m]) for m in sorted(methods, key=lambda m: ORDER.index(m) if m in ORDER else len(ORDER))]


def _cell(score):
    return "-" if score is None else f"{score['mean']:.3f} ± {score['ci95']:.3f}"


def _blockers(cell: dict) -> str:
    worse = f"; worse on {', '.join(cell['worse_on'])}" if cell["worse_on"] else ""
    return worse + (f"; not shown on {', '.join(cell['not_shown_on'])}" if cell["not_shown_on"] else "")


def _verdict_table(kind: str, v: dict, rivals: list) -> list:
    """The section of one kind: margins, the verdict of each comparison with its mean difference and power, beats."""
    margins = next(iter(v["margins"].values()))
    lines = ["", f"## Verdicts on the {kind} scores (probe against each method)", "",
             f"The rule of docs/evaluation.md (\"Verdict rule\"), margins of docs/pairs.md: paired t-tests of the mean "
             f"difference at both edges of each score's margin, Holm over {v['family_size']} tests (both edges of "
             f"{v['n_comparisons']} comparisons), alpha {v['alpha']}; primary score `{v['primary']}`. Margins: "
             + "; ".join(f"{ds}: " + ", ".join(f"{s} {d:.4f}" for s, d in m.items()) for ds, m in v["margins"].items())
             + ". Each cell: the verdict, the mean difference probe - method (higher is better for rank_accuracy, "
             "relevance_mass and road_lerf, lower for the others), the power at the margin.", "",
             "| set | score | " + " | ".join(rivals) + " |", "|---|---|" + "---|" * len(rivals)]
    rows = v["comparisons"]
    for ds in v["margins"]:
        for score in margins:
            cells = []
            for b in rivals:
                r = next((r for r in rows if r["dataset"] == ds and r["metric"] == score and r["b"] == b), None)
                cells.append("-" if r is None else f"{r['verdict']} ({r['mean_difference']:+.3f}; {r['power']:.2f})")
            lines.append(f"| {ds} | {score} | " + " | ".join(cells) + " |")
    lines += ["", f"The probe beats a method on the {kind} scores when it is better on `{v['primary']}` and shown not "
              "worse on every other:", "", "| set | method | beats | " + f"{v['primary']} | worse on | not shown on |",
              "|---|---|---|---|---|---|"]
    for ds, by_a in v["beats"].items():
        for b, cell in ((b, by_a["probe"][b]) for b in rivals if b in by_a.get("probe", {})):
            lines.append(f"| {ds} | {b} | {'yes' if cell['beats'] else 'no'} | {cell['primary']} | "
                         f"{', '.join(cell['worse_on']) or '-'} | {', '.join(cell['not_shown_on']) or '-'} |")
    return lines


def render(results: dict) -> str:
    """The page, from the dict pairs.json holds."""
    lines = ["# The pair benchmark", "",
             "Written by `python -m benchmarks.evaluation.pairs_report` from `benchmarks/evaluation/pairs.json` (`make pairs`); the rules, "
             "the data and the methods are in `benchmarks/evaluation/pairs.py`'s docstring and docs/pairs.md. The probe's design "
             "was fixed on MNIST training images before this set existed and was not changed after its numbers were "
             "seen; the targets were declared in the script before its first run, the verdict rule's margins (docs/pairs.md) "
             "after the per-pair values existed and before any verdict was computed under them.", "",
             f"Mode `{results['mode']}`, {results['seconds'] / 60:.1f} min on {results['machine']} "
             f"(load average {results['load_average_at_start']:.1f} at the start), {results['date']}.", ""]
    lines += ["## Networks and thresholds", "", "| set | run | test prototype accuracy | tau (EER) | FAR / FRR on calibration pairs |",
              "|---|---|---|---|---|"]
    for ds, info in results["runs"].items():
        acc = info["metrics"].get("prototype_accuracy")
        cal = results["calibration"][ds]
        lines.append(f"| {ds} | `{info['run']}` | {acc if acc is None else f'{acc:.3f}'} | {cal['threshold']:.4f} | "
                     f"{cal['false_accept_rate']:.3f} / {cal['false_reject_rate']:.3f} ({cal['pairs']} pairs) |")
    for ds, rec in results["datasets"].items():
        region = "rank_accuracy" in next(iter(rec["methods"].values()))["scores"]
        lines += ["", f"## {ds}: {rec['pairs']} pairs ({rec['mates']} mates), {rec['scored_pairs']} scored "
                  f"(verdict at tau as asked: {rec['verdict_correct']['mates']} mates accepted, "
                  f"{rec['verdict_correct']['non_mates']} non-mates rejected)", ""]
        cols = (["rank_accuracy", "relevance_mass", "distractor_share"] if region else []) + [
            "deletion_blur", "road_morf", "road_lerf"]
        lines.append("| method | " + " | ".join(cols) + " | f calls | flip rate | s / image |")
        lines.append("|---|" + "---|" * (len(cols) + 3))
        for m, r in _ordered(rec["methods"]):
            flip = f"{r['flip_rate']:.3f}" if "flip_rate" in r else "-"
            lines.append(f"| {NAMES.get(m, m)} | " + " | ".join(_cell(r["scores"].get(c)) for c in cols)
                         + f" | {r['n_calls']:.0f} | {flip} | {r['seconds_per_image']:.2f} |")
        if region:
            lines += ["", "By kind (mates: why the same; non-mates: why different); rank accuracy and distractor share over the scored "
                      "pairs, flip rates over every pair asked about:", "",
                      "| method | rank accuracy, mates | rank accuracy, non-mates | distractor share, mates | "
                      "distractor share, non-mates | flip rate, mates | flip rate, non-mates |",
                      "|---|---|---|---|---|---|---|"]
            for m, r in _ordered(rec["methods"]):
                by = [r["by_kind"][k][s] for s in ("rank_accuracy", "distractor_share") for k in ("mates", "non_mates")]
                by += [r.get("flip_rate_by_kind", {}).get(k) for k in ("mates", "non_mates")]
                lines.append(f"| {m} | " + " | ".join("-" if v is None else f"{v:.3f}" for v in by) + " |")
    rivals = [m for m, _ in _ordered(next(iter(results["datasets"].values()))["methods"]) if m != "probe"]
    for kind, v in results["verdicts"].items():
        lines += _verdict_table(kind, v, rivals)
    lines += ["", "## Targets", "", "| target | probe | other | met |", "|---|---|---|---|"]
    for t in results["targets"]:
        probe = t.get("probe")
        other = t.get("rival")
        extra = f" (ratio {t['ratio']:.3f})" if "ratio" in t else ""
        if "verdict" in t:
            extra = f" (rank accuracy: {t['verdict']}{_blockers(t)})"
        lines.append(f"| {t['target']} | {'-' if probe is None else f'{probe:.3f}'} | "
                     f"{'-' if other is None else f'{other:.3f}'}{extra} | "
                     f"{'yes' if t['met'] else 'NO' if t['met'] is False else 'not run'} |")
    if results.get("peers"):
        lines += ["", f"The peers ran through their own APIs in {results['peers']['environment']}: "
                  + ", ".join(f"`{p}`" for p in results["peers"]["packages"]) + "."]
    return "\n".join(lines) + "\n"


def write(out: Path) -> Path:
    out = Path(out)
    results = json.loads((out / "pairs.json").read_text())
    page = out / "PAIRS.md"
    page.write_text(render(results))
    return page


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "evaluation")
    print(write(p.parse_args(argv).out))


if __name__ == "__main__":
    main()
