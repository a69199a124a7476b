"""The exact change g(h + d) - g(h) of `mc` (siamese_xai.decoding.exact) against float64, and its fallback."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from siamese_xai.decoding.evaluator import decoder_evaluator
from siamese_xai.decoding.twin import float64_decoder
from siamese_xai.config import ExplainConfig
from siamese_xai.explainers.siamese import SiameseExplainer
from siamese_xai.training.models import build_decoder

D = 8


def scaled_table1_decoder(dim=D, seed=3, scale=2.0):
    keras.utils.set_random_seed(seed)
    dec = build_decoder(dim)
    for w in dec.weights:  # larger than the default init, so that images change visibly
        w.assign(w * scale)
    return dec


def changes(decoder, fuse, h, basis, eps):
    """The exact change for codes h + eps @ basis, as images `(G, n, P)`, and the float64 reference."""
    ev = decoder_evaluator(decoder, h, fuse=fuse)
    assert ev.exact is not None, ev.exact_note
    _, terms = ev.exact.base(tf.constant(h))
    got = ev.to_image(ev.exact.delta_from_basis(terms, tf.constant(eps), tf.constant(basis))).numpy()
    g64 = float64_decoder(decoder)
    d = np.einsum("ks,gsd->gkd", eps.astype(np.float64), basis.astype(np.float64))
    g, n = len(h), len(eps)
    codes = h.astype(np.float64)[:, None] + d
    ref = g64(codes.reshape(g * n, -1)).reshape(g, n, -1) - g64(h.astype(np.float64)).reshape(g, 1, -1)
    sub = decoder(codes.astype(np.float32).reshape(g * n, -1)).numpy().reshape(g, n, -1) - \
        decoder(h).numpy().reshape(g, 1, -1)
    return got.reshape(g, n, -1), ref, sub


def perturbation(h, s, sigma, n, seed):
    rng = np.random.default_rng(seed)
    g, dim = h.shape
    basis = np.zeros((g, s, dim), np.float32)
    for i in range(g):
        basis[i, np.arange(s), rng.choice(dim, s, replace=False)] = sigma * rng.choice([-1.0, 1.0], s)
    eps = np.abs(rng.normal(size=(n, s))).astype(np.float32)
    return basis, eps


def assert_float32_precise(got, ref):
    """Per perturbation: error <= 1e-5 of the largest change (float32 precision on the change, not the image)."""
    scale = np.abs(ref).max(axis=-1, keepdims=True)
    assert np.all(np.abs(got - ref) <= 1e-5 * scale), float((np.abs(got - ref) / scale).max())
    big = np.abs(ref) >= 1e-2 * scale
    np.testing.assert_allclose(got[big], ref[big], rtol=1e-4)


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "plain"])
@pytest.mark.parametrize("sigma", [1e-5, 2e-4, 1e-2])
def test_exact_change_equals_float64_on_scaled_table1_decoder(fuse, sigma):
    dec = scaled_table1_decoder()
    h = np.random.default_rng(0).normal(0, 1, (3, D)).astype(np.float32)
    basis, eps = perturbation(h, 3, sigma, 40, seed=1)
    got, ref, sub = changes(dec, fuse, h, basis, eps)
    assert np.abs(ref).max() > 0
    assert_float32_precise(got, ref)
    if sigma <= 2e-4:  # what the exact path is for: the subtraction is far off at the paper's sigma
        scale = np.abs(ref).max(axis=-1, keepdims=True)
        assert (np.abs(sub - ref) / scale).max() > 1e-3


def test_exact_change_equals_float64_on_the_trained_decoder(tiny_run):
    """The decoder of a run trained on MNIST (the tiny config), near its prototypes, at the paper's small sigma."""
    run_dir, _ = tiny_run
    dec = keras.models.load_model(run_dir / "decoder.keras", compile=False)
    h = np.load(run_dir / "prototypes.npy")[:4].astype(np.float32)
    h = h + np.random.default_rng(2).normal(0, 0.05, h.shape).astype(np.float32)
    basis, eps = perturbation(h, 5, 5e-5, 30, seed=3)
    got, ref, _ = changes(dec, True, h, basis, eps)
    assert_float32_precise(got, ref)


