"""The real images a probe built from a run paints: the first K training images of each class the run was trained on.

A training run (`siamese_xai.training.stages.train_run`) records its data in
`metrics.json` (`"data"`: the data folder, the tensorflow-datasets name, the
image shape and the test share of a one-folder image set) and its seed and
`train_limit` in `config.json`. From them `training_examples` rebuilds the
training split as training read it (`siamese_xai.data.sources.for_data`: the
same folder, split, seed and test share, the first `train_limit` images) and
keeps the first K images of each class in that split's order: a fixed choice,
the one `benchmarks/evaluation/probe_flips.py` measured (`examples_of`). MNIST
is read in slices of 1,000 training images until every class has K (the first
1,000 hold more than 5 of each digit); a photo-size image folder (one that
training streams) is listed and only the kept images decoded; a smaller
folder or a tfds set is read whole (once per process).

Where the data cannot be read (the folder moved, the tfds set is not
prepared here, the run was made by `fit`, which records no data), there are
no examples and the record says why in one line; the probe then paints g(c_l).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from siamese_xai import files, runs

MNIST_CHUNK = 1000


def _recorded_data(path: Path):
    """`(data record of metrics.json, config.json)`, or a ValueError saying what the run folder lacks."""
    metrics_path, config_path = path / runs.METRICS_FILE, path / runs.CONFIG_FILE
    if not metrics_path.is_file():
        raise ValueError(f"the run folder {str(path)!r} records no training data (no {runs.METRICS_FILE}; a run "
                         "made by `fit` has none)")
    data = files.read_json(metrics_path).get("data")
    if not isinstance(data, dict):
        raise ValueError(f"{runs.METRICS_FILE} of the run folder {str(path)!r} records no training data")
    config = files.read_json(config_path) if config_path.is_file() else {}
    return data, config


def _first_of_each_class(read, per_class: int, num_classes: int, total: int | None):
    """The first `per_class` images of each class from `read(start, stop)`, read in chunks until each class has them."""
    xs, ys, start = [], [], 0
    while True:
        stop = start + MNIST_CHUNK if total is None else min(start + MNIST_CHUNK, total)
        x, y = read(start, stop)
        xs.append(x)
        ys.append(y)
        counts = np.bincount(np.concatenate(ys), minlength=num_classes)[:num_classes]
        if len(x) < stop - start or (counts >= per_class).all() or (total is not None and stop >= total):
            return np.concatenate(xs), np.concatenate(ys)
        start = stop


def _first_of_each_class_in_folder(folder, image_shape, test_fraction, seed, limit, per_class: int, num_classes: int):
    """The first `per_class` images of each class of a photo-size folder's training split, only those decoded.

    The folder is listed and checked as training streamed it (`streaming.open_folder`, with no cache), so
    memory holds C * K images, not the split (3,000 224x224 RGB images are 1.8 GB as float32).
    """
    from siamese_xai.data import streaming

    images, labels, _ = streaming.open_folder(folder, "train", tuple(image_shape[:2]), test_fraction, seed,
                                              cache_bytes=0)
    labels = labels[:limit] if limit else labels
    keep = np.sort(np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(num_classes)]))
    x = np.concatenate([images.read(int(i), int(i) + 1) for i in keep]) if len(keep) else np.zeros(
        (0, *images.shape[1:]), np.float32)
    return x, labels[keep]


def training_examples(path, per_class: int, image_shape, num_classes: int):
    """The first `per_class` training images of each class of the data the run folder was trained on.

    Args:
        path: the run folder.
        per_class: K >= 1.
        image_shape: `(H, W, C)`, the run's images (a data set read at
            another size is resized to it, as training resized it).
        num_classes: C, the run's prototypes.

    Returns:
        `(examples, record)`: `examples` is `(x (n, H, W, C) float32, y (n,)
        int64)`, n <= C * K (a class with fewer training images gives those it
        has), or None where the data cannot be read; `record` is JSON-ready:
        `{"per_class": K, "count": n, "source": the data's description}`, or
        `{"per_class": K, "count": 0, "missing": one line saying why}`.
    """
    from siamese_xai.data import sources, streaming
    from siamese_xai.data.datasets import data_kind

    path, image_shape = Path(path), tuple(int(v) for v in image_shape)
    try:
        data, config = _recorded_data(path)
        if data.get("data_dir") is not None and not Path(data["data_dir"]).is_dir():
            raise ValueError(f"the folder {data['data_dir']!r} it was trained on no longer exists")
        kind = data_kind(data.get("data_dir"), data.get("dataset"))
        native = kind == "mnist" and image_shape == (28, 28, 1)
        limit = config.get("train_limit") or None
        source = sources.for_data(data.get("data_dir"), data.get("dataset"), "train",
                                  None if native else image_shape[:2], data.get("test_fraction", 0.2),
                                  config.get("seed", 0), limit)
        if native:  # only the slices needed, not the 60,000 images
            x, y = _first_of_each_class(source.read, per_class, num_classes, limit)
        elif kind == "image_folder" and streaming.streams(image_shape):
            x, y = _first_of_each_class_in_folder(data["data_dir"], image_shape, data.get("test_fraction", 0.2),
                                                  config.get("seed", 0), limit, per_class, num_classes)
        else:
            x, y = source.load()
        if tuple(x.shape[1:]) != image_shape:
            raise ValueError(f"its images have shape {tuple(x.shape[1:])}, the run's {image_shape}")
    except (OSError, ValueError) as err:
        where = "" if "run folder" in str(err) else f"the training data of the run folder {str(path)!r}: "
        return None, {"per_class": per_class, "count": 0, "missing": " ".join(f"{where}{err}".split())}
    keep = np.concatenate([np.flatnonzero(y == c)[:per_class] for c in range(num_classes)]).astype(np.int64)
    keep.sort()
    return (x[keep], y[keep]), {"per_class": per_class, "count": int(len(keep)), "source": source.describe()}
