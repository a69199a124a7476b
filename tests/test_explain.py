import dataclasses
import types
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from siamese_xai import files, runs
from siamese_xai.config import ExplainConfig
from siamese_xai.explainers.siamese import SiameseExplainer
from siamese_xai.explainers.explanation import Explanation
from siamese_xai.training.models import build_decoder, build_siamese_subnetwork

D = 8
SHAPE = (28, 28, 1)
P = 28 * 28
N = 96


class CountingEmbed:
    """A NumPy black box h = x @ R, counting its calls."""

    def __init__(self, dim=D, seed=0):
        self.proj = np.random.default_rng(seed).normal(0, 0.2, (P, dim)).astype(np.float32)
        self.calls = 0

    def __call__(self, x):
        self.calls += 1
        # float64 then rounded: the same embedding for an input whatever the batch
        # (a float32 BLAS call may round differently for different batch sizes).
        h = np.asarray(x, np.float64).reshape(len(x), -1) @ self.proj.astype(np.float64)
        return h.astype(np.float32)


def linear_decoder(kernel, name="linear_decoder"):
    """g(h) = h @ kernel, reshaped to an image: a decoder whose changes are known exactly."""
    inputs = keras.Input((kernel.shape[0],))
    x = keras.layers.Dense(P, use_bias=True, name="dense")(inputs)
    outputs = keras.layers.Reshape(SHAPE)(x)
    model = keras.Model(inputs, outputs, name=name)
    model.get_layer("dense").set_weights([kernel.astype(np.float32), np.full(P, 0.5, np.float32)])
    return model


def images(n, seed=0):
    return np.random.default_rng(seed).random((n,) + SHAPE).astype(np.float32)


def eps_block(n, s, seed):
    """The documented draw: |stateless_normal([N, s], seed=[seed, 0], philox)|."""
    seeds = tf.constant([seed, 0], tf.int64)
    return np.abs(tf.random.stateless_normal([n, s], seed=seeds, alg="philox").numpy())


@pytest.fixture(scope="module")
def embed():
    return CountingEmbed()


@pytest.fixture(scope="module")
def prototypes(embed):
    h = embed(images(30, seed=1))
    return np.stack([h[i::3].mean(0) for i in range(3)]).astype(np.float32)


@pytest.fixture(scope="module")
def table1_decoder():
    keras.utils.set_random_seed(3)
    dec = build_decoder(D)
    # Larger weights than the default init, so that images change visibly.
    for w in dec.weights:
        w.assign(w * 2.0)
    return dec


@pytest.fixture(scope="module")
def explainer(embed, table1_decoder, prototypes):
    return SiameseExplainer(embed, table1_decoder, prototypes, ExplainConfig.tiny(n_perturbations=N, s=3, q=50))


@pytest.fixture(scope="module")
def batch_result(explainer):
    return explainer.explain(images(5, seed=2), seed=7)


def single(e):
    """The fields of a one-input Explanation without the batch axis."""
    assert isinstance(e, Explanation) and len(e) == 1
    return types.SimpleNamespace(**{k: getattr(e, k)[0] for k in e.fields}, config=e.config, seed=e.seed)


def assert_same(a, b, rtol=1e-5):
    """Equal up to float rounding (different summation orders), masks identical."""
    scale = float(np.abs(a.mean_abs_change).max())
    np.testing.assert_allclose(a.mean_abs_change, b.mean_abs_change, rtol=rtol, atol=rtol * scale)
    np.testing.assert_allclose(a.mean_signed_change, b.mean_signed_change, rtol=rtol, atol=rtol * scale)
    np.testing.assert_allclose(a.reconstruction, b.reconstruction, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert a.sigma == pytest.approx(b.sigma, rel=1e-6)


# -- config -------------------------------------------------------------------


def test_config_defaults_follow_the_paper():
    cfg = ExplainConfig()
    assert (cfg.n_perturbations, cfg.sigma_scale, cfg.direction, cfg.estimator) == (5000, 0.1, "toward_prototype", "mc")


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("s", -1, "`s` must be a positive integer. Received: s=-1"),
        ("q", 0, "`q` must be a positive integer. Received: q=0"),
        ("n_perturbations", 2.5, "Received: n_perturbations=2.5"),
        (
            "direction",
            "away",
            "`direction` must be one of ['toward_prototype', 'positive']. Received: direction='away'",
        ),
        ("estimator", "exact", "`estimator` must be one of ['mc', 'linear']"),
        ("estimator", "template_contrast", "its own config, TemplateContrastConfig(n_path_points=N"),
        ("sigma_scale", 0.0, "`sigma_scale` must be a positive finite number. Received: sigma_scale=0.0"),
        ("sigma_scale", float("nan"), "Received: sigma_scale=nan"),
    ],
)
def test_config_errors_name_argument_and_value(field, value, message):
    with pytest.raises(ValueError) as err:
        ExplainConfig(**{field: value})
    assert message in str(err.value)


