"""Where the images of an explain-split folder come from: small picklable descriptions of a data set.

Each source has `describe()` (the JSON the manifest records as `source`),
`load()` (every image and label: `(n, H, W, C)` float32 in [0, 1], `(n,)`
int64) and `read(start, stop)` (images `start..stop-1` only, what a worker of
`siamese_xai.scale.beam` reads). `from_description` rebuilds a source from a
manifest's `source`, so that `siamese_xai.scale.gallery` can draw the images, and
`for_data` builds the source of the command line's data options: the one
description is written and read by this module alone.

The descriptions (JSON):

- MNIST: `{"dataset": "mnist", "split", "limit"}`, plus `"image_size"` when resized;
- an image folder: `{"image_folder": PATH, "split", "image_size", "test_fraction", "seed"}`, plus `"limit"`;
- a tensorflow-datasets set: `{"tfds": NAME, "split", "data_dir", "limit", "image_size"}`;
- TFRecord files: `{"tfrecord": [PATH, ...], "image_shape", "image_key", "label_key"}`;
- a list of pairs: `{"pairs": PATH, "image_shape", "limit"}` (`PairListSource`: items are pairs, `(n, 2, H, W, C)`).
"""

from __future__ import annotations

import functools
import glob
import os

import numpy as np


def _size(image_size):
    return None if image_size is None else tuple(int(v) for v in image_size)


def _first(x, y, limit):
    return (x, y) if limit is None else (x[:limit], y[:limit])


@functools.lru_cache(maxsize=2)
def _dataset(data_dir, dataset, split, image_size, test_fraction, seed):
    """`datasets.load_dataset`'s images and labels, once per process (a worker takes its shards from them)."""
    from siamese_xai.data.datasets import load_dataset

    x, y, _ = load_dataset(data_dir=data_dir, dataset=dataset, split=split, image_size=image_size,
                           test_fraction=test_fraction, seed=seed)
    return x, y


class MnistSource:
    """MNIST's `split` (tensorflow-datasets, or the raw IDX files in `data_dir`), the first `limit` images.

    Workers read their slice with tfds's split slicing (`"test[500:1000]"`),
    so none of them reads more than its shard. Resized MNIST (`image_size`)
    is resized as `siamese_xai.data.datasets.load_dataset` does, the whole split
    once per process.
    """

    def __init__(self, split: str = "test", data_dir=None, limit: int | None = None, image_size=None):
        self.split, self.data_dir, self.limit = split, None if data_dir is None else str(data_dir), limit
        self.image_size = _size(image_size)

    def describe(self) -> dict:
        out = {"dataset": "mnist", "split": self.split, "limit": self.limit}
        if self.image_size is not None:  # only then, so that earlier folders keep their description
            out["image_size"] = list(self.image_size)
        return out

    def load(self):
        from siamese_xai.data import mnist as data

        if self.image_size is not None:
            return _first(*_dataset(self.data_dir, None, self.split, self.image_size, 0.2, 0), self.limit)
        return _first(*data.load_mnist(self.split, self.data_dir), self.limit)

    def read(self, start: int, stop: int):
        from siamese_xai.data import mnist as data

        if self.image_size is not None or self.data_dir is not None and data.has_mnist_idx(self.data_dir, self.split):
            x, y = self.load()
            return x[start:stop], y[start:stop]
        return data.load_mnist_slice(self.split, start, stop, self.data_dir or os.environ.get("TFDS_DATA_DIR"))


class ImageFolderSource:
    """An image folder as `siamese_xai.data.datasets.load_dataset` reads it (`DIR/<class>/<image>`, or train/ and test/).

    A worker reads the folder's split once per process (cached) and takes its
    shards from it: the split's order and its stratified test share depend on
    every file name, which only a listing of the whole folder gives.
    """

    def __init__(self, folder, split: str = "test", image_size=None, test_fraction: float = 0.2, seed: int = 0,
                 limit: int | None = None):
        self.folder, self.split = str(folder), split
        self.image_size = _size(image_size)
        self.test_fraction, self.seed, self.limit = float(test_fraction), int(seed), limit

    def describe(self) -> dict:
        out = {"image_folder": os.path.abspath(self.folder), "split": self.split,
               "image_size": None if self.image_size is None else list(self.image_size),
               "test_fraction": self.test_fraction, "seed": self.seed}
        if self.limit is not None:  # only then, so that earlier folders keep their description
            out["limit"] = self.limit
        return out

    def load(self):
        return _first(*_dataset(self.folder, None, self.split, self.image_size, self.test_fraction, self.seed),
                      self.limit)

    def read(self, start: int, stop: int):
        x, y = self.load()
        return x[start:stop], y[start:stop]


