"""Model builders: the Siamese subnetwork f and the explainable autoencoder (Table 1).

Every builder returns a named functional `keras.Model`. The autoencoder mirrors
Table 1 of the paper layer for layer (see `../shared/paper/METHOD.md`); the
Siamese subnetwork is this project's choice, since the paper treats it as a
black box.
"""

from __future__ import annotations

import keras
from keras import layers

IMAGE_SHAPE = (28, 28, 1)


def _check_dim(embedding_dim):
    if not isinstance(embedding_dim, int) or isinstance(embedding_dim, bool) or embedding_dim < 1:
        raise ValueError(
            "`embedding_dim` must be a positive integer. "
            f"Received: embedding_dim={embedding_dim!r}"
        )


def build_siamese_subnetwork(embedding_dim: int = 20, name: str = "snn") -> keras.Model:
    """Builds the Siamese subnetwork f: image -> embedding.

    A small conv net (two conv blocks and a dense head). Both branches of the
    Siamese network are this one model called twice, so they share weights.
    The embedding layer is linear: contrastive embeddings take any real value.

    Args:
        embedding_dim: D, the length of the embedding h = f(x).
        name: the model's name.

    Returns:
        A `keras.Model` from `(batch, 28, 28, 1)` float32 in [0, 1] to
        `(batch, embedding_dim)`.
    """
    _check_dim(embedding_dim)
    inputs = keras.Input(IMAGE_SHAPE, name="image")
    x = layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(128, activation="relu", name="dense1")(x)
    outputs = layers.Dense(embedding_dim, name="embedding")(x)
    return keras.Model(inputs, outputs, name=name)


def build_encoder(embedding_dim: int = 20, name: str = "encoder") -> keras.Model:
    """Builds the encoder e of the explainable autoencoder (Table 1, left).

    Conv layers use 3x3 kernels with 'same' padding; Pooling3 uses 'same'
    padding so that 7x7 becomes 4x4. The code layer (Dense2) is linear: its
    output is trained to equal the Siamese embedding f(x), which takes negative
    values, so a ReLU there could not match it. Every other layer uses ReLU.

    Args:
        embedding_dim: D, the code length; must equal the Siamese embedding size.
        name: the model's name.

    Returns:
        A `keras.Model` from `(batch, 28, 28, 1)` to `(batch, embedding_dim)`.
    """
    _check_dim(embedding_dim)
    inputs = keras.Input(IMAGE_SHAPE, name="image")
    x = layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv3")(x)
    x = layers.MaxPooling2D(2, padding="same", name="pool3")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(40, activation="relu", name="dense1")(x)
    outputs = layers.Dense(embedding_dim, name="dense2")(x)
    return keras.Model(inputs, outputs, name=name)


def build_decoder(embedding_dim: int = 20, name: str = "decoder") -> keras.Model:
    """Builds the decoder g of the explainable autoencoder (Table 1, right).

    Decoder Conv1 uses a 2x2 kernel with 'valid' padding (8x8 -> 7x7, the only
    small kernel that gives Table 1's shape); Conv2 and Conv3 use 3x3 'same'.
    ReLU everywhere except the output layer, which is a sigmoid.

    Args:
        embedding_dim: D, the code length.
        name: the model's name.

    Returns:
        A `keras.Model` from `(batch, embedding_dim)` to `(batch, 28, 28, 1)`
        with values in (0, 1).
    """
    _check_dim(embedding_dim)
    inputs = keras.Input((embedding_dim,), name="code")
    x = layers.Dense(40, activation="relu", name="dense1")(inputs)
    x = layers.Dense(128, activation="relu", name="dense2")(x)
    x = layers.Reshape((4, 4, 8), name="reshape")(x)
    x = layers.UpSampling2D(2, name="upsampling1")(x)
    x = layers.Conv2D(8, 2, padding="valid", activation="relu", name="conv1")(x)
    x = layers.UpSampling2D(2, name="upsampling2")(x)
    x = layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2")(x)
    x = layers.UpSampling2D(2, name="upsampling3")(x)
    outputs = layers.Conv2D(1, 3, padding="same", activation="sigmoid", name="conv3")(x)
    return keras.Model(inputs, outputs, name=name)


def build_autoencoder(encoder: keras.Model, decoder: keras.Model, name: str = "autoencoder") -> keras.Model:
    """Chains encoder and decoder into one model with two outputs.

    Args:
        encoder: from `build_encoder`.
        decoder: from `build_decoder`, with the same code length.

    Returns:
        A `keras.Model` from `(batch, 28, 28, 1)` to
        `[(batch, 28, 28, 1) reconstruction, (batch, D) code]`.
    """
    enc_dim = encoder.output_shape[-1]
    dec_dim = decoder.input_shape[-1]
    if enc_dim != dec_dim:
        raise ValueError(
            "`encoder` code length must equal `decoder` input length. "
            f"Received: encoder output {enc_dim}, decoder input {dec_dim}"
        )
    inputs = keras.Input(IMAGE_SHAPE, name="image")
    code = encoder(inputs)
    recon = decoder(code)
    return keras.Model(inputs, [recon, code], name=name)
