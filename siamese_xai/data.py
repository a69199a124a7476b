"""Data: MNIST (tensorflow-datasets or raw IDX files), any labelled image set, and the seeded pair sampler.

`load_mnist` reads MNIST; `load_dataset` also reads a folder of images, one
sub-folder per class, or any tensorflow-datasets image classification set,
and returns the class names with the images.

Pair-label convention (the paper's): z = 0 for a similar pair (same class),
z = 1 for a dissimilar pair (different classes); see `siamese_xai.losses`.
"""

from __future__ import annotations

import functools
import gzip
import os
import socket
from pathlib import Path
from typing import NamedTuple

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
    images = tf.constant(x)
    ds = tf.data.Dataset.from_tensor_slices((i, j, z)).batch(batch_size).skip(skip_batches)
    ds = ds.map(lambda bi, bj, bz: (tf.gather(images, bi), tf.gather(images, bj), bz))
    return ds.prefetch(tf.data.AUTOTUNE)


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
    tensors = tuple(tf.constant(a) for a in arrays)
    ds = tf.data.Dataset.from_tensor_slices(order).batch(batch_size).skip(skip_batches)
    ds = ds.map(lambda idx: tuple(tf.gather(t, idx) for t in tensors))
    return ds.prefetch(tf.data.AUTOTUNE)


# ---------------------------------------------------------------------------
# Any labelled image set: an image folder or a tensorflow-datasets set by name

MNIST_CLASS_NAMES = tuple(str(k) for k in range(10))


class LabelledImages(NamedTuple):
    """Images with their labels and class names; unpacks as `x, y, class_names = ...`.

    Attributes:
        x: `(n, H, W, C)` float32 images in [0, 1].
        y: `(n,)` int64 labels, indices into `class_names`.
        class_names: a tuple of C class names (str).
    """

    x: np.ndarray
    y: np.ndarray
    class_names: tuple


def _is_tfds_dir(folder: Path) -> bool:
    """Whether `folder` looks like a tensorflow-datasets data folder (NAME/VERSION/dataset_info.json)."""
    return any(folder.glob("*/*/dataset_info.json")) or any(folder.glob("*/*/*/dataset_info.json"))


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _class_folders(folder: Path) -> dict:
    """`{class name: sorted image paths}` for a folder of class folders; checks the layout."""
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and _visible(p))
    if not classes:
        raise ValueError(
            f"image folder {folder} has no class folders: expected {folder}/<class>/<image> "
            f"or {folder}/train/<class>/<image> and {folder}/test/<class>/<image>"
        )
    if len(classes) == 1:
        raise ValueError(f"image folder {folder} has one class folder ({classes[0].name!r}); at least two are needed")
    found = {}
    for cls in classes:
        files = sorted(p for p in cls.iterdir() if _visible(p))
        if not files:
            raise ValueError(f"class folder {cls} is empty: every class needs at least one image")
        for f in files:
            if not f.is_file():
                raise ValueError(f"{f} is a folder inside class folder {cls}: a class folder must hold only images")
        found[cls.name] = files
    return found


def _decode(path: Path) -> np.ndarray:
    """One image file as uint8 `(h, w, channels)` with the channels it was stored with."""
    try:
        image = tf.io.decode_image(path.read_bytes(), expand_animations=False)
    except tf.errors.InvalidArgumentError:
        raise ValueError(f"{path} is not an image TensorFlow can read (PNG, JPEG, GIF or BMP)") from None
    return image.numpy()


def _stack(images, paths, folder, image_size):
    """uint8 images of any channels -> one float32 `(n, H, W, C)` array in [0, 1].

    Channels: C = 3 if any image has colour (3 or 4 channels), else C = 1.
    Grayscale images are repeated into three channels, an alpha channel is
    dropped (grayscale + alpha keeps the gray). Sizes must agree unless
    `image_size` is given, in which case every image of another size is
    resized (bilinear, antialiased).
    """
    channels = 3 if any(im.shape[2] >= 3 for im in images) else 1
    sizes = {}
    out = []
    for image, path in zip(images, paths):
        image = _select_channels(image)
        if image.shape[2] != channels:
            image = np.repeat(image, channels, axis=2)
        x = image.astype(np.float32) / 255.0
        if image_size is not None and x.shape[:2] != tuple(image_size):
            x = np.clip(tf.image.resize(x, image_size, method="bilinear", antialias=True).numpy(), 0.0, 1.0)
        sizes.setdefault(x.shape[:2], path)
        out.append(x)
    if len(sizes) > 1:
        (size_a, path_a), (size_b, path_b) = list(sizes.items())[:2]
        raise ValueError(
            f"images in {folder} have different sizes: {path_a} is {size_a[0]}x{size_a[1]}, "
            f"{path_b} is {size_b[0]}x{size_b[1]}; pass image_size=(H, W) to resize them"
        )
    return np.stack(out).astype(np.float32, copy=False)


