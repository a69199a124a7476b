"""The exact change as a few sources split at the ReLU kinks (decoding.kinks): the same sums as the layers."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from siamese_xai.explainers._graph import _group_sums
from siamese_xai.decoding import kinks
from siamese_xai.decoding.evaluator import decoder_evaluator
from siamese_xai.decoding.twin import float64_decoder
from siamese_xai.config import ExplainConfig
from siamese_xai.explainers.siamese import SiameseExplainer
from test_exact import D, perturbation, scaled_table1_decoder


def sums_three_ways(decoder, h, basis, eps, cap=10**6):
    """Sums over the draws of |change| and change `(G, P)`: by the sources, by the layers, in float64; and stats."""
    ev = decoder_evaluator(decoder, h)
    assert ev.kinks is not None
    h_t, b_t, e_t = tf.constant(h), tf.constant(basis), tf.constant(eps)
    prepared = ev.kinks.prepare(h_t, b_t, e_t, cap)
    g = len(h)
    image = lambda t: ev.to_image(t).numpy().reshape(g, -1)  # noqa: E731
    got = [image(t) for t in ev.kinks.sums(prepared, 0, len(eps))]
    _, terms = ev.exact.base(h_t)
    layers = [image(t) for t in ev.exact.sums_from_basis(terms, e_t, b_t)]
    g64 = float64_decoder(decoder)
    d = np.einsum("ks,gsd->gkd", eps.astype(np.float64), basis.astype(np.float64))
    change = g64((h.astype(np.float64)[:, None] + d).reshape(g * len(eps), -1)).reshape(g, len(eps), -1) - \
        g64(h.astype(np.float64)).reshape(g, 1, -1)
    ref = [np.abs(change).sum(1), change.sum(1)]
    return got, layers, ref, {k: prepared[k].numpy() for k in ("ok", "candidates", "crossed")}


def assert_close(got, ref):
    """Per input: error <= 2e-6 of the largest |change| sum (float32 precision on the change)."""
    scale = ref[0].max(axis=1, keepdims=True)
    for a, b in zip(got, ref):
        assert np.all(np.abs(a - b) <= 2e-6 * scale), float((np.abs(a - b) / scale).max())


@pytest.mark.parametrize("sigma", [1e-5, 2e-4, 3e-2, 0.3])
def test_sources_equal_the_layers_and_float64_with_and_without_crossings(sigma):
    dec = scaled_table1_decoder()
    h = np.random.default_rng(0).normal(0, 1, (3, D)).astype(np.float32)
    basis, eps = perturbation(h, 3, sigma, 64, seed=1)
    got, layers, ref, stats = sums_three_ways(dec, h, basis, eps)
    assert stats["ok"] and stats["crossed"] <= stats["candidates"]
    if sigma >= 3e-2:  # large moves: many units cross their kinks, and the crossed units carry the change
        assert stats["crossed"] >= 10, stats
    assert_close(got, ref)
    assert_close(layers, ref)


def _unit_at_its_kink(h, kernel_seed=0):
    """Dense(6, relu) -> Dense(16, sigmoid) -> Reshape(4, 4, 1), with unit 0's pre-activation 1e-7 at h[0]."""
    rng = np.random.default_rng(kernel_seed)
    inputs = keras.Input((D,))
    x = keras.layers.Dense(6, activation="relu", name="hidden")(inputs)
    x = keras.layers.Dense(16, activation="sigmoid", name="out")(x)
    dec = keras.Model(inputs, keras.layers.Reshape((4, 4, 1))(x))
    w1 = rng.normal(0, 1, (D, 6)).astype(np.float32)
    b1 = rng.normal(0, 0.5, 6).astype(np.float32)
    b1[0] = np.float32(1e-7 - float(h[0].astype(np.float64) @ w1[:, 0].astype(np.float64)))
    dec.get_layer("hidden").set_weights([w1, b1])
    dec.get_layer("out").set_weights([rng.normal(0, 2, (6, 16)).astype(np.float32), np.zeros(16, np.float32)])
    return dec


