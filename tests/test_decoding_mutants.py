"""The decoding's pieces (siamese_xai.decoding) against values worked out by hand, for mutation testing."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from siamese_xai.decoding import fused, rules
from siamese_xai.decoding.twin import float64_decoder
from test_fusion import up_conv_decoder


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
    # The last layer: u=2, k=3, valid (p=0), 4 rows in cells of 1: 6 rows out, cells of 2. Offset 0 reads
    # cells 0..1 ((q + t) // 2 for q + t in 0..3), offset 1 reads cells -1..1 ((q + t - 1) // 2 for q + t - 1
    # in -1..2): the smallest kernel is offset 0's, although offset 1's span ends sum lower. Rows read
    # (q + t) // 2; q=0: 0, 0, 1; q=1: 0, 1, 1. 3 cells cover the 6 rows; no pads.
    ((2, 3, "valid", 4, 1, 4, True),
     (_sel((2, 1, 2, 3), [(0, 0, 0, 0), (0, 0, 0, 1), (1, 0, 0, 2), (0, 0, 1, 0), (1, 0, 1, 1), (1, 0, 1, 2)]),
      0, 0, 2, 0, 3, 6)),
]


@pytest.mark.parametrize("args, want", CELL_AXES, ids=["same-inner", "valid-inner", "same-last", "valid-last"])
def test_cell_axis_by_hand(args, want):
    got = fused._cell_axis(*args)
    assert got[0].shape == want[0].shape  # the smallest regrouped kernel, no zero cells around it
    np.testing.assert_array_equal(got[0], want[0])
    assert got[0].dtype == np.float32  # the kernel's dtype: the regrouped kernel is float32 like the layer's
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


def _up_conv_decoder(spatial, blocks):
    """`test_fusion.up_conv_decoder` with every bias drawn at random."""
    model = up_conv_decoder(spatial, blocks)
    rng = np.random.default_rng(0)
    for layer in model.layers:  # biases are zeros when built: make each one count
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.normal(0, 0.5, layer.bias.shape).astype(np.float32))
    return model


def test_fuse_reads_small_exact_cells_directly_and_each_step_writes_its_layout():
    # 7x7 -> 14 -> 28 -> 56 rows, 3x3 same convs: the first fused layer writes exact cells of 2 rows (7 x 2 = 14),
    # read directly by the second (2 <= MAX_CELL_IN), which writes exact cells of 4 rows (7 x 4 = 28): too
    # high, so they are rearranged into the image before the third, which is the last.
    model = _up_conv_decoder(7, [((2, 2), 3, "same")] * 3)
    chain = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    steps, layout = fused.fuse(chain)
    kinds = [type(s).__name__ if isinstance(s, (keras.layers.Layer, fused.FusedUpConv)) else s.__name__ for s in steps]
    assert kinds == ["Dense", "Reshape", "FusedUpConv", "FusedUpConv", "to_space", "FusedUpConv"]
    assert (steps[2].layout.bh, steps[2].layout.nh, steps[2].layout.exact) == (2, 7, True)
    assert (steps[3].layout.bh, steps[3].layout.nh, steps[3].layout.exact) == (4, 7, True)
    assert steps[4].__self__ is steps[3].layout
    assert layout is steps[5].layout and not layout.exact and layout.size == (56, 56) and layout.bh == 2
    # The last layer's cells of 2 rows start at row offset 1 (cells -1..0 read per tap, against -1..1 at 0):
    # 29 cells cover 56 + 1 rows.
    assert (layout.oh, layout.ow, layout.nh, layout.nw) == (1, 1, 29, 29)
    codes = tf.constant(np.random.default_rng(1).normal(size=(2, 6)).astype(np.float32))
    x = codes
    for step in steps:
        x = step(x)
        if isinstance(step, fused.FusedUpConv):  # every fused step writes exactly its layout's cells
            assert tuple(x.shape[1:]) == step.layout.shape
    np.testing.assert_allclose(layout.to_space(x).numpy(), model(codes).numpy(), atol=2e-5)
    assert fused.fuse(None) == (None, None)
    assert fused.fuse(chain[:2]) == (None, None)  # no upsampling + conv pair


def _pair(up_kwargs=None, conv_kwargs=None, lora=False, shape=(4, 4, 3)):
    inputs = keras.Input(shape)
    up = keras.layers.UpSampling2D(**{"size": 2, **(up_kwargs or {})})
    conv = keras.layers.Conv2D(**{"filters": 2, "kernel_size": 3, "padding": "same", **(conv_kwargs or {})})
    conv(up(inputs))
    if lora:
        conv.enable_lora(1)
    return up, conv


@pytest.mark.parametrize(
    "up_kwargs, conv_kwargs, lora",
    [
        ({"interpolation": "bilinear"}, {}, False),
        ({}, {"strides": 2}, False),
        ({}, {"dilation_rate": 2}, False),
        ({}, {"groups": 3, "filters": 3}, False),
        ({}, {"dtype": "mixed_float16"}, False),
        ({}, {}, True),
    ],
    ids=["bilinear", "strides", "dilation", "groups", "float16", "lora"],
)
def test_fusable_refuses_every_pair_it_cannot_fuse(up_kwargs, conv_kwargs, lora):
    assert fused.fusable(*_pair())
    assert not fused.fusable(*_pair(up_kwargs, conv_kwargs, lora))


@pytest.mark.parametrize(
    "spatial, blocks",
    [
        (4, [((2, 2), 1, "valid")]),  # a 1x1 conv: no high pad (the last cell reads the last input row only)
        (4, [((2, 2), 1, "same"), ((2, 2), 3, "same")]),
        (5, [((3, 2), 5, "same"), ((2, 2), 3, "same")]),
        (6, [((2, 3), 4, "valid"), ((2, 2), 2, "same")]),
    ],
)
def test_each_fused_step_writes_exactly_its_layouts_cells(spatial, blocks):
    model = _up_conv_decoder(spatial, blocks)
    chain = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    steps, layout = fused.fuse(chain)
    codes = tf.constant(np.random.default_rng(1).normal(size=(2, 6)).astype(np.float32))
    x = codes
    for step in steps:
        x = step(x)
        if isinstance(step, fused.FusedUpConv):
            assert tuple(x.shape[1:]) == step.layout.shape
    np.testing.assert_allclose(layout.to_space(x).numpy(), model(codes).numpy(), atol=2e-5)


@pytest.mark.parametrize("shape", [(None, 4, 3), (4, None, 3), (None, None, 3)], ids=["height", "width", "both"])
def test_fusable_refuses_an_input_of_unknown_height_or_width(shape):
    """The cells of a fused layer are fixed when it is built: every spatial side must be known."""
    assert not fused.fusable(*_pair(shape=shape))


def test_through_relu_by_hand():
    """One ReLU layer of the kink plan on two groups of 4 units, one source (images all 1), 2 draws.

    A unit is a candidate when |z| <= max_draw |coef| x |image| x (1 + margin); a candidate crosses when some draw
    moves it from > 0 to < 0, or from <= 0 to > 0 (reaching 0 exactly is no crossing); crossed units become
    sources with relu's exact change max(dz, -z) + min(z, 0); the other units pass on their source's image where
    z > 0. Group 0 (coef -1.5, 1; bound 1.5): z = 1 crosses in draw 0 (to -0.5); -1 reaches 0 in draw 1; 2.5 is
    beyond the bound (within twice it); -1.5 (1 + margin) is exactly on it. Group 1 (coef 1, -2; bound 2): z = 0
    crosses in draw 0 (to 1) and reaches -2 in draw 1; 2 is on the unwidened bound and reaches 0 in draw 1;
    -0.75 crosses in draw 0 (to 0.25); 7 is beyond.
    """
    from siamese_xai.decoding import kinks

    edge = 1.5 * (1 + kinks._BOUND_MARGIN)
    z = tf.constant([[1.0, -1.0, 2.5, -edge], [0.0, 2.0, -0.75, 7.0]], tf.float64)
    rows = tf.ones((2, 1, 4), tf.float64)
    coef = tf.constant([[[-1.5], [1.0]], [[1.0], [-2.0]]], tf.float64)  # (G, N, r)
    stats = {"ok": tf.constant(True), "candidates": tf.constant(10, tf.int64), "crossed": tf.constant(10, tf.int64),
             "crossing_draws": tf.zeros((2, 2), tf.bool)}
    out_rows, out_coef = kinks.KinkPlan._through_relu(z, rows, coef, tf.constant(3), stats)
    # 3 candidates in each group (cap 3 is enough), 1 + 2 crossed, added to what earlier layers counted
    assert bool(stats["ok"]) and int(stats["candidates"]) == 16 and int(stats["crossed"]) == 13
    np.testing.assert_array_equal(stats["crossing_draws"].numpy(), [[True, False], [True, False]])
    # the source's coefficients, then each crossed unit's change per draw (group 0 has one: a zero column)
    want_coef = [[[-1.5, -1.0, 0.0], [1.0, 1.0, 0.0]], [[1.0, 1.0, 0.25], [-2.0, 0.0, 0.0]]]
    np.testing.assert_array_equal(out_coef.numpy(), want_coef)
    # rows: the source's image on the units that stay linear (z > 0, not crossed), then one-hot crossed units
    want_rows = [[0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0],
                 [0, 1, 0, 1], [1, 0, 0, 0], [0, 0, 1, 0]]
    np.testing.assert_array_equal(out_rows.numpy(), want_rows)


def test_through_relu_refuses_more_candidates_than_the_cap_in_a_group():
    """`ok` turns false when a group's candidates exceed the cap (not their sum over the groups)."""
    from siamese_xai.decoding import kinks

    z = tf.constant([[1.0, 1.0, 9.0], [1.0, 9.0, 9.0]], tf.float64)  # candidates: 2 and 1
    coef = tf.constant([[[2.0]], [[2.0]]], tf.float64)
    for cap, ok in [(2, True), (1, False)]:
        stats = {"ok": tf.constant(True), "candidates": tf.constant(0, tf.int64),
                 "crossed": tf.constant(0, tf.int64), "crossing_draws": tf.zeros((2, 1), tf.bool)}
        kinks.KinkPlan._through_relu(z, tf.ones((2, 1, 3), tf.float64), coef, tf.constant(cap), stats)
        assert bool(stats["ok"]) is ok, cap