def _read_class_folders(found: dict, names, folder, image_size):
    paths, labels = [], []
    for label, name in enumerate(names):
        paths += found[name]
        labels += [label] * len(found[name])
    x = _stack([_decode(p) for p in paths], paths, folder, image_size)
    return x, np.asarray(labels, dtype=np.int64)


def _stratified_test_mask(y, test_fraction, seed, folder, names):
    """Marks round(n_k * test_fraction) images of each class k (at least one, never all) as test."""
    rng = np.random.default_rng(int(seed))
    test = np.zeros(len(y), dtype=bool)
    for k, name in enumerate(names):
        members = np.flatnonzero(y == k)
        if len(members) < 2:
            raise ValueError(
                f"class folder {folder / name} has {len(members)} image; a train/test split needs at least 2 "
                f"per class (or give {folder}/train and {folder}/test)"
            )
        n_test = min(max(int(round(len(members) * test_fraction)), 1), len(members) - 1)
        test[rng.permutation(members)[:n_test]] = True
    return test


def _load_image_folder(folder: Path, split, image_size, test_fraction, seed):
    has = {name: (folder / name).is_dir() for name in SPLITS}
    if all(has.values()):
        found = _class_folders(folder / split)
        other = "test" if split == "train" else "train"
        other_names = sorted(p.name for p in (folder / other).iterdir() if p.is_dir() and _visible(p))
        if other_names != sorted(found):
            raise ValueError(
                f"image folder {folder}: train and test have different class folders "
                f"({sorted(found) if split == 'train' else other_names} against "
                f"{other_names if split == 'train' else sorted(found)})"
            )
        names = tuple(sorted(found))
        x, y = _read_class_folders(found, names, folder / split, image_size)
        return LabelledImages(x, y, names)
    if any(has.values()):
        present, missing = ("train", "test") if has["train"] else ("test", "train")
        raise ValueError(
            f"image folder {folder} has a {present} folder but no {missing} folder: give both "
            f"({folder}/train/<class>/... and {folder}/test/<class>/...) or neither ({folder}/<class>/...)"
        )
    found = _class_folders(folder)
    names = tuple(sorted(found))
    x, y = _read_class_folders(found, names, folder, image_size)
    test = _stratified_test_mask(y, test_fraction, seed, folder, names)
    keep = test if split == "test" else ~test
    return LabelledImages(x[keep], y[keep], names)


def _select_channels(images):
    """uint8 `(..., c)` -> its first three channels if it has colour, else its first (drops alpha)."""
    return images[..., :3] if images.shape[-1] >= 3 else images[..., :1]


def _load_tfds_by_name(name, split, data_dir, image_size):
    """A prepared tensorflow-datasets image classification set (never downloaded)."""
    import tensorflow_datasets as tfds

    where = data_dir or os.environ.get("TFDS_DATA_DIR") or "the default tensorflow-datasets folder"
    try:
        builder = tfds.builder(name, data_dir=data_dir)
        prepared = builder.is_prepared()
    except (tfds.core.registered.DatasetNotFoundError, FileNotFoundError) as err:
        prepared, builder = False, " ".join(str(err).split())
    if not prepared:
        detail = f": {builder}" if isinstance(builder, str) else ""
        raise DataNotFoundError(
            f"tensorflow-datasets set {name!r} is not prepared in {where}{detail}. "
            f"Prepare it where the network is reachable (`tfds build {name} --data_dir DIR`), then pass "
            "that folder as data_dir (--data-dir) or TFDS_DATA_DIR"
        ) from None
    features = builder.info.features
    image_key, label_key = builder.info.supervised_keys or ("image", "label")
    if (image_key not in features or label_key not in features
            or not isinstance(features[image_key], tfds.features.Image)
            or not isinstance(features[label_key], tfds.features.ClassLabel)):
        raise ValueError(
            "`dataset` must be an image classification set (an Image feature and a ClassLabel). "
            f"Received: dataset={name!r} with features {sorted(features.keys())}"
        )
    names = tuple(str(n) for n in features[label_key].names)
    if None not in features[image_key].shape:  # one size: read the split as one batch (as load_mnist does)
        batch = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
        images, labels = _select_channels(batch[image_key]), batch[label_key].astype(np.int64)
        x = images.astype(np.float32) / 255.0
        if image_size is not None and x.shape[1:3] != image_size:
            x = np.clip(tf.image.resize(x, image_size, method="bilinear", antialias=True).numpy(), 0.0, 1.0)
        return LabelledImages(x, labels, names)
    images, labels = [], []
    for example in tfds.as_numpy(builder.as_dataset(split=split)):
        images.append(example[image_key])
        labels.append(example[label_key])
    paths = [f"example {i}" for i in range(len(images))]
    x = _stack(images, paths, f"tensorflow-datasets set {name!r} ({split})", image_size)
    return LabelledImages(x, np.asarray(labels, dtype=np.int64), names)


