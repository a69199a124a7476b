"""The decoding's pieces (siamese_xai.decoding) against values worked out by hand, for mutation testing."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from siamese_xai.decoding import fused, rules


def _sel(shape, ones):
    """A `select` array of `_cell_axis`: `shape` zeros with 1 at each `(r, s, q, t)` of `ones`."""
    out = np.zeros(shape, np.float32)
    for idx in ones:
        out[idx] = 1.0
    return out


# `_cell_axis(u, k, padding, n, b_in, n_in, last)`: tap t of output sub-row q reads upsampled row
# q - o_out + t - p, i.e. input row (q - o_out + t - p) // u, stored in cell row // b_in, sub-row row % b_in;
# r counts cells from the lowest one read (r_min). Worked out by hand below each case.
CELL_AXES = [
    # u=2, k=3, same (p=1), 7 rows in cells of 1, inner layer (o_out=0): rows read (q + t - 1) // 2;
    # q=0: -1, 0, 0; q=1: 0, 0, 1 -> cells -1..1 (r_min=-1), 7 cells of 2 rows, 14 rows; pads 1 and 1.
    ((2, 3, "same", 7, 1, 7, False),
     (_sel((3, 1, 2, 3), [(0, 0, 0, 0), (1, 0, 0, 1), (1, 0, 0, 2), (1, 0, 1, 0), (1, 0, 1, 1), (2, 0, 1, 2)]),
      1, 1, 2, 0, 7, 14)),
    # u=2, k=2, valid (p=0), 4 rows: 7 rows out; rows read (q + t) // 2; q=0: 0, 0; q=1: 0, 1 -> cells 0..1;
    # 4 cells of 2 rows (the last half used); no low pad, one high pad.
    ((2, 2, "valid", 4, 1, 4, False),
     (_sel((2, 1, 2, 2), [(0, 0, 0, 0), (0, 0, 0, 1), (0, 0, 1, 0), (1, 0, 1, 1)]),
      0, 1, 2, 0, 4, 7)),
    # The last layer: u=2, k=3, same, 7 rows in 4 cells of 2, cells of 4 rows out. Offsets 1, 2, 3 read two
    # cells, offset 0 three: the smallest offset of the smallest kernel is 1. Rows read (q + t - 2) // 2,
    # cell row // 2 + 1, sub-row row % 2; q=0: -1, -1, 0; q=1: -1, 0, 0; q=2: 0, 0, 1; q=3: 0, 1, 1.
    # 4 cells cover 15 = 14 + 1 rows; one low pad, no high pad.
    ((2, 3, "same", 7, 2, 4, True),
     (_sel((2, 2, 4, 3), [(0, 1, 0, 0), (0, 1, 0, 1), (1, 0, 0, 2), (0, 1, 1, 0), (1, 0, 1, 1), (1, 0, 1, 2),
                          (1, 0, 2, 0), (1, 0, 2, 1), (1, 1, 2, 2), (1, 0, 3, 0), (1, 1, 3, 1), (1, 1, 3, 2)]),
      1, 0, 4, 1, 4, 14)),
]


@pytest.mark.parametrize("args, want", CELL_AXES, ids=["same-inner", "valid-inner", "same-last"])
def test_cell_axis_by_hand(args, want):
    got = fused._cell_axis(*args)
    assert got[0].shape == want[0].shape  # the smallest regrouped kernel, no zero cells around it
    np.testing.assert_array_equal(got[0], want[0])
    assert got[1:] == want[1:]


def test_activation_names():
    assert rules.act_name(keras.activations.relu) == "relu"
    assert rules.act_name(keras.activations.sigmoid) == "sigmoid"
    assert rules.act_name(keras.activations.linear) == "linear"
    assert rules.act_name(keras.activations.tanh) is None


# Two groups of two rows: z per group, dz per row.
Z = np.array([[-2.0, 0.5], [1.0, -1.0]], np.float32)
DZ = np.array([[1.0, -1.0], [3.0, 0.25], [-3.0, 2.0], [0.5, 0.5]], np.float32)


def test_relu_rule_by_hand():
    base = rules.act_base("relu", tf.constant(Z))
    np.testing.assert_array_equal(base[0].numpy(), -Z[:, None])
    np.testing.assert_array_equal(base[1].numpy(), np.minimum(Z, 0)[:, None])
    # relu(z + dz) - relu(z): z=-2: 0, 1; z=0.5: -0.5, 0.25; z=1: -1, 0.5; z=-1: 1, 0.
    want = np.array([[0.0, -0.5], [1.0, 0.25], [-1.0, 1.0], [0.5, 0.0]], np.float32)
    np.testing.assert_array_equal(rules.act_delta("relu", base, tf.constant(DZ), 2).numpy(), want)
    abs_sums, sums = rules.act_sums("relu", base, tf.constant(DZ), 2)
    np.testing.assert_array_equal(abs_sums.numpy(), [[1.0, 0.75], [1.5, 1.0]])
    np.testing.assert_array_equal(sums.numpy(), [[1.0, -0.25], [-0.5, 1.0]])
    np.testing.assert_array_equal(rules.apply_act("relu", tf.constant(Z)).numpy(), np.maximum(Z, 0))


def test_sigmoid_rule_against_float64():
    sig = lambda x: 1.0 / (1.0 + np.exp(-x))  # noqa: E731
    z64, dz64 = Z.astype(np.float64), DZ.astype(np.float64)
    want = sig(np.repeat(z64, 2, axis=0) + dz64) - sig(np.repeat(z64, 2, axis=0))
    base = rules.act_base("sigmoid", tf.constant(Z))
    np.testing.assert_array_equal(base[0].numpy(), Z[:, None])
    np.testing.assert_allclose(base[1].numpy(), -sig(-z64)[:, None], rtol=1e-6)
    np.testing.assert_allclose(rules.act_delta("sigmoid", base, tf.constant(DZ), 2).numpy(), want, rtol=1e-5)
    abs_sums, sums = rules.act_sums("sigmoid", base, tf.constant(DZ), 2)
    np.testing.assert_allclose(abs_sums.numpy(), np.abs(want).reshape(2, 2, 2).sum(1), rtol=1e-5)
    np.testing.assert_allclose(sums.numpy(), want.reshape(2, 2, 2).sum(1), rtol=1e-5)
    np.testing.assert_allclose(rules.apply_act("sigmoid", tf.constant(Z)).numpy(), sig(z64), rtol=1e-6)
    small = np.array([[1e-4, -1e-4]], np.float32)  # no subtraction of nearby numbers: exact to float32
    want_small = sig(np.float64(0.5) + small.astype(np.float64)) - sig(np.float64(0.5))
    got_small = rules.act_delta("sigmoid", rules.act_base("sigmoid", tf.constant([[0.5, 0.5]])), tf.constant(small), 1)
    np.testing.assert_allclose(got_small.numpy(), want_small, rtol=1e-6)


def test_linear_rule_is_the_change_itself():
    assert rules.act_base("linear", tf.constant(Z)) is None
    np.testing.assert_array_equal(rules.act_delta("linear", None, tf.constant(DZ), 2).numpy(), DZ)
    abs_sums, sums = rules.act_sums("linear", None, tf.constant(DZ), 2)
    np.testing.assert_array_equal(abs_sums.numpy(), [[4.0, 1.25], [3.5, 2.5]])
    np.testing.assert_array_equal(sums.numpy(), [[4.0, -0.75], [-2.5, 2.5]])
    np.testing.assert_array_equal(rules.apply_act("linear", tf.constant(Z)).numpy(), Z)
    grouped = rules._grouped(tf.zeros((6, 3, 2)), 2)
    assert tuple(grouped.shape) == (2, 3, 3, 2)
