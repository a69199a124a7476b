"""The effect of s and q on one explanation (a figure the paper does not have).

Command (run by `make reproduce`):

    .venv/bin/python -m reproduce.sq_grid --run runs/paper --out figures

Run time: under 30 seconds on a 2-core CPU. Writes figures/sq_grid.png: Fig. 5's
test image (the correctly explained 2) explained with s in {1, 2, 5, 10, 20}
(rows) and q in {25, 50, 100, 200} (columns), each panel the input with its
mask, N = 5000, seed 0.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

S_VALUES = (1, 2, 5, 10, 20)
Q_VALUES = (25, 50, 100, 200)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/paper")
    parser.add_argument("--out", default="figures")
    args = parser.parse_args()

    from reproduce import paper

    write(paper.PaperRun(args.run), args.out)


def write(run, out):
    """Writes OUT/sq_grid.png for a loaded `paper.PaperRun`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from reproduce import paper
    from siamese_xai import plotting

    index, _ = paper.select_example(paper.figure_spec("fig5"), run.y, run.summary)
    fig, axes = plt.subplots(len(S_VALUES), len(Q_VALUES), figsize=(1.9 * len(Q_VALUES), 1.9 * len(S_VALUES)))
    for r, s in enumerate(S_VALUES):
        for c, q in enumerate(Q_VALUES):
            e = run.explainer.replace(s=s, q=q).explain(run.x[index], seed=0)
            plotting.plot_overlay(e, axes[r, c])
            axes[r, c].set_title(f"s={s}, q={q}", fontsize=8)
    fig.suptitle(f"Effect of s and q (test #{index}, a 2, N=5000)", fontsize=9)
    fig.tight_layout()
    plotting.save_figure(fig, os.path.join(out, "sq_grid.png"))
    print(f"sq_grid: test #{index} -> {out}/sq_grid.png")


if __name__ == "__main__":
    main()
