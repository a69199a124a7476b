"""The explanation graph's pieces and the contrast's path, each against values worked out by hand (fast: no model).

`test_explain.py::test_linear_decoder_matches_hand_computation` checks the
whole graph through `SiameseExplainer`; these pin each piece on its own, so
that `make mutants` can run them for every change of these functions.
"""

import types

import numpy as np
import pytest
import tensorflow as tf

from siamese_xai.explainers import _graph
from siamese_xai.explainers import contrast
from siamese_xai.config import ExplainConfig, TemplateContrastConfig


def test_nearest_prototype_by_hand():
    h = tf.constant([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0]])
    protos = tf.constant([[3.0, 0.0], [0.0, 1.0], [3.0, 4.0]])
    classes, distances = _graph.nearest_prototype_tensors(h, protos)
    assert classes.dtype == tf.int64
    np.testing.assert_array_equal(classes.numpy(), [1, 2, 1])
    want = [[3.0, 1.0, 5.0], [4.0, np.sqrt(18.0), 0.0], [np.sqrt(5.0), 1.0, np.sqrt(13.0)]]
    np.testing.assert_allclose(distances.numpy(), want, rtol=1e-6)


def test_top_q_mask_by_hand():
    scores = tf.constant([[3.0, 0.0, 5.0, 5.0, -1.0, 2.0],
                          [1.0, 0.0, -2.0, 0.0, -3.0, -4.0],
                          [0.0, 2.0, 0.0, 2.0, 7.0, 1.0]])
    mask = _graph.top_q_mask(scores, 3, (3, 2, 3))
    assert mask.dtype == tf.bool and mask.shape == (3, 2, 3)
    want = [[True, False, True, True, False, False],  # the three largest
            [True, False, False, False, False, False],  # only scores > 0, so fewer than q
            [False, True, False, True, True, False]]  # 7, then the tie 2 = 2 (both in)
    np.testing.assert_array_equal(mask.numpy().reshape(3, 6), want)
    # ties at the cut: the lower index first
    tie = _graph.top_q_mask(tf.constant([[1.0, 2.0, 1.0, 1.0]]), 2, (1, 4))
    np.testing.assert_array_equal(tie.numpy(), [[True, True, False, False]])


def test_perturbation_draws_are_the_documented_philox_block():
    eps = _graph.perturbation_draws(tf.constant(7, tf.int64), 5, 3)
    assert eps.shape == (5, 3) and eps.dtype == tf.float32
    want = np.abs(tf.random.stateless_normal([5, 3], seed=tf.constant([7, 0], tf.int64), alg="philox").numpy())
    np.testing.assert_array_equal(eps.numpy(), want)
    assert (eps.numpy() > 0).all()
    # another seed, other draws; the same seed, the same draws (also from a Python int)
    assert not np.allclose(_graph.perturbation_draws(tf.constant(8, tf.int64), 5, 3).numpy(), want)
    np.testing.assert_array_equal(_graph.perturbation_draws(7, 5, 3).numpy(), want)


@pytest.mark.parametrize("chunk_size, group, n_all, want", [(64, 1, 200, 655), (1024, 4, 256, 2048), (8, 2, 512, 64),
                                                           (64, 2, 1024, 64), (65, 1, 2048, 65)])
def test_kink_cap_by_hand(chunk_size, group, n_all, want):
    assert _graph.kink_cap(chunk_size, group, n_all) == want


def test_path_points_and_runner_up_by_hand():
    np.testing.assert_allclose(contrast.path_points(4).numpy(), [0.125, 0.375, 0.625, 0.875])
    assert contrast.path_points(4).dtype == tf.float32
    distances = tf.constant([[1.0, 0.5, 2.0, 0.5], [3.0, 1.0, 1.0, 0.2], [0.1, 0.3, 0.2, 0.9]])
    explained = tf.constant([1, 3, 2], tf.int64)
    got = contrast.runner_up_tensor(distances, explained)
    assert got.dtype == tf.int64
    np.testing.assert_array_equal(got.numpy(), [3, 1, 0])  # ties: the lower index first
    # the excluded class is set to +inf of the distances' own dtype, whatever it is
    wide = contrast.runner_up_tensor(tf.cast(distances, tf.float64), explained)
    np.testing.assert_array_equal(wide.numpy(), [3, 1, 0])