def test_a_unit_at_its_kink_is_crossed_by_some_draws_and_carried_exactly():
    h = np.random.default_rng(3).normal(0, 1, (2, D)).astype(np.float32)
    dec = _unit_at_its_kink(h)
    basis, eps = perturbation(h, 4, 1e-4, 200, seed=4)
    got, layers, ref, stats = sums_three_ways(dec, h, basis, eps)
    assert stats["crossed"] >= 1, stats  # unit 0 of input 0
    assert_close(got, ref)
    assert_close(layers, ref)


def test_too_many_candidates_take_the_layer_by_layer_path():
    dec = scaled_table1_decoder()
    h = np.random.default_rng(5).normal(0, 1, (2, D)).astype(np.float32)
    basis, eps = perturbation(h, 3, 0.3, 40, seed=6)
    ev = decoder_evaluator(dec, h)
    h_t, b_t, e_t = tf.constant(h), tf.constant(basis), tf.constant(eps)
    assert not bool(ev.kinks.prepare(h_t, b_t, e_t, cap=0)["ok"])
    capped = _group_sums(ev, "mc", h_t, b_t, e_t, 16, 3, cap=0)
    uncapped = _group_sums(ev, "mc", h_t, b_t, e_t, 16, 3, cap=10**6)
    by_layers = decoder_evaluator(dec, h, mode="layers")
    assert by_layers.kinks is None and by_layers.mode == "layers" and ev.mode == "kinks"
    layers = _group_sums(by_layers, "mc", h_t, b_t, e_t, 16, 3, cap=0)
    np.testing.assert_array_equal(capped[1].numpy(), layers[1].numpy())  # the same ops: the fallback ran
    internal = (2,) + tuple(ev.internal(tf.zeros((1, D))).shape[1:])
    image = lambda t: ev.to_image(tf.reshape(t, internal)).numpy()  # noqa: E731 (padding dropped)
    scale = image(layers[1]).max()
    for a, b in zip(uncapped, layers):
        assert np.abs(image(a) - image(b)).max() <= 2e-6 * scale


def test_the_draws_are_summed_in_cache_sized_steps_with_the_same_sums(monkeypatch):
    """`block_rows(group)` = BLOCK_BYTES // (4 x width x group) draws per step: 40 in steps of 7, the last of 5."""
    dec = scaled_table1_decoder()
    h = np.random.default_rng(8).normal(0, 1, (2, D)).astype(np.float32)
    basis, eps = perturbation(h, 3, 3e-2, 40, seed=9)
    ev = decoder_evaluator(dec, h)
    assert ev.kinks.width == 784  # the fused last layer's cells that reach the 28x28x1 image
    assert ev.kinks.block_rows(1) == kinks.BLOCK_BYTES // (4 * 784) == 1337
    h_t, b_t, e_t = tf.constant(h), tf.constant(basis), tf.constant(eps)
    whole = _group_sums(ev, "mc", h_t, b_t, e_t, 40, 1, cap=10**6, group=2)
    monkeypatch.setattr(kinks, "BLOCK_BYTES", 4 * 784 * 2 * 7)
    assert ev.kinks.block_rows(2) == 7 and ev.kinks.block_rows(100) == 1
    steps, sums = [], kinks.KinkPlan.sums
    monkeypatch.setattr(kinks.KinkPlan, "sums", lambda self, p, lo, hi: steps.append(int(hi) - int(lo)) or
                        sums(self, p, lo, hi))
    stepped = _group_sums(ev, "mc", h_t, b_t, e_t, 40, 1, cap=10**6, group=2)
    assert steps == [7] * 6  # the last step's slice is 5 draws long
    internal = (2,) + tuple(ev.internal(tf.zeros((1, D))).shape[1:])
    image = lambda t: ev.to_image(tf.reshape(t, internal)).numpy()  # noqa: E731 (padding dropped)
    scale = image(whole[1]).max()
    for a, b in zip(stepped[1:], whole[1:]):
        assert np.abs(image(a) - image(b)).max() <= 2e-6 * scale


