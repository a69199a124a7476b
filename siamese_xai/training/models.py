"""Model builders: the Siamese subnetwork f and the explainable autoencoder (Table 1).

Every builder returns a named functional `keras.Model`. The autoencoder mirrors
Table 1 of the paper layer for layer (see `../shared/paper/METHOD.md`); the
Siamese subnetwork is this project's choice, since the paper treats it as a
black box.

Any image shape `(H, W, C)`: the builders take `image_shape` (default
`(28, 28, 1)`, which gives Table 1 exactly, with the same layers in the same
order, so the same seed gives the same weights). Other shapes follow the same
pattern, one rule per layer kind:

- every 2x2 max-pooling rounds up: a side s becomes ceil(s / 2) ('same'
  padding; written 'valid' where both sides are even, which is the same
  thing and keeps Table 1's layers for 28x28). The encoder's three poolings
  give the sides s0 = H, s1, s2, s3 (28, 14, 7, 4 for MNIST) and its code
  grid is s3 x s3' x 8 (4x4x8 = 128 for MNIST);
- the decoder's Dense2 has as many units as that grid and is reshaped to it;
  each UpSampling2D doubles the sides (2 s_{k+1} = s_k, or s_k + 1 where s_k
  is odd) and the conv after it brings them back to the encoder's s_k: a 3x3
  'same' kernel where both sides are already right, a 2x2 'valid' kernel
  where both are one too large (Table 1's decoder Conv1, 8x8 -> 7x7), and
  where only one is, a 2x2 'valid' kernel after a one-pixel zero padding at
  the end of the other side (a 2x2 'same' kernel in that direction only).
  The decoder's output is therefore exactly `(H, W, C)` by construction, with
  no cropping or resizing, and its last conv has C filters and a sigmoid.

Parameter counts grow with the image only through the flattened grids (the
encoder's Dense1, the decoder's Dense2, the Siamese network's Dense1).

Photos (not the paper's): images whose shorter side is at least
`PHOTO_MIN_SIDE` (48) pixels get other networks, chosen by `uses_photo_networks`
in `siamese_xai.training.stages` (the builders above still build Table 1's pattern
for any shape when called). Table 1's pattern does not scale: three poolings
leave a 12x12 grid of a 96x96 image, so the Siamese network's Dense1 has 4.7 M
weights and did not learn in 17 epochs, and a 12x12x8 code grid cannot draw
a photo. The photo networks follow one rule, `photo_levels`:

- L levels, the fewest (at least 3) that bring the shorter side to 8 or less
  by halvings that round up (96: 48, 24, 12, 6, so L = 4; 224: L = 5; 64: L = 3);
- level l (1..L) has `tower_filters(l)` = min(16 * 2^(l-1), 128) filters in
  the Siamese tower and `photo_filters(l)` = min(8 * 2^(l-1), 64) in the
  encoder and the decoder (Table 1 has 8 to 16; twice these filters made the
  autoencoder's two stages too slow for minutes on a 2-core CPU);
- the tower f (`build_photo_tower`): each image's channels standardised over
  its pixels, an average pooling by `tower_pooling` (the largest power of 2
  that leaves the shorter side at least 48 px: 2 for 96, 4 for 224), then per
  level of the pooled image a 3x3 stride-2 conv, batch normalisation and
  ReLU, one more conv on the last grid, the mean and the maximum of each
  feature over the grid, Dense(128, ReLU), a linear Dense(D) and a
  standardisation of each coordinate over the batch (no learnt scale, so the
  embeddings cannot all collapse to one point): about 80,000 weights at any
  size, and an embedding that does not depend on where the object is;
- the encoder e (`build_photo_encoder`): per level a 3x3 stride-2 ReLU conv,
  then Flatten, Dense(128, ReLU) and the linear code Dense(D);
- the decoder g (`build_photo_decoder`): Dense(128, ReLU), Dense onto the
  encoder's last grid (its sides x its filters), then per level, deepest
  first, UpSampling2D and the conv that brings the sides back to the
  encoder's (the rule above) with the filters of the level below, the last
  with C filters and a sigmoid. Only Dense, Reshape, UpSampling2D and Conv2D
  layers (and the one-pixel padding of odd sides), as in Table 1's decoder.
"""

from __future__ import annotations

import math

import keras
from keras import layers