# -- golden values ------------------------------------------------------------


def hand_explanation(h, c, kernel, sigma_scale, s, q, n, seed, toward=None):
    """The method by hand for g(h) = h @ kernel + 0.5 (METHOD.md): J, sigma, Delta_p and the mask, in float64.

    `toward` (default c) is where the steps point; only the guards below set it to something else.
    """
    toward = c if toward is None else toward
    gap = np.abs(h - c)
    J = np.argsort(gap, kind="stable")[:s]
    sigma = sigma_scale * gap.min()
    d = np.zeros((n, len(h)))
    d[:, J] = np.sign(toward[J] - h[J]) * sigma * eps_block(n, s, seed)
    change = d @ kernel  # g(h + d) - g(h), exactly
    want_abs = np.abs(change).mean(0)
    top = np.argsort(-want_abs, kind="stable")[:q]
    return types.SimpleNamespace(J=J, sigma=sigma, abs=want_abs, signed=change.mean(0), top=top)


# (target_class, reference, sigma_scale): the nearest prototype, another class, a reference image; sigma_scale
# values other than the paper's 0.1, so that a hard-coded 0.1 or a reference taken from the nearest prototype fails.
HAND_CASES = [
    pytest.param(None, False, 0.1, id="nearest"),
    pytest.param("other", False, 0.1, id="target_class"),
    pytest.param(None, True, 0.1, id="reference"),
    pytest.param(None, False, 0.37, id="nearest-sigma0.37"),
    pytest.param("other", False, 2.5, id="target_class-sigma2.5"),
    pytest.param(None, True, 0.02, id="reference-sigma0.02"),
]


