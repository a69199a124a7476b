"""How the mask settles as N grows (a figure the paper does not have).

Command (run by `make reproduce`):

    .venv/bin/python -m reproduce.convergence --run runs/paper --out figures

Run time: about 15 seconds on a 2-core CPU (10.7 s measured). For the six test images of
Figs. 4-9, explains each with N in {50, 100, 200, 500, 1000, 2000, 5000} and
seeds 0-4, and compares the top-q mask (q = 100, s = 5) with a reference
explanation at N = 20,000 (seed 1,000,000) by intersection over union.
Writes figures/convergence.png (mean IoU with the 5-95% range) and
figures/convergence.json.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

N_VALUES = (50, 100, 200, 500, 1000, 2000, 5000)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/paper")
    parser.add_argument("--out", default="figures")
    args = parser.parse_args()

    from reproduce import paper

    write(paper.PaperRun(args.run), args.out)


def write(run, out) -> dict:
    """Writes OUT/convergence.png and .json for a loaded `paper.PaperRun`; returns the record."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from reproduce import paper
    from siamese_xai import files, plotting

    t0 = time.perf_counter()
    indices = [paper.select_example(spec, run.y, run.summary)[0] for spec in paper.PAPER_FIGURES]
    curve = paper.convergence_curve(run.explainer, run.x[indices], N_VALUES)
    mean = np.array([curve[n].mean() for n in N_VALUES])
    low = np.array([np.percentile(curve[n], 5) for n in N_VALUES])
    high = np.array([np.percentile(curve[n], 95) for n in N_VALUES])
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.fill_between(N_VALUES, low, high, alpha=0.25, label="5-95% over images and seeds")
    ax.plot(N_VALUES, mean, marker="o", label="mean")
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("N (perturbations)")
    ax.set_ylabel("top-q IoU vs N = 20,000")
    ax.axvline(5000, color="gray", linestyle=":", linewidth=1)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    plotting.save_figure(fig, os.path.join(out, "convergence.png"))
    record = {
        "test_indices": [int(i) for i in indices],
        "reference_n": 20000,
        "seeds": [0, 1, 2, 3, 4],
        "iou_mean": {int(n): round(float(m), 4) for n, m in zip(N_VALUES, mean)},
        "iou_p5": {int(n): round(float(v), 4) for n, v in zip(N_VALUES, low)},
        "iou_p95": {int(n): round(float(v), 4) for n, v in zip(N_VALUES, high)},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    files.write_json(os.path.join(out, "convergence.json"), record)
    print("convergence: mean IoU " + ", ".join(f"N={n}: {m:.3f}" for n, m in zip(N_VALUES, mean)))
    return record


if __name__ == "__main__":
    main()
