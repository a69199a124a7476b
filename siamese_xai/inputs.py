"""Reading the images a user asks to explain: image files and `mnist:SPLIT:INDEX`."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

_MNIST_SPEC = re.compile(r"^mnist:(train|test):(\d+)$")


def read_image(path, shape=(28, 28)):
    """Reads a PNG/JPEG (any format Pillow reads) as a grayscale float image.

    Colour images are converted to grayscale (ITU-R 601 luma), and the
    returned note says so. Images are not resized: a wrong size is an error,
    since a resized digit is no longer the image the user meant.

    Args:
        path: the image file.
        shape: the expected `(height, width)`.

    Returns:
        `(image, note)`: `(*shape, 1)` float32 in [0, 1], and a note (empty
        when nothing was converted).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not an image, or the wrong size.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Image file {str(path)!r} does not exist")
    try:
        with Image.open(path) as img:
            img.load()
            mode, size = img.mode, img.size
            note = ""
            if mode not in ("L", "I;16", "I", "F", "1"):
                note = f"{path.name}: converted from {mode} to grayscale"
            gray = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    except UnidentifiedImageError:
        raise ValueError(f"{str(path)!r} is not an image Pillow can read (expected a PNG or JPEG)") from None
    except Exception as err:  # noqa: BLE001 - Pillow's decoders raise OSError, ValueError, EOFError,
        # SyntaxError, DecompressionBombError, ... for broken or hostile files: all mean "cannot be read"
        detail = " ".join(str(err).split())
        raise ValueError(f"{str(path)!r} could not be read as an image: {type(err).__name__}: {detail}") from None
    if gray.shape != tuple(shape):
        raise ValueError(
            f"Image {str(path)!r} must be {shape[1]}x{shape[0]} pixels (width x height). "
            f"Received: {size[0]}x{size[1]}"
        )
    return gray[..., None], note


def resolve_input(spec: str, data_dir=None):
    """Turns one command-line INPUT into an image.

    Args:
        spec: an image file path, or `mnist:test:INDEX` / `mnist:train:INDEX`
            (the index into `siamese_xai.data.load_mnist(SPLIT)`).
        data_dir: MNIST's location for `mnist:` inputs.

    Returns:
        `(image, name, label, note)`: `(28, 28, 1)` float32, a file-name stem
        for the outputs, the true label (None for files) and a note.
    """
    match = _MNIST_SPEC.match(spec)
    if match:
        from siamese_xai import data

        split, index = match.group(1), int(match.group(2))
        x, y = data.load_mnist(split, data_dir)
        if index >= len(x):
            raise ValueError(f"INPUT {spec!r}: the index must be below {len(x)} for the {split} split")
        return np.array(x[index]), f"mnist-{split}-{index}", int(y[index]), ""
    if spec.startswith("mnist:"):
        raise ValueError(f"INPUT {spec!r} must look like mnist:test:INDEX or mnist:train:INDEX")
    image, note = read_image(spec)
    return image, Path(spec).stem, None, note
