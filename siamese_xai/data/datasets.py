"""Labelled image sets beyond MNIST: image folders and tensorflow-datasets sets by name (`load_dataset`).

`load_dataset` returns images, labels and the class names; for MNIST it is
`siamese_xai.data.mnist.load_mnist`, bit for bit.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from siamese_xai import _checks
from siamese_xai.data.mnist import SPLITS, DataNotFoundError, _check_split, _idx_files, load_mnist

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
        raise DataNotFoundError(
            f"{folder} holds no data set: no class folders of images ({folder}/<class>/<image>, or "
            f"{folder}/train/<class>/<image> and {folder}/test/<class>/<image>), no MNIST (the four raw IDX "
            "files, or a tensorflow-datasets folder holding mnist/); pass one of those as --data-dir (data_dir=)"
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
        x = to_channels(image, channels).astype(np.float32) / 255.0
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


def folder_files(folder: Path, split, test_fraction, seed):
    """The image files of one split of an image folder, without reading them (`load_dataset`'s layouts).

    Returns:
        `(paths, labels, class_names, together)`: a list of `Path`s in class
        order, then file-name order; `(n,)` int64 labels; a tuple of the C
        class names; the paths whose channels and sizes `load_dataset` decides
        together (the split's, or the whole folder's in the one-folder layout).
    """
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
        paths, labels = _listed(found, names)
        return paths, labels, names, paths
    if any(has.values()):
        present, missing = ("train", "test") if has["train"] else ("test", "train")
        raise ValueError(
            f"image folder {folder} has a {present} folder but no {missing} folder: give both "
            f"({folder}/train/<class>/... and {folder}/test/<class>/...) or neither ({folder}/<class>/...)"
        )
    found = _class_folders(folder)
    names = tuple(sorted(found))
    paths, labels = _listed(found, names)
    test = _stratified_test_mask(labels, test_fraction, seed, folder, names)
    keep = test if split == "test" else ~test
    return [p for p, k in zip(paths, keep) if k], labels[keep], names, paths


def _listed(found: dict, names):
    paths, labels = [], []
    for label, name in enumerate(names):
        paths += found[name]
        labels += [label] * len(found[name])
    return paths, np.asarray(labels, dtype=np.int64)


def _load_image_folder(folder: Path, split, image_size, test_fraction, seed):
    if (folder / "train").is_dir() or (folder / "test").is_dir():
        paths, labels, names, _ = folder_files(folder, split, test_fraction, seed)
        return LabelledImages(_stack([_decode(p) for p in paths], paths, folder / split, image_size), labels, names)
    found = _class_folders(folder)
    names = tuple(sorted(found))
    paths, labels = _listed(found, names)
    x = _stack([_decode(p) for p in paths], paths, folder, image_size)  # every image read before the split's checks
    keep = _stratified_test_mask(labels, test_fraction, seed, folder, names)
    keep = keep if split == "test" else ~keep
    return LabelledImages(x[keep], labels[keep], names)


def to_channels(image, channels: int) -> np.ndarray:
    """uint8 `(h, w, c)` -> `(h, w, channels)`: colour or gray chosen (`_select_channels`), gray repeated into 3."""
    image = _select_channels(image)
    return np.repeat(image, channels, axis=2) if image.shape[2] != channels else image


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


_check_image_size = _checks.check_image_size


def data_kind(data_dir=None, dataset=None) -> str:
    """What `load_dataset(data_dir, dataset)` reads: "mnist", "image_folder" or "tfds:NAME".

    Args:
        data_dir: as in `load_dataset`.
        dataset: as in `load_dataset`.

    Returns:
        "tfds:NAME" when `dataset` is given; "mnist" when `data_dir` is None,
        a tensorflow-datasets folder or a folder of the raw MNIST IDX files;
        "image_folder" otherwise (the folder's layout is checked when it is read).
    """
    if dataset is not None:
        return f"tfds:{dataset}"
    folder = None if data_dir is None else Path(data_dir)
    if folder is None or not folder.is_dir() or _is_tfds_dir(folder) or any(_idx_files(folder, split) for split in ("train", "test")):
        return "mnist"
    return "image_folder"


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