@pytest.mark.parametrize("target, use_reference, sigma_scale", HAND_CASES)
@pytest.mark.parametrize("method", ["mc", "linear"])
def test_linear_decoder_matches_hand_computation(method, target, use_reference, sigma_scale):
    kernel = np.random.default_rng(5).normal(0, 1, (D, P))
    emb = CountingEmbed()
    x, x_ref = images(2, seed=4)
    h = emb.proj.T.astype(np.float64) @ x.reshape(-1)
    # Prototypes around h, so that the signs of c - h differ from class to class.
    protos = (h + np.random.default_rng(3).normal(0, 1, (4, D))).astype(np.float32)
    cfg = ExplainConfig(n_perturbations=200, s=3, q=40, estimator=method, sigma_scale=sigma_scale)
    ex = SiameseExplainer(emb, linear_decoder(kernel), protos, cfg, chunk_size=64)

    dists = np.linalg.norm(protos - h, axis=1)
    k = int(np.argmin(dists))
    if use_reference:
        e = single(ex.explain(x, reference=x_ref, seed=11))
        c, explained = emb.proj.T.astype(np.float64) @ x_ref.reshape(-1), -1
    else:
        explained = k if target is None else (k + 1) % 4
        e = single(ex.explain(x, target_class=None if target is None else explained, seed=11))
        c = protos[explained].astype(np.float64)
    want = hand_explanation(h, c, kernel, sigma_scale, 3, 40, 200, 11)
    if target is not None or use_reference:
        # The case tells c from the nearest prototype: another J, and steps toward it of mixed other signs.
        nearest = protos[k].astype(np.float64)
        assert set(hand_explanation(h, nearest, kernel, sigma_scale, 3, 40, 200, 11).J) != set(want.J)
        signs = np.sign(c[want.J] - h[want.J]) * np.sign(nearest[want.J] - h[want.J])
        assert (signs < 0).any() and (signs > 0).any()
        wrong_way = hand_explanation(h, c, kernel, sigma_scale, 3, 40, 200, 11, toward=nearest)
        assert not np.allclose(wrong_way.abs, want.abs, rtol=1e-3)

    assert e.predicted_class == k and e.explained_class == explained
    np.testing.assert_allclose(e.distances, dists, rtol=1e-5)
    np.testing.assert_allclose(e.reference, c, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(e.indices, want.J)
    assert e.sigma == pytest.approx(want.sigma, rel=1e-5)
    assert e.reference_distance == pytest.approx(np.linalg.norm(h - c), rel=1e-5)
    np.testing.assert_allclose(e.reconstruction.reshape(-1), h @ kernel + 0.5, rtol=1e-4, atol=1e-5)
    # Neither method subtracts two decoded images (mc carries d through the layers): float32 precision.
    scale = want.abs.max()
    np.testing.assert_allclose(e.mean_abs_change.reshape(-1), want.abs, rtol=1e-5, atol=1e-6 * scale)
    np.testing.assert_allclose(e.mean_signed_change.reshape(-1), want.signed, atol=1e-5 * scale)
    assert set(np.flatnonzero(e.mask.reshape(-1))) == set(want.top)
    assert e.mask.sum() == 40


def test_linear_method_equals_mc_for_a_linear_decoder():
    rng = np.random.default_rng(6)
    dec = linear_decoder(rng.normal(0, 1, (D, P)))
    protos = rng.normal(0, 1, (3, D)).astype(np.float32)
    mc = SiameseExplainer(CountingEmbed(), dec, protos, ExplainConfig.tiny(q=60))
    lin = mc.replace(estimator="linear")
    xs = images(3, seed=8)
    for a, b in zip(mc.explain(xs, seed=2), lin.explain(xs, seed=2)):
        assert (a.config.estimator, b.config.estimator) == ("mc", "linear")
        # Neither subtracts two decoded images: they agree to float32 precision.
        assert_same(a, b, rtol=1e-5)


@pytest.mark.parametrize("direction", ["toward_prototype", "positive"])
def test_every_perturbation_moves_in_the_stated_direction(direction):
    # g puts h_j in pixel j: the change of pixel j is d_j itself.
    kernel = np.zeros((D, P))
    kernel[np.arange(D), np.arange(D)] = 1.0
    rng = np.random.default_rng(9)
    protos = rng.normal(0, 1, (2, D)).astype(np.float32)
    ex = SiameseExplainer(CountingEmbed(), linear_decoder(kernel), protos, ExplainConfig.tiny(s=4, direction=direction))
    e = single(ex.explain(images(1, seed=3)[0], seed=5))
    J = e.indices
    moved = np.zeros(P, bool)
    moved[J] = True
    signed = e.mean_signed_change.reshape(-1)
    absolute = e.mean_abs_change.reshape(-1)
    # mean |d_j| == |mean d_j| holds only if every perturbation has the same sign on j.
    np.testing.assert_allclose(absolute[J], np.abs(signed[J]), rtol=1e-4)
    want = np.sign(e.reference[J] - e.embedding[J]) if direction == "toward_prototype" else np.ones(len(J))
    np.testing.assert_array_equal(np.sign(signed[J]), want)
    assert np.all(absolute[~moved] < 1e-6 * absolute[J].max())
    # E|eps| = sqrt(2 / pi): the mean step is about sigma * 0.8.
    np.testing.assert_allclose(absolute[J], e.sigma * np.sqrt(2 / np.pi), rtol=0.25)
    assert set(np.flatnonzero(e.mask.reshape(-1))) <= set(J.tolist())


# -- determinism and batching -------------------------------------------------


def test_batch_rows_equal_single_explanations(explainer, batch_result):
    xs = images(5, seed=2)
    for b in (0, 3):
        assert_same(batch_result[b], explainer.explain(xs[b], seed=7))


@pytest.mark.parametrize("chunk_size", [7, 500], ids=["14 blocks per input", "5 inputs per tile"])
def test_results_do_not_depend_on_chunk_size(explainer, batch_result, chunk_size):
    other = SiameseExplainer(explainer.embed, explainer.decoder, explainer.prototypes, explainer.config,
                             chunk_size=chunk_size).explain(images(5, seed=2), seed=7)
    assert other.config == batch_result.config
    for a, b in zip(batch_result, other):
        assert_same(a, b)  # rtol 1e-5: float rounding of different summation orders


def test_same_seed_same_explanation_other_seed_differs(explainer, batch_result):
    x = images(5, seed=2)[1]
    again = explainer.explain(x, seed=7)
    np.testing.assert_array_equal(again.mean_abs_change, explainer.explain(x, seed=7).mean_abs_change)
    other = explainer.explain(x, seed=8)
    assert not np.allclose(other.mean_abs_change, batch_result[1].mean_abs_change, rtol=1e-4, atol=0)
    assert other.seed == 8 and batch_result[1].seed == 7


def test_embed_called_once_per_batch(embed, explainer):
    before = embed.calls
    explainer.explain(images(4, seed=3), seed=0)
    assert embed.calls == before + 1
    explainer.explain(images(3, seed=3), reference=images(1, seed=1)[0])
    assert embed.calls == before + 2


def test_fused_decoder_gives_the_same_explanation(explainer, batch_result):
    assert explainer.decoder_fused
    plain = SiameseExplainer(explainer.embed, explainer.decoder, explainer.prototypes, explainer.config,
                             fuse_decoder=False)
    assert not plain.decoder_fused
    for a, b in zip(batch_result, plain.explain(images(5, seed=2), seed=7)):
        # Both carry the change exactly (no subtraction of two images): they
        # differ by float32 rounding of the change itself (measured ~1e-6).
        assert plain.decoder_exact and explainer.decoder_exact
        rel = np.abs(a.mean_abs_change - b.mean_abs_change).sum() / a.mean_abs_change.sum()
        assert rel < 1e-5
        np.testing.assert_array_equal(a.mask, b.mask)
        np.testing.assert_allclose(a.reconstruction, b.reconstruction, atol=1e-5)


def test_decoder_that_is_not_a_chain_is_used_as_is(embed, prototypes):
    inputs = keras.Input((D,))
    a = keras.layers.Dense(7 * 7 * 2)(inputs)
    b = keras.layers.Dense(7 * 7 * 2)(inputs)
    x = keras.layers.Reshape((7, 7, 2))(keras.layers.Add()([a, b]))
    x = keras.layers.UpSampling2D(4)(x)
    outputs = keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(x)
    ex = SiameseExplainer(embed, keras.Model(inputs, outputs), prototypes, ExplainConfig.tiny(q=10))
    assert not ex.decoder_fused
    assert ex.explain(images(1)[0]).mask.sum() == 10 and ex.explain(images(2)).mask.sum() == 20


def test_linear_close_to_mc_on_table1_decoder(explainer, batch_result):
    lin = explainer.replace(estimator="linear").explain(images(5, seed=2), seed=7)
    ious = []
    for a, b in zip(batch_result, lin):
        np.testing.assert_array_equal(a.indices, b.indices)
        rel = np.abs(a.mean_abs_change - b.mean_abs_change).sum() / a.mean_abs_change.sum()
        assert rel < 0.1
        ious.append((a.mask & b.mask).sum() / (a.mask | b.mask).sum())
    assert np.mean(ious) > 0.9


# -- the result ---------------------------------------------------------------


def test_explanation_fields(explainer, batch_result, prototypes):
    e = batch_result
    B = 5
    assert isinstance(e, Explanation) and len(e) == B
    assert e.input.shape == e.reconstruction.shape == e.mean_abs_change.shape == e.mask.shape == (B,) + SHAPE
    assert e.mask.dtype == bool and (e.mask.sum(axis=(1, 2, 3)) == 50).all()
    assert e.indices.shape == (B, 3) and e.indices.dtype == np.int64
    assert e.distances.shape == (B, 3) and e.predicted_class.dtype == np.int64
    np.testing.assert_array_equal(e.predicted_class, np.argmin(e.distances, axis=1))
    np.testing.assert_array_equal(e.explained_class, e.predicted_class)
    np.testing.assert_array_equal(e.reference, prototypes[e.predicted_class])
    gap = np.abs(e.embedding - e.reference)
    np.testing.assert_allclose(e.sigma, 0.1 * gap.min(axis=1), rtol=1e-5)
    for b in range(B):
        assert np.all(gap[b, e.indices[b]] <= np.sort(gap[b])[2] + 1e-7)
        # The mask holds the largest changes.
        assert e.mean_abs_change[b][e.mask[b]].min() >= e.mean_abs_change[b][~e.mask[b]].max()
    assert e.config == ExplainConfig(n_perturbations=N, s=3, q=50) and e.seed == 7
    assert np.all(e.mean_abs_change >= 0)


def test_explanation_is_frozen_and_read_only(batch_result):
    for e in (batch_result, batch_result[0]):
        with pytest.raises(dataclasses.FrozenInstanceError):
            e.sigma = np.ones(len(e))
        for name in e.fields:
            with pytest.raises(ValueError, match="read-only"):
                getattr(e, name).flat[0] = 0


def test_target_class_asks_why_class_j(explainer, prototypes, batch_result):
    x = images(5, seed=2)[0]
    own = int(batch_result.predicted_class[0])
    j = (own + 1) % 3
    e = single(explainer.explain(x, target_class=j, seed=7))
    assert e.explained_class == j and e.predicted_class == own
    np.testing.assert_array_equal(e.reference, prototypes[j])
    many = explainer.explain(images(2, seed=2), target_class=[j, None], seed=7)
    assert_same(many[0], explainer.explain(x, target_class=j, seed=7))
    assert many.explained_class[1] == many.predicted_class[1]
    for bad in (3, -1, 1.0, "1"):
        with pytest.raises(ValueError, match=r"`target_class` must be None or an integer in \[0, 3\)"):
            explainer.explain(x, target_class=bad)
    with pytest.raises(ValueError, match="one class per input"):
        explainer.explain(images(2), target_class=[0])


def test_reference_images_replace_the_prototype(embed, explainer):
    x1, x2 = images(2, seed=12)
    e = single(explainer.explain(x1, reference=x2, seed=1))
    h1, h2 = embed(np.stack([x1, x2]))
    np.testing.assert_allclose(e.reference, h2, rtol=1e-6)
    assert e.explained_class == -1
    assert e.reference_distance == pytest.approx(np.linalg.norm(h1 - h2), rel=1e-5)
    gap = np.abs(h1 - h2)
    assert e.sigma == pytest.approx(0.1 * gap.min(), rel=1e-5)
    assert e.mask.any()
    # explain_pair is the same call; a batch takes one reference for all or one each.
    assert_same(explainer.explain_pair(x1, x2, seed=1), explainer.explain(x1, reference=x2, seed=1))
    xs, refs = images(3, seed=20), images(3, seed=21)
    each = explainer.explain(xs, reference=refs, seed=1)
    for b in range(3):
        assert_same(each[b], explainer.explain(xs[b], reference=refs[b], seed=1))
    shared = explainer.explain(xs, reference=refs[1], seed=1)
    np.testing.assert_allclose(shared.reference, np.repeat(each.reference[1:2], 3, axis=0), rtol=1e-6)
    with pytest.raises(ValueError, match="`reference` must be one image or one per input"):
        explainer.explain(xs, reference=refs[:2])
    with pytest.raises(ValueError, match="`target_class` must be None when `reference` is given"):
        explainer.explain(xs, reference=refs, target_class=0)


# -- edge cases ---------------------------------------------------------------


def test_sigma_zero_gives_zero_change_and_a_warning(explainer):
    x = images(1, seed=4)[0]
    with pytest.warns(RuntimeWarning, match="sigma = 0"):
        e = single(explainer.explain_pair(x, x))
    assert e.sigma == 0.0 and e.reference_distance == 0.0
    assert not e.mask.any()
    assert not e.mean_abs_change.any() and not e.mean_signed_change.any()


def test_sigma_zero_for_one_equal_coordinate():
    emb = CountingEmbed()
    xs = np.stack([images(1, seed=6)[0], images(1, seed=5)[0]])
    h = emb(xs)[1]
    proto = h + 1.0
    proto[2] = h[2]  # h_2 == c_2: min |h_j - c_j| = 0
    rng = np.random.default_rng(0)
    ex = SiameseExplainer(emb, linear_decoder(rng.normal(0, 1, (D, P))), proto[None], ExplainConfig.tiny(q=5))
    with pytest.warns(RuntimeWarning, match=r"sigma = 0 for inputs \[1\]"):
        a, b = (single(e) for e in ex.explain(xs))
    assert a.sigma > 0 and a.mask.sum() == 5
    assert b.sigma == 0 and b.indices[0] == 2 and not b.mask.any()


def test_s_larger_than_d_and_q_larger_than_image(embed, table1_decoder, prototypes):
    with pytest.raises(ValueError, match=rf"`s` must be at most the embedding length D={D}. Received: s={D + 1}"):
        SiameseExplainer(embed, table1_decoder, prototypes, ExplainConfig(s=D + 1))
    with pytest.raises(ValueError, match=r"`q` must be at most the number of pixels 784 .* Received: q=785"):
        SiameseExplainer(embed, table1_decoder, prototypes, ExplainConfig(q=785, s=2))


@pytest.mark.parametrize(
    "x, error, message",
    [
        (
            np.zeros((28, 28, 3), np.float32),
            ValueError,
            r"`x` must have shape \(28, 28, 1\) or \(28, 28\) \(one image\) or .* Received: x.shape=\(28, 28, 3\)",
        ),
        (np.zeros((28, 28, 28, 28), np.float32), ValueError, r"Received: x.shape=\(28, 28, 28, 28\)"),
        (np.zeros((2, 28, 27), np.float32), ValueError, r"or \(B, 28, 28, 1\) or \(B, 28, 28\) \(a batch\)"),
        (
            np.zeros((28, 28, 1), np.int32),
            TypeError,
            r"`x` must be a float array .* or a uint8 array .* Received: x.dtype=int32",
        ),
        (np.zeros((28, 28, 1), bool), TypeError, "Received: x.dtype=bool"),
        (np.full((28, 28, 1), np.nan, np.float32), ValueError, r"`x` must be finite. Received: 784 NaN or inf values"),
        (np.pad(np.full((1, 1, 1), np.inf), ((3, 24), (0, 27), (0, 0))), ValueError, r"the first at index \(3, 0, 0\)"),
        (
            np.full((28, 28, 1), 255.0),
            ValueError,
            r"`x` must hold values in \[0, 1\] .* Received: values in \[255, 255\]",
        ),
        (-np.ones((28, 28)), ValueError, r"Received: values in \[-1, -1\]"),
    ],
)
def test_bad_inputs_are_rejected(explainer, x, error, message):
    with pytest.raises(error, match=message):
        explainer.explain(x)


def test_bad_batches_and_seeds(explainer):
    with pytest.raises(ValueError, match=r"`reference` must have shape"):
        explainer.explain_pair(np.zeros((28, 28)), np.zeros((27, 28)))
    for seed in (1.5, None, 2**63, True):
        with pytest.raises(ValueError, match=r"`seed` must be an integer"):
            explainer.explain(np.zeros((28, 28)), seed=seed)


def test_uint8_and_channelless_images_are_accepted(explainer):
    raw = (images(1, seed=9)[0] * 255).round().astype(np.uint8)
    a = explainer.explain(raw, seed=3)
    b = explainer.explain(raw[..., 0].astype(np.float32) / 255, seed=3)
    assert_same(a, b)
    np.testing.assert_allclose(a.input[0], raw / 255.0, rtol=1e-6)
    assert a.input.dtype == np.float32


def test_empty_batch_gives_an_empty_explanation_without_calling_embed(embed, explainer):
    before = embed.calls
    for empty in (np.zeros((0, 28, 28, 1), np.float32), np.zeros((0, 28, 28), np.uint8)):
        e = explainer.explain(empty)
        assert len(e) == 0 and list(e) == []
        assert e.mask.shape == (0,) + SHAPE and e.indices.shape == (0, 3) and e.distances.shape == (0, 3)
    assert embed.calls == before


def test_embedding_length_mismatch(table1_decoder, prototypes):
    wrong = CountingEmbed(dim=D + 2)
    ex = SiameseExplainer(wrong, table1_decoder, prototypes, ExplainConfig.tiny(s=2, q=5))
    with pytest.raises(
        ValueError, match=rf"`embed` must return one embedding of length D={D} .* Received: shape \(1, {D + 2}\)"
    ):
        ex.explain(images(1)[0])
    # A Keras embedding is checked when the explainer is built.
    with pytest.raises(
        ValueError,
        match=rf"`embed` must return embeddings of shape \(B, D\) with D={D}.*Received: embed output shape \(None, 5\)",
    ):
        SiameseExplainer(build_siamese_subnetwork(5), table1_decoder, prototypes)
    with pytest.raises(
        ValueError,
        match=rf"`decoder` must take codes of length D=5, the prototypes' width. Received: decoder input shape \(None, {D}\)",
    ):
        SiameseExplainer(wrong, table1_decoder, np.zeros((3, 5)))
    with pytest.raises(
        ValueError, match=r"`prototypes` must be a 2-D numeric array \(C, D\). Received: prototypes.shape=\(8,\)"
    ):
        SiameseExplainer(wrong, table1_decoder, np.zeros(D))
    with pytest.raises(ValueError, match="`prototypes` must be finite"):
        SiameseExplainer(wrong, table1_decoder, np.full((2, D), np.nan))


def test_embed_returning_nan_or_a_dict(table1_decoder, prototypes):
    proj = CountingEmbed().proj
    nan_embed = lambda x: np.where(np.arange(len(x))[:, None] == 1, np.nan, x.reshape(len(x), -1) @ proj)
    ex = SiameseExplainer(nan_embed, table1_decoder, prototypes, ExplainConfig.tiny(s=2, q=5))
    with pytest.raises(
        ValueError, match=r"`embed` must return finite embeddings. Received: NaN or inf for inputs \[1\]"
    ):
        ex.explain(images(3))
    # A SavedModel signature returns a dict of outputs: one entry is unwrapped.
    dict_embed = lambda x: {"embedding": tf.constant(x.reshape(len(x), -1) @ proj)}
    ex = SiameseExplainer(dict_embed, table1_decoder, prototypes, ExplainConfig.tiny(s=2, q=5))
    assert ex.explain(images(1)[0]).embedding.shape == (1, D)


# -- constructors -------------------------------------------------------------


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, table1_decoder):
    keras.utils.set_random_seed(1)
    snn = build_siamese_subnetwork(D)
    protos = snn(images(6, seed=13)).numpy()[:3]
    path = tmp_path_factory.mktemp("run")
    files.save_model(snn, path / runs.SNN_FILE)
    files.save_model(table1_decoder, path / runs.DECODER_FILE)
    files.write_npy(path / runs.PROTOTYPES_FILE, protos)
    files.write_json(path / runs.CONFIG_FILE, {"ignored": True})
    return path, snn, protos