IMAGE_SHAPE = (28, 28, 1)


def _check_dim(embedding_dim):
    if not isinstance(embedding_dim, int) or isinstance(embedding_dim, bool) or embedding_dim < 1:
        raise ValueError(
            "`embedding_dim` must be a positive integer. "
            f"Received: embedding_dim={embedding_dim!r}"
        )


def _check_image_shape(image_shape):
    shape = tuple(image_shape) if isinstance(image_shape, (tuple, list)) else None
    if (shape is None or len(shape) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in shape)):
        raise ValueError(
            "`image_shape` must be (height, width, channels), three positive integers. "
            f"Received: image_shape={image_shape!r}"
        )
    return shape


# Not the paper's: a decoder larger than Table 1 (twice the channels, a four times wider Dense1),
# the `build_decoder` options of the decoder study (`benchmarks/studies/decoder_study.py`).
LARGE_DECODER = {"dense_units": 160, "channels": (16, 16, 32)}


def _check_width(dense_units, channels):
    def positive(v):
        return isinstance(v, int) and not isinstance(v, bool) and v >= 1

    if not positive(dense_units):
        raise ValueError(f"`dense_units` must be a positive integer. Received: dense_units={dense_units!r}")
    if not (isinstance(channels, (tuple, list)) and len(channels) == 3 and all(positive(v) for v in channels)):
        raise ValueError(
            "`channels` must be three positive integers (grid, conv1, conv2). "
            f"Received: channels={channels!r}"
        )


def _halved(side):
    return math.ceil(side / 2)


def _pool(size, name):
    """2x2 max-pooling that rounds up; 'valid' (the same result) where both sides are even."""
    padding = "valid" if size[0] % 2 == 0 and size[1] % 2 == 0 else "same"
    return layers.MaxPooling2D(2, padding=padding, name=name)


def _encoder_sides(image_shape):
    """The encoder's spatial sizes: the input, then after each of its three poolings."""
    sizes = [tuple(image_shape[:2])]
    for _ in range(3):
        sizes.append(tuple(_halved(v) for v in sizes[-1]))
    return sizes


def _upsampled_conv(x, filters, target, activation, name):
    """The conv after an UpSampling2D: brings the doubled sides back to `target` (see the module docstring)."""
    extra = tuple(int(got - want) for got, want in zip(x.shape[1:3], target))
    if extra == (0, 0):
        return layers.Conv2D(filters, 3, padding="same", activation=activation, name=name)(x)
    if extra != (1, 1):
        # one side is one too large: pad the other by one at its end, then a 2x2 'valid' kernel
        x = layers.ZeroPadding2D(((0, 1 - extra[0]), (0, 1 - extra[1])), name=f"{name}_pad")(x)
    return layers.Conv2D(filters, 2, padding="valid", activation=activation, name=name)(x)


