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
from pathlib import Path

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
    from siamese_xai.training import STRATEGIES, make_strategy

    if name not in STRATEGIES:
        raise CLIError(f"--strategy must be one of {', '.join(STRATEGIES)}; received {name!r}")
    return make_strategy(name)


def _cmd_train(args):
    from siamese_xai import training
    from siamese_xai.config import TrainConfig

    config = TrainConfig.tiny() if args.tiny else TrainConfig.paper()
    changes = {"seed": args.seed, "embedding_dim": args.embedding_dim, "train_limit": args.train_limit,
               "checkpoint_every": args.checkpoint_every}
    config = config.replace(**{k: v for k, v in changes.items() if v is not None})
    import dataclasses

    for stage, value in (("snn", args.snn_epochs), ("autoencoder", args.ae_epochs), ("decoder", args.decoder_epochs)):
        value = value or args.epochs
        if value is not None:
            config = config.replace(**{stage: dataclasses.replace(getattr(config, stage), epochs=value)})
    metrics = training.train_run(
        config, args.out, data_dir=args.data_dir, strategy=_make_strategy(args.strategy), force=args.force,
        verbose=0 if args.quiet else 1, dataset=args.dataset, image_size=args.image_size,
        test_fraction=args.test_fraction, min_steps=_min_steps(args),
    )
    print(json.dumps(metrics, indent=2, sort_keys=True))


def _min_steps(args) -> int:
    """--min-steps, or the default minimum unless the schedule was chosen (--tiny, --epochs, a stage's epochs)."""
    from siamese_xai.config import DEFAULT_MIN_STEPS

    if args.min_steps is not None:
        return args.min_steps
    chosen = args.tiny or any(getattr(args, name, None) for name in ("epochs", "snn_epochs", "ae_epochs", "decoder_epochs"))
    return 0 if chosen else DEFAULT_MIN_STEPS


def _load_tower(path):
    """A user's embedding network: a `.keras` file or a SavedModel folder (its serving signature)."""
    from siamese_xai import runs

    path = Path(path)
    if not path.exists():
        raise CLIError(f"--embed {str(path)!r} does not exist (expected a .keras file or a SavedModel folder)")
    if path.is_dir():
        return runs.SavedModelTower(path)
    return runs.load_model(path.parent, path.name)


def _cmd_fit(args):
    from siamese_xai import datasets, runs
    from siamese_xai.config import TrainConfig
    from siamese_xai.fitting import fit_explainer

    load = dict(data_dir=args.data_dir, dataset=args.dataset, image_size=args.image_size,
                test_fraction=args.test_fraction, seed=args.seed or 0)
    x, y, class_names = datasets.load_dataset(split="train", **load)
    tower = _load_tower(args.embed)
    import dataclasses

    from siamese_xai.prototypes import embed_in_batches

    dim = embed_in_batches(tower, x[:2]).shape[1]
    config = (TrainConfig.tiny if args.tiny else TrainConfig.paper)(embedding_dim=dim, seed=args.seed or 0)
    for stage in ("autoencoder", "decoder"):
        if args.epochs:
            config = config.replace(**{stage: dataclasses.replace(getattr(config, stage), epochs=args.epochs)})
    config = config.with_min_steps(_min_steps(args), len(x[: config.train_limit]))
    explainer = fit_explainer(tower, x, y, config, num_classes=len(class_names), run_dir=args.out,
                              verbose=0 if args.quiet else 1)
    runs.write_class_names(args.out, class_names)
    x_test, y_test, _ = datasets.load_dataset(split="test", **load)
    e = explainer.explain(x_test[:1])  # a check that the run explains
    print(json.dumps({"run": str(args.out), "run_id": runs.load_run(args.out).run_id,
                      "classes": list(class_names), "embedding_dim": explainer.embedding_dim,
                      "image_shape": list(explainer.image_shape), "num_train": len(x), "num_test": len(x_test),
                      "example": {"predicted": e.class_name(e.predicted_class[0]),
                                  "true": class_names[int(y_test[0])]}}, indent=2))


def _explanation_json(e, label, note) -> dict:
    """The JSON the CLI writes for one input: every field of the Explanation, plus what the CLI knows."""
    import numpy as np

    out = e.to_dict()
    out["true_label"] = label
    out["mask_pixels_row_col"] = np.argwhere(e.mask[0].any(axis=-1)).tolist()
    if note:
        out["note"] = note
    return out


