"""Image folders read on the fly: `tf.data` pipelines that decode each batch's files when it is drawn.

`train` streams the training images of an image folder whose images get the
photo networks (shorter side at least `PHOTO_MIN_SIDE`, 48 px): the folder is
listed and every file decoded once to check it (`FolderImages`), then each
epoch reads and decodes the files of its batches in parallel, without a cache,
so the resident memory holds the networks, a few batches in flight and the
(n, D) embeddings, not the data set. Smaller images (MNIST and folders of
digits) stay in memory as before, with the paper's pipelines of
`siamese_xai.data.mnist`, bit for bit.

The streamed batches are those of the in-memory pipelines (`mnist.make_labelled_dataset`,
`mnist.make_image_dataset`): the same seeded order, the same mirror flips and
the same float32 values (`uint8 / 255`, the stored bytes decoded by
`tf.io.decode_image`), so a streamed run trains on the same numbers. The
contrastive stage's pairs are drawn on the fly from each streamed batch: every
pair of its images, labelled similar (z = 0) where their classes agree
(`siamese_xai.training.losses.batch_contrastive_loss`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from siamese_xai.data import datasets
from siamese_xai.data import mnist

# Images with a shorter side of at least this many pixels are streamed (the photo networks' threshold,
# `siamese_xai.training.models.PHOTO_MIN_SIDE`, which this layer cannot import).
STREAM_MIN_SIDE = 48


class FolderImages:
    """The images of one split of an image folder, listed and checked but not held in memory.

    It stands where a `(n, H, W, C)` float32 array stands in training:
    `shape`, `len()`, `x[a:b]` (another `FolderImages`), `np.asarray(x)` (every
    image decoded) and `x.read(a, b)` (images a..b-1 as an array).

    Attributes:
        paths: a tuple of n file paths (str), in class order, then file-name order.
        shape: `(n, H, W, C)`.
        image_size: `(H, W)` to resize other sizes to, or None.
    """

    def __init__(self, paths, shape, image_size=None, cache=None):
        self.paths = tuple(str(p) for p in paths)
        self.shape = (len(self.paths), *shape[1:])
        self.image_size = None if image_size is None else tuple(image_size)
        self.cache = None if cache is None else tf.constant(cache)  # (n, H, W, C) uint8, or None

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        if not isinstance(index, slice):
            raise TypeError(f"`FolderImages` takes slices such as x[:8]. Received: {index!r}")
        cache = None if self.cache is None else self.cache.numpy()[index]
        return FolderImages(self.paths[index], self.shape, self.image_size, cache)

    def __array__(self, dtype=None, copy=None):
        return self.read(0, len(self))

    def read(self, start: int, stop: int) -> np.ndarray:
        """Images `start..stop-1` as a `(stop - start, H, W, C)` float32 array in [0, 1]."""
        ds = tf.data.Dataset.from_tensor_slices(tf.range(start, stop, dtype=tf.int64))
        out = [x.numpy() for x in ds.map(self.image).batch(256)]
        return np.concatenate(out) if out else np.zeros((0, *self.shape[1:]), np.float32)

    def image(self, i):
        """Image i -> `(H, W, C)` float32 in [0, 1], as `datasets.load_dataset` reads it (inside `tf.data`).

        From the uint8 cache where there is one, else read and decoded from its file.
        """
        if self.cache is not None:
            return tf.cast(tf.gather(self.cache, i), tf.float32) / 255.0
        path = tf.gather(tf.constant(self.paths), i)
        image = tf.io.decode_image(tf.io.read_file(path), channels=self.shape[3], expand_animations=False)
        image = tf.cast(image, tf.float32) / 255.0
        if self.image_size is not None:
            size = tf.constant(self.image_size)
            image = tf.cond(tf.reduce_all(tf.shape(image)[:2] == size), lambda: image, lambda: tf.clip_by_value(
                tf.image.resize(image, size, method="bilinear", antialias=True), 0.0, 1.0))
        return tf.ensure_shape(image, self.shape[1:])


def streams(image_shape) -> bool:
    """Whether `train` streams an image folder of images of `image_shape` `(H, W, C)` (module docstring)."""
    return min(image_shape[:2]) >= STREAM_MIN_SIDE


# The most bytes of decoded uint8 images a FolderImages holds (`open_folder`): 83 MB for 3,000 96x96 RGB images.
CACHE_BYTES = 256 * 2**20


def open_folder(folder, split: str = "train", image_size=None, test_fraction: float = 0.2, seed: int = 0,
                cache_bytes: int = CACHE_BYTES):
    """Lists and checks one split of an image folder: `(FolderImages, labels, class_names)`.

    Every file is decoded once, one at a time, to check it and find the
    channels and size (`datasets.load_dataset`'s rules and errors: C = 3 if any
    image has colour, equal sizes unless `image_size`). Where the split's
    images take at most `cache_bytes` as uint8 and need no resizing, they are
    kept as one uint8 array (a quarter of the float32 array `load_dataset`
    returns) and each batch is converted from it; otherwise every epoch reads
    and decodes the files again.

    Args:
        folder: an image folder (`DIR/<class>/...` or `DIR/train/...` and `DIR/test/...`).
        split: "train" or "test".
        image_size: `(H, W)` to resize to, or None.
        test_fraction, seed: the one-folder layout's split (as in `load_dataset`).

    Returns:
        `(images, labels, class_names)`: a `FolderImages`, `(n,)` int64 labels, a tuple of class names.
    """
    folder = Path(folder)
    paths, labels, names, together = datasets.folder_files(folder, split, test_fraction, seed)
    channels, sizes, kept, raw = 1, {}, set(map(str, paths)), {}
    for path in together:
        image = datasets._decode(path)
        channels = 3 if image.shape[2] >= 3 else channels
        size = tuple(image_size) if image_size is not None else image.shape[:2]
        sizes.setdefault(size, path)
        if str(path) in kept and len(raw) * image.size <= cache_bytes and image.shape[:2] == size:
            raw[str(path)] = image
    if len(sizes) > 1:
        (size_a, path_a), (size_b, path_b) = list(sizes.items())[:2]
        raise ValueError(
            f"images in {folder} have different sizes: {path_a} is {size_a[0]}x{size_a[1]}, "
            f"{path_b} is {size_b[0]}x{size_b[1]}; pass image_size=(H, W) to resize them"
        )
    (height, width), = sizes
    cache = None
    if len(raw) == len(paths) and len(paths) * height * width * channels <= cache_bytes:
        cache = np.stack([datasets.to_channels(raw[str(p)], channels) for p in paths])
    return FolderImages(paths, (len(paths), height, width, channels), image_size, cache), labels, names


def load_images(data_dir=None, dataset=None, split: str = "train", image_size=None, test_fraction: float = 0.2,
                seed: int = 0, cache_bytes: int = CACHE_BYTES):
    """`datasets.load_dataset`, except that a photo-size image folder's images come as a `FolderImages`.

    The first image of the folder decides: `streams(shape)` streams the folder
    (its whole split), otherwise it is read into memory by `load_dataset`.
    """
    folder = None if data_dir is None or dataset is not None else Path(data_dir)
    if folder is not None and folder.is_dir() and datasets.data_kind(data_dir) == "image_folder":
        paths = datasets.folder_files(folder, split, test_fraction, seed)[0]
        first = datasets._decode(paths[0]).shape if image_size is None else tuple(image_size)
        if streams(first):
            return open_folder(folder, split, image_size, test_fraction, seed, cache_bytes)
    return datasets.load_dataset(data_dir, dataset, split, image_size, test_fraction, seed)


def as_tensor(x):
    """A training stage's images: an array becomes one tensor (once per stage), a `FolderImages` stays itself."""
    return x if isinstance(x, FolderImages) else tf.constant(x)


