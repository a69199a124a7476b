"""Writes figures/REPORT.md: the numbers behind every figure, next to the paper's statements.

Command (the last step of `make reproduce`):

    .venv/bin/python -m reproduce.report --run runs/paper --out figures

Run time: a few seconds. Reads runs/paper/metrics.json, runs/paper/config.json
and figures/*.json (written by the figure scripts, reproduce/claims.py and, if
present, reproduce/seeds.py) and writes figures/REPORT.md and figures/claims_seeds.json (each paper claim pooled
over the seeds of figures/seeds.json by `bands.claims_across_seeds`, the rule of
reproduce/claims.py's docstring).

    .venv/bin/python -m reproduce.report --run runs/paper --out figures --check-band

prints instead, for every quantity, whether this run falls inside the band
across training seeds of figures/seeds.json (the last lines of `make reproduce`).
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/paper")
    parser.add_argument("--out", default="figures")
    parser.add_argument("--reproduce-seconds", type=float, help="wall time of the whole `make reproduce`, if measured")
    parser.add_argument("--check-band", action="store_true", help="print this run against the seed band; write nothing")
    args = parser.parse_args()
    from reproduce import bands
    from reproduce import paper
    from siamese_xai import files, runs

    optional = lambda name: files.read_json(os.path.join(args.out, name)) if os.path.exists(os.path.join(args.out, name)) else None
    metrics = files.read_json(os.path.join(args.run, runs.METRICS_FILE))
    figures = [files.read_json(os.path.join(args.out, f"{spec.name}.json")) for spec in paper.PAPER_FIGURES]
    convergence = files.read_json(os.path.join(args.out, "convergence.json"))
    claims, seeds = optional("claims.json"), optional("seeds.json")
    own = bands.run_quantities(metrics, figures, convergence, claims)
    if args.check_band:
        print("\n".join(bands.check_lines(own, seeds or {})))
        return
    config = files.read_json(os.path.join(args.run, runs.CONFIG_FILE))
    text = paper.render_report(metrics, config, figures, convergence, paper.machine_description())
    across = bands.across_seeds_record(claims, seeds) if claims else None
    if across:
        files.write_json(os.path.join(args.out, "claims_seeds.json"), across)
    text = text.rstrip("\n") + "\n\n" + "\n".join(bands.render_claims_table(claims, across) + bands.render_band_table(own, seeds))
    with files.atomic_path(os.path.join(args.out, "REPORT.md")) as tmp:
        tmp.write_text(text)
    print(f"report -> {args.out}/REPORT.md")


if __name__ == "__main__":
    main()
