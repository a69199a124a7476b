"""The `siamese-xai` command line.

Only this module and the `reproduce/` scripts parse arguments; the work is
done by the library.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback

EXIT_USAGE = 2


class CLIError(Exception):
    """An error to show the user as one line, exit code 2."""


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {text!r}")
    return value


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, received {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, received {text!r}")
    return value


def _make_strategy(name):
    import tensorflow as tf

    if name == "default":
        return None
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise CLIError(f"--strategy must be one of default, mirrored, multiworker; received {name!r}")


def _cmd_train(args):
    from siamese_xai import training
    from siamese_xai.config import TrainConfig

    config = TrainConfig.tiny() if args.tiny else TrainConfig.paper()
    changes = {"seed": args.seed, "embedding_dim": args.embedding_dim}
    config = config.replace(**{k: v for k, v in changes.items() if v is not None})
    import dataclasses

    for stage, value in (("snn", args.snn_epochs), ("autoencoder", args.ae_epochs), ("decoder", args.decoder_epochs)):
        value = value or args.epochs
        if value is not None:
            config = config.replace(**{stage: dataclasses.replace(getattr(config, stage), epochs=value)})
    metrics = training.train_run(
        config, args.out, data_dir=args.data_dir, strategy=_make_strategy(args.strategy), force=args.force,
        verbose=0 if args.quiet else 1,
    )
    print(json.dumps(metrics, indent=2, sort_keys=True))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="siamese-xai",
        description=(
            "Explain a Siamese neural network (Utkin, Kovalev and Kasimov, 2019). "
            "Start with `siamese-xai train --out runs/mine`, which trains the Siamese network, "
            "the explainable autoencoder and the decoder on MNIST into a run folder."
        ),
    )
    parser.add_argument("--verbose", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    train = sub.add_parser(
        "train",
        help="train the Siamese network, the explainable autoencoder and the decoder into a run folder",
        description=(
            "Trains the three stages on MNIST and writes RUN/snn.keras, encoder.keras, decoder.keras, "
            "prototypes.npy, config.json and metrics.json. Stages already in RUN are skipped; an "
            "interrupted stage resumes from its checkpoint when the same command is run again."
        ),
    )
    train.add_argument("--out", required=True, metavar="RUN", help="the run folder to write")
    train.add_argument(
        "--data-dir", metavar="DIR",
        help="a tensorflow-datasets folder holding mnist/, or a folder of the four raw MNIST IDX files "
        "(default: $TFDS_DATA_DIR)",
    )
    train.add_argument("--embedding-dim", type=_positive_int, metavar="D", help="embedding length D (default 20, Table 1)")
    train.add_argument("--epochs", type=_positive_int, help="epochs of every stage (overrides the defaults)")
    train.add_argument("--snn-epochs", type=_positive_int, help="epochs of the Siamese network")
    train.add_argument("--ae-epochs", type=_positive_int, help="epochs of the joint autoencoder training")
    train.add_argument("--decoder-epochs", type=_positive_int, help="epochs of the decoder fine-tuning")
    train.add_argument("--seed", type=_non_negative_int, help="random seed (default 0)")
    train.add_argument("--strategy", default="default", help="tf.distribute strategy: default, mirrored or multiworker")
    train.add_argument("--tiny", action="store_true", help="a seconds-long configuration on 2,000 images (for trying things)")
    train.add_argument("--force", action="store_true", help="retrain every stage even if RUN has them")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    train.set_defaults(func=_cmd_train)
    return parser


def main(argv=None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except KeyboardInterrupt:
        print("siamese-xai: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except (CLIError, ValueError, OSError) as err:
        if args.verbose:
            traceback.print_exc()
        message = " ".join(str(err).split())
        print(f"siamese-xai: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
