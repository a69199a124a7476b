"""Every figure of the reproduction in one process: Figs. 4-9, fig9_contrast, sq_grid and convergence.

Command (run by `make reproduce` after training):

    .venv/bin/python -m reproduce.figures --run runs/paper --out figures

Run time: figures/figures.json records each figure's (the committed one was
measured on a 2-core machine shared with other work, load average above 20:
sq_grid's 20 explanations at N = 5000 and convergence's N = 20,000 references
take most of it). Loads TensorFlow, the run and the MNIST test set once, and selects the images
once, instead of once per figure script (each script also runs alone, with the
same arguments, and writes the same files). Writes what the scripts write:
figures/fig4.png ... fig9.png and their JSON, fig9_contrast.png/.json,
sq_grid.png, convergence.png/.json, and figures/figures.json with the wall time
of the load and of each figure (`seconds`).
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/paper", help="the trained run folder")
    parser.add_argument("--out", default="figures", help="where the PNGs and JSON files go")
    parser.add_argument("--seed", type=int, default=0, help="seed of the perturbations")
    parser.add_argument("--data-dir", help="MNIST's location (default: $TFDS_DATA_DIR)")
    args = parser.parse_args()
    from reproduce import convergence
    from reproduce import fig9_contrast
    from reproduce import paper
    from reproduce import sq_grid

    from siamese_xai import files

    t0 = time.perf_counter()
    run = paper.PaperRun(args.run, args.data_dir)
    seconds = {"load": round(time.perf_counter() - t0, 1)}
    steps = [(spec.name, lambda name=spec.name: paper.write_paper_figure(name, run, args.out, seed=args.seed))
             for spec in paper.PAPER_FIGURES]
    steps += [("fig9_contrast", lambda: fig9_contrast.write(run, args.out, seed=args.seed)),
              ("sq_grid", lambda: sq_grid.write(run, args.out)),
              ("convergence", lambda: convergence.write(run, args.out))]
    for name, step in steps:
        t = time.perf_counter()
        record = step()
        seconds[name] = round(time.perf_counter() - t, 1)
        if name.startswith("fig") and name[3:].isdigit():
            print(f"{name}: test #{record['test_index']} ({record['selection']}) -> {args.out}/{name}.png")
    seconds["total"] = round(time.perf_counter() - t0, 1)
    files.write_json(os.path.join(args.out, "figures.json"), {"seconds": seconds})


if __name__ == "__main__":
    main()