def test_chain_layers_takes_a_plain_chain_only():
    """A layer applied twice, or a second output, is not a chain even where the layers follow each other."""
    from siamese_xai.decoding.chain import chain_layers

    inputs = keras.Input((4,))
    first, second = keras.layers.Dense(4), keras.layers.Dense(3)
    mid = first(inputs)
    out = second(mid)
    assert chain_layers(keras.Model(inputs, out)) == [first, second]
    assert chain_layers(keras.Model(inputs, [out, mid])) is None  # the chain's end is the first of two outputs
    shared = keras.layers.Dense(4)
    assert chain_layers(keras.Model(inputs, shared(shared(inputs)))) is None  # [shared] would decode once


def test_a_mixed_precision_layer_has_no_exact_rule():
    """The exact change is carried in float32/float64: a float16 layer's own rounding is not, so it is refused."""
    from siamese_xai.decoding.exact import step_of

    inputs = keras.Input((4,))
    layer = keras.layers.Dense(3, activation="relu", dtype="mixed_float16")
    keras.Model(inputs, layer(inputs))
    assert step_of(layer) == f"layer '{layer.name}' (Dense) has no exact change rule"


def _reshape_first_decoder(dim=16):
    """Reshape (4 x 4 x 1) -> dilated Conv2D (relu) -> UpSampling2D + Conv2D (sigmoid, fused) -> UpSampling2D."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((dim,))
    x = keras.layers.Reshape((4, 4, dim // 16))(inputs)
    x = keras.layers.Conv2D(5, 3, padding="same", dilation_rate=2, activation="relu")(x)
    x = keras.layers.UpSampling2D(2)(x)
    x = keras.layers.Conv2D(2, 3, padding="same", activation="sigmoid")(x)
    return keras.Model(inputs, keras.layers.UpSampling2D(2)(x))


def _strict_evaluator(decoder, codes):
    import warnings

    from siamese_xai.decoding.evaluator import decoder_evaluator

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # any fallback fails the test
        return decoder_evaluator(decoder, codes)


@pytest.mark.parametrize("dtype", ["float32", "int64"])
def test_a_chain_without_a_first_dense_with_a_dilated_conv_and_an_upsampled_end_is_exact(dtype):
    """Both exact modes pass their checks against the decoder: the change of a code is carried from the first
    step (no Dense to apply to the basis), the dilation is kept, and the rearrangement after the last activation
    is applied to the sums. Integer probe codes are cast to float32."""
    dec = _reshape_first_decoder()
    codes = np.random.default_rng(0).normal(0.0, 2.0, (8, 16)).round().astype(dtype)
    ev = _strict_evaluator(dec, codes)
    assert (ev.mode, ev.fused, ev.exact.first_is_dense) == ("kinks", True, False)
    # the exact change against the decoder's float64 twin, on a change of 1e-3
    h = codes.astype(np.float64)[:2]
    basis = np.zeros((2, 1, 16), np.float32)
    basis[:, 0, [5, 9]] = [1e-3, -1e-3]
    _, terms = ev.exact.base(tf.constant(h, tf.float32))
    got = ev.to_image(ev.exact.delta_from_basis(terms, tf.ones((1, 1)), tf.constant(basis))).numpy()
    f64 = float64_decoder(dec)
    want = f64(h + basis[:, 0].astype(np.float64)) - f64(h)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * np.abs(want).max())


def test_a_fused_evaluation_that_differs_from_the_decoder_is_dropped(monkeypatch):
    """The fused steps are checked against the decoder itself; here they are another decoder's."""
    from siamese_xai.decoding import evaluator

    dec, other = _reshape_first_decoder(), _reshape_first_decoder()
    other.set_weights([w + 0.1 for w in other.get_weights()])
    real = evaluator.fused_steps
    monkeypatch.setattr(evaluator, "fused_steps", lambda chain: real(evaluator.chain_layers(other)))
    codes = np.random.default_rng(0).normal(size=(4, 16))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fallback is recorded, never warned
        ev = evaluator.decoder_evaluator(dec, codes, mode="subtract")
    assert not ev.fused and ev.mode == "subtract"
    assert any(note.startswith("The fused evaluation of the decoder differed") for note in ev.notes)


