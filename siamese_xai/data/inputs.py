"""Reading the images a user asks to explain: image files and `mnist:SPLIT:INDEX`."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

_MNIST_SPEC = re.compile(r"^mnist:(train|test):(\d+)$")


def read_image(path, shape=(28, 28, 1)):
    """Reads a PNG/JPEG (any format Pillow reads) as a float image of the explainer's shape.

    For a one-channel shape, colour images are converted to grayscale (ITU-R
    601 luma); for a three-channel shape, grayscale images are repeated into
    three channels and alpha is dropped. The returned note says what was
    converted. Images are not resized: a wrong size is an error, since a
    resized image is no longer the image the user meant.

    Args:
        path: the image file.
        shape: the expected `(height, width, channels)` (channels 1 or 3), or
            `(height, width)` for one channel.

    Returns:
        `(image, note)`: `(height, width, channels)` float32 in [0, 1], and a
        note (empty when nothing was converted).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not an image, or the wrong size.
    """
    from PIL import Image, UnidentifiedImageError

    shape = tuple(shape) if len(shape) == 3 else (*shape, 1)
    if shape[2] not in (1, 3):
        raise ValueError(f"`shape` must have 1 or 3 channels. Received: shape={shape}")
    gray_modes = ("L", "I;16", "I", "F", "1")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Image file {str(path)!r} does not exist")
    try:
        with Image.open(path) as img:
            img.load()
            mode, size = img.mode, img.size
            note = ""
            if shape[2] == 1:
                if mode not in gray_modes:
                    note = f"{path.name}: converted from {mode} to grayscale"
                pixels = np.asarray(img.convert("L"), dtype=np.float32)[..., None] / 255.0
            else:
                if mode != "RGB":
                    note = f"{path.name}: converted from {mode} to RGB"
                pixels = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    except UnidentifiedImageError:
        raise ValueError(f"{str(path)!r} is not an image Pillow can read (expected a PNG or JPEG)") from None
    except Exception as err:  # noqa: BLE001 - Pillow's decoders raise OSError, ValueError, EOFError,
        # SyntaxError, DecompressionBombError, ... for broken or hostile files: all mean "cannot be read"
        detail = " ".join(str(err).split())
        raise ValueError(f"{str(path)!r} could not be read as an image: {type(err).__name__}: {detail}") from None
    if pixels.shape != shape:
        raise ValueError(
            f"Image {str(path)!r} must be {shape[1]}x{shape[0]} pixels (width x height). "
            f"Received: {size[0]}x{size[1]}"
        )
    return pixels, note


def resolve_input(spec: str, data_dir=None, shape=(28, 28, 1)):
    """Turns one command-line INPUT into an image.

    Args:
        spec: an image file path, or `mnist:test:INDEX` / `mnist:train:INDEX`
            (the index into `siamese_xai.data.mnist.load_mnist(SPLIT)`).
        data_dir: MNIST's location for `mnist:` inputs.
        shape: the explainer's image shape (files must have it).

    Returns:
        `(image, name, label, note)`: `(28, 28, 1)` float32, a file-name stem
        for the outputs, the true label (None for files) and a note.
    """
    match = _MNIST_SPEC.match(spec)
    if match:
        from siamese_xai.data import mnist as data

        split, index = match.group(1), int(match.group(2))
        x, y = data.load_mnist(split, data_dir)
        if index >= len(x):
            raise ValueError(f"INPUT {spec!r}: the index must be below {len(x)} for the {split} split")
        return np.array(x[index]), f"mnist-{split}-{index}", int(y[index]), ""
    if spec.startswith("mnist:"):
        raise ValueError(f"INPUT {spec!r} must look like mnist:test:INDEX or mnist:train:INDEX")
    image, note = read_image(spec, shape)
    return image, Path(spec).stem, None, note
