"""What each `siamese-xai` command does, once `siamese_xai.cli` has parsed its arguments.

Each command is a function of the parsed `argparse.Namespace`; the work is done
by the library, and a problem the user can fix is raised as `CLIError` (one
line, exit code 2).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path


class CLIError(Exception):
    """An error to show the user as one line, exit code 2."""


class RunNotUsable(Exception):
    """A run that finished but cannot be used (its network separates no classes): one line, exit code 3."""


def _say(text):
    print(f"siamese-xai: {text}", file=sys.stderr)


def verdict(metrics: dict, num_classes: int, what: str, trained_here: bool = True) -> None:
    """Ends `train` and `fit` with one line per problem found (`training.diagnose`), or a line saying it worked.

    Args:
        metrics: the test metrics.
        num_classes: C.
        what: how the lines name the run.
        trained_here: `train` (True): a Siamese network that separates no
            classes makes the run unusable (exit code 3). `fit` (False): the
            network is the user's, and the explainer explains it whatever it
            learnt, so the same finding is a warning (exit code 0).

    Raises:
        RunNotUsable: `trained_here` and the Siamese network does not separate the classes.
    """
    from siamese_xai.training.stages import diagnose

    found = diagnose(metrics, num_classes)
    fatal = [sentence for unusable, sentence in found if unusable and trained_here]
    for _, sentence in found:
        if sentence not in fatal:
            _say(f"warning: {sentence}")
    if fatal:
        raise RunNotUsable(f"{what} is not usable: {'; '.join(fatal)}")
    _say(f"{what} is done: nearest-prototype test accuracy {metrics['prototype_accuracy']:.1%} (chance "
         f"{1 / num_classes:.1%}); g(f(x)) squared error {metrics['recon_sse_decoder']:.4g} against "
         f"{metrics['recon_sse_class_mean_image']:.4g} for the class-mean images"
         + (" (see the warning above)" if found else ""))


def _make_strategy(name):
    from siamese_xai.training.distribute import STRATEGIES, make_strategy

    if name not in STRATEGIES:
        raise CLIError(f"--strategy must be one of {', '.join(STRATEGIES)}; received {name!r}")
    return make_strategy(name)


def train(args):
    from siamese_xai.training import stages as training
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
        test_fraction=args.test_fraction, min_steps=min_steps(args), size_defaults=not _schedule_chosen(args),
    )
    print(json.dumps(metrics, indent=2, sort_keys=True))
    verdict(metrics, len(metrics["data"]["class_names"]), f"the run in {args.out}")


def _schedule_chosen(args) -> bool:
    return bool(args.tiny or any(getattr(args, name, None) for name in ("epochs", "snn_epochs", "ae_epochs",
                                                                         "decoder_epochs", "min_steps")))


def min_steps(args) -> int:
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


def fit(args):
    from siamese_xai.data import datasets
    from siamese_xai.config import TrainConfig
    from siamese_xai.training.fitting import fit_explainer

    load = dict(data_dir=args.data_dir, dataset=args.dataset, image_size=args.image_size,
                test_fraction=args.test_fraction, seed=_seed(args) or 0)
    x, y, class_names = datasets.load_dataset(split="train", **load)
    tower = _load_tower(args.embed)
    import dataclasses

    from siamese_xai.explainers.prototypes import embed_in_batches

    dim = embed_in_batches(tower, x[:2]).shape[1]
    config = (TrainConfig.tiny if args.tiny else TrainConfig.paper)(embedding_dim=dim, seed=_seed(args) or 0)
    for stage in ("autoencoder", "decoder"):
        if args.epochs:
            config = config.replace(**{stage: dataclasses.replace(getattr(config, stage), epochs=args.epochs)})
    config = config.with_min_steps(min_steps(args), len(x[: config.train_limit]))
    explainer = fit_explainer(tower, x, y, config, class_names=class_names, run_dir=args.out,
                              verbose=0 if args.quiet else 1)
    x_test, y_test, _ = datasets.load_dataset(split="test", **load)
    e = explainer.explain(x_test[:1])  # a check that the run explains
    from siamese_xai.training.stages import evaluate_embedding

    quality = evaluate_embedding(tower, explainer.decoder, explainer.prototypes, x_test, y_test)
    print(json.dumps({"run": str(args.out), "run_id": explainer.run_id,
                      "classes": list(class_names), "embedding_dim": explainer.embedding_dim,
                      "image_shape": list(explainer.image_shape), "num_train": len(x), "num_test": len(x_test),
                      "example": {"predicted": e.class_name(e.predicted_class[0]),
                                  "true": class_names[int(y_test[0])]}, "test": quality}, indent=2))
    verdict(quality, len(class_names), f"the explainer in {args.out}", trained_here=False)


def _explanation_json(e, label, note) -> dict:
    """The JSON the CLI writes for one input: every field of the result (any estimator's), plus what the CLI knows."""
    import numpy as np

    out = e.to_dict()
    out["estimator"] = e.config.estimator  # the registry's name, whichever config the result records
    out["true_label"] = label
    out["mask_pixels_row_col"] = np.argwhere(e.mask[0].any(axis=-1)).tolist()
    if note:
        out["note"] = note
    return out


def explain(args):
    """`explain`: any estimator of the registry, asked the question the options make, through `Explainer.explain`."""
    import keras
    import numpy as np

    from siamese_xai import files, plotting
    from siamese_xai.data import inputs

    explainer_class, config, keywords = estimator_setup(args)  # refuses an option the estimator does not read
    out_dir = writable_dir(args.out)
    explainer = explainer_class.from_run(args.run, config)
    shape = explainer.image_shape
    resolved = [inputs.resolve_input(spec, args.data_dir, shape) for spec in args.inputs]
    other = inputs.resolve_input(args.pair, args.data_dir, shape) if args.pair else None
    question = _question(args, explainer, other)
    for _, _, _, note in resolved:
        if note:
            print(f"note: {note}", file=sys.stderr)
    images = np.stack([image for image, _, _, _ in resolved])
    resolved = [(image, name, label, note) for (image, _, label, note), name in zip(resolved, _output_names(resolved))]
    result = explainer.explain(images, question, **keywords)
    bar = keras.utils.Progbar(len(resolved), unit_name="input") if len(resolved) > 1 and not args.quiet else None
    for i, ((_, name, label, note), e) in enumerate(zip(resolved, result)):
        if other is not None:
            name = f"{name}__vs__{_output_names([other])[0]}"
        axes = plotting.plot_result(e)
        plotting.save_figure(axes.flat[0].figure, out_dir / f"{name}.png")
        files.write_json(out_dir / f"{name}.json", _explanation_json(e, label, note))
        if bar is not None:
            bar.update(i + 1)
        if args.quiet or bar is None:
            print(f"{name}: {e.summary(0)} -> {out_dir / (name + '.png')}")


def _question(args, explainer, other):
    """The question `--target-class`, `--contrast-class` and `--pair` ask, if the explainer answers it.

    `--pair OTHER` asks `Pair(OTHER)`; `--contrast-class L` asks `RatherThan(K, L)`;
    otherwise the estimator is asked "why class K rather than the runner-up"
    (`RatherThan(K)`) where it answers that kind, else "why class K"
    (`WhyClass(K)`); K is `--target-class`, or each input's own class.

    Raises:
        CLIError: the estimator does not answer the question (`Explainer.check_answers`'s
            message, with the options that asked it and the estimators that answer it).
    """
    from siamese_xai.explainers import questions
    from siamese_xai.explainers.base import ANSWERS

    if other is not None:
        if args.target_class is not None or args.contrast_class is not None:
            raise CLIError("--target-class and --contrast-class ask about classes; --pair asks about the distance to "
                           "another image: give one or the other")
        question, asked = questions.Pair(other[0]), "--pair"
    elif args.contrast_class is not None or questions.RatherThan.kind in explainer.answers:
        question, asked = questions.RatherThan(args.target_class, args.contrast_class), "--contrast-class"
    else:
        question, asked = questions.WhyClass(args.target_class), "--target-class"
    try:
        explainer.check_answers(question)
    except ValueError as err:
        who = [name for name, kinds in ANSWERS.items() if question.kind in kinds]
        raise CLIError(f"{asked} needs --estimator {' or '.join(who)}; {err}") from None
    return question


def _output_names(resolved) -> list:
    """One file-name stem per resolved input (`inputs.resolve_input`'s `name`), safe and distinct.

    A stem comes from an input's file name, which is data: path separators and
    control characters become "_", leading dots are dropped (no hidden file, no
    ".."), and a stem met again gets "-2", "-3", ... so that two inputs with
    the same file name in different folders never overwrite each other's outputs.
    """
    import re

    names, taken = [], set()
    for _, name, _, _ in resolved:
        stem = re.sub(r"[\x00-\x1f\x7f/\\]", "_", str(name)).lstrip(".")
        stem = stem.encode()[:100].decode("utf-8", "ignore") or "input"  # with "__vs__" and a suffix: < 255 bytes
        unique, k = stem, 1
        while unique.lower() in taken:  # lower: two stems that differ in case are one file on some disks
            k += 1
            unique = f"{stem}-{k}"
        taken.add(unique.lower())
        names.append(unique)
    return names


def report(args):
    from siamese_xai.scale import gallery, pair_gallery

    if pair_gallery.holds_pairs(args.split_dir):
        if args.data_dir is not None:
            raise CLIError(f"--data-dir names a data set's location; {args.split_dir!r} explains a list of pairs, "
                           f"whose images its pair list names (received --data-dir {args.data_dir!r})")
        path = pair_gallery.write_pair_report(args.split_dir, args.out, limit=args.max_items)
    else:
        path = gallery.write_report(args.split_dir, args.out, data_dir=args.data_dir, limit=args.max_items)
    print(f"gallery written to {path}")


def export(args):
    from siamese_xai.explainers.base import REGISTRY, estimator_classes
    from siamese_xai.scale.export import export_explainer

    explainer_class, config, _ = estimator_setup(args)
    if not explainer_class.exportable:  # the class's declared capability: a SavedModel holds one graph
        graphs = [name for name in REGISTRY if estimator_classes(name)[0].exportable]
        raise CLIError(f"--estimator {config.estimator} is not available for `export`: {explainer_class.__name__} "
                       f"is not exportable (a SavedModel holds one traceable graph); export takes --estimator "
                       f"{' or '.join(graphs)}")
    explainer = explainer_class.from_run(args.run, config)
    export_explainer(explainer, args.out)
    print(f"SavedModel written to {args.out}")


def writable_dir(path):
    """`path` as a folder that exists and can be written (created if missing), or a CLIError naming --out."""
    from pathlib import Path

    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CLIError(f"--out {str(path)!r} cannot be created: {err.strerror}") from None
    if not os.access(path, os.W_OK):
        raise CLIError(f"--out {str(path)!r} is not writable")
    return path


def _seed(args) -> int:
    """--seed, 0 when not given."""
    return 0 if getattr(args, "seed", None) is None else args.seed


def _flag(option: str) -> str:
    return "--" + option.replace("_", "-")


def _listed(names) -> str:
    """"a", "a and b", "a, b and c"."""
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def estimator_options() -> dict:
    """Every estimator option of the command line -> the estimators that read it (their configs' `CLI_OPTIONS`)."""
    from siamese_xai.explainers.base import REGISTRY, estimator_classes

    readers = {}
    for name in REGISTRY:
        for option in estimator_classes(name)[1].CLI_OPTIONS:
            readers.setdefault(option, []).append(name)
    return readers


def estimator_setup(args):
    """`(explainer class, config, explain's keyword arguments)` that --estimator and its options ask for.

    Each config class declares the options it reads (`CLI_OPTIONS`: option ->
    field, None for `explain`'s `seed`); an option of another estimator is
    refused by name, none is ignored silently.

    Raises:
        CLIError: an option given that the estimator does not read (each named, with the estimators that read it).
    """
    from siamese_xai.explainers.base import estimator_classes
    from siamese_xai.scale.shards import config_from_dict

    name = getattr(args, "estimator", None) or "mc"
    explainer_class, config_class = estimator_classes(name)
    readers = estimator_options()
    given = {option: getattr(args, option) for option in readers if getattr(args, option, None) is not None}
    refused = [option for option in given if option not in config_class.CLI_OPTIONS]
    if refused:
        flags = ", ".join(_flag(o) for o in refused)
        who = "; ".join(f"{_flag(o)} applies to --estimator {_listed(readers[o])}" for o in refused)
        raise CLIError(f"{flags} {'does' if len(refused) == 1 else 'do'} not apply to --estimator {name} ({who}); "
                       f"received {' '.join(_flag(o) for o in refused)}")
    fields = {config_class.CLI_OPTIONS[o]: v for o, v in given.items() if config_class.CLI_OPTIONS[o] is not None}
    keywords = {o: v for o, v in given.items() if config_class.CLI_OPTIONS[o] is None}
    return explainer_class, config_from_dict({"estimator": name, **fields}), keywords


def _probe_record(e, i: int = 0) -> dict:
    """What the JSON of `verify` and `rank` says of one probe explanation."""
    import numpy as np

    return {"question": e.question, "margin": float(e.margin[i]), "flips": bool(e.flips[i]),
            "set_size": int(e.set_size[i]), "final_margin": None if np.isnan(e.final_margin[i]) else float(e.final_margin[i]),
            "n_calls": int(e.n_calls[i]), "found_set_pixels_row_col": np.argwhere(e.mask[i].any(axis=-1)).tolist()}


def _threshold(args, probe) -> tuple[float, dict | None]:
    """--threshold, or one calibrated on labelled images of the data options' training split."""
    import numpy as np

    from siamese_xai.data import datasets
    from siamese_xai.explainers import questions

    if args.threshold is not None:
        return args.threshold, None
    x, y, _ = datasets.load_dataset(args.data_dir, args.dataset, split="train", image_size=args.image_size,
                                    test_fraction=args.test_fraction, seed=0)
    if tuple(x.shape[1:]) != tuple(probe.image_shape):
        raise CLIError(f"the calibration data has images of shape {tuple(x.shape[1:])}; --run explains "
                       f"{tuple(probe.image_shape)} (give --threshold, or --data-dir with the run's images)")
    keep = np.random.default_rng(0).permutation(len(x))[: args.calibration_images] if len(x) > args.calibration_images \
        else np.arange(len(x))
    calibration = questions.calibrate_threshold(probe.embed_images(x[keep]), y[keep], false_accept_rate=args.far)
    calibration["images"] = int(len(keep))
    return calibration["threshold"], calibration


def verify(args):
    """`verify A B`: accept or reject the pair at a threshold, why, and what change of each image flips it."""
    import numpy as np

    import matplotlib.pyplot as plt

    from siamese_xai import files, plotting
    from siamese_xai.data import inputs
    from siamese_xai.explainers.probe import ProbeExplainer
    from siamese_xai.config import ProbeConfig
    from siamese_xai.explainers.questions import Verify

    out_dir = writable_dir(args.out)
    probe = ProbeExplainer.from_run(args.run, ProbeConfig(examples_per_class=0))  # a pair question paints no example
    (a, name_a, _, _), (b, name_b, _, _) = (inputs.resolve_input(s, args.data_dir, probe.image_shape)
                                            for s in (args.first, args.second))
    tau, calibration = _threshold(args, probe)
    e = probe.explain(np.stack([a, b]), Verify(np.stack([b, a]), threshold=tau))
    _, axes = plt.subplots(2, 4, figsize=(8.4, 5.4), layout="constrained")
    for row in range(2):
        plotting.plot_probe(e, axes[row], index=row)
    name = f"{name_a}__vs__{name_b}"
    plotting.save_figure(axes[0, 0].figure, out_dir / f"{name}.png")
    distance = float(np.linalg.norm(e.embedding[0].astype(np.float64) - e.embedding[1]))
    accepted = distance <= tau
    files.write_json(out_dir / f"{name}.json", {
        "first": args.first, "second": args.second, "distance": distance, "threshold": tau,
        "calibration": calibration, "verdict": "accept" if accepted else "reject", "run_id": e.run_id,
        "config": dataclasses.asdict(e.config), "explanations": [_probe_record(e, 0), _probe_record(e, 1)]})
    verdict = "accepted" if accepted else "rejected"
    how = "from " + calibration["rule"] if calibration else "given"
    print(f"{name}: d = {distance:.4g}, threshold {tau:.4g} ({how}): {verdict}")
    for i, who in enumerate((name_a, name_b)):
        changed = "flips" if e.flips[i] else "does not flip"
        print(f"  painting {int(e.set_size[i])} regions of {who} {changed} the verdict ({int(e.n_calls[i])} f calls)")
    print(f"-> {out_dir / (name + '.png')}")


def rank(args):
    """`rank QUERY GALLERY...`: the gallery ordered by distance to the query, each item's place with its reason."""
    import numpy as np

    import matplotlib.pyplot as plt

    from siamese_xai import files, plotting
    from siamese_xai.data import inputs
    from siamese_xai.explainers.probe import ProbeExplainer
    from siamese_xai.config import ProbeConfig
    from siamese_xai.explainers.questions import Rank

    out_dir = writable_dir(args.out)
    probe = ProbeExplainer.from_run(args.run, ProbeConfig(examples_per_class=0))  # a pair question paints no example
    q, q_name, _, _ = inputs.resolve_input(args.query, args.data_dir, probe.image_shape)
    gallery = [inputs.resolve_input(s, args.data_dir, probe.image_shape) for s in args.gallery]
    if len(gallery) < 2:
        raise CLIError(f"GALLERY must hold at least 2 items to rank; received {len(gallery)}")
    items = np.stack([g[0] for g in gallery])
    h = probe.embed_images(np.concatenate([q[None], items])).astype(np.float64)
    d = np.linalg.norm(h[1:] - h[0], axis=1)
    order = np.argsort(d, kind="stable")
    top = min(args.top, len(order))
    pairs = [(order[r], order[r + 1]) for r in range(top) if r + 1 < len(order)]
    e = probe.explain(np.repeat(q[None], len(pairs), axis=0),
                      Rank(items[[a for a, _ in pairs]], items[[b for _, b in pairs]])) if pairs else None
    ranking = []
    for r in range(top):
        i = int(order[r])
        record = {"rank": r + 1, "item": args.gallery[i], "distance": float(d[i])}
        if r < len(pairs):
            record["above"] = args.gallery[int(pairs[r][1])]
            record["reason"] = _probe_record(e, r)
        ranking.append(record)
    if e is not None:
        _, axes = plt.subplots(len(pairs), 4, figsize=(8.4, 2.7 * len(pairs)), layout="constrained", squeeze=False)
        for r in range(len(pairs)):
            plotting.plot_probe(e, axes[r], index=r)
        plotting.save_figure(axes[0, 0].figure, out_dir / f"{q_name}__rank.png")
    files.write_json(out_dir / f"{q_name}__rank.json", {
        "query": args.query, "run_id": probe.run_id, "config": dataclasses.asdict(probe.config), "ranking": ranking})
    for record in ranking:
        why = ""
        if "reason" in record:
            swap = "swaps" if record["reason"]["flips"] else "does not swap"
            why = (f"; painting {record['reason']['set_size']} regions of the query {swap} it with "
                   f"{record['above']}")
        print(f"{record['rank']}. {record['item']} (d = {record['distance']:.4g}){why}")
    print(f"-> {out_dir / (q_name + '__rank.json')}")
