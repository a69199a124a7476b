"""Fig. 6 of the paper: a correctly explained 5.

Command (run by `make reproduce` after training):

    .venv/bin/python reproduce/fig6.py --run runs/paper --out figures

Run time: about 8 seconds on a 2-core CPU (4 s of it the explanation and plot). Writes figures/fig6.png (the
quadruple: input, reconstruction g(f(x)), input with the mask, the mask) and
figures/fig6.json (test index, classes, distances, J, sigma, s, q, N). The
test image is chosen by the rule in `siamese_xai.paper`'s docstring.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/paper")
    parser.add_argument("--out", default="figures")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from siamese_xai import paper

    record = paper.write_paper_figure("fig6", args.run, args.out, seed=args.seed)
    print(f"fig6: test #{record['test_index']} ({record['selection']}) -> {args.out}/fig6.png")


if __name__ == "__main__":
    main()
