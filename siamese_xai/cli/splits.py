"""`siamese-xai explain-split`: a split of a data set, or a list of pairs, explained in resumable shards.

The work is done by `siamese_xai.scale.shards` (one process) or
`siamese_xai.scale.beam` (a Beam pipeline), into the same folder.
"""

from __future__ import annotations

from pathlib import Path

from siamese_xai.cli.commands import CLIError, estimator_setup, writable_dir


def explain_split(args):
    """`explain-split`: every image of --split of the data options, or every row of --pairs (each image toward the other)."""
    from siamese_xai import files, runs
    from siamese_xai.data import datasets, sources
    from siamese_xai.scale import shards

    explainer_class, config, keywords = estimator_setup(args)
    if args.pairs is not None:
        given = [flag for flag, value in (("--data-dir", args.data_dir), ("--dataset", args.dataset),
                                          ("--image-size", args.image_size)) if value is not None]
        if given:
            raise CLIError(f"{', '.join(given)} name a data set; --pairs lists the images itself: give one or the "
                           f"other (received --pairs {args.pairs!r} and {' '.join(given)})")
    if args.threshold is not None and args.pairs is None:
        raise CLIError(f"--threshold is the verdict of a list of pairs: it needs --pairs (received --threshold "
                       f"{args.threshold} without --pairs)")
    if args.beam_option and args.runner != "beam":
        raise CLIError(f"--beam-option needs --runner beam; received --runner {args.runner}")
    if args.runner == "beam":
        try:  # before the slow loading, so that a missing extra is said at once
            from siamese_xai.scale import beam  # noqa: F401
        except ImportError as err:
            raise CLIError(" ".join(str(err).split())) from None
    if args.pairs is not None and getattr(config, "examples_per_class", 0) and args.examples_per_class is None:
        config = config.replace(examples_per_class=0)  # a pair question paints no example: none loaded (as `verify`)
    explainer = explainer_class.from_run(args.run, config)
    out_dir = writable_dir(args.out)
    options = dict(shard_size=args.shard_size, batch_size=args.batch_size, seed=keywords.get("seed", 0),
                   verbose=0 if args.quiet else "auto", force=args.force)
    if args.pairs is not None:
        options["threshold"] = args.threshold
        source = sources.PairListSource(args.pairs, explainer.image_shape, args.limit)
        loaded = [source.load()[0], None]  # every row read and checked before anything is written
        _run(args, explainer, source, loaded, out_dir, options)
        return
    kind = datasets.data_kind(args.data_dir, args.dataset)
    seed = 0
    if kind != "mnist" or args.image_size is not None:
        # an image folder is split as it was for training: with the run's seed (0 if the run does not say)
        config_path = Path(args.run) / runs.CONFIG_FILE
        seed = files.read_json(config_path).get("seed", 0) if config_path.is_file() else 0
    # one source for both runners: its description is what `report` reads back (sources.from_description)
    source = sources.for_data(args.data_dir, args.dataset, args.split, args.image_size, args.test_fraction, seed,
                              args.limit)
    x, y = source.load()
    if tuple(x.shape[1:]) != tuple(explainer.image_shape):
        raise CLIError(f"--run {args.run!r} explains images of shape {tuple(explainer.image_shape)}; the data "
                       f"({kind}) has images of shape {tuple(x.shape[1:])} (--image-size resizes them)")
    loaded = [x, y]
    del x, y
    _run(args, explainer, source, loaded, out_dir, options)


def _run(args, explainer, source, loaded, out_dir, options):
    """The shards of `source`'s items on the runner --runner names, and the line that ends it.

    `loaded` is `[items, labels]`, emptied here so that the Beam runner, whose workers read the source
    themselves, does not hold them.
    """
    from siamese_xai.scale import shards

    pairs = getattr(source, "pairs", False)
    x, y = loaded
    loaded.clear()
    if args.runner == "beam":
        from siamese_xai.scale import beam

        del x, y
        result = beam.explain_split_beam(args.run, explainer, source, out_dir, beam_options=args.beam_option,
                                         **options)
    else:
        result = shards.explain_split(explainer, x, out_dir, labels=y, source=source.describe(), pairs=pairs,
                                      **options)
    what = "pairs" if pairs else "images"
    print(f"{result['num_images']} {what} in {result['num_shards']} shards in {out_dir} "
          f"({result['shards_kept']} kept from an earlier run, {result['shards_written']} written)")