def _check_image_size(image_size):
    if image_size is None:
        return None
    size = tuple(image_size) if isinstance(image_size, (tuple, list)) else None
    if size is None or len(size) != 2 or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in size):
        raise ValueError(f"`image_size` must be (height, width), two positive integers. Received: image_size={image_size!r}")
    return tuple(int(v) for v in size)


def load_dataset(data_dir=None, dataset=None, split: str = "train", image_size=None,
                 test_fraction: float = 0.2, seed: int = 0) -> LabelledImages:
    """Loads a labelled image set: MNIST, an image folder, or a tensorflow-datasets set by name.

    What is read:

    - `dataset` given: that tensorflow-datasets image classification set,
      already prepared in `data_dir` (or `TFDS_DATA_DIR`, or tfds's default
      folder); it is never downloaded. Class names are its label names
      (`info.features["label"].names`; MNIST's are "0" ... "9").
    - `data_dir` an image folder, in one of two layouts:
      `DIR/<class>/<image>`, split into train and test by a seeded,
      stratified `test_fraction` (round(n_k * test_fraction) images of each
      class, at least one and never all, go to test; the same seed gives the
      same split, and the two splits are complementary); or
      `DIR/train/<class>/<image>` and `DIR/test/<class>/<image>` (the same
      class folders in both). Class names are the folder names, sorted, and
      the labels index them. Images are read with `tf.io.decode_image` (PNG,
      JPEG, GIF's first frame, BMP), in class order, then file-name order.
      Names starting with "." are ignored, and so are loose files beside the
      class folders. Every other file must be an image.
    - otherwise (no `dataset`; `data_dir` None, a tensorflow-datasets folder
      or a folder of the raw MNIST IDX files): MNIST through `load_mnist`,
      bit for bit.

    Grayscale and colour: the images come back with C = 1 if every image is
    grayscale, C = 3 if any has colour; then grayscale images are repeated
    into three channels and alpha channels are dropped. Sizes must agree
    unless `image_size` is given: then images of any other size are resized
    to it (bilinear, antialiased). Pixels are the stored uint8 values / 255.

    Args:
        data_dir: an image folder, a tensorflow-datasets data folder, a folder
            of the raw MNIST IDX files, or None.
        dataset: a tensorflow-datasets name such as "fashion_mnist", or None.
        split: "train" or "test" (any tfds split name with `dataset`).
        image_size: `(H, W)` to resize to, or None to require equal sizes.
        test_fraction: the share of each class that the single-folder layout
            puts in the test split; in (0, 1).
        seed: the seed of that split.

    Returns:
        `LabelledImages(x, y, class_names)`: `(n, H, W, C)` float32 in [0, 1],
        `(n,)` int64 labels and a tuple of class names.

    Raises:
        FileNotFoundError: `data_dir` does not exist, or the tfds set is not
            prepared (`DataNotFoundError`).
        ValueError: a bad folder layout, named in one line: no class folders,
            one class, an empty class folder, a file that is not an image,
            images of different sizes without `image_size`, train and test
            with different classes, a class too small to split.
    """
    image_size = _check_image_size(image_size)
    if not (isinstance(test_fraction, (int, float)) and 0.0 < float(test_fraction) < 1.0):
        raise ValueError(f"`test_fraction` must be a number in (0, 1). Received: test_fraction={test_fraction!r}")
    if dataset is not None:
        return _load_tfds_by_name(str(dataset), split, None if data_dir is None else str(data_dir), image_size)
    _check_split(split)
    folder = None if data_dir is None else Path(data_dir)
    if folder is not None and not folder.is_dir():
        raise FileNotFoundError(f"`data_dir` must be a folder. Received: data_dir={str(data_dir)!r} (not a folder)")
    if folder is None or _idx_files(folder, split) is not None or _is_tfds_dir(folder):
        x, y = load_mnist(split, data_dir=data_dir)
        if image_size is not None and tuple(image_size) != x.shape[1:3]:
            x = np.clip(tf.image.resize(x, image_size, method="bilinear", antialias=True).numpy(), 0.0, 1.0)
        return LabelledImages(x, y, MNIST_CLASS_NAMES)
    return _load_image_folder(folder, split, image_size, test_fraction, seed)