def _order(n, seed, epoch, augment):
    rng = np.random.default_rng([int(seed), int(epoch)])  # mnist.make_labelled_dataset's draws, in its order
    order = rng.permutation(n)
    return order, (rng.random(n) < 0.5 if augment else np.zeros(n, bool))


def labelled_dataset(images, y, batch_size: int, seed: int, epoch: int = 0, skip_batches: int = 0,
                     augment: bool = False) -> tf.data.Dataset:
    """`mnist.make_labelled_dataset` over `images`, streamed from the files when they are a `FolderImages`.

    Returns:
        A dataset of `(x_b, y_b)` batches: `(b, H, W, C)` float32, `(b,)` int64.
    """
    if not isinstance(images, FolderImages):
        return mnist.make_labelled_dataset(images, y, batch_size, seed, epoch, skip_batches, augment)
    _check_batch(batch_size)
    order, flips = _order(len(images), seed, epoch, augment)
    labels = tf.constant(np.asarray(y, np.int64))

    def read(i, flip):  # one image, or a batch of them from the cache
        image = images.image(i)
        flip = tf.reshape(flip, tf.concat([tf.shape(flip), tf.ones([3], tf.int32)], 0))
        return tf.where(flip, tf.reverse(image, axis=[-2]), image), tf.gather(labels, i)

    return _pipeline(images, (order, flips), read, batch_size, skip_batches)


