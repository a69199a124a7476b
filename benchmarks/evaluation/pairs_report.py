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


def render(results: dict) -> str:
    """The page, from the dict pairs.json holds."""
    lines = ["# The pair benchmark", "",
             "Written by `python -m benchmarks.evaluation.pairs_report` from `benchmarks/evaluation/pairs.json` (`make pairs`); the rules, "
             "the data and the methods are in `benchmarks/evaluation/pairs.py`'s docstring and docs/pairs.md. The probe's design "
             "was fixed on MNIST training images before this set existed and was not changed after its numbers were "
             "seen; the verdict rules and targets were declared in the script before its first run.", "",
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
    lines += ["", f"## Paired tests (probe against each method; Wilcoxon, Holm over {results['tests']['family_size']} "
              f"tests, alpha {results['tests']['alpha']})", ""]
    rivals = [m for m, _ in _ordered(next(iter(results["datasets"].values()))["methods"]) if m != "probe"]
    lines.append("| set | score | " + " | ".join(rivals) + " |")
    lines.append("|---|---|" + "---|" * len(rivals))
    rows = results["tests"]["rows"]
    for ds in results["datasets"]:
        for score in dict.fromkeys(r["metric"] for r in rows if r["dataset"] == ds):
            cells = []
            for b in rivals:
                r = next((r for r in rows if r["dataset"] == ds and r["metric"] == score and r["b"] == b), None)
                cells.append("-" if r is None else f"{r['verdict']} (p {r['p_holm']:.2g})")
            lines.append(f"| {ds} | {score} | " + " | ".join(cells) + " |")
    lines += ["", "## Targets", "", "| target | probe | other | met |", "|---|---|---|---|"]
    for t in results["targets"]:
        probe = t.get("probe")
        other = t.get("rival")
        extra = f" (p {t['p_holm']:.2g})" if "p_holm" in t else (f" (ratio {t['ratio']:.3f})" if "ratio" in t else "")
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