def _cmd_explain(args):
    import keras
    import numpy as np

    from siamese_xai import files, inputs, plotting
    from siamese_xai.explain import SiameseExplainer

    out_dir = _writable_dir(args.out)
    if args.method == "probe":
        return _explain_probe(args, out_dir)
    explainer = SiameseExplainer.from_run(args.run, _explain_config(args))
    shape = explainer.image_shape
    resolved = [inputs.resolve_input(spec, args.data_dir, shape) for spec in args.inputs]
    other = inputs.resolve_input(args.pair, args.data_dir, shape) if args.pair else None
    for _, _, _, note in resolved:
        if note:
            print(f"note: {note}", file=sys.stderr)
    images = np.stack([image for image, _, _, _ in resolved])
    contrast = {} if args.contrast_class is None else {"contrast_class": args.contrast_class}
    if args.contrast_class is not None and explainer.config.method != "template_contrast":  # probe: above
        raise CLIError(f"--contrast-class needs --method template_contrast; received --method {explainer.config.method}")
    if other is not None:
        target = {} if args.target_class is None or explainer.config.method != "template_contrast" else {"target_class": args.target_class}
        explanation = explainer.explain(images, reference=other[0], seed=args.seed, **contrast, **target)
    else:
        explanation = explainer.explain(images, target_class=args.target_class, seed=args.seed, **contrast)
    bar = keras.utils.Progbar(len(resolved), unit_name="input") if len(resolved) > 1 and not args.quiet else None
    for i, ((_, name, label, note), e) in enumerate(zip(resolved, explanation)):
        if other is not None:
            name = f"{name}__vs__{other[1]}"
        axes = plotting.plot_explanation(e)
        plotting.save_figure(axes[0].figure, out_dir / f"{name}.png")
        files.write_json(out_dir / f"{name}.json", _explanation_json(e, label, note))
        if bar is not None:
            bar.update(i + 1)
        if args.quiet or bar is None:
            what = "pair" if other is not None else f"class {e.class_name(e.explained_class[0])}"
            if explainer.config.method == "template_contrast":
                against = "the other image" if other is not None else f"class {e.class_name(e.contrast_class[0])}"
                what = f"class {e.class_name(e.explained_class[0])} rather than {against}"
            print(f"{name}: SNN class {e.class_name(e.predicted_class[0])}, explained {what}, J={e.indices[0].tolist()}, "
                  f"sigma={float(e.sigma[0]):.4g} -> {out_dir / (name + '.png')}")


def _explain_probe(args, out_dir):
    """`explain --method probe`: why class k rather than l, measured by f (`siamese_xai.probe`)."""
    import dataclasses

    import numpy as np

    from siamese_xai import files, inputs, plotting
    from siamese_xai.probe import ProbeExplainer

    if args.pair:
        raise CLIError("--pair is not available with --method probe (it asks about classes, not a reference image)")
    probe = ProbeExplainer.from_run(args.run)
    resolved = [inputs.resolve_input(spec, args.data_dir, probe.image_shape) for spec in args.inputs]
    images = np.stack([image for image, _, _, _ in resolved])
    explanation = probe.explain(images, target_class=args.target_class, contrast_class=args.contrast_class)
    for (_, name, label, note), e in zip(resolved, explanation):
        axes = plotting.plot_probe(e)
        plotting.save_figure(axes[0].figure, out_dir / f"{name}.png")
        record = {field: getattr(e, field)[0].tolist() for field in (
            "predicted_class", "explained_class", "contrast_class", "margin", "flips", "set_size", "final_margin",
            "n_calls")}
        record.update(true_label=label, config=dataclasses.asdict(e.config), cell=e.cell, run_id=e.run_id,
                      found_set_pixels_row_col=np.argwhere(e.mask[0].any(axis=-1)).tolist())
        if note:
            record["note"] = note
        files.write_json(out_dir / f"{name}.json", record)
        k, l = e.class_name(e.explained_class[0]), e.class_name(e.contrast_class[0])
        print(f"{name}: SNN class {e.class_name(e.predicted_class[0])}, explained {k} rather than {l}: "
              f"{int(e.set_size[0])} regions painted {'flip' if e.flips[0] else 'do not flip'} f to {l} "
              f"({int(e.n_calls[0])} f calls) -> {out_dir / (name + '.png')}")