def test_explainer_mc_is_exact_by_default_and_equals_the_float64_formula():
    dec = scaled_table1_decoder()
    rng = np.random.default_rng(4)
    proj = rng.normal(0, 0.2, (784, D)).astype(np.float32)
    protos = rng.normal(0, 1, (3, D)).astype(np.float32)
    embed = lambda x: (np.asarray(x, np.float64).reshape(len(x), -1) @ proj).astype(np.float32)  # noqa: E731
    cfg = ExplainConfig.tiny(n_perturbations=200, s=3, q=50)
    ex = SiameseExplainer(embed, dec, protos, cfg, chunk_size=64)
    assert ex.decoder_exact and ex.decoder_fused
    e = ex.explain(rng.random((2, 28, 28, 1)).astype(np.float32), seed=5)
    from siamese_xai.explainers._graph import perturbation_draws

    eps = perturbation_draws(tf.constant(5, tf.int64), 200, 3).numpy().astype(np.float64)
    g64 = float64_decoder(dec)
    for b in range(2):
        h = e.embedding[b].astype(np.float64)
        idx = e.indices[b]
        codes = np.repeat(h[None], 200, axis=0)
        codes[:, idx] += eps * e.sigma[b] * np.sign(e.reference[b][idx] - h[idx])
        change = g64(codes).reshape(200, -1) - g64(h[None]).reshape(1, -1)
        want = np.abs(change).mean(0)
        got = e.mean_abs_change[b].reshape(-1)
        assert np.all(np.abs(got - want) <= 1e-5 * want.max())
        np.testing.assert_allclose(e.mean_signed_change[b].reshape(-1), change.mean(0), atol=1e-5 * want.max())


def test_results_do_not_depend_on_chunk_size_to_float32_precision():
    dec = scaled_table1_decoder()
    rng = np.random.default_rng(6)
    proj = rng.normal(0, 0.2, (784, D)).astype(np.float32)
    protos = rng.normal(0, 1, (3, D)).astype(np.float32)
    embed = lambda x: (np.asarray(x, np.float64).reshape(len(x), -1) @ proj).astype(np.float32)  # noqa: E731
    cfg = ExplainConfig.tiny(n_perturbations=96, s=3, q=50)
    xs = rng.random((5, 28, 28, 1)).astype(np.float32)
    results = [SiameseExplainer(embed, dec, protos, cfg, chunk_size=c).explain(xs, seed=7) for c in (7, 96, 500)]
    for other in results[1:]:
        scale = results[0].mean_abs_change.max(axis=(1, 2, 3), keepdims=True)
        assert np.all(np.abs(other.mean_abs_change - results[0].mean_abs_change) <= 1e-6 * scale)
        np.testing.assert_array_equal(other.mask, results[0].mask)


def _not_a_chain():
    inputs = keras.Input((D,))
    a = keras.layers.Dense(7 * 7 * 2, activation="relu")(inputs)
    b = keras.layers.Dense(7 * 7 * 2)(inputs)
    x = keras.layers.Reshape((7, 7, 2))(keras.layers.Add()([a, b]))
    x = keras.layers.UpSampling2D(4)(x)
    return keras.Model(inputs, keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(x))


def _tanh_chain():
    inputs = keras.Input((D,))
    x = keras.layers.Dense(7 * 7 * 2, activation="tanh", name="tanh_dense")(inputs)
    x = keras.layers.Reshape((7, 7, 2))(x)
    x = keras.layers.UpSampling2D(4)(x)
    return keras.Model(inputs, keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(x))


