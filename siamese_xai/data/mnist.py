"""Data: MNIST (tensorflow-datasets or raw IDX files) and the seeded pair sampler.

`load_mnist` reads MNIST; `siamese_xai.data.datasets.load_dataset` also reads a
folder of images, one sub-folder per class, or any tensorflow-datasets image
classification set, and returns the class names with the images.

Pair-label convention (the paper's): z = 0 for a similar pair (same class),
z = 1 for a dissimilar pair (different classes); see `siamese_xai.training.losses`.
"""

from __future__ import annotations

import functools
import gzip
import os
import socket
from pathlib import Path

import numpy as np
import tensorflow as tf

SPLITS = ("train", "test")
_IDX_PREFIX = {"train": "train", "test": "t10k"}
# Where tensorflow-datasets fetches MNIST from; probed before a download so
# that a machine without network fails in seconds, not after minutes of retries.
_DOWNLOAD_HOST = ("storage.googleapis.com", 443)


class DataNotFoundError(FileNotFoundError):
    """MNIST could be found neither as a tensorflow-datasets copy nor as raw IDX files."""


def _check_split(split):
    if split not in SPLITS:
        raise ValueError(f"`split` must be one of {SPLITS}. Received: split={split!r}")


def _idx_files(folder: Path, split: str):
    """The (images, labels) IDX files of a split in `folder`, `.gz` or not, or None."""
    prefix = _IDX_PREFIX[split]
    found = []
    for kind in ("images-idx3", "labels-idx1"):
        candidates = [
            folder / f"{prefix}-{kind}-ubyte{ext}" for ext in (".gz", "")
        ] + [folder / f"{prefix}-{kind.replace('-', '.')}-ubyte{ext}" for ext in (".gz", "")]
        match = next((c for c in candidates if c.is_file()), None)
        if match is None:
            return None
        found.append(match)
    return tuple(found)


def read_idx(path) -> np.ndarray:
    """Reads one IDX file (optionally gzip-compressed) into a uint8 array.

    The IDX format is four header bytes (two zero bytes, a type code, the
    number of dimensions) and big-endian int32 sizes, then the raw data. NumPy
    reads it in a few lines, so no extra dependency is taken for it.

    Args:
        path: the `.gz` or uncompressed IDX file.

    Returns:
        The array, e.g. `(n, 28, 28)` uint8 for images or `(n,)` for labels.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"`path` must be an unsigned-byte IDX file. Received: {path} with header {data[:4]!r}")
    ndim = data[3]
    shape = tuple(int(v) for v in np.frombuffer(data, dtype=">i4", count=ndim, offset=4))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"IDX file {path} is truncated: header says {shape}, found {body.size} bytes of data")
    return body.reshape(shape)


def load_mnist_idx(folder, split: str = "train"):
    """Loads an MNIST split from the four raw IDX files in `folder`.

    Args:
        folder: a folder holding `train-images-idx3-ubyte[.gz]`,
            `train-labels-idx1-ubyte[.gz]`, `t10k-images-idx3-ubyte[.gz]` and
            `t10k-labels-idx1-ubyte[.gz]`.
        split: "train" or "test".

    Returns:
        `(x, y)`: `(n, 28, 28, 1)` float32 images in [0, 1] and `(n,)` int64 labels.
    """
    _check_split(split)
    files = _idx_files(Path(folder), split)
    if files is None:
        raise DataNotFoundError(f"No MNIST {split} IDX files in {folder}")
    images, labels = (read_idx(f) for f in files)
    if images.shape[0] != labels.shape[0] or images.shape[1:] != (28, 28):
        raise ValueError(f"MNIST IDX files in {folder} disagree: images {images.shape}, labels {labels.shape}")
    return _to_float(images[..., None]), labels.astype(np.int64)


def _to_float(images_uint8):
    return (images_uint8.astype(np.float32) / 255.0).reshape(-1, 28, 28, 1)


def _network_reachable(timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection(_DOWNLOAD_HOST, timeout=timeout):
            return True
    except OSError:
        return False


def _load_tfds(split, data_dir, download):
    import tensorflow_datasets as tfds  # imported lazily: it is slow to import

    kwargs = dict(split=split, batch_size=-1, as_supervised=True, data_dir=data_dir)
    try:
        images, labels = tfds.as_numpy(tfds.load("mnist", download=False, **kwargs))
    except (AssertionError, tfds.core.registered.DatasetNotFoundError, FileNotFoundError) as err:
        if not download:
            raise DataNotFoundError(f"no tensorflow-datasets copy ({err})") from None
        if not _network_reachable():
            raise DataNotFoundError(
                "no tensorflow-datasets copy, and the download failed: "
                f"{_DOWNLOAD_HOST[0]} cannot be reached"
            ) from None
        try:
            images, labels = tfds.as_numpy(tfds.load("mnist", download=True, **kwargs))
        except Exception as dl_err:  # any failure of the download is reported the same way
            raise DataNotFoundError(f"no tensorflow-datasets copy, and the download failed: {dl_err}") from None
    return _to_float(images), labels.astype(np.int64)


@functools.lru_cache(maxsize=8)
def _load_cached(split, data_dir, download):
    if data_dir is not None and _idx_files(Path(data_dir), split) is not None:
        return load_mnist_idx(data_dir, split)
    tfds_dir = data_dir or os.environ.get("TFDS_DATA_DIR")
    try:
        return _load_tfds(split, tfds_dir, download)
    except DataNotFoundError as err:
        where = tfds_dir or "the default tensorflow-datasets folder (~/tensorflow_datasets)"
        raise DataNotFoundError(
            f"MNIST '{split}' data is missing: {err}, looked in {where}. "
            "Either set TFDS_DATA_DIR to a folder that holds mnist/3.0.1 (a tensorflow-datasets copy), "
            "or pass the folder of the four raw MNIST IDX files as data_dir (--data-dir on the command line)."
        ) from None


def load_mnist(split: str = "train", data_dir=None, download: bool = True):
    """Loads an MNIST split as float32 images in [0, 1].

    Looks, in order: in `data_dir` for the four raw IDX files; then for a
    tensorflow-datasets copy in `data_dir` (or `TFDS_DATA_DIR`, or tfds's
    default folder); then, if `download` is true and the network is reachable,
    lets tensorflow-datasets download it. Results are cached per process.

    Args:
        split: "train" (60,000 images) or "test" (10,000 images).
        data_dir: a tensorflow-datasets data folder (holding `mnist/`) or a
            folder holding the raw IDX files; None uses `TFDS_DATA_DIR`.
        download: whether a missing tfds copy may be downloaded.

    Returns:
        `(x, y)`: `(n, 28, 28, 1)` float32 images and `(n,)` int64 labels, both
        read-only.

    Raises:
        DataNotFoundError: neither source has the data and the download failed
            or was not allowed; the message names both remedies.
    """
    _check_split(split)
    x, y = _load_cached(split, None if data_dir is None else str(data_dir), bool(download))
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


def has_mnist_idx(folder, split: str) -> bool:
    """Whether `folder` holds the raw IDX files of MNIST's `split`."""
    _check_split(split)
    return _idx_files(Path(folder), split) is not None