def test_from_run_loads_the_three_files(run_dir, table1_decoder):
    path, snn, protos = run_dir
    cfg = ExplainConfig.tiny(s=2, q=20)
    loaded = SiameseExplainer.from_run(path, cfg)
    direct = SiameseExplainer(snn, table1_decoder, protos, cfg)
    np.testing.assert_array_equal(loaded.prototypes, protos)
    x = images(1, seed=14)[0]
    assert_same(loaded.explain(x, seed=4), direct.explain(x, seed=4), rtol=1e-4)


def test_variants_of_an_explainer_trace_the_keras_embedding_once(run_dir, table1_decoder):
    # reproduce/sq_grid.py explains one image with 20 (s, q) variants; each traced f anew and TensorFlow
    # printed "5 out of the last 12 calls to <Functional name=snn> triggered tf.function retracing".
    path, snn, protos = run_dir
    ex = SiameseExplainer(snn, table1_decoder, protos, ExplainConfig.tiny(s=2, q=20))
    x = images(1, seed=14)[0]
    ex.explain(x)
    for q in (10, 30, 40):
        ex.replace(q=q).explain(x)
    assert ex.replace(q=50)._embed_fn.experimental_get_tracing_count() == 1


@pytest.mark.parametrize("missing", [runs.SNN_FILE, runs.DECODER_FILE, runs.PROTOTYPES_FILE])
def test_from_run_names_the_missing_file(run_dir, tmp_path, missing):
    path, _, _ = run_dir
    for name in (runs.SNN_FILE, runs.DECODER_FILE, runs.PROTOTYPES_FILE):
        if name != missing:
            (tmp_path / name).write_bytes((path / name).read_bytes())
    with pytest.raises(FileNotFoundError, match=f"has no '{missing}'"):
        SiameseExplainer.from_run(tmp_path)


