"""A float64 twin of a chain decoder, for checks of the float32 arithmetic.

`float64_decoder(decoder)` evaluates the same layers in float64, layer by
layer (no fusion, no exact change rules): a reference that shares no code
path with the explainer's evaluation except the activation lookup.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from siamese_xai.decoding import rules
from siamese_xai.decoding.chain import chain_layers


def float64_decoder(decoder):
    """g evaluated in float64, layer by layer: a function from `(B, D)` codes to `(B, ...)` float64 outputs.

    Args:
        decoder: a chain-shaped Keras decoder of Dense / Conv2D / Reshape /
            Flatten / UpSampling2D / Activation layers with relu, sigmoid or
            linear activations.

    Raises:
        ValueError: the decoder is not a chain of Keras layers.
    """
    chain = chain_layers(decoder)
    if chain is None:
        raise ValueError(f"`decoder` must be a chain of Keras layers for a float64 twin. Received: {decoder!r}")
    return float64_chain(chain)


def float64_chain(steps):
    """A float64 evaluation of the same chain (for checks): `codes -> output in the internal layout`.

    Args:
        steps: the evaluation steps of a chain decoder, all Keras layers (no fusion).
    """
    def run(codes):
        x = tf.constant(np.asarray(codes, np.float64))
        for layer in steps:
            kind = type(layer)
            if kind is keras.layers.Dense:
                x = tf.matmul(x, tf.cast(layer.kernel, tf.float64))
                if layer.use_bias:
                    x = x + tf.cast(layer.bias, tf.float64)
                x = _act64(layer.activation, x)
            elif kind is keras.layers.Conv2D:
                x = tf.nn.conv2d(x, tf.cast(layer.kernel, tf.float64), strides=layer.strides,
                                 padding=layer.padding.upper(), dilations=layer.dilation_rate)
                if layer.use_bias:
                    x = x + tf.cast(layer.bias, tf.float64)
                x = _act64(layer.activation, x)
            elif kind in (keras.layers.Reshape, keras.layers.Flatten):
                x = tf.reshape(x, (-1,) + tuple(layer.output.shape[1:]))
            elif kind is keras.layers.UpSampling2D:
                x = tf.repeat(tf.repeat(x, layer.size[0], axis=1), layer.size[1], axis=2)
            elif kind is keras.layers.Activation:
                x = _act64(layer.activation, x)
            else:
                raise ValueError(f"no float64 rule for layer '{layer.name}' ({kind.__name__})")
        return x.numpy()

    return run


def _act64(fn, x):
    name = rules.act_name(fn)
    if name is None:
        raise ValueError(f"no float64 rule for activation {fn!r}")
    if name == "relu":
        return tf.maximum(x, tf.constant(0.0, tf.float64))
    if name == "sigmoid":
        return 1.0 / (1.0 + tf.exp(-x))
    return x
