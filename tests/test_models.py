import keras
import numpy as np
import pytest

from siamese_xai.training import models

ENCODER_SHAPES = [
    ("image", (28, 28, 1)),
    ("conv1", (28, 28, 16)),
    ("pool1", (14, 14, 16)),
    ("conv2", (14, 14, 8)),
    ("pool2", (7, 7, 8)),
    ("conv3", (7, 7, 8)),
    ("pool3", (4, 4, 8)),
    ("flatten", (128,)),
    ("dense1", (40,)),
    ("dense2", (20,)),
]
DECODER_SHAPES = [
    ("code", (20,)),
    ("dense1", (40,)),
    ("dense2", (128,)),
    ("reshape", (4, 4, 8)),
    ("upsampling1", (8, 8, 8)),
    ("conv1", (7, 7, 8)),
    ("upsampling2", (14, 14, 8)),
    ("conv2", (14, 14, 16)),
    ("upsampling3", (28, 28, 16)),
    ("conv3", (28, 28, 1)),
]


def _shapes(model):
    return [(layer.name, tuple(layer.output.shape[1:])) for layer in model.layers]


def test_encoder_matches_table_1():
    enc = models.build_encoder(20)
    assert _shapes(enc) == ENCODER_SHAPES
    # conv 3x3: 1*9*16+16, 16*9*8+8, 8*9*8+8; dense 128*40+40, 40*20+20
    assert enc.count_params() == 160 + 1160 + 584 + 5160 + 820 == 7884


def test_decoder_matches_table_1():
    dec = models.build_decoder(20)
    assert _shapes(dec) == DECODER_SHAPES
    # dense 20*40+40, 40*128+128; conv 2x2 8*4*8+8, 3x3 8*9*16+16, 16*9*1+1
    assert dec.count_params() == 840 + 5248 + 264 + 1168 + 145 == 7665


def test_activations_relu_but_last_sigmoid_and_linear_code():
    enc, dec = models.build_encoder(20), models.build_decoder(20)
    acts = {f"enc.{l.name}": l.activation.__name__ for l in enc.layers if hasattr(l, "activation")}
    acts.update({f"dec.{l.name}": l.activation.__name__ for l in dec.layers if hasattr(l, "activation")})
    assert acts.pop("dec.conv3") == "sigmoid"
    assert acts.pop("enc.dense2") == "linear"  # the code must be able to equal f(x), which can be negative
    assert set(acts.values()) == {"relu"}


@pytest.mark.parametrize("dim", [10, 20, 7])
def test_embedding_dim_flows_through_every_model(dim):
    x = np.random.default_rng(0).random((3, 28, 28, 1), dtype=np.float32)
    snn, enc, dec = models.build_siamese_subnetwork(dim), models.build_encoder(dim), models.build_decoder(dim)
    assert snn(x).shape == (3, dim)
    assert enc(x).shape == (3, dim)
    out = dec(enc(x))
    assert out.shape == (3, 28, 28, 1)
    # codes far from zero drive a linear or ReLU output layer outside [0, 1]; the sigmoid stays inside
    far = np.asarray(dec(np.random.default_rng(1).normal(scale=100.0, size=(3, dim)).astype(np.float32)))
    assert far.min() >= 0.0 and far.max() <= 1.0 and far.std() > 0.01
    recon, code = models.build_autoencoder(enc, dec)(x)
    assert recon.shape == (3, 28, 28, 1) and code.shape == (3, dim)


def test_decoder_table_1_param_count_with_d10():
    assert models.build_decoder(10).count_params() == 7665 - 10 * 40
    assert models.build_encoder(10).count_params() == 7884 - 10 * 41


@pytest.mark.parametrize("bad", [0, -3, 2.5, "20", True])
def test_bad_embedding_dim_is_named(bad):
    with pytest.raises(ValueError, match="embedding_dim"):
        models.build_decoder(bad)


def test_autoencoder_rejects_mismatched_code_lengths():
    with pytest.raises(ValueError, match="encoder output 10, decoder input 20"):
        models.build_autoencoder(models.build_encoder(10), models.build_decoder(20))


SNN_SHAPES = [
    ("image", (28, 28, 1)),
    ("conv1", (28, 28, 32)),
    ("pool1", (14, 14, 32)),
    ("conv2", (14, 14, 64)),
    ("pool2", (7, 7, 64)),
    ("flatten", (3136,)),
    ("dense1", (128,)),
    ("embedding", (20,)),
]


# The towers' weight sharing is not tested here: both branches are one model
# called twice in `training.train_siamese`, and a pair model built in a test
# would only test Keras. What is ours is the subnetwork itself.
def test_siamese_subnetwork_shapes_and_parameter_count():
    snn = models.build_siamese_subnetwork(20)
    assert _shapes(snn) == SNN_SHAPES
    # conv 3x3: 1*9*32+32, 32*9*64+64; dense 3136*128+128, 128*20+20 (docs/choices.md: 423k)
    assert snn.count_params() == 320 + 18496 + 401536 + 2580 == 422932
    assert snn.get_layer("embedding").activation.__name__ == "linear"  # embeddings take any real value