def build_siamese_subnetwork(embedding_dim: int = 20, name: str = "snn", image_shape=IMAGE_SHAPE) -> keras.Model:
    """Builds the Siamese subnetwork f: image -> embedding.

    A small conv net (two conv blocks and a dense head). Both branches of the
    Siamese network are this one model called twice, so they share weights.
    The embedding layer is linear: contrastive embeddings take any real value.

    Its poolings round up (see the module docstring), so any `image_shape`
    works; the flattened grid is ceil(H / 4) x ceil(W / 4) x 64.

    Args:
        embedding_dim: D, the length of the embedding h = f(x).
        name: the model's name.
        image_shape: `(H, W, C)` of the input images.

    Returns:
        A `keras.Model` from `(batch, H, W, C)` float32 in [0, 1] to
        `(batch, embedding_dim)`.
    """
    _check_dim(embedding_dim)
    image_shape = _check_image_shape(image_shape)
    sides = _encoder_sides(image_shape)
    inputs = keras.Input(image_shape, name="image")
    x = layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = _pool(sides[0], "pool1")(x)
    x = layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2")(x)
    x = _pool(sides[1], "pool2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(128, activation="relu", name="dense1")(x)
    outputs = layers.Dense(embedding_dim, name="embedding")(x)
    return keras.Model(inputs, outputs, name=name)


def build_encoder(embedding_dim: int = 20, name: str = "encoder", image_shape=IMAGE_SHAPE) -> keras.Model:
    """Builds the encoder e of the explainable autoencoder (Table 1, left).

    Conv layers use 3x3 kernels with 'same' padding; Pooling3 uses 'same'
    padding so that 7x7 becomes 4x4. The code layer (Dense2) is linear: its
    output is trained to equal the Siamese embedding f(x), which takes negative
    values, so a ReLU there could not match it. Every other layer uses ReLU.

    Other image shapes: each pooling rounds up (module docstring), so the
    flattened code grid is ceil(H / 8) x ceil(W / 8) x 8.

    Args:
        embedding_dim: D, the code length; must equal the Siamese embedding size.
        name: the model's name.
        image_shape: `(H, W, C)` of the input images; `(28, 28, 1)` is Table 1.

    Returns:
        A `keras.Model` from `(batch, H, W, C)` to `(batch, embedding_dim)`.
    """
    _check_dim(embedding_dim)
    image_shape = _check_image_shape(image_shape)
    sides = _encoder_sides(image_shape)
    inputs = keras.Input(image_shape, name="image")
    x = layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = _pool(sides[0], "pool1")(x)
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv2")(x)
    x = _pool(sides[1], "pool2")(x)
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv3")(x)
    x = _pool(sides[2], "pool3")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(40, activation="relu", name="dense1")(x)
    outputs = layers.Dense(embedding_dim, name="dense2")(x)
    return keras.Model(inputs, outputs, name=name)


def build_decoder(embedding_dim: int = 20, name: str = "decoder", image_shape=IMAGE_SHAPE, *,
                  dense_units: int = 40, channels=(8, 8, 16)) -> keras.Model:
    """Builds the decoder g of the explainable autoencoder (Table 1, right).

    Decoder Conv1 uses a 2x2 kernel with 'valid' padding (8x8 -> 7x7, the only
    small kernel that gives Table 1's shape); Conv2 and Conv3 use 3x3 'same'.
    ReLU everywhere except the output layer, which is a sigmoid.

    Other image shapes mirror the encoder's sides (module docstring): Dense2
    has ceil(H / 8) * ceil(W / 8) * 8 units, reshaped to that grid; the conv
    after each upsampling is 3x3 'same' where the doubled sides already equal
    the encoder's, 2x2 'valid' where they are one too large (with a one-pixel
    zero padding, a layer named `convK_pad`, where only one side is), so
    the output is exactly `(H, W, C)`; the last conv has C filters.

    Args:
        embedding_dim: D, the code length.
        name: the model's name.
        image_shape: `(H, W, C)` of the images to reconstruct; `(28, 28, 1)` is Table 1.
        dense_units: Dense1's width (Table 1: 40).
        channels: `(grid, conv1, conv2)`, the channels of the reshaped grid
            (Table 1: 8, so Dense2 has 4 * 4 * 8 = 128 units) and the filters
            of decoder Conv1 and Conv2 (Table 1: 8 and 16). Other values are
            not the paper's: `LARGE_DECODER` is the larger decoder of
            `benchmarks/studies/decoder_study.py`.

    Returns:
        A `keras.Model` from `(batch, embedding_dim)` to `(batch, H, W, C)`
        with values in (0, 1).
    """
    _check_dim(embedding_dim)
    image_shape = _check_image_shape(image_shape)
    _check_width(dense_units, channels)
    sides = _encoder_sides(image_shape)
    grid = (*sides[3], channels[0])
    inputs = keras.Input((embedding_dim,), name="code")
    x = layers.Dense(dense_units, activation="relu", name="dense1")(inputs)
    x = layers.Dense(grid[0] * grid[1] * grid[2], activation="relu", name="dense2")(x)
    x = layers.Reshape(grid, name="reshape")(x)
    x = layers.UpSampling2D(2, name="upsampling1")(x)
    x = _upsampled_conv(x, channels[1], sides[2], "relu", "conv1")
    x = layers.UpSampling2D(2, name="upsampling2")(x)
    x = _upsampled_conv(x, channels[2], sides[1], "relu", "conv2")
    x = layers.UpSampling2D(2, name="upsampling3")(x)
    outputs = _upsampled_conv(x, image_shape[2], sides[0], "sigmoid", "conv3")
    return keras.Model(inputs, outputs, name=name)


PHOTO_MIN_SIDE = 48
_PHOTO_DENSE = 128


def uses_photo_networks(image_shape) -> bool:
    """Whether images of `image_shape` `(H, W, C)` get the photo networks (shorter side >= `PHOTO_MIN_SIDE`)."""
    image_shape = _check_image_shape(image_shape)
    return min(image_shape[:2]) >= PHOTO_MIN_SIDE


def photo_levels(image_shape) -> list:
    """The photo networks' sides per level: `[(H, W), (ceil(H/2), ceil(W/2)), ...]`, L + 1 entries (module docstring)."""
    sides = [tuple(_check_image_shape(image_shape)[:2])]
    while len(sides) < 4 or min(sides[-1]) > 8:
        sides.append(tuple(_halved(v) for v in sides[-1]))
    return sides


def photo_filters(level: int) -> int:
    """Filters of the photo autoencoder's level `level` (1-based): min(8 * 2^(level-1), 64)."""
    return min(8 * 2 ** (level - 1), 64)


def tower_filters(level: int) -> int:
    """Filters of the photo tower's level `level` (1-based): min(16 * 2^(level-1), 128)."""
    return min(16 * 2 ** (level - 1), 128)


def tower_pooling(image_shape) -> int:
    """The photo tower's input average pooling: the largest power of 2 that leaves the shorter side >= 48 px."""
    factor, side = 1, min(_check_image_shape(image_shape)[:2])
    while side / (2 * factor) >= PHOTO_MIN_SIDE:
        factor *= 2
    return factor


def build_photo_tower(embedding_dim: int = 20, name: str = "snn", image_shape=(96, 96, 3)) -> keras.Model:
    """Builds the Siamese subnetwork f for photos: strided conv blocks with batch normalisation, global pooling.

    Not the paper's (module docstring): per level of `photo_levels` a 3x3
    stride-2 conv without bias, `BatchNormalization` and ReLU; then global
    average pooling, Dense(128, ReLU) and a linear Dense(embedding_dim).

    Args:
        embedding_dim: D.
        name: the model's name.
        image_shape: `(H, W, C)`, any size (meant for sides >= `PHOTO_MIN_SIDE`).

    Returns:
        A `keras.Model` from `(batch, H, W, C)` in [0, 1] to `(batch, D)`.
    """
    _check_dim(embedding_dim)
    image_shape = _check_image_shape(image_shape)
    inputs = keras.Input(image_shape, name="image")
    # each image's channels standardised over its pixels: the background's colour, which varies most and
    # says nothing of the class, is gone before the first conv (it doubled the accuracy reached in 6 epochs)
    x = layers.GroupNormalization(groups=image_shape[2], center=False, scale=False, epsilon=1e-3,
                                  name="image_norm")(inputs)
    factor = tower_pooling(image_shape)
    if factor > 1:
        x = layers.AveragePooling2D(factor, padding="same", name="downsample")(x)
    seen = (*(math.ceil(v / factor) for v in image_shape[:2]), image_shape[2])
    for level in range(1, len(photo_levels(seen))):
        x = layers.Conv2D(tower_filters(level), 3, strides=2, padding="same", use_bias=False, name=f"conv{level}")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"bn{level}")(x)
        x = layers.ReLU(name=f"relu{level}")(x)
    # one more conv on the coarsest grid: its receptive field (more than half the image) spans an object
    depth = len(photo_levels(seen)) - 1
    x = layers.Conv2D(tower_filters(depth), 3, padding="same", use_bias=False, name="conv_top")(x)
    x = layers.BatchNormalization(momentum=0.9, name="bn_top")(x)
    x = layers.ReLU(name="relu_top")(x)
    # the mean and the maximum of each feature over the image: an object covering a tenth of a photo
    # moves the maximum, while the mean is mostly the background's
    x = layers.Concatenate(name="pool")([layers.GlobalAveragePooling2D(name="mean_pool")(x),
                                         layers.GlobalMaxPooling2D(name="max_pool")(x)])
    x = layers.Dense(_PHOTO_DENSE, activation="relu", name="dense1")(x)
    x = layers.Dense(embedding_dim, name="embedding")(x)
    # Each coordinate standardised over the batch (at inference: by its running statistics, an affine
    # map): at initialisation global pooling makes all embeddings nearly equal, where the contrastive
    # loss's gradient vanishes (d^2 -> 0 for every pair: loss 0.5, the collapse seen without it).
    outputs = layers.BatchNormalization(momentum=0.9, center=False, scale=False, name="embedding_norm")(x)
    return keras.Model(inputs, outputs, name=name)


