"""Input validation, in one place: every error names the argument, what was expected and what was received."""

from __future__ import annotations

import math

import numpy as np

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def to_numpy(x):
    """A tf.Tensor, tf.Variable, list or array as a NumPy array."""
    if hasattr(x, "numpy") and callable(x.numpy):
        x = x.numpy()
    return np.asarray(x)


def is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_positive_int(name, value):
    if not is_int(value) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return int(value)


def check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {list(choices)}. Received: {name}={value!r}")
    return value


def check_positive_finite(name, value):
    if (
        not isinstance(value, (int, float, np.floating, np.integer))
        or isinstance(value, (bool, np.bool_))
        or not math.isfinite(value)
        or not value > 0
    ):
        raise ValueError(f"`{name}` must be a positive finite number. Received: {name}={value!r}")
    return float(value)


def check_seed(seed) -> int:
    if not is_int(seed) or not INT64_MIN <= int(seed) <= INT64_MAX:
        raise ValueError(f"`seed` must be an integer in the int64 range. Received: seed={seed!r}")
    return int(seed)


def scale_images(x, name):
    """uint8 -> float32 / 255; floats are checked to be finite and in [0, 1]."""
    x = to_numpy(x)
    if x.dtype == np.uint8:
        return x.astype(np.float32) / np.float32(255.0)
    if x.dtype.kind != "f":
        raise TypeError(
            f"`{name}` must be a float array with values in [0, 1] or a uint8 array in [0, 255]. "
            f"Received: {name}.dtype={x.dtype}"
        )
    bad = ~np.isfinite(x)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"`{name}` must be finite. Received: {int(bad.sum())} NaN or inf values (the first at index {first})"
        )
    if x.size and (x.min() < 0 or x.max() > 1):
        raise ValueError(
            f"`{name}` must hold values in [0, 1] (uint8 images in [0, 255] are scaled by 1/255). "
            f"Received: values in [{float(x.min()):g}, {float(x.max()):g}]"
        )
    return x.astype(np.float32, copy=False)


def _image_shapes(image_shape):
    shapes = [tuple(image_shape)]
    if len(image_shape) > 1 and image_shape[-1] == 1:
        shapes.append(tuple(image_shape[:-1]))  # a gray image without its channel axis
    return shapes


def check_images(x, image_shape, name, single=None):
    """Validates images and converts them to a float32 batch in [0, 1].

    Args:
        x: one image `image_shape` (or, for one channel, without its channel
            axis) or a batch `(B, *image_shape)`; float in [0, 1] or uint8.
        image_shape: the decoder's output shape, e.g. `(28, 28, 1)`.
        name: the argument's name, for errors.
        single: True / False to require one image / a batch; None accepts both.

    Returns:
        `(xs, single)`: `(B, *image_shape)` float32 (B = 1 for one image) and
        whether `x` was one image.

    Raises:
        ValueError: wrong shape, NaN / inf, values outside [0, 1].
        TypeError: neither a float nor a uint8 array.
    """
    x = to_numpy(x)
    shapes = _image_shapes(image_shape)
    is_one = x.shape in shapes
    is_batch = x.ndim >= 1 and x.shape[1:] in shapes
    if (single is True and not is_one) or (single is False and not is_batch) or not (is_one or is_batch):
        one = " or ".join(str(s) for s in shapes)
        many = " or ".join(str(("B",) + s).replace("'", "") for s in shapes)
        want = one if single is True else many if single is False else f"{one} (one image) or {many} (a batch)"
        raise ValueError(f"`{name}` must have shape {want}. Received: {name}.shape={x.shape}")
    x = scale_images(x, name)
    return x.reshape((1 if is_one else x.shape[0],) + tuple(image_shape)), is_one


def check_targets(target_class, batch: int, num_classes: int):
    """`target_class` (None, one class, or one per input) as a `(batch,)` int64 array, -1 for "own class"."""

    def one(t):
        if t is None:
            return -1
        if not is_int(t) or not 0 <= int(t) < num_classes:
            raise ValueError(
                f"`target_class` must be None or an integer in [0, {num_classes}). Received: target_class={t!r}"
            )
        return int(t)

    if target_class is None or isinstance(target_class, (int, np.integer, str, bytes)):
        return np.full(batch, one(target_class), np.int64)
    try:
        targets = list(target_class)
    except TypeError:
        return np.full(batch, one(target_class), np.int64)  # not a sequence: `one` says why
    if len(targets) != batch:
        raise ValueError(
            f"`target_class` must be None, one class, or one class per input ({batch}). "
            f"Received: {len(targets)} classes"
        )
    return np.array([one(t) for t in targets], np.int64)
