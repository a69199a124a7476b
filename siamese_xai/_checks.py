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


def check_bool(name, value):
    if not isinstance(value, bool):
        raise ValueError(f"`{name}` must be True or False. Received: {name}={value!r}")
    return value


def check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {list(choices)}. Received: {name}={value!r}")
    return value


def check_renamed_choice(name, value, choices, renamed):
    """`value`, or its new name with a DeprecationWarning where `renamed` maps it; then checked against `choices`."""
    if isinstance(value, str) and value in renamed:
        import warnings

        warnings.warn(f"{name}={value!r} is now {renamed[value]!r}; the old name will be removed",
                      DeprecationWarning, stacklevel=4)
        value = renamed[value]
    return check_choice(name, value, choices)


def check_positive(name, value):
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
        raise ValueError(f"`{name}` must be a positive number. Received: {name}={value!r}")
    return value


def check_non_negative(name, value):
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
        raise ValueError(f"`{name}` must be a non-negative number. Received: {name}={value!r}")
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


def check_gray_batch(xs, name="xs"):
    """`xs` as a `(B, H, W, 1)` float32 array (the evaluation's one-channel images)."""
    xs = np.asarray(xs, np.float32)
    if xs.ndim != 4 or xs.shape[-1] != 1:
        raise ValueError(f"`{name}` must be (B, H, W, 1) images. Received: {name}.shape={xs.shape}")
    return xs


def check_image_size(image_size):
    """None, or `image_size` as a `(height, width)` tuple of two positive ints."""
    if image_size is None:
        return None
    size = tuple(image_size) if isinstance(image_size, (tuple, list)) else None
    if size is None or len(size) != 2 or not all(is_int(v) and v >= 1 for v in size):
        raise ValueError(
            f"`image_size` must be (height, width), two positive integers. Received: image_size={image_size!r}"
        )
    return tuple(int(v) for v in size)


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


def check_targets(target_class, batch: int, num_classes: int, name: str = "target_class"):
    """`target_class` (None, one class, or one per input) as a `(batch,)` int64 array, -1 for the default.

    `name` is the argument's name in the messages (`target_class` or `contrast_class`).
    """

    def one(t):
        if t is None:
            return -1
        if not is_int(t) or not 0 <= int(t) < num_classes:
            raise ValueError(
                f"`{name}` must be None or an integer in [0, {num_classes}). Received: {name}={t!r}"
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
            f"`{name}` must be None, one class, or one class per input ({batch}). "
            f"Received: {len(targets)} classes"
        )
    return np.array([one(t) for t in targets], np.int64)


def _output_shape(model):
    try:
        shape = model.output_shape
    except (AttributeError, ValueError, RuntimeError):
        return None
    if isinstance(shape, tuple) and shape and isinstance(shape[-1], (int, type(None))):
        return shape
    return None