def build_photo_encoder(embedding_dim: int = 20, name: str = "encoder", image_shape=(96, 96, 3)) -> keras.Model:
    """Builds the encoder e for photos: a 3x3 stride-2 ReLU conv per level, Flatten, Dense(128), linear code.

    Args:
        embedding_dim: D, the code length (the Siamese embedding's).
        name: the model's name.
        image_shape: `(H, W, C)`.

    Returns:
        A `keras.Model` from `(batch, H, W, C)` to `(batch, D)`.
    """
    _check_dim(embedding_dim)
    image_shape = _check_image_shape(image_shape)
    inputs = keras.Input(image_shape, name="image")
    x = inputs
    for level in range(1, len(photo_levels(image_shape))):
        x = layers.Conv2D(photo_filters(level), 3, strides=2, padding="same", activation="relu", name=f"conv{level}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(_PHOTO_DENSE, activation="relu", name="dense1")(x)
    outputs = layers.Dense(embedding_dim, name="dense2")(x)
    return keras.Model(inputs, outputs, name=name)


def build_photo_decoder(embedding_dim: int = 20, name: str = "decoder", image_shape=(96, 96, 3)) -> keras.Model:
    """Builds the decoder g for photos, the mirror of `build_photo_encoder` (module docstring).

    Args:
        embedding_dim: D, the code length.
        name: the model's name.
        image_shape: `(H, W, C)` of the images to reconstruct.

    Returns:
        A `keras.Model` from `(batch, D)` to `(batch, H, W, C)` with values in (0, 1).
    """
    _check_dim(embedding_dim)
    image_shape = _check_image_shape(image_shape)
    sides = photo_levels(image_shape)
    depth = len(sides) - 1
    grid = (*sides[depth], photo_filters(depth))
    inputs = keras.Input((embedding_dim,), name="code")
    x = layers.Dense(_PHOTO_DENSE, activation="relu", name="dense1")(inputs)
    x = layers.Dense(grid[0] * grid[1] * grid[2], activation="relu", name="dense2")(x)
    x = layers.Reshape(grid, name="reshape")(x)
    for level in range(depth, 0, -1):
        last = level == 1
        x = layers.UpSampling2D(2, name=f"upsampling{depth - level + 1}")(x)
        x = _upsampled_conv(x, image_shape[2] if last else photo_filters(level - 1), sides[level - 1],
                            "sigmoid" if last else "relu", f"conv{depth - level + 1}")
    return keras.Model(inputs, x, name=name)


def build_for_images(image_shape):
    """`(tower, encoder, decoder)` builders' choice for `image_shape`: the photo networks or Table 1's pattern.

    Returns:
        Three functions of `(embedding_dim, image_shape=...)`, each building one model.
    """
    if uses_photo_networks(image_shape):
        return build_photo_tower, build_photo_encoder, build_photo_decoder
    return build_siamese_subnetwork, build_encoder, build_decoder


def build_autoencoder(encoder: keras.Model, decoder: keras.Model, name: str = "autoencoder") -> keras.Model:
    """Chains encoder and decoder into one model with two outputs.

    Args:
        encoder: from `build_encoder`.
        decoder: from `build_decoder`, with the same code length.

    Returns:
        A `keras.Model` from `(batch, H, W, C)` (the encoder's input shape) to
        `[(batch, H, W, C) reconstruction, (batch, D) code]`.
    """
    enc_dim = encoder.output_shape[-1]
    dec_dim = decoder.input_shape[-1]
    if enc_dim != dec_dim:
        raise ValueError(
            "`encoder` code length must equal `decoder` input length. "
            f"Received: encoder output {enc_dim}, decoder input {dec_dim}"
        )
    image_shape = tuple(encoder.input_shape[1:])
    if tuple(decoder.output_shape[1:]) != image_shape:
        raise ValueError(
            "`decoder` must reconstruct the encoder's image shape. "
            f"Received: encoder input {image_shape}, decoder output {tuple(decoder.output_shape[1:])}"
        )
    inputs = keras.Input(image_shape, name="image")
    code = encoder(inputs)
    recon = decoder(code)
    return keras.Model(inputs, [recon, code], name=name)