def _cmd_explain_split(args):
    from siamese_xai import data, datasets, files, runs, shards
    from siamese_xai.explain import SiameseExplainer

    if args.beam_option and args.runner != "beam":
        raise CLIError(f"--beam-option needs --runner beam; received --runner {args.runner}")
    if args.runner == "beam":
        try:  # before the slow loading, so that a missing extra is said at once
            from siamese_xai import beam
        except ImportError as err:
            raise CLIError(" ".join(str(err).split())) from None
    explainer = SiameseExplainer.from_run(args.run, _explain_config(args))
    kind = datasets.data_kind(args.data_dir, args.dataset)
    seed = 0
    if kind != "mnist" or args.image_size is not None:
        # an image folder is split as it was for training: with the run's seed (0 if the run does not say)
        config_path = Path(args.run) / runs.CONFIG_FILE
        seed = files.read_json(config_path).get("seed", 0) if config_path.is_file() else 0
    out_dir = _writable_dir(args.out)
    options = dict(shard_size=args.shard_size, batch_size=args.batch_size, seed=args.seed,
                   verbose=0 if args.quiet else "auto", force=args.force)
    if args.runner == "beam":
        if kind == "mnist" and args.image_size is None:
            source = beam.MnistSource(args.split, args.data_dir, args.limit)
        elif kind == "image_folder" and args.limit is None:
            source = beam.ImageFolderSource(args.data_dir, args.split, args.image_size, args.test_fraction, seed)
        else:
            raise CLIError(f"--runner beam reads MNIST (with --limit) or a whole image folder; received data {kind}"
                           + ("" if args.limit is None else f" with --limit {args.limit}") + ": use --runner local")
        result = beam.explain_split_beam(args.run, explainer, source, out_dir, beam_options=args.beam_option,
                                         **options)
    else:
        if kind == "mnist" and args.image_size is None:
            x, y = data.load_mnist(args.split, args.data_dir)
            source = {"dataset": "mnist", "split": args.split, "limit": args.limit}
        else:
            x, y, _ = datasets.load_dataset(args.data_dir, args.dataset, split=args.split,
                                            image_size=args.image_size, test_fraction=args.test_fraction, seed=seed)
            source = {"dataset": kind,
                      "data_dir": None if args.data_dir is None else str(Path(args.data_dir).resolve()),
                      "split": args.split, "limit": args.limit, "image_size": args.image_size,
                      "test_fraction": args.test_fraction, "split_seed": seed}
        if tuple(x.shape[1:]) != tuple(explainer.image_shape):
            raise CLIError(f"--run {args.run!r} explains images of shape {tuple(explainer.image_shape)}; the data "
                           f"({kind}) has images of shape {tuple(x.shape[1:])} (--image-size resizes them)")
        if args.limit is not None:
            x, y = x[: args.limit], y[: args.limit]
        result = shards.explain_split(explainer, x, out_dir, labels=y, source=source, **options)
    print(f"{result['num_images']} images in {result['num_shards']} shards in {out_dir} "
          f"({result['shards_kept']} kept from an earlier run, {result['shards_written']} written)")


def _cmd_report(args):
    from siamese_xai import report

    path = report.write_report(args.split_dir, args.out, data_dir=args.data_dir, limit=args.max_items)
    print(f"gallery written to {path}")


def _cmd_export(args):
    from siamese_xai.explain import SiameseExplainer
    from siamese_xai.export import export_explainer

    explainer = SiameseExplainer.from_run(args.run, _explain_config(args))
    export_explainer(explainer, args.out)
    print(f"SavedModel written to {args.out}")


def _writable_dir(path):
    from pathlib import Path

    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CLIError(f"--out {str(path)!r} cannot be created: {err.strerror}") from None
    if not os.access(path, os.W_OK):
        raise CLIError(f"--out {str(path)!r} is not writable")
    return path


def _add_explain_options(p, full: bool = False, probe: bool = False):
    """The explainer's parameters; `full` adds those of commands that explain images, `probe` the method asking f."""
    p.add_argument("--s", type=_positive_int, metavar="S", help="embedding coordinates to perturb (default 5)")
    p.add_argument("--q", type=_positive_int, metavar="Q", help="pixels in the mask (default 100)")
    p.add_argument("--n", type=_positive_int, metavar="N", help="perturbations (default 5000, the paper's)")
    p.add_argument("--sigma-scale", type=_positive_float, metavar="F",
                   help="sigma = F * min_j |h_j - c_j| (default 0.1, the paper's); not used by --method template_contrast")
    p.add_argument("--method", choices=("mc", "linear", "template_contrast", "contrast") + (("probe",) if probe else ()),
                   help="mc: decode N perturbations (the paper); linear: first-order, faster; template_contrast: why "
                   "the SNN's class rather than the runner-up (or --contrast-class), from the decoded class templates "
                   "gated by the input (contrast: its earlier name)"
                   + ("; probe: why the SNN's class rather than the runner-up, measured by f on regions painted with "
                      "the decoder's image of the runner-up's prototype" if probe else ""))
    if not full:
        return
    p.add_argument("--direction", choices=("toward_prototype", "positive"), help="perturb toward the prototype (default) or by +|eps| (the literal reading)")
    p.add_argument("--seed", type=_non_negative_int, default=0, help="seed of the perturbations (default 0)")
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


