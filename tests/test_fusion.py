"""The fused evaluation of upsampling + conv decoders (siamese_xai.decoding.fused)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from siamese_xai.decoding.evaluator import decoder_evaluator


def up_conv_decoder(spatial, blocks):
    """Dense -> Reshape (spatial x spatial x 3) -> (UpSampling2D(size) -> Conv2D(kernel, padding)) per block.

    `blocks`: `[(size, kernel, padding), ...]`; the last conv has 2 sigmoid filters, the others 5 relu ones.
    """
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,))
    x = keras.layers.Dense(spatial * spatial * 3, activation="relu")(inputs)
    x = keras.layers.Reshape((spatial, spatial, 3))(x)
    for j, (size, kernel, padding) in enumerate(blocks):
        x = keras.layers.UpSampling2D(size)(x)
        last = j + 1 == len(blocks)
        x = keras.layers.Conv2D(2 if last else 5, kernel, padding=padding, activation="sigmoid" if last else "relu")(x)
    return keras.Model(inputs, x)


@pytest.mark.parametrize(
    "spatial, blocks",
    [
        (4, [((2, 2), 2, "valid"), ((2, 2), 3, "same"), ((2, 2), 3, "same")]),  # Table 1's pattern
        (7, [((2, 2), 3, "same"), ((2, 2), 3, "same"), ((2, 2), 3, "same")]),  # cells read directly twice
        (5, [((3, 2), 5, "same"), ((2, 2), 3, "same")]),
        (6, [((2, 3), 4, "valid"), ((2, 2), 2, "same")]),
        (4, [((2, 2), 1, "same")]),
        (5, [((2, 2), 3, "same"), ((3, 3), 4, "valid")]),
    ],
)
def test_fused_upsampling_conv_equals_the_layers(spatial, blocks):
    model = up_conv_decoder(spatial, blocks)
    dec = decoder_evaluator(model, np.random.default_rng(0).normal(size=(8, 6)), mode="subtract")
    assert dec.fused
    codes = tf.random.normal((4, 6), seed=1)
    want = model(codes).numpy()
    internal = dec.internal(codes)
    assert tuple(internal.shape[1:]) != want.shape[1:] or len(blocks) == 1
    np.testing.assert_allclose(dec.to_image(internal).numpy(), want, atol=2e-5)


def test_fusion_off_or_not_applicable_calls_the_decoder():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    x = keras.layers.Dense(16)(inputs)
    model = keras.Model(inputs, keras.layers.Reshape((4, 4, 1))(x))
    codes = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32)
    for fuse in (False, True):  # no upsampling + conv pair: nothing to fuse
        dec = decoder_evaluator(model, codes, mode="subtract", fuse=fuse)
        assert not dec.fused
        np.testing.assert_array_equal(dec(tf.constant(codes)).numpy(), model(codes).numpy())
