"""The Siamese subnetwork and the explainable autoencoder for image shapes other than 28x28x1."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from siamese_xai.training import models

SHAPES = [(8, 8, 1), (32, 32, 3), (20, 36, 1), (28, 32, 3), (13, 17, 1)]


def _shapes(model):
    return [(layer.name, tuple(layer.output.shape[1:])) for layer in model.layers]


def _images(shape, n=32, seed=0):
    """Smooth blobs on black: structure a decoder can learn in a few steps."""
    h, w, c = shape
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    centres = rng.random((n, c, 2)) * [h, w]
    d2 = (yy[None, None] - centres[..., 0, None, None]) ** 2 + (xx[None, None] - centres[..., 1, None, None]) ** 2
    return np.exp(-d2 / (0.05 * h * w)).transpose(0, 2, 3, 1).astype(np.float32)


def test_table_1_layers_keep_their_kernels_and_paddings():
    enc, dec = models.build_encoder(20), models.build_decoder(20)
    pools = {l.name: l.padding for l in enc.layers if isinstance(l, keras.layers.MaxPooling2D)}
    assert pools == {"pool1": "valid", "pool2": "valid", "pool3": "same"}
    convs = {l.name: (l.kernel_size, l.padding) for l in dec.layers if isinstance(l, keras.layers.Conv2D)}
    assert convs == {"conv1": ((2, 2), "valid"), "conv2": ((3, 3), "same"), "conv3": ((3, 3), "same")}
    assert not any(isinstance(l, keras.layers.ZeroPadding2D) for l in dec.layers)


def test_non_square_layer_shapes_by_hand():
    # 20x36: the sides 20, 10, 5, 3 and 36, 18, 9, 5; decoder Conv1 meets 6x10 -> 5x9 with a 2x2 'valid' kernel
    assert _shapes(models.build_encoder(20, image_shape=(20, 36, 1))) == [
        ("image", (20, 36, 1)), ("conv1", (20, 36, 16)), ("pool1", (10, 18, 16)), ("conv2", (10, 18, 8)),
        ("pool2", (5, 9, 8)), ("conv3", (5, 9, 8)), ("pool3", (3, 5, 8)), ("flatten", (120,)),
        ("dense1", (40,)), ("dense2", (20,)),
    ]
    assert _shapes(models.build_decoder(20, image_shape=(20, 36, 1))) == [
        ("code", (20,)), ("dense1", (40,)), ("dense2", (120,)), ("reshape", (3, 5, 8)),
        ("upsampling1", (6, 10, 8)), ("conv1", (5, 9, 8)), ("upsampling2", (10, 18, 8)),
        ("conv2", (10, 18, 16)), ("upsampling3", (20, 36, 16)), ("conv3", (20, 36, 1)),
    ]


def test_one_odd_side_is_padded_on_the_other():
    # 28x32: sides 28, 14, 7, 4 and 32, 16, 8, 4; 8x8 -> 7x8 needs the one-pixel pad on the width
    dec = models.build_decoder(20, image_shape=(28, 32, 3))
    assert _shapes(dec)[4:7] == [("upsampling1", (8, 8, 8)), ("conv1_pad", (8, 9, 8)), ("conv1", (7, 8, 8))]
    assert _shapes(dec)[-1] == ("conv3", (28, 32, 3))


def test_parameter_counts_for_8x8_by_hand():
    # encoder: conv 1*9*16+16, 16*9*8+8, 8*9*8+8; grid 1x1x8 -> dense 8*40+40, 40*20+20
    assert models.build_encoder(20, image_shape=(8, 8, 1)).count_params() == 160 + 1160 + 584 + 360 + 820
    # decoder: dense 20*40+40, 40*8+8; conv 3x3 'same' 8*9*8+8, 8*9*16+16, 16*9*1+1
    assert models.build_decoder(20, image_shape=(8, 8, 1)).count_params() == 840 + 328 + 584 + 1168 + 145


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_every_model_takes_and_gives_the_image_shape(shape):
    x = _images(shape, n=3)
    snn = models.build_siamese_subnetwork(7, image_shape=shape)
    enc, dec = models.build_encoder(7, image_shape=shape), models.build_decoder(7, image_shape=shape)
    assert snn(x).shape == (3, 7) and enc(x).shape == (3, 7)
    recon, code = models.build_autoencoder(enc, dec)(x)
    assert recon.shape == (3, *shape) and code.shape == (3, 7)
    assert dec.layers[-1].activation.__name__ == "sigmoid"
    out = dec(np.random.default_rng(1).normal(0, 50, (64, 7)).astype(np.float32)).numpy()  # saturate it
    assert out.min() >= 0.0 and out.max() <= 1.0
    # the decoder retraces the encoder's sides backwards
    enc_sides = {l.name: tuple(l.output.shape[1:3]) for l in enc.layers}
    dec_sides = {l.name: tuple(l.output.shape[1:3]) for l in dec.layers}
    assert dec_sides["reshape"] == enc_sides["pool3"]
    assert (dec_sides["conv1"], dec_sides["conv2"], dec_sides["conv3"]) == (
        enc_sides["pool2"], enc_sides["pool1"], enc_sides["image"])


@pytest.mark.parametrize("shape", [(8, 8, 1), (32, 32, 3), (20, 36, 1)], ids=lambda s: "x".join(map(str, s)))
def test_a_few_training_steps_reduce_the_reconstruction_loss(shape):
    keras.utils.set_random_seed(0)
    enc, dec = models.build_encoder(10, image_shape=shape), models.build_decoder(10, image_shape=shape)
    x = tf.constant(_images(shape))
    variables = enc.trainable_variables + dec.trainable_variables
    optimizer = keras.optimizers.Adam(1e-2)

    def loss():
        return tf.reduce_mean(tf.reduce_sum(tf.square(x - dec(enc(x))), axis=[1, 2, 3]))

    before = float(loss())
    for _ in range(30):
        with tf.GradientTape() as tape:
            value = loss()
        optimizer.apply(tape.gradient(value, variables), variables)
    assert float(loss()) < 0.5 * before


@pytest.mark.parametrize("bad", [(28, 28), (0, 28, 1), (28.0, 28, 1), "28x28", None, (28, True, 1)])
def test_bad_image_shape_is_named(bad):
    with pytest.raises(ValueError, match="image_shape"):
        models.build_decoder(20, image_shape=bad)


def test_autoencoder_rejects_mismatched_image_shapes():
    with pytest.raises(ValueError, match=r"encoder input \(28, 28, 1\), decoder output \(32, 32, 3\)"):
        models.build_autoencoder(models.build_encoder(20), models.build_decoder(20, image_shape=(32, 32, 3)))