def test_a_kink_plan_that_fails_on_the_probe_codes_is_dropped(monkeypatch):
    """A plan that raises on the probe codes is not used: the layer-by-layer path is, with a note (no warning)."""
    from siamese_xai.decoding import evaluator

    class Failing:
        relu_layers = 1  # what the budget's cap on candidate units reads of a plan

        def prepare(self, *args, **kwargs):
            raise ValueError("no rule for this decoder")

    monkeypatch.setattr(evaluator, "kink_plan", lambda *args: Failing())
    codes = np.random.default_rng(0).normal(size=(4, 16))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ev = evaluator.decoder_evaluator(_reshape_first_decoder(), codes)
    assert ev.mode == "layers" and ev.kinks is None and ev.exact is not None
    assert any(note.startswith("The exact change split at the decoder's ReLU kinks differed") for note in ev.notes)


def test_the_kink_check_probes_changes_that_cross_kinks(monkeypatch):
    """A plan that ignores crossed units agrees with the layers on changes too small to cross a kink. The check's
    changes reach 1e-1 of a code, so they cross units 0.05 from their kink and such a plan is refused."""
    from siamese_xai.decoding import evaluator, kinks

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(8, activation="relu", kernel_initializer="identity", bias_initializer="zeros")
    dec = keras.Model(inputs, keras.layers.Dense(5, activation="sigmoid")(hidden(inputs)))
    codes = np.tile(np.where(np.arange(8) % 2, 0.05, -0.05), (6, 1)).astype(np.float32)  # z = h: +-0.05
    assert _strict_evaluator(dec, codes).mode == "kinks"
    real = kinks.KinkPlan._through_relu

    def no_crossings(z, *args):  # every unit far from its kink, on its own side
        return real(tf.where(z > 0, tf.constant(1e30, z.dtype), tf.constant(-1e30, z.dtype)), *args)

    monkeypatch.setattr(kinks.KinkPlan, "_through_relu", staticmethod(no_crossings))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ev = evaluator.decoder_evaluator(dec, codes)
    assert ev.mode == "layers"
    assert any(note.startswith("The exact change split at the decoder's ReLU kinks differed") for note in ev.notes)