def check_networks(embed, decoder, prototypes, config=None):
    """Checks that f, g and the prototypes agree on D and the image shape, and that s and q fit (given a config).

    Returns:
        `(prototypes, image_shape)`: `(C, D)` float32 (read-only) and the decoder's output shape.
    """
    import tensorflow as tf

    if not callable(embed):
        raise TypeError(f"`embed` must be callable. Received: embed={embed!r}")
    if not callable(decoder):
        raise TypeError(f"`decoder` must be callable. Received: decoder={decoder!r}")
    p = to_numpy(prototypes)
    if p.ndim != 2 or p.shape[0] < 1 or p.shape[1] < 1 or p.dtype.kind not in "fiu":
        raise ValueError(
            "`prototypes` must be a 2-D numeric array (C, D). "
            f"Received: prototypes.shape={p.shape}, dtype={p.dtype}"
        )
    p = p.astype(np.float32)
    if not np.isfinite(p).all():
        raise ValueError("`prototypes` must be finite. Received: NaN or inf values")
    num_classes, dim = p.shape

    dec_in = getattr(decoder, "input_shape", None)
    if isinstance(dec_in, tuple) and dec_in and dec_in[-1] is not None and dec_in[-1] != dim:
        raise ValueError(
            f"`decoder` must take codes of length D={dim}, the prototypes' width. "
            f"Received: decoder input shape {dec_in}"
        )
    emb_out = _output_shape(embed)
    if emb_out is not None and emb_out[-1] is not None and (len(emb_out) != 2 or emb_out[-1] != dim):
        raise ValueError(
            f"`embed` must return embeddings of shape (B, D) with D={dim}, the prototypes' width. "
            f"Received: embed output shape {emb_out}"
        )
    try:
        probe = to_numpy(decoder(tf.zeros((1, dim), tf.float32)))
    except Exception as err:  # any failure here means g cannot take these codes
        raise ValueError(
            f"`decoder` must map (B, D={dim}) float32 codes to images. Received: an error on a (1, {dim}) "
            f"input: {err}"
        ) from err
    if probe.ndim < 2 or probe.shape[0] != 1:
        raise ValueError(
            f"`decoder` must map (B, D) codes to (B, *image_shape) images. Received: output shape {probe.shape}"
        )
    image_shape = tuple(int(d) for d in probe.shape[1:])
    size = int(np.prod(image_shape))
    emb_in = getattr(embed, "input_shape", None)
    known = isinstance(emb_in, tuple) and len(emb_in) > 1 and all(d is not None for d in emb_in[1:])
    if known and tuple(emb_in[1:]) != image_shape:
        raise ValueError(
            f"`embed` must take images of the decoder's output shape {image_shape}. "
            f"Received: embed input shape {emb_in}"
        )
    if config is not None and config.s > dim:
        raise ValueError(f"`s` must be at most the embedding length D={dim}. Received: s={config.s}")
    if config is not None and config.q > size:
        raise ValueError(
            f"`q` must be at most the number of pixels {size} (image shape {image_shape}). Received: q={config.q}"
        )
    p.flags.writeable = False
    return p, image_shape


def check_embeddings(out, batch: int, dim: int):
    """f's output for `batch` images as `(batch, D)` finite float32 (a one-entry dict is unwrapped)."""
    if isinstance(out, dict):
        if len(out) != 1:
            raise ValueError(
                f"`embed` must return one array (or a dict with one entry). Received: a dict with keys {sorted(out)}"
            )
        out = next(iter(out.values()))
    h = to_numpy(out)
    if h.shape != (batch, dim):
        raise ValueError(
            f"`embed` must return one embedding of length D={dim} (the decoder's input length and "
            f"the prototypes' width) per input, shape {(batch, dim)}. Received: shape {h.shape}"
        )
    h = h.astype(np.float32)
    bad = ~np.isfinite(h).all(axis=1)
    if bad.any():
        raise ValueError(
            f"`embed` must return finite embeddings. Received: NaN or inf for inputs {np.flatnonzero(bad).tolist()}"
        )
    return h


def check_request(x, target_class, reference, seed, contrast_class, image_shape, num_classes, contrast):
    """The arguments of `SiameseExplainer.explain`, checked together (they constrain each other).

    Returns:
        `(xs, seed, targets, contrasts, refs)`: `(B, *image_shape)` float32, the
        seed, `(B,)` target and contrast classes (-1: the default), and the
        reference images `(1 or B, *image_shape)` or None.
    """
    xs, _ = check_images(x, image_shape, "x")
    seed = check_seed(seed)
    batch = len(xs)
    targets = check_targets(target_class, batch, num_classes)
    if contrast_class is not None and not contrast:
        raise ValueError(
            "`contrast_class` needs the decoded path's estimator (a TemplateContrastConfig), which asks why class k "
            f"rather than class l. Received: contrast_class={contrast_class!r} with a perturbation estimator"
        )
    if contrast_class is not None and reference is not None:
        raise ValueError(
            "`contrast_class` must be None when `reference` is given (the reference is the contrast). "
            f"Received: contrast_class={contrast_class!r}"
        )
    contrasts = check_targets(contrast_class, batch, num_classes, "contrast_class")
    if contrast and reference is None and num_classes < 2:
        raise ValueError(
            "A TemplateContrastConfig needs at least 2 classes or a `reference`. "
            f"Received: prototypes of {num_classes} class"
        )
    refs = None
    if reference is not None:
        if target_class is not None and not contrast:
            raise ValueError(
                "`target_class` must be None when `reference` is given (the reference replaces the prototype). "
                f"Received: target_class={target_class!r}"
            )
        refs, _ = check_images(reference, image_shape, "reference")
        if len(refs) not in (1, batch):
            raise ValueError(
                f"`reference` must be one image or one per input ({batch}). Received: {len(refs)} images"
            )
    return xs, seed, targets, contrasts, refs