def load_mnist_slice(split: str, start: int, stop: int, data_dir=None):
    """Images `start..stop-1` of MNIST's `split` from a tensorflow-datasets copy, reading only those.

    Equals `load_mnist(split, data_dir)[start:stop]` (the same records, the
    same scaling) without reading the rest of the split.

    Returns:
        `(x, y)`: `(stop - start, 28, 28, 1)` float32 images and `(stop - start,)` int64 labels.
    """
    import tensorflow_datasets as tfds

    _check_split(split)
    images, labels = tfds.as_numpy(tfds.load("mnist", split=f"{split}[{int(start)}:{int(stop)}]", batch_size=-1,
                                             as_supervised=True, data_dir=data_dir, download=False))
    return _to_float(images), labels.astype(np.int64)


def sample_pairs(y, num_pairs: int, seed: int, epoch: int = 0):
    """Draws balanced pairs of example indices.

    Anchors are a random permutation of the examples (repeated as needed);
    pair labels alternate z = 0, 1, 0, 1, ... so that every even-sized batch is
    exactly half similar, half dissimilar. A similar partner is another
    example of the anchor's class; a dissimilar partner is an example of a
    uniformly chosen other class.

    Args:
        y: `(n,)` integer labels.
        num_pairs: pairs to draw.
        seed: the seed; with `epoch` it fixes the draw.
        epoch: the epoch number, so that each epoch sees new pairs.

    Returns:
        `(i, j, z)`: three `(num_pairs,)` arrays (int64, int64, float32).
    """
    if num_pairs < 1:
        raise ValueError(f"`num_pairs` must be a positive integer. Received: num_pairs={num_pairs!r}")
    y = np.asarray(y).astype(np.int64)
    rng = np.random.default_rng([int(seed), int(epoch)])
    num_classes = int(y.max()) + 1
    by_class = [np.flatnonzero(y == k) for k in range(num_classes)]
    if any(len(members) < 2 for members in by_class):
        raise ValueError("Every class needs at least two examples to form similar pairs.")
    reps = -(-num_pairs // len(y))
    i = np.concatenate([rng.permutation(len(y)) for _ in range(reps)])[:num_pairs]
    z = (np.arange(num_pairs) % 2).astype(np.float32)
    shift = rng.integers(1, num_classes, size=num_pairs)
    partner_class = np.where(z == 0, y[i], (y[i] + shift) % num_classes)
    sizes = np.array([len(m) for m in by_class])
    u = rng.random(num_pairs)
    j = np.empty(num_pairs, dtype=np.int64)
    for k in range(num_classes):
        sel = partner_class == k
        pos = (u[sel] * sizes[k]).astype(np.int64)
        j[sel] = by_class[k][pos]
    # a similar pair of an example with itself teaches nothing: move to the next member
    same = (j == i)
    if same.any():
        for idx in np.flatnonzero(same):
            members = by_class[y[i[idx]]]
            j[idx] = members[(np.searchsorted(members, i[idx]) + 1) % len(members)]
    return i, j, z


def make_pair_dataset(x, y, batch_size: int, seed: int, epoch: int = 0, num_pairs: int | None = None,
                      skip_batches: int = 0) -> tf.data.Dataset:
    """A seeded `tf.data` pipeline of balanced pair batches for one epoch.

    Args:
        x: `(n, H, W, C)` float32 images (`(n, 28, 28, 1)` for MNIST).
        y: `(n,)` integer labels.
        batch_size: pairs per batch (the global batch under a strategy).
        seed: the seed; the same seed and epoch give the same batches.
        epoch: the epoch number.
        num_pairs: pairs in the epoch; defaults to `n`.
        skip_batches: batches to skip (to resume mid-epoch), done on the
            indices so no image is gathered for them.

    Returns:
        A dataset of `(x_i, x_j, z)` batches: `(b, H, W, C)`, `(b, H, W, C)`, `(b,)`.
    """
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer. Received: batch_size={batch_size!r}")
    i, j, z = sample_pairs(y, num_pairs or len(y), seed, epoch)
    images = tf.convert_to_tensor(x)  # a tensor passed in is used as it is, not copied
    ds = tf.data.Dataset.from_tensor_slices((i, j, z)).batch(batch_size).skip(skip_batches)
    ds = ds.map(lambda bi, bj, bz: (tf.gather(images, bi), tf.gather(images, bj), bz))
    return ds.prefetch(tf.data.AUTOTUNE)


def make_labelled_dataset(x, y, batch_size: int, seed: int, epoch: int = 0, skip_batches: int = 0,
                          augment: bool = False) -> tf.data.Dataset:
    """A seeded, shuffled `tf.data` pipeline of image batches with their labels (the photo tower's all-pairs batches).

    Args:
        x: `(n, H, W, C)` images.
        y: `(n,)` integer labels.
        batch_size, seed, epoch, skip_batches: as in `make_image_dataset`.
        augment: mirror each image left-right with probability 1/2, drawn with
            the order (a resumed epoch sees the same flips). Off for the paper:
            digits are not mirror-symmetric.

    Returns:
        A dataset of `(x_b, y_b)` batches: `(b, H, W, C)` float32, `(b,)` int64.
    """
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer. Received: batch_size={batch_size!r}")
    rng = np.random.default_rng([int(seed), int(epoch)])
    order = rng.permutation(len(x))
    flips = rng.random(len(x)) < 0.5 if augment else np.zeros(len(x), bool)
    images, labels = tf.convert_to_tensor(x), tf.constant(np.asarray(y, np.int64))

    def gather(idx, flip):
        batch = tf.gather(images, idx)
        return tf.where(flip[:, None, None, None], tf.reverse(batch, axis=[2]), batch), tf.gather(labels, idx)

    ds = tf.data.Dataset.from_tensor_slices((order, flips)).batch(batch_size).skip(skip_batches)
    return ds.map(gather).prefetch(tf.data.AUTOTUNE)


def make_image_dataset(arrays, batch_size: int, seed: int, epoch: int = 0, skip_batches: int = 0) -> tf.data.Dataset:
    """A seeded, shuffled `tf.data` pipeline over aligned arrays for one epoch.

    Args:
        arrays: a tuple of arrays with the same first dimension n, e.g.
            `(x, h)` with `(n, 28, 28, 1)` images and `(n, D)` embeddings.
        batch_size: examples per batch.
        seed: the seed; the same seed and epoch give the same order.
        epoch: the epoch number.
        skip_batches: batches to skip (to resume mid-epoch).

    Returns:
        A dataset of tuples of batches, one per array.
    """
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer. Received: batch_size={batch_size!r}")
    n = len(arrays[0])
    order = np.random.default_rng([int(seed), int(epoch)]).permutation(n)
    tensors = tuple(tf.convert_to_tensor(a) for a in arrays)  # tensors passed in are not copied
    ds = tf.data.Dataset.from_tensor_slices(order).batch(batch_size).skip(skip_batches)
    ds = ds.map(lambda idx: tuple(tf.gather(t, idx) for t in tensors))
    return ds.prefetch(tf.data.AUTOTUNE)


# ---------------------------------------------------------------------------
# Any labelled image set: an image folder or a tensorflow-datasets set by name
