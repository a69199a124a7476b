"""The `siamese-xai` command line.

Only this module and the `reproduce/` scripts parse arguments; the work is
done by the library.
"""

from __future__ import annotations

import argparse
import sys
import traceback
import warnings
from pathlib import Path

from siamese_xai.cli import commands, splits
from siamese_xai.cli.commands import CLIError  # noqa: F401 - the error main() reports in one line

EXIT_USAGE = 2
EXIT_NOT_USABLE = 3  # the run was written, but its Siamese network separates no classes


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


def _add_explain_options(p, full: bool = False):
    """The estimators' parameters; `full` adds those of commands that explain images.

    Each estimator's config declares which of them it reads (`CLI_OPTIONS`);
    the others are refused for it by name (`commands.estimator_options`).
    """
    p.add_argument("--s", type=_positive_int, metavar="S", help="embedding coordinates to perturb (default 5); "
                   "mc, linear and template_contrast")
    p.add_argument("--q", type=_positive_int, metavar="Q", help="pixels in the mask (default 100); mc, linear and "
                   "template_contrast")
    p.add_argument("--n", type=_positive_int, metavar="N",
                   help="codes decoded per explanation: perturbations with mc and linear (default 5000, the paper's), "
                   "path points with template_contrast (default 5000)")
    p.add_argument("--sigma-scale", type=_positive_float, metavar="F",
                   help="sigma = F * min_j |h_j - c_j| (default 0.1, the paper's); mc and linear only")
    from siamese_xai.config import PROPOSALS
    from siamese_xai.explainers.base import REGISTRY

    p.add_argument("--cell", type=_positive_int, metavar="PX",
                   help="side of the probe's candidate regions in pixels (default max(2, round(min(H, W) / 7))); "
                   "probe only")
    p.add_argument("--max-regions", type=_positive_int, metavar="R",
                   help="the most candidate regions the probe paints per image, one f call each (default 40); "
                   "probe only")
    p.add_argument("--proposal", choices=PROPOSALS,
                   help="what the probe paints the regions with (default auto: for class questions a real training "
                   "image of the contrast class, else the decoder's image of its prototype; the other image for a "
                   "pair); probe only")
    p.add_argument("--examples-per-class", type=_non_negative_int, metavar="K",
                   help="training images of each class the probe loads, from the data the run was trained on, to "
                   "paint as the contrast class (default 5; 0: none, paint the decoder's image); probe only")
    p.add_argument("--estimator", choices=tuple(REGISTRY),
                   help="mc: decode N perturbations (the paper); linear: first-order, faster; template_contrast: why "
                   "the SNN's class rather than the runner-up (or --contrast-class), from the decoded class templates "
                   "gated by the input; probe: why the SNN's class rather than the runner-up, measured by f on "
                   "regions painted with a training image of the runner-up (--examples-per-class)")
    if not full:
        return
    p.add_argument("--direction", choices=("toward_prototype", "positive"),
                   help="perturb toward the prototype (default) or by +|eps| (the literal reading); mc and linear only")
    p.add_argument("--seed", type=_non_negative_int, help="seed of the perturbations (default 0); mc and linear (template_contrast records it, it draws nothing)")
    p.add_argument("--data-dir", metavar="DIR", help="MNIST's location for mnist: inputs (default: $TFDS_DATA_DIR); "
                   "for explain-split also an image folder (DIR/<class>/... or DIR/train, DIR/test)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _positive_float(text):
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, received {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive number, received {text!r}")
    return value


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], received {text!r}")
    return value


def _image_size(text):
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 32x32, received {text!r}") from None
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"expected positive sides, received {text!r}")
    return (h, w)