def _dense_chain(first=None, hidden="relu"):
    """[first layer ->] (Dense(8, hidden) ->) Dense(5, sigmoid) on codes of 6."""
    keras.utils.set_random_seed(1)
    inputs = x = keras.Input((6,))
    if first is not None:
        x = first(x)
    if hidden is not None:
        x = keras.layers.Dense(8, activation=hidden)(x)
    return keras.Model(inputs, keras.layers.Dense(5, activation="sigmoid")(x))


@pytest.mark.parametrize("decoder, first_is_dense", [
    (lambda: _dense_chain(hidden=None), True),  # one layer
    (lambda: _dense_chain(keras.layers.Reshape((6,))), False),  # a Dense second
    (lambda: _dense_chain(keras.layers.Activation("linear")), False),
], ids=["one-dense", "reshape-then-dense", "activation-then-dense"])
def test_short_chains_pass_both_exact_checks(decoder, first_is_dense):
    """The basis goes through the first Dense layer once only where the chain starts with one."""
    ev = _strict_evaluator(decoder(), np.random.default_rng(0).normal(size=(8, 6)))
    assert (ev.mode, ev.exact.first_is_dense) == ("kinks", first_is_dense)


def test_a_kink_plan_needs_relu_or_linear_before_the_last_activation_and_some_activation():
    """Without a plan, the layer-by-layer path is chosen silently (no probe, no warning)."""
    from siamese_xai.decoding.chain import chain_layers
    from siamese_xai.decoding.exact import exact_chain
    from siamese_xai.decoding.kinks import kink_plan

    def plan(decoder):
        return kink_plan(exact_chain(chain_layers(decoder)), lambda y: y, 6)

    assert plan(_dense_chain()) is not None
    assert plan(_dense_chain(hidden="sigmoid")) is None
    inputs = keras.Input((6,))
    assert plan(keras.Model(inputs, keras.layers.Reshape((2, 3))(inputs))) is None  # no activation at all
