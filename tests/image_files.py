"""Real image files for tests, made from MNIST's test digits: image folders and TFRecord files."""

import numpy as np
from PIL import Image

from siamese_xai.data import mnist as data


def write_digit_folder(root, layout="one", per_class=4, names=("zero", "one", "two"), file_names=None):
    """MNIST test digits as PNG files: `root/<class>/<file>`, or `root/train/...` and `root/test/...`.

    Class k holds images of the digit k, so a run trained on MNIST tells them apart.

    Args:
        root: the folder to make.
        layout: "one" (one folder, split by a test fraction) or "train_test".
        per_class: images per class (per class and part with "train_test").
        names: the class folders' names, class k first.
        file_names: `per_class` file names used in every class folder, or None for "00.png", "01.png", ...
    """
    x, y = data.load_mnist("test")
    file_names = file_names or [f"{i:02d}.png" for i in range(per_class)]
    for p, part in enumerate([""] if layout == "one" else ["train", "test"]):
        for k, name in enumerate(names):
            folder = root / part / name
            folder.mkdir(parents=True)
            for file_name, index in zip(file_names, np.flatnonzero(y == k)[p * per_class:(p + 1) * per_class]):
                Image.fromarray(np.round(x[index, ..., 0] * 255).astype(np.uint8)).save(folder / file_name, "PNG")
    return root


def write_tfrecords(path, count=12, start=0):
    """MNIST test images `start..start+count-1`, PNG-encoded, in one TFRecord file."""
    import tensorflow as tf

    x, y = data.load_mnist("test")
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i in range(start, start + count):
            png = tf.io.encode_png(tf.constant(np.round(x[i] * 255).astype(np.uint8))).numpy()
            feature = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[png])),
                       "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(y[i])]))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return path