@pytest.mark.parametrize("build, note", [(_not_a_chain, "not a chain"), (_tanh_chain, "tanh_dense")])
def test_decoder_without_exact_rules_falls_back_to_the_subtraction_quietly(build, note):
    keras.utils.set_random_seed(0)
    dec = build()
    rng = np.random.default_rng(8)
    proj = rng.normal(0, 0.2, (784, D)).astype(np.float32)
    protos = rng.normal(0, 1, (3, D)).astype(np.float32)
    embed = lambda x: (np.asarray(x, np.float64).reshape(len(x), -1) @ proj).astype(np.float32)  # noqa: E731
    cfg = ExplainConfig.tiny(q=10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the fallback is recorded, not printed
        ex = SiameseExplainer(embed, dec, protos, cfg)
    assert not ex.decoder_exact
    assert ex.decoder_evaluation.notes == (
        f"mc subtracts two float32 decodings for this decoder ({ex.decoder_evaluation.exact_note}), so each change "
        "carries rounding of about 1e-7 of the image relative to the change.",)
    assert note in ex.decoder_evaluation.exact_note
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # asked for: no warning
        before = SiameseExplainer(embed, dec, protos, cfg, exact_differences=False)
        SiameseExplainer(embed, dec, protos, cfg.replace(estimator="linear"))  # linear never subtracts
    xs = rng.random((3, 28, 28, 1)).astype(np.float32)
    a, b = ex.explain(xs, seed=1), before.explain(xs, seed=1)
    assert a.decoder_path == {"mode": "subtract", "fused": ex.decoder_fused,
                              "notes": list(ex.decoder_evaluation.notes)}
    assert b.decoder_path["notes"] == []  # asked for: no fallback
    np.testing.assert_array_equal(a.mean_abs_change, b.mean_abs_change)  # the same function as before
    np.testing.assert_array_equal(a.mask, b.mask)
    assert a.mask.sum() == 30


def test_exact_rule_that_disagrees_is_dropped(monkeypatch):
    from siamese_xai.decoding import rules

    monkeypatch.setattr(rules, "act_delta", lambda act, base, dz, groups: dz)  # activations ignored: wrong
    dec = scaled_table1_decoder()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ev = decoder_evaluator(dec, np.random.default_rng(0).normal(size=(8, D)))
    assert ev.exact is None and ev.kinks is None and ev.mode == "subtract" and "differed" in ev.exact_note
    assert len(ev.notes) == 1 and "mc subtracts two float32 decodings" in ev.notes[0] and "differed" in ev.notes[0]
    assert ev.summary() == {"mode": "subtract", "fused": ev.fused, "notes": list(ev.notes)}


def test_chain_with_activation_layer_and_trailing_reshape_is_exact():
    keras.utils.set_random_seed(5)
    inputs = keras.Input((D,))
    x = keras.layers.Dense(32, activation="relu")(inputs)
    x = keras.layers.Dense(28 * 28)(x)
    x = keras.layers.Activation("sigmoid")(x)
    dec = keras.Model(inputs, keras.layers.Reshape((28, 28, 1))(x))
    for w in dec.weights:
        w.assign(w * 3.0)
    rng = np.random.default_rng(9)
    proj = rng.normal(0, 0.2, (784, D)).astype(np.float32)
    protos = rng.normal(0, 1, (3, D)).astype(np.float32)
    embed = lambda x: (np.asarray(x, np.float64).reshape(len(x), -1) @ proj).astype(np.float32)  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        ex = SiameseExplainer(embed, dec, protos, ExplainConfig.tiny(n_perturbations=100, s=3, q=50), chunk_size=30)
    assert ex.decoder_exact and not ex.decoder_fused
    e = ex.explain(rng.random((2, 28, 28, 1)).astype(np.float32), seed=3)
    from siamese_xai.explainers._graph import perturbation_draws

    eps = perturbation_draws(tf.constant(3, tf.int64), 100, 3).numpy().astype(np.float64)
    g64 = float64_decoder(dec)
    for b in range(2):
        h = e.embedding[b].astype(np.float64)
        idx = e.indices[b]
        codes = np.repeat(h[None], 100, axis=0)
        codes[:, idx] += eps * e.sigma[b] * np.sign(e.reference[b][idx] - h[idx])
        want = np.abs(g64(codes).reshape(100, -1) - g64(h[None]).reshape(1, -1)).mean(0)
        assert np.all(np.abs(e.mean_abs_change[b].reshape(-1) - want) <= 1e-5 * want.max())


def test_elementwise_rules_are_not_retraced_per_shape():
    # Each decoder layer has its own shape; a trace per shape printed "5 out of the last 5 calls to _relu_delta
    # triggered tf.function retracing" in every figure script. One trace per rank must serve them all.
    from siamese_xai.decoding import rules

    before = rules._relu_delta.experimental_get_tracing_count()
    for width in (3, 5, 7, 9, 11, 13, 17):
        dz = tf.random.normal((2, 3, width))
        z = tf.random.normal((2, 1, width))
        got = rules._relu_delta(dz, -z, tf.minimum(z, 0.0))
        np.testing.assert_allclose(got.numpy(), (tf.nn.relu(z + dz) - tf.nn.relu(z)).numpy(), atol=1e-6)
    assert rules._relu_delta.experimental_get_tracing_count() - before <= 2