class _LinearEvaluation:
    """g(z) = z W + b as the decoder evaluation the graphs take (`internal`, `to_image`), images `(P,)`."""

    def __init__(self, kernel, bias):
        self.kernel, self.bias = tf.constant(kernel, tf.float32), tf.constant(bias, tf.float32)
        self.rows = []

    def internal(self, codes):
        self.rows.append(int(codes.shape[0]))  # eager calls only: the rows of each decoder call
        return codes @ self.kernel + self.bias

    def to_image(self, flat):
        return flat


def test_contrast_graph_rows_by_hand():
    """Class 0 asked for as k or as l is class 0, not "the nearest" or "the runner-up" (those are -1); a
    reference image's row has no contrast class; a reference within rounding of h is a zero-length path,
    whatever the other rows' paths."""
    kernel = np.array([[1.0, -2.0, 0.0, 0.5], [0.0, 1.0, 3.0, -1.0], [2.0, 0.0, -1.0, 1.0]])
    bias = np.full(4, 0.5)
    h = np.array([[2.0, 0.0, 0.0]] * 4 + [[0.01, 0.0, 0.0]])
    # distances 2, 1, 0.5: the nearest is class 2, the runner-up class 1
    protos = np.array([[0.0, 0.0, 0.0], [2.0, 1.0, 0.0], [2.0, 0.0, 0.5]])
    # row 3: 1e-6 against ||h|| = 2 is rounding; row 4: 1e-5 against ||h|| = 0.01 is a move (each row's own scale)
    references = np.array([[0.0] * 3, [0.0] * 3, [0.0, 1.0, 1.0], [2.0, 0.0, 1e-6], [0.01, 0.0, 1e-5]])
    config = TemplateContrastConfig(n_path_points=4, s=2, q=2)
    out = contrast.contrast_graph(
        tf.constant(h, tf.float32), tf.ones((5, 4)), tf.constant(protos, tf.float32),
        tf.constant([0, -1, -1, -1, -1], tf.int64), tf.constant([-1, 0, -1, -1, -1], tf.int64),
        tf.constant(references, tf.float32), tf.constant([False, False, True, True, True]),
        decoder=_LinearEvaluation(kernel, bias), internal_shape=(4,), config=config, chunk_size=8)
    out = {k: v.numpy() for k, v in out.items()}
    np.testing.assert_array_equal(out["predicted_class"], [2, 2, 2, 2, 0])
    np.testing.assert_array_equal(out["explained_class"], [0, 2, 2, 2, 0])  # row 0 asks for k = 0
    np.testing.assert_array_equal(out["contrast_class"], [2, 0, -1, -1, -1])  # row 1 asks for l = 0
    c = np.stack([protos[2], protos[0], references[2], references[3], references[4]])
    np.testing.assert_allclose(out["reference"], c, rtol=1e-6)
    delta = c - h
    # ||h - c|| under every question; the path is zero-length where c equals h but for rounding (row 3)
    np.testing.assert_allclose(out["reference_distance"], np.linalg.norm(delta, axis=1), rtol=1e-6)
    delta[3] = 0.0
    np.testing.assert_allclose(out["path_length"], np.linalg.norm(delta, axis=1), rtol=1e-6)
    assert out["path_length"][3] == 0 and out["path_length"][4] > 0
    # the midpoint rule on a linear g: exactly half the whole move's change
    np.testing.assert_allclose(out["mean_signed_change"], 0.5 * delta @ kernel, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["mean_abs_change"], np.abs(0.5 * delta @ kernel), rtol=1e-5, atol=1e-6)
    assert not out["mean_abs_change"][3].any() and not out["mask"][3].any()
    np.testing.assert_allclose(out["reconstruction"], h @ kernel + bias, rtol=1e-6, atol=1e-6)