def test_explainer_uses_the_sources_and_they_do_not_change_the_explanation():
    dec = scaled_table1_decoder()
    rng = np.random.default_rng(7)
    proj = rng.normal(0, 0.2, (784, D)).astype(np.float32)
    protos = rng.normal(0, 1, (3, D)).astype(np.float32)
    embed = lambda x: (np.asarray(x, np.float64).reshape(len(x), -1) @ proj).astype(np.float32)  # noqa: E731
    cfg = ExplainConfig.tiny(n_perturbations=150, s=3, q=50, sigma_scale=5.0)  # large: crossings on every input
    xs = rng.random((3, 28, 28, 1)).astype(np.float32)
    fast = SiameseExplainer(embed, dec, protos, cfg, chunk_size=64)
    layers = SiameseExplainer(embed, dec, protos, cfg, chunk_size=64, kink_split=False)
    assert fast.decoder_evaluation.mode == "kinks" and fast.decoder_exact
    assert layers.decoder_evaluation.mode == "layers" and layers.decoder_evaluation.kinks is None
    a, b = fast.explain(xs, seed=2), layers.explain(xs, seed=2)
    scale = b.mean_abs_change.max(axis=(1, 2, 3), keepdims=True)
    assert np.all(np.abs(a.mean_abs_change - b.mean_abs_change) <= 2e-6 * scale)
    assert np.all(np.abs(a.mean_signed_change - b.mean_signed_change) <= 2e-6 * scale)
    np.testing.assert_array_equal(a.mask, b.mask)
    np.testing.assert_allclose(a.reconstruction, b.reconstruction, atol=1e-7)


def test_a_plan_that_disagrees_with_the_layers_is_dropped(monkeypatch):
    through = kinks.KinkPlan._through_relu

    def unmasked(z, rows, coef, cap, stats):  # the Jacobian without the ReLU masks: wrong
        return through(tf.abs(z) + 1.0, rows, coef, cap, stats)

    monkeypatch.setattr(kinks.KinkPlan, "_through_relu", staticmethod(unmasked))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # recorded in the notes, not printed
        ev = decoder_evaluator(scaled_table1_decoder(), np.random.default_rng(0).normal(size=(8, D)))
    assert ev.exact is not None and ev.kinks is None and ev.mode == "layers"
    assert ev.notes == ("The exact change split at the decoder's ReLU kinks differed from the layer-by-layer exact "
                        "change on probe codes, so mc carries it through the layers (the same result, slower).",)


def test_a_sigmoid_before_the_last_layer_keeps_the_layer_by_layer_path():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((D,))
    x = keras.layers.Dense(12, activation="sigmoid")(inputs)
    x = keras.layers.Dense(16, activation="sigmoid")(x)
    dec = keras.Model(inputs, keras.layers.Reshape((4, 4, 1))(x))
    ev = decoder_evaluator(dec, np.random.default_rng(0).normal(size=(4, D)))
    assert ev.exact is not None and ev.kinks is None and ev.mode == "layers"


def test_the_evaluation_is_fixed_when_built_and_bad_options_are_refused():
    dec = scaled_table1_decoder()
    codes = np.random.default_rng(0).normal(size=(4, D)).astype(np.float32)
    ev = decoder_evaluator(dec, codes)
    with pytest.raises(AttributeError):
        ev.kinks = None  # a mode is chosen when the evaluation is built, not patched afterwards
    modes = r"\['kinks', 'layers', 'subtract'\]"
    with pytest.raises(ValueError, match=rf"`mode` must be one of {modes}. Received: mode='fast'"):
        decoder_evaluator(dec, codes, mode="fast")
    with pytest.raises(ValueError, match=r"`fuse` must be True or False. Received: fuse=1"):
        decoder_evaluator(dec, codes, fuse=1)
    with pytest.raises(ValueError, match=r"`kink_split` must be True or False. Received: kink_split='no'"):
        SiameseExplainer(lambda x: x, dec, np.zeros((3, D), np.float32), kink_split="no")