class TfdsSource:
    """A prepared tensorflow-datasets image classification set by name (`load_dataset(dataset=NAME)`).

    Read whole once per process, as an image folder is: images of several
    sizes are resized, and their channels chosen, over the whole split.
    """

    def __init__(self, name: str, split: str = "test", data_dir=None, limit: int | None = None, image_size=None):
        self.name, self.split, self.limit = str(name), split, limit
        self.data_dir = None if data_dir is None else str(data_dir)
        self.image_size = _size(image_size)

    def describe(self) -> dict:
        return {"tfds": self.name, "split": self.split,
                "data_dir": None if self.data_dir is None else os.path.abspath(self.data_dir),
                "limit": self.limit, "image_size": None if self.image_size is None else list(self.image_size)}

    def load(self):
        return _first(*_dataset(self.data_dir, self.name, self.split, self.image_size, 0.2, 0), self.limit)

    def read(self, start: int, stop: int):
        x, y = self.load()
        return x[start:stop], y[start:stop]


class TFRecordSource:
    """`tf.train.Example` records: an encoded image (PNG, JPEG, ...) under `image_key`, an int64 `label_key`.

    Args:
        pattern: a file or glob (files read in sorted order), or a list of files (read in that order).
        image_shape: `(H, W, C)`; images are decoded to C channels and must be H x W.
        image_key: the feature holding the encoded image bytes.
        label_key: the feature holding the label (-1 where absent), or None.
    """

    def __init__(self, pattern, image_shape, image_key: str = "image", label_key: str | None = "label"):
        self.pattern = [str(p) for p in pattern] if isinstance(pattern, (list, tuple)) else str(pattern)
        self.image_shape = tuple(int(v) for v in image_shape)
        self.image_key, self.label_key = image_key, label_key

    def _files(self):
        if isinstance(self.pattern, list):
            missing = [p for p in self.pattern if not os.path.isfile(p)]
            if missing:
                raise FileNotFoundError(f"`pattern` names TFRecord files that do not exist: {missing[:3]}")
            return list(self.pattern)
        found = sorted(glob.glob(self.pattern))
        if not found:
            raise FileNotFoundError(f"`pattern` {self.pattern!r} matches no TFRecord file")
        return found

    def describe(self) -> dict:
        return {"tfrecord": [os.path.abspath(f) for f in self._files()], "image_shape": list(self.image_shape),
                "image_key": self.image_key,
                "label_key": self.label_key}

    def _read(self, start=0, stop=None):
        import tensorflow as tf

        dataset = tf.data.TFRecordDataset(self._files()).skip(start)
        if stop is not None:
            dataset = dataset.take(stop - start)
        spec = {self.image_key: tf.io.FixedLenFeature([], tf.string)}
        if self.label_key is not None:
            spec[self.label_key] = tf.io.FixedLenFeature([], tf.int64, default_value=-1)
        images, labels = [], []
        for record in dataset:
            example = tf.io.parse_single_example(record, spec)
            image = tf.io.decode_image(example[self.image_key], channels=self.image_shape[-1], expand_animations=False)
            if tuple(image.shape) != self.image_shape:
                raise ValueError(f"a record of {self.pattern!r} holds an image of shape {tuple(image.shape)}; "
                                 f"`image_shape` is {self.image_shape}")
            images.append(image.numpy())
            labels.append(int(example[self.label_key]) if self.label_key is not None else -1)
        x = (np.stack(images) if images else np.zeros((0,) + self.image_shape, np.uint8)).astype(np.float32) / 255.0
        return x, np.asarray(labels, np.int64)

    def load(self):
        return self._read()

    def read(self, start: int, stop: int):
        return self._read(start, stop)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp")


