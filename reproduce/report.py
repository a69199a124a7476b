"""Writes figures/REPORT.md: the numbers behind every figure, next to the paper's statements.

Command (the last step of `make reproduce`):

    .venv/bin/python reproduce/report.py --run runs/paper --out figures

Run time: a few seconds. Reads runs/paper/metrics.json, runs/paper/config.json
and figures/*.json (written by the figure scripts) and writes
figures/REPORT.md.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/paper")
    parser.add_argument("--out", default="figures")
    parser.add_argument("--reproduce-seconds", type=float, help="wall time of the whole `make reproduce`, if measured")
    args = parser.parse_args()
    import paper
    from siamese_xai import files, runs

    metrics = files.read_json(os.path.join(args.run, runs.METRICS_FILE))
    config = files.read_json(os.path.join(args.run, runs.CONFIG_FILE))
    figures = [files.read_json(os.path.join(args.out, f"{spec.name}.json")) for spec in paper.PAPER_FIGURES]
    convergence = files.read_json(os.path.join(args.out, "convergence.json"))
    text = paper.render_report(metrics, config, figures, convergence, paper.machine_description())
    with files.atomic_path(os.path.join(args.out, "REPORT.md")) as tmp:
        tmp.write_text(text)
    print(f"report -> {args.out}/REPORT.md")


if __name__ == "__main__":
    main()
