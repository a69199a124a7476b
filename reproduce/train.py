"""Trains the Siamese network, the explainable autoencoder and the decoder (the paper's Part 1).

Command (what `make reproduce` runs first):

    .venv/bin/python -m reproduce.train --out runs/paper

Run time: 5 to 11 minutes on a 2-core CPU (REPORT.md has the measured stage times). Writes the
run folder `runs/paper/` (snn.keras, encoder.keras, decoder.keras,
prototypes.npy, config.json, metrics.json, checkpoints/, logs/) and
`runs/paper/reconstructions.png` (copied to `figures/`): 16 MNIST test images
beside g(f(x)) and g(e(x)). Stages already in the run folder are skipped; `--force` retrains.
"""

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/paper", help="the run folder")
    parser.add_argument("--data-dir", help="tfds folder or raw IDX folder (default: $TFDS_DATA_DIR)")
    parser.add_argument("--force", action="store_true", help="retrain every stage")
    parser.add_argument("--figures", default="figures", help="where the committed copy of the grid goes")
    args = parser.parse_args()

    from siamese_xai import files, plotting, runs
    from siamese_xai.data import mnist as data
    from siamese_xai.training import stages as training
    from siamese_xai.config import TrainConfig

    metrics = training.train_run(TrainConfig.paper(), args.out, data_dir=args.data_dir, force=args.force)
    x, _ = data.load_mnist("test", args.data_dir)
    run = runs.load_run(args.out, encoder=True)
    fig = plotting.plot_reconstructions(
        x[:16], run.decoder(run.embed(x[:16])).numpy(), run.decoder(run.encoder(x[:16])).numpy()
    )
    for folder in (args.out, args.figures):
        with files.atomic_path(os.path.join(folder, "reconstructions.png")) as tmp:
            fig.savefig(tmp, dpi=120, format="png")
    import matplotlib.pyplot as plt

    plt.close(fig)
    print(json.dumps(metrics, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