def test_contrast_graph_path_of_exactly_the_threshold_is_zero_length():
    """||c - h|| equal to `ZERO_PATH_RTOL` x max(||h||, ||c||) in float32 is a zero-length path; one ulp more moves.

    h = e_0 and c = e_0 + d e_1: ||c - h|| = sqrt(d^2) and max(||h||, ||c||) = sqrt(1 + d^2), which float32
    rounds to d and to 1 for d = 1e-5 (checked below): the tie is exact.
    """
    d = np.float32(contrast.ZERO_PATH_RTOL)
    d_up = np.nextafter(d, np.float32(1))
    h = np.array([[1.0, 0.0, 0.0]] * 2, np.float32)
    references = np.array([[1.0, d, 0.0], [1.0, d_up, 0.0]], np.float32)
    assert tf.norm(references[0] - h[0]).numpy() == d and tf.norm(references[0]).numpy() == 1  # the tie
    out = contrast.contrast_graph(
        tf.constant(h), tf.ones((2, 4)), tf.constant(np.eye(3, dtype=np.float32)),
        tf.constant([-1, -1], tf.int64), tf.constant([-1, -1], tf.int64),
        tf.constant(references), tf.constant([True, True]),
        decoder=_LinearEvaluation(-np.ones((3, 4)), np.zeros(4)), internal_shape=(4,),
        config=TemplateContrastConfig(n_path_points=4, s=2, q=2), chunk_size=8)
    np.testing.assert_array_equal(out["path_length"].numpy(), [0.0, d_up])
    assert not out["mask"].numpy()[0].any() and out["mask"].numpy()[1].any()


def test_contrast_graph_tiles_stay_within_chunk_size_and_do_not_change_the_result():
    """G inputs x n path points per decoder call, G * n <= chunk_size: with chunk_size < N, one input at a time."""
    rng = np.random.default_rng(2)
    kernel, h, protos = rng.normal(size=(3, 4)), rng.normal(size=(3, 3)), rng.normal(size=(3, 3))
    config = TemplateContrastConfig(n_path_points=4, s=2, q=2)
    outs = []
    for chunk_size in (3, 64):
        evaluation = _LinearEvaluation(kernel, np.zeros(4))
        out = contrast.contrast_graph(
            tf.constant(h, tf.float32), tf.ones((3, 4)), tf.constant(protos, tf.float32),
            tf.constant([-1] * 3, tf.int64), tf.constant([-1] * 3, tf.int64), tf.zeros((3, 3)),
            tf.constant([False] * 3), decoder=evaluation, internal_shape=(4,), config=config, chunk_size=chunk_size)
        outs.append({k: v.numpy() for k, v in out.items()})
        if chunk_size == 3:
            # per input: its x0 (1 row), then the blocks of 3 and 1 path points
            assert evaluation.rows == [1, 3, 1] * 3
    for k in outs[0]:
        np.testing.assert_allclose(outs[0][k], outs[1][k], rtol=1e-6, atol=1e-7, err_msg=k)