def image_dataset(arrays, batch_size: int, seed: int, epoch: int = 0, skip_batches: int = 0) -> tf.data.Dataset:
    """`mnist.make_image_dataset` over `(images, h)`, the images streamed when they are a `FolderImages`.

    Returns:
        A dataset of `(x_b, h_b)` batches.
    """
    images, *rest = arrays
    if not isinstance(images, FolderImages):
        return mnist.make_image_dataset(arrays, batch_size, seed, epoch, skip_batches)
    _check_batch(batch_size)
    order, _ = _order(len(images), seed, epoch, False)
    rest = tuple(tf.convert_to_tensor(a) for a in rest)
    read = lambda i: (images.image(i), *(tf.gather(a, i) for a in rest))
    return _pipeline(images, (order,), read, batch_size, skip_batches)


def _pipeline(images, slices, read, batch_size, skip_batches):
    """Batches of `read(*slices)`: gathered a batch at a time from the cache, else decoded one file at a time
    in parallel (in the drawn order: the map is deterministic), two batches prefetched."""
    ds = tf.data.Dataset.from_tensor_slices(slices)
    if images.cache is not None:
        ds = ds.batch(batch_size).skip(skip_batches).map(read)
    else:
        ds = ds.skip(skip_batches * batch_size).map(read, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)
    return ds.prefetch(2)


def _check_batch(batch_size):
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer. Received: batch_size={batch_size!r}")


def embed(model, x, batch_size: int = 1000) -> np.ndarray:
    """`(n, D)` float32 embeddings of an array or a `FolderImages`, `batch_size` images a call.

    For an array this is `prototypes.embed_in_batches(model, x, batch_size)`, call for call.
    """
    read = x.read if isinstance(x, FolderImages) else lambda a, b: x[a:b]
    return np.concatenate([np.asarray(model(read(i, min(i + batch_size, len(x)))), dtype=np.float32)
                           for i in range(0, len(x), batch_size)])


def describe(x) -> str:
    """How a run's training images are held, in words (for the first line `train` prints)."""
    if not isinstance(x, FolderImages):
        return "images held in memory (float32)"
    if x.cache is not None:
        return (f"images streamed: read from the folder once, held as uint8 ({x.cache.numpy().nbytes / 1e6:.0f} MB), "
                "each batch converted as it is drawn")
    return "images streamed: each batch's files read and decoded as it is drawn (no cache)"