def test_from_run_names_an_unreadable_file(run_dir, tmp_path):
    path, _, _ = run_dir
    for name in (runs.SNN_FILE, runs.DECODER_FILE):
        (tmp_path / name).write_bytes((path / name).read_bytes())
    (tmp_path / runs.PROTOTYPES_FILE).write_text("not numpy")
    with pytest.raises(ValueError, match=f"Could not read '{runs.PROTOTYPES_FILE}'"):
        SiameseExplainer.from_run(tmp_path)
    with pytest.raises(FileNotFoundError, match="must be a run folder"):
        SiameseExplainer.from_run(tmp_path / "nowhere")


def test_from_data_uses_class_means(table1_decoder):
    emb = CountingEmbed()
    x = (images(12, seed=15) * 255).astype(np.uint8)
    y = np.arange(12) % 3
    ex = SiameseExplainer.from_data(emb, table1_decoder, x, y, ExplainConfig.tiny(s=2, q=5))
    h = emb(x.astype(np.float32) / 255)
    want = np.stack([h[y == k].mean(0) for k in range(3)])
    np.testing.assert_allclose(ex.prototypes, want, rtol=1e-5, atol=1e-6)
    assert ex.num_classes == 3 and ex.embedding_dim == D and ex.image_shape == SHAPE