class PairListSource:
    """Pairs of image files listed in a CSV file, two paths a row: each item is a pair `(2, H, W, C)`.

    The format: one pair per row, `FIRST,SECOND` (paths relative to the CSV
    file's folder, or absolute; quoted as CSV quotes when a path holds a
    comma); blank rows are skipped; an optional first row is a header when
    neither of its cells names an existing file nor ends in an image suffix
    (e.g. `first,second`). Images are read as `siamese_xai.data.inputs.read_image`
    reads `explain`'s inputs (converted to the run's channels, never
    resized). There are no labels (-1).

    Args:
        path: the CSV file.
        image_shape: `(H, W, C)`, the run's images.
        limit: the first `limit` pairs only, or None.
    """

    pairs = True  # an item is two images (`siamese_xai.scale.shards` asks the Pair question of each)

    def __init__(self, path, image_shape, limit: int | None = None):
        self.path, self.image_shape, self.limit = str(path), tuple(int(v) for v in image_shape), limit

    def describe(self) -> dict:
        return {"pairs": os.path.abspath(self.path), "image_shape": list(self.image_shape), "limit": self.limit}

    def rows(self) -> list:
        """`[(row number, first path, second path)]`, or a ValueError naming the file and the bad row."""
        import csv

        folder = os.path.dirname(os.path.abspath(self.path))
        try:
            with open(self.path, newline="", encoding="utf-8") as fh:
                table = [(i + 1, row) for i, row in enumerate(csv.reader(fh)) if any(c.strip() for c in row)]
        except (OSError, UnicodeDecodeError, csv.Error) as err:
            raise ValueError(f"the pair list {self.path!r} cannot be read: {err}") from None
        if table and not any(os.path.isfile(os.path.join(folder, c.strip())) or
                             c.strip().lower().endswith(IMAGE_SUFFIXES) for c in table[0][1]):
            table = table[1:]  # a header
        out = []
        for number, row in table:
            if len(row) != 2:
                raise ValueError(f"the pair list {self.path!r}, row {number}: expected 2 image paths, received "
                                 f"{len(row)} cells ({','.join(row)[:80]!r})")
            out.append((number, *(os.path.join(folder, c.strip()) for c in row)))
        if not out:
            raise ValueError(f"the pair list {self.path!r} holds no pairs (expected rows FIRST,SECOND)")
        return out if self.limit is None else out[: self.limit]

    def read(self, start: int, stop: int):
        from siamese_xai.data.inputs import read_image

        pairs = []
        for number, *paths in self.rows()[start:stop]:
            try:
                pairs.append(np.stack([read_image(p, self.image_shape)[0] for p in paths]))
            except (OSError, ValueError) as err:
                raise ValueError(f"the pair list {self.path!r}, row {number}: {err}") from None
        x = np.stack(pairs) if pairs else np.zeros((0, 2) + self.image_shape, np.float32)
        return x.astype(np.float32), np.full(len(x), -1, np.int64)

    def load(self):
        return self.read(0, len(self.rows()))


def for_data(data_dir=None, dataset=None, split: str = "test", image_size=None, test_fraction: float = 0.2,
             seed: int = 0, limit: int | None = None):
    """The source of `datasets.load_dataset(data_dir, dataset, split, ...)`'s images, the first `limit`.

    Args:
        data_dir, dataset, split, image_size, test_fraction, seed: as in
            `siamese_xai.data.datasets.load_dataset` (`seed` splits a one-folder
            image set; training's seed gives training's test share).
        limit: the first `limit` images only, or None for all.

    Returns:
        A `MnistSource`, `ImageFolderSource` or `TfdsSource`.
    """
    from siamese_xai.data.datasets import data_kind

    kind = data_kind(data_dir, dataset)
    if kind.startswith("tfds:"):
        return TfdsSource(dataset, split, data_dir, limit, image_size)
    if kind == "mnist":
        return MnistSource(split, data_dir, limit, image_size)
    return ImageFolderSource(data_dir, split, image_size, test_fraction, seed, limit)


def from_description(source: dict, data_dir=None):
    """The source a manifest's `source` describes (what a source's `describe()` wrote).

    Also reads the description the command line wrote before `for_data`
    (`{"dataset": "image_folder" | "tfds:NAME" | "mnist", "data_dir", ...}`),
    so that folders computed then still have a report.

    Args:
        source: the manifest's `source` dict.
        data_dir: MNIST's location (for `{"dataset": "mnist", ...}`), or a
            tensorflow-datasets folder that replaces the one recorded; None
            keeps the recorded one (or `TFDS_DATA_DIR`).

    Raises:
        ValueError: the description names no known source (e.g. images passed as an array).
    """
    if not isinstance(source, dict):
        raise ValueError("`source` must be a dict describing MNIST, an image folder, a tensorflow-datasets set or "
                         f"TFRecord files. Received: source={source!r}")
    kind = source.get("dataset")
    if kind == "image_folder" and "data_dir" in source:  # the earlier command line's description
        source = {"image_folder": source["data_dir"], "seed": source.get("split_seed", 0),
                  **{k: source[k] for k in ("split", "image_size", "test_fraction", "limit") if k in source}}
    elif isinstance(kind, str) and kind.startswith("tfds:"):
        source = {**source, "tfds": kind[len("tfds:"):]}
    if kind == "mnist":
        return MnistSource(source.get("split", "test"), data_dir if data_dir is not None else source.get("data_dir"),
                           source.get("limit"), source.get("image_size"))
    if "image_folder" in source:
        return ImageFolderSource(source["image_folder"], source.get("split", "test"), source.get("image_size"),
                                 source.get("test_fraction", 0.2), source.get("seed", 0), source.get("limit"))
    if "tfds" in source:
        return TfdsSource(source["tfds"], source.get("split", "test"),
                          data_dir if data_dir is not None else source.get("data_dir"), source.get("limit"),
                          source.get("image_size"))
    if "pairs" in source:
        return PairListSource(source["pairs"], source["image_shape"], source.get("limit"))
    if "tfrecord" in source:
        return TFRecordSource(source["tfrecord"], source["image_shape"], source.get("image_key", "image"),
                              source.get("label_key", "label"))
    raise ValueError("`source` must describe MNIST, an image folder, a tensorflow-datasets set or TFRecord files. "
                     f"Received: source={source!r}")