def _explain_config(args):
    """The ExplainConfig the command's options ask for (paper defaults otherwise)."""
    from siamese_xai.explain import ExplainConfig

    options = (("s", "s"), ("q", "q"), ("n", "n_perturbations"), ("method", "method"), ("direction", "direction"),
               ("sigma_scale", "sigma_scale"))
    changes = {field: getattr(args, name) for name, field in options if getattr(args, name, None) is not None}
    return ExplainConfig().replace(**changes)


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
    train.set_defaults(func=_cmd_train)

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
    fit.set_defaults(func=_cmd_fit)

    explain = sub.add_parser(
        "explain",
        help="explain images with a trained run folder",
        description=(
            "Explains each INPUT: which pixels make the Siamese network place it at its class prototype. "
            "INPUT is a 28x28 grayscale PNG/JPEG (white digit on black, like MNIST; colour images are "
            "converted to grayscale with a note) or mnist:test:INDEX. Writes OUT/NAME.png (the paper's "
            "quadruple: input, reconstruction, input with the mask, the mask) and OUT/NAME.json."
        ),
    )
    explain.add_argument("inputs", nargs="+", metavar="INPUT", help="image file or mnist:test:INDEX")
    explain.add_argument("--run", required=True, metavar="RUN", help="a run folder from `siamese-xai train`")
    explain.add_argument("--out", required=True, metavar="DIR", help="folder for the PNG and JSON files")
    explain.add_argument("--target-class", type=_non_negative_int, metavar="K", help="explain 'why class K?' instead of the SNN's own class")
    explain.add_argument("--pair", metavar="OTHER", help="explain why INPUT is close to (or far from) OTHER, an image or mnist:test:INDEX")
    explain.add_argument("--contrast-class", type=_non_negative_int, metavar="L",
                         help="with --method template_contrast: explain 'why class K rather than class L?' (default: the runner-up)")
    _add_explain_options(explain, full=True, probe=True)
    explain.set_defaults(func=_cmd_explain)

    split = sub.add_parser(
        "explain-split",
        help="explain every image of a split (MNIST, an image folder or a tfds set), in resumable shards",
        description=(
            "Explains every image of the split and writes OUT/shard-NNNNN.npz (masks, mean changes, classes, "
            "distances, J, sigma; see siamese_xai.shards) and OUT/manifest.json. Killed and run again with the "
            "same command, it keeps the finished shards and computes the rest. --runner beam computes the shards on "
            "Apache Beam (pip install 'siamese-xai[beam]'; the DirectRunner, or Flink, Spark, Dataflow through "
            "--beam-option) into the same folder."
        ),
    )
    split.add_argument("--run", required=True, metavar="RUN", help="a run folder from `siamese-xai train`")
    split.add_argument("--split", choices=("train", "test"), default="test",
                       help="the split (default test; an image folder is split as for `train`, with the run's seed)")
    split.add_argument("--out", required=True, metavar="DIR", help="folder for the shards")
    split.add_argument("--limit", type=_positive_int, metavar="K", help="only the first K images of the split")
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
    split.set_defaults(func=_cmd_explain_split)

    report = sub.add_parser(
        "report",
        help="write a static HTML gallery of an explain-split folder",
        description=(
            "Writes one self-contained HTML page (no server, no network): counts per true and predicted class, the "
            "confusion of the nearest-prototype decision, the margin's distribution, each class's mean mask and mean "
            "signed change, and a gallery of the explanations to sort and filter by class, margin and distance."
        ),
    )
    report.add_argument("split_dir", metavar="SPLIT_DIR", help="a folder written by explain-split")
    report.add_argument("--out", metavar="HTML", help="the page to write (default SPLIT_DIR/report.html)")
    report.add_argument("--data-dir", metavar="DIR", help="MNIST's location, to draw the images (default: $TFDS_DATA_DIR)")
    report.add_argument("--max-items", type=_positive_int, metavar="K",
                        help="gallery items: the K nearest the decision boundary (default: every image)")
    report.set_defaults(func=_cmd_report)

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
    export.set_defaults(func=_cmd_export)
    return parser


def main(argv=None) -> int:
    from siamese_xai.startup import quiet_start

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        # inside the try, so that Ctrl-C during the slow import ends like any other interruption
        quiet_start(verbose=args.verbose)
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