class CallCounter(keras.layers.Layer):
    """The identity, counting how often the model it sits in is run (inside a tf.function too)."""

    def build(self, input_shape):
        self.calls = self.add_weight(shape=(), initializer="zeros", trainable=False, name="calls")

    def call(self, x):
        self.calls.assign_add(1.0)
        return x


def test_keras_embed_is_a_black_box_called_once(run_dir, table1_decoder):
    _, snn, protos = run_dir
    inputs = keras.Input(SHAPE)
    counter = CallCounter()
    counted = keras.Model(inputs, snn(counter(inputs)))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        ex = SiameseExplainer(counted, table1_decoder, protos, ExplainConfig.tiny(s=2, q=20))
        before = float(counter.calls.numpy())
        e = ex.explain(images(3, seed=16))
        assert float(counter.calls.numpy()) == before + 1  # one call for the whole batch
        ex.explain(images(2, seed=16), reference=images(1, seed=17)[0])
        assert float(counter.calls.numpy()) == before + 2  # images and reference together
    np.testing.assert_allclose(e.embedding, snn(images(3, seed=16)).numpy(), rtol=1e-5, atol=1e-6)


def test_fused_decoder_that_disagrees_is_dropped(monkeypatch, embed, table1_decoder, prototypes, tmp_path):
    from siamese_xai.decoding import fused

    wrong = fused.FusedUpConv.__call__
    monkeypatch.setattr(fused.FusedUpConv, "__call__", lambda self, x: 0.5 * wrong(self, x))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # recorded in every explanation, not printed
        ex = SiameseExplainer(embed, table1_decoder, prototypes, ExplainConfig.tiny(s=2, q=5))
    assert not ex.decoder_fused
    assert ex.decoder_evaluation.notes[0] == ("The fused evaluation of the decoder differed from the decoder itself "
                                              "on probe codes, so the decoder is evaluated as it is.")
    e = ex.explain(images(1, seed=3))
    assert e.decoder_path["fused"] is False and e.decoder_path["notes"][0] == ex.decoder_evaluation.notes[0]
    e.save(tmp_path / "e.npz")
    assert Explanation.load(tmp_path / "e.npz").decoder_path == e.decoder_path
