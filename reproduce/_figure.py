"""The command line shared by the paper-figure scripts (fig4.py ... fig9.py)."""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(name: str, doc: str):
    """Parses `--run/--out/--seed` and writes figures/NAME.png and NAME.json."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--run", default="runs/paper", help="the trained run folder")
    parser.add_argument("--out", default="figures", help="where the PNG and JSON go")
    parser.add_argument("--seed", type=int, default=0, help="seed of the perturbations")
    parser.add_argument("--data-dir", help="MNIST's location (default: $TFDS_DATA_DIR)")
    args = parser.parse_args()
    from reproduce import paper

    record = paper.write_paper_figure(name, args.run, args.out, seed=args.seed, data_dir=args.data_dir)
    print(f"{name}: test #{record['test_index']} ({record['selection']}) -> {args.out}/{name}.png")