@pytest.mark.parametrize("direction", ["toward_prototype", "positive"])
def test_explain_graph_rows_by_hand(direction):
    """Class 0 asked for is class 0 (not "the nearest"); J, sigma and the mean changes of g(z) = z W + b, by hand."""
    kernel = np.array([[1.0, -2.0, 0.0, 0.5], [0.0, 1.0, 3.0, -1.0], [2.0, 0.0, -1.0, 1.0]])
    evaluation = _LinearEvaluation(kernel, np.full(4, 0.5))
    evaluation.exact = None  # two float32 decodings subtracted
    h = np.array([[1.8, 0.35, 0.2]] * 2)
    # distances 1.87, 0.74, 0.42: the nearest is class 2
    protos = np.array([[0.0, 0.0, 0.0], [2.0, 1.0, 0.0], [2.0, 0.0, 0.5]])
    config = ExplainConfig(n_perturbations=4, s=2, q=2, sigma_scale=0.1, direction=direction, estimator="mc")
    out = _graph.explain_graph(
        tf.constant(h, tf.float32), tf.constant(protos, tf.float32), tf.constant([0, -1], tf.int64),
        tf.zeros((2, 3)), tf.constant([False, False]), tf.constant(3, tf.int64), decoder=evaluation,
        internal_shape=(4,), config=config, chunk_size=8)
    out = {k: v.numpy() for k, v in out.items()}
    np.testing.assert_array_equal(out["predicted_class"], [2, 2])
    np.testing.assert_array_equal(out["explained_class"], [0, 2])  # row 0 asks for k = 0
    c = protos[[0, 2]]
    np.testing.assert_allclose(out["reference"], c)
    # |h - c|: (1.8, 0.35, 0.2) and (0.2, 0.35, 0.3): J the two smallest, sigma 0.1 x the smallest
    np.testing.assert_array_equal(out["indices"], [[2, 1], [0, 2]])
    np.testing.assert_allclose(out["sigma"], [0.02, 0.02], rtol=1e-5)
    eps = _graph.perturbation_draws(3, 4, 2).numpy().astype(np.float64)
    for b, J in enumerate(([2, 1], [0, 2])):
        sign = np.sign(c[b, J] - h[b, J]) if direction == "toward_prototype" else np.ones(2)
        change = (0.02 * sign * eps) @ kernel[J]  # (N, P): g(h + d) - g(h)
        np.testing.assert_allclose(out["mean_signed_change"][b], change.mean(0), rtol=1e-3, atol=1e-6)
        np.testing.assert_allclose(out["mean_abs_change"][b], np.abs(change).mean(0), rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(out["reconstruction"], h @ kernel + 0.5, rtol=1e-6)


def test_explain_graph_tiles_stay_within_chunk_size_and_do_not_change_the_result():
    """G inputs x n draws per decoder call, G * n <= chunk_size: with chunk_size < N, one input at a time."""
    rng = np.random.default_rng(4)
    kernel, h, protos = rng.normal(size=(3, 4)), rng.normal(size=(3, 3)), rng.normal(size=(3, 3))
    config = ExplainConfig(n_perturbations=4, s=2, q=2, estimator="mc")
    outs = []
    for chunk_size in (3, 64):
        evaluation = _LinearEvaluation(kernel, np.zeros(4))
        evaluation.exact = None  # two float32 decodings subtracted: every decoder call is seen
        out = _graph.explain_graph(
            tf.constant(h, tf.float32), tf.constant(protos, tf.float32), tf.constant([-1] * 3, tf.int64),
            tf.zeros((3, 3)), tf.constant([False] * 3), tf.constant(5, tf.int64), decoder=evaluation,
            internal_shape=(4,), config=config, chunk_size=chunk_size)
        outs.append({k: v.numpy() for k, v in out.items()})
        if chunk_size == 3:
            # per input: its x0 (1 row), then the blocks of 3 and 1 draws
            assert evaluation.rows == [1, 3, 1] * 3
    for k in outs[0]:
        np.testing.assert_allclose(outs[0][k], outs[1][k], rtol=1e-5, atol=1e-6, err_msg=k)


class _SpyKinks:
    """Records the `cap` each `prepare` call receives and passes everything on to the real split at the kinks."""

    def __init__(self, kinks):
        self._kinks, self.caps = kinks, []

    def prepare(self, codes, basis, eps, cap):
        self.caps.append(cap)
        return self._kinks.prepare(codes, basis, eps, cap)

    def sums(self, *args):
        return self._kinks.sums(*args)

    def block_rows(self, group):
        return self._kinks.block_rows(group)


@pytest.mark.parametrize("n_perturbations, chunk_size, group", [(40, 16, 1), (8, 32, 4)])
def test_explain_graph_bounds_the_kink_candidates_by_kink_cap(n_perturbations, chunk_size, group):
    """The split at the ReLU kinks gets `kink_cap(chunk_size, group, N)`, the bound that keeps its memory
    within one block of the layer path (`_graph.kink_cap`'s docstring)."""
    from siamese_xai.decoding.evaluator import decoder_evaluator
    from test_exact import D, scaled_table1_decoder

    rng = np.random.default_rng(5)
    h = rng.normal(size=(4, D)).astype(np.float32)
    protos = rng.normal(size=(3, D)).astype(np.float32)
    ev = decoder_evaluator(scaled_table1_decoder(), h)
    assert ev.kinks is not None
    spy = _SpyKinks(ev.kinks)
    evaluation = types.SimpleNamespace(internal=ev.internal, to_image=ev.to_image, exact=ev.exact, kinks=spy)
    internal_shape = tuple(ev.internal(tf.zeros((1, D), tf.float32)).shape[1:])
    config = ExplainConfig(n_perturbations=n_perturbations, s=3, q=5, estimator="mc")
    _graph.explain_graph(
        tf.constant(h), tf.constant(protos), tf.constant([-1] * 4, tf.int64), tf.zeros((4, D)),
        tf.constant([False] * 4), tf.constant(1, tf.int64), decoder=evaluation, internal_shape=internal_shape,
        config=config, chunk_size=chunk_size)
    want = _graph.kink_cap(chunk_size, group, n_perturbations)
    assert spy.caps and all(int(c) == want for c in spy.caps), (spy.caps, want)


class _RowCountingEvaluation(_LinearEvaluation):
    """g(z) = z W + b + 1e-3 x (rows in the call): a decoder whose rounding depends on the block size."""

    def internal(self, codes):
        return super().internal(codes) + 1e-3 * tf.cast(tf.shape(codes)[0], tf.float32)


@pytest.mark.parametrize("direction", ["toward_prototype", "positive"])
def test_an_input_with_sigma_zero_gets_no_change_whatever_the_decoder(direction):
    """A coordinate of h equal to its prototype's gives sigma = 0: no perturbation, so every change is exactly 0
    (not NaN from sign 0, not the decoder's block-size rounding); the other row is explained as usual."""
    kernel = np.array([[1.0, -2.0, 0.0, 0.5], [0.0, 1.0, 3.0, -1.0], [2.0, 0.0, -1.0, 1.0]])
    protos = np.array([[0.0, 0.0, 0.0], [2.0, 1.0, 0.0]])
    h = np.array([[1.5, 0.0, 0.4],    # h_1 = c_{0,1}: the smallest |h_j - c_j| is 0
                  [1.8, 0.7, 0.3]])
    evaluation = _RowCountingEvaluation(kernel, np.zeros(4))
    evaluation.exact = None  # two decodings subtracted, in blocks
    config = ExplainConfig(n_perturbations=6, s=2, q=2, direction=direction, estimator="mc")
    out = _graph.explain_graph(
        tf.constant(h, tf.float32), tf.constant(protos, tf.float32), tf.constant([0, 1], tf.int64),
        tf.zeros((2, 3)), tf.constant([False, False]), tf.constant(3, tf.int64), decoder=evaluation,
        internal_shape=(4,), config=config, chunk_size=4)
    out = {k: v.numpy() for k, v in out.items()}
    assert out["sigma"][0] == 0.0 and out["sigma"][1] > 0.0
    for key in ("mean_abs_change", "mean_signed_change"):
        assert np.isfinite(out[key]).all(), key
        np.testing.assert_array_equal(out[key][0], np.zeros(4), err_msg=key)
        assert np.abs(out[key][1]).max() > 1e-2, key
    assert not out["mask"][0].any()