def _add_data_options(p):
    p.add_argument("--dataset", metavar="NAME", help="a prepared tensorflow-datasets image set by name (default: MNIST)")
    p.add_argument("--image-size", type=_image_size, metavar="HxW", help="resize images of other sizes to HxW (else sizes must agree)")
    p.add_argument("--test-fraction", type=float, default=0.2, metavar="F",
                   help="test share of an image folder without train/ and test/ (default 0.2, seeded and stratified)")


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (exit code 2), like the others."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
    _add_data_options(train)
    train.add_argument("--embedding-dim", type=_positive_int, metavar="D", help="embedding length D (default 20, Table 1)")
    train.add_argument("--epochs", type=_positive_int, help="epochs of every stage (overrides the defaults)")
    train.add_argument("--snn-epochs", type=_positive_int, help="epochs of the Siamese network")
    train.add_argument("--ae-epochs", type=_positive_int, help="epochs of the joint autoencoder training")
    train.add_argument("--decoder-epochs", type=_positive_int, help="epochs of the decoder fine-tuning")
    train.add_argument("--seed", type=_non_negative_int, help="random seed (default 0)")
    train.add_argument("--train-limit", type=_positive_int, metavar="N", help="train on the first N training images only")
    train.add_argument("--checkpoint-every", type=_positive_int, metavar="STEPS", help="steps between checkpoints (default 200; 10 with --tiny)")
    train.add_argument("--strategy", default="default", help="tf.distribute strategy: default, mirrored or multiworker")
    train.add_argument("--min-steps", type=_non_negative_int, metavar="STEPS",
                       help="train each stage at least STEPS steps, raising its epochs on small data (default 400 "
                       "unless --tiny or epochs are given; 0: none; MNIST's schedule already has more)")
    train.add_argument("--tiny", action="store_true", help="a seconds-long configuration on 2,000 images (for trying things)")
    train.add_argument("--force", action="store_true", help="retrain every stage even if RUN has them")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    train.set_defaults(func=commands.train)

    fit = sub.add_parser(
        "fit",
        help="fit the explainer to your own Siamese tower (a .keras file) on your data",
        description=(
            "Trains the explainable autoencoder against your embedding network (joint loss), fine-tunes the decoder "
            "on its embeddings and computes the class prototypes, then writes a run folder that explain, "
            "explain-split and export use like any other."
        ),
    )
    fit.add_argument("--embed", required=True, metavar="MODEL", help="your tower: a .keras file, (B, H, W, C) -> (B, D)")
    fit.add_argument("--out", required=True, type=Path, metavar="RUN", help="the run folder to write")
    fit.add_argument("--data-dir", metavar="DIR", help="an image folder (DIR/<class>/... or DIR/train, DIR/test), a tfds folder, or raw MNIST")
    _add_data_options(fit)
    fit.add_argument("--epochs", type=_positive_int, help="epochs of the autoencoder and the decoder stages")
    fit.add_argument("--seed", type=_non_negative_int, help="random seed (default 0)")
    fit.add_argument("--min-steps", type=_non_negative_int, metavar="STEPS",
                     help="train each stage at least STEPS steps (default 400 unless --tiny or --epochs; 0: none)")
    fit.add_argument("--tiny", action="store_true", help="one short epoch per stage (for trying things)")
    fit.add_argument("--quiet", action="store_true", help="no progress bars")
    fit.set_defaults(func=commands.fit)

    explain = sub.add_parser(
        "explain",
        help="explain images with a trained run folder",
        description=(
            "Explains each INPUT: which pixels make the Siamese network place it at its class prototype. "
            "INPUT is a 28x28 grayscale PNG/JPEG (white digit on black, like MNIST; colour images are "
            "converted to grayscale with a note) or mnist:test:INDEX. Any --estimator answers the question "
            "--target-class, --contrast-class or --pair asks, or is refused naming both. Writes OUT/NAME.png (the "
            "estimator's figure: the paper's quadruple of input, reconstruction, input with the mask and the mask "
            "for mc, linear and template_contrast; input, proposal, measured drop and found change for the probe) "
            "and OUT/NAME.json (every field of its result)."
        ),
    )
    explain.add_argument("inputs", nargs="+", metavar="INPUT", help="image file or mnist:test:INDEX")
    explain.add_argument("--run", required=True, metavar="RUN", help="a run folder from `siamese-xai train`")
    explain.add_argument("--out", required=True, metavar="DIR", help="folder for the PNG and JSON files")
    explain.add_argument("--target-class", type=_non_negative_int, metavar="K", help="explain 'why class K?' instead of the SNN's own class")
    explain.add_argument("--pair", metavar="OTHER", help="explain why INPUT is close to (or far from) OTHER, an image or mnist:test:INDEX")
    explain.add_argument("--contrast-class", type=_non_negative_int, metavar="L",
                         help="with --estimator template_contrast or probe: explain 'why class K rather than class L?' "
                         "(default: the runner-up)")
    _add_explain_options(explain, full=True)
    explain.set_defaults(func=commands.explain)

    split = sub.add_parser(
        "explain-split",
        help="explain every image of a split (MNIST, an image folder or a tfds set), in resumable shards",
        description=(
            "Explains every image of the split with any --estimator and writes OUT/shard-NNNNN.npz (the fields its "
            "result keeps: masks, maps, classes, distances, and J and sigma, or the probe's found sets and flips; see "
            "siamese_xai.scale.shards) and OUT/manifest.json. Killed and run again with the "
            "same command, it keeps the finished shards and computes the rest. --runner beam computes the shards on "
            "Apache Beam (pip install 'siamese-xai[beam]'; the DirectRunner, or Flink, Spark, Dataflow through "
            "--beam-option) into the same folder."
        ),
    )
    split.add_argument("--run", required=True, metavar="RUN", help="a run folder from `siamese-xai train`")
    split.add_argument("--split", choices=("train", "test"), default="test",
                       help="the split (default test; an image folder is split as for `train`, with the run's seed)")
    split.add_argument("--out", required=True, metavar="DIR", help="folder for the shards")
    split.add_argument("--pairs", metavar="CSV",
                       help="explain a list of pairs instead of a split: a CSV file of two image paths per row "
                       "(FIRST,SECOND, relative to the CSV's folder; an optional header row); each image is explained "
                       "toward the other (why FIRST is at its distance from SECOND, and why SECOND from FIRST); not "
                       "with --data-dir, --dataset or --image-size")
    split.add_argument("--threshold", type=_positive_float, metavar="T",
                       help="with --pairs: the pairs' verdict, same where d(f(FIRST), f(SECOND)) <= T (the threshold "
                       "`verify` prints); the probe then finds the change of each image that flips the verdict")
    split.add_argument("--limit", type=_positive_int, metavar="K", help="only the first K images of the split (or pairs)")
    split.add_argument("--shard-size", type=_positive_int, default=500, metavar="M", help="images per shard (default 500)")
    split.add_argument("--batch-size", type=_positive_int, default=32, metavar="B", help="images per explainer call (default 32)")
    split.add_argument("--force", action="store_true", help="start OUT over if it holds results computed with other settings")
    split.add_argument("--runner", choices=("local", "beam"), default="local",
                       help="local: this process (default); beam: an Apache Beam pipeline (the [beam] extra)")
    split.add_argument("--beam-option", action="append", default=[], metavar="OPT",
                       help="a Beam pipeline option, repeatable, e.g. --beam-option=--runner=FlinkRunner "
                       "(default: the DirectRunner, multi-processing, one worker per core)")
    _add_explain_options(split, full=True)
    _add_data_options(split)
    split.set_defaults(func=splits.explain_split)

    verify = sub.add_parser(
        "verify",
        help="accept or reject a pair at a distance threshold, why, and what change of each image flips the verdict",
        description=(
            "Embeds A and B with the run's Siamese network, accepts the pair when d(f(A), f(B)) <= THRESHOLD (given, "
            "or calibrated at the equal error rate, or at --far, on labelled pairs of the data's training split) and "
            "explains the verdict by asking f: for each image, the regions whose change (B's content for a rejected "
            "pair, a blur for an accepted one) flips it. Writes OUT/A__vs__B.png and OUT/A__vs__B.json."
        ),
    )
    verify.add_argument("first", metavar="A", help="image file or mnist:test:INDEX")
    verify.add_argument("second", metavar="B", help="image file or mnist:test:INDEX")
    verify.add_argument("--run", required=True, metavar="RUN", help="a run folder from `siamese-xai train` or `fit`")
    verify.add_argument("--out", required=True, metavar="DIR", help="folder for the PNG and JSON files")
    verify.add_argument("--threshold", type=_positive_float, metavar="T", help="accept when d <= T (default: calibrated)")
    verify.add_argument("--far", type=_fraction, metavar="RATE",
                        help="calibrate T as the largest with this false accept rate (default: the equal error rate)")
    verify.add_argument("--calibration-images", type=_positive_int, default=5000, metavar="N",
                        help="labelled training images drawn for the calibration (default 5000)")
    verify.add_argument("--data-dir", metavar="DIR", help="MNIST's location, or the labelled image folder to calibrate on")
    _add_data_options(verify)
    verify.set_defaults(func=commands.verify)

    rank = sub.add_parser(
        "rank",
        help="rank a gallery by distance to a query, with the reason each item ranks above the next",
        description=(
            "Orders the GALLERY images by d(f(QUERY), f(item)) and, for each of the top K, asks f why it ranks above "
            "the next one: the regions of the query whose change (the next item's content) swaps the two. Writes "
            "OUT/QUERY__rank.png and OUT/QUERY__rank.json."
        ),
    )
    rank.add_argument("query", metavar="QUERY", help="image file or mnist:test:INDEX")
    rank.add_argument("gallery", nargs="+", metavar="GALLERY", help="image files or mnist:test:INDEX")
    rank.add_argument("--run", required=True, metavar="RUN", help="a run folder from `siamese-xai train` or `fit`")
    rank.add_argument("--out", required=True, metavar="DIR", help="folder for the PNG and JSON files")
    rank.add_argument("--top", type=_positive_int, default=5, metavar="K", help="items to explain (default 5)")
    rank.add_argument("--data-dir", metavar="DIR", help="MNIST's location for mnist: inputs (default: $TFDS_DATA_DIR)")
    rank.set_defaults(func=commands.rank)

    report = sub.add_parser(
        "report",
        help="write a static HTML gallery of an explain-split folder",
        description=(
            "Writes one self-contained HTML page (no server, no network): counts per true and predicted class, the "
            "confusion of the nearest-prototype decision, the margin's distribution, each class's mean mask and mean "
            "signed change, and a gallery of the explanations to sort and filter by class, margin and distance. "
            "A folder of pairs (explain-split --pairs) gets a page of its pairs: both images, the first's mask and "
            "map, the pair's distance and the counterfactual where the folder holds them."
        ),
    )
    report.add_argument("split_dir", metavar="SPLIT_DIR", help="a folder written by explain-split")
    report.add_argument("--out", metavar="HTML", help="the page to write (default SPLIT_DIR/report.html)")
    report.add_argument("--data-dir", metavar="DIR", help="MNIST's or a tfds set's location, to draw the images (default: "
                        "the one explain-split recorded, or $TFDS_DATA_DIR)")
    report.add_argument("--max-items", type=_positive_int, metavar="K",
                        help="gallery items: the K nearest the decision boundary, or a list's first K pairs "
                        "(default: every image)")
    report.set_defaults(func=commands.report)

    export = sub.add_parser(
        "export",
        help="export the explainer as a TensorFlow SavedModel",
        description=(
            "Writes a SavedModel whose serving signature takes (images, seed) and returns the mask, the mean "
            "change, the class, the distances and the reconstruction; it needs only TensorFlow to load."
        ),
    )
    export.add_argument("--run", required=True, metavar="RUN", help="a run folder from `siamese-xai train`")
    export.add_argument("--out", required=True, metavar="DIR", help="the SavedModel folder to write")
    _add_explain_options(export)
    export.set_defaults(func=commands.export)
    return parser


def main(argv=None) -> int:
    from siamese_xai.startup import quiet_start, warning_as_sentence

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        # inside the try, so that Ctrl-C during the slow import ends like any other interruption
        quiet_start(verbose=args.verbose)
        with warnings.catch_warnings():
            if not args.verbose:  # a warning that gets through reads as a sentence, not a source path and line
                warnings.showwarning = warning_as_sentence
                # deprecations inside the libraries are advice for their callers' developers, not for the user
                warnings.simplefilter("ignore", DeprecationWarning)
                warnings.simplefilter("ignore", PendingDeprecationWarning)
            args.func(args)
    except KeyboardInterrupt:
        print("siamese-xai: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except commands.RunNotUsable as err:
        print(f"siamese-xai: {err}", file=sys.stderr)
        return EXIT_NOT_USABLE
    except (CLIError, ValueError, OSError) as err:
        if args.verbose:
            traceback.print_exc()
        message = " ".join(str(err).split())
        print(f"siamese-xai: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
