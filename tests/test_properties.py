"""Property-based tests (hypothesis) of the input checks of the Python API and of the image reader.

Every input either is accepted (and explained) or raises ValueError / TypeError
whose message names the argument; nothing else escapes and nothing is written.
"""

import io
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from siamese_xai import _checks
from siamese_xai.data import inputs

SHAPE = (6, 5, 1)
DTYPES = st.sampled_from([np.float16, np.float32, np.float64, np.uint8, np.int8, np.int32, np.int64, np.bool_,
                          np.complex64])
# Shapes near the valid ones (one image, a batch, without the channel axis) and far from them.
SHAPES = st.one_of(
    st.sampled_from([(6, 5, 1), (6, 5), (0, 6, 5, 1), (3, 6, 5, 1), (2, 6, 5), (0,), (), (6, 5, 2), (1, 6, 5, 3)]),
    hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=7),
)
ELEMENTS = st.floats(allow_nan=True, allow_infinity=True, width=32) | st.floats(-2, 2) | st.just(np.nan)


def arrays():
    def make(dtype, shape):
        if np.dtype(dtype).kind in "fc":
            return hnp.arrays(dtype, shape, elements=ELEMENTS.map(lambda v: np.dtype(dtype).type(v)))
        return hnp.arrays(dtype, shape)

    return st.tuples(DTYPES, SHAPES).flatmap(lambda ds: make(*ds))


@settings(max_examples=400, deadline=None)
@given(arrays())
def test_check_images_accepts_valid_images_and_names_the_argument_otherwise(x):
    try:
        xs, single = _checks.check_images(x, SHAPE, "x")
    except (ValueError, TypeError) as err:
        assert str(err).startswith("`x` must"), err
        return
    assert xs.dtype == np.float32 and xs.shape[1:] == SHAPE
    assert single == (x.shape in (SHAPE, SHAPE[:-1]))
    assert len(xs) == (1 if single else x.shape[0])
    assert np.all((xs >= 0) & (xs <= 1))
    assert x.dtype in (np.uint8, np.float16, np.float32, np.float64)


@pytest.fixture(scope="module")
def explainer():
    import keras

    from siamese_xai.config import ExplainConfig
    from siamese_xai.explainers.siamese import SiameseExplainer

    proj = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    inputs_ = keras.Input((4,))
    x = keras.layers.Dense(30, activation="sigmoid")(inputs_)
    decoder = keras.Model(inputs_, keras.layers.Reshape(SHAPE)(x))
    embed = lambda xs: np.asarray(xs, np.float64).reshape(len(xs), -1) @ proj
    prototypes = np.random.default_rng(1).normal(size=(3, 4))
    return SiameseExplainer(embed, decoder, prototypes, ExplainConfig.tiny(n_perturbations=16, s=2, q=4))


INT64 = st.integers(-(2**63), 2**63 - 1)
VALID_SHAPES = st.sampled_from([(6, 5, 1), (6, 5), (1, 6, 5, 1), (3, 6, 5, 1), (2, 6, 5), (3, 6, 5)])


def valid_images():
    """Images `explain` must accept: one or a batch, with or without the channel axis, floats in [0, 1] or uint8."""
    def make(dtype, shape):
        if dtype == np.uint8:
            return hnp.arrays(dtype, shape)
        return hnp.arrays(dtype, shape, elements=st.floats(0, 1, width=16 if dtype == np.float16 else 32))

    return st.tuples(st.sampled_from([np.float16, np.float32, np.float64, np.uint8]), VALID_SHAPES).flatmap(
        lambda ds: make(*ds))


# Half valid calls (explain must answer, with the values checked), half anything (mostly invalid).
CALLS = st.one_of(
    st.tuples(st.just(True), valid_images(), st.none() | st.integers(0, 2), INT64),
    st.tuples(st.just(False), arrays(), st.one_of(st.none(), st.integers(-2, 4), st.floats(0, 3), st.text(max_size=2)),
              st.one_of(st.integers(-(2**64), 2**64), st.floats(allow_nan=True), st.none(), st.booleans())),
)


def test_explain_explains_or_raises_a_clear_error(explainer, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # so that a file written to the working directory is seen
    accepted = []

    @settings(max_examples=150, deadline=None)
    @given(call=CALLS)
    def check(call):
        valid, x, target, seed = call
        before = sorted(os.listdir(tmp_path))
        try:
            e = explainer.explain(x, target_class=target, seed=seed)
        except (ValueError, TypeError) as err:
            assert not valid, err
            assert any(f"`{name}`" in str(err) for name in ("x", "target_class", "seed")), err
            accepted.append(False)
        else:
            accepted.append(True)
            _assert_explains(explainer, x, target, seed, e)
        assert sorted(os.listdir(tmp_path)) == before  # nothing written

    check()
    # The accepting branch is reached about as often as the refusing one.
    assert 0.35 <= np.mean(accepted) <= 0.75, np.mean(accepted)


def _assert_explains(explainer, x, target, seed, e):
    """The values of an accepted call: the nearest class, J and sigma by hand, every row as a single explanation."""
    xs = np.asarray(x)
    single = xs.shape in (SHAPE, SHAPE[:-1])
    xs = (xs.astype(np.float32) / np.float32(255) if xs.dtype == np.uint8 else xs.astype(np.float32))
    xs = xs.reshape((-1,) + SHAPE)
    assert len(e) == len(xs) and e.mask.shape[1:] == SHAPE and e.mask.dtype == bool
    h = explainer.embed(xs).astype(np.float32)
    np.testing.assert_allclose(e.embedding, h, rtol=1e-6, atol=1e-6)
    dists = np.linalg.norm(h[:, None].astype(np.float64) - explainer.prototypes[None], axis=-1)
    np.testing.assert_allclose(e.distances, dists, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(e.predicted_class, np.argmin(e.distances, axis=1))
    want_class = e.predicted_class if target is None else np.full(len(xs), target)
    np.testing.assert_array_equal(e.explained_class, want_class)
    c = explainer.prototypes[want_class].astype(np.float32)
    gap = np.abs(h - c)
    np.testing.assert_array_equal(e.indices, np.argsort(gap, axis=1, kind="stable")[:, :2])
    np.testing.assert_allclose(e.sigma, 0.1 * gap.min(axis=1), rtol=1e-5)
    assert np.isfinite(e.mean_abs_change).all() and (e.mean_abs_change >= 0).all()
    assert (e.mask.reshape(len(xs), -1).sum(axis=1) <= 4).all()
    assert np.array_equal(e.mask, e.mask & (e.mean_abs_change > 0))
    if not single:  # a row of a batch is the explanation of that image alone
        for b in range(len(xs)):
            one = explainer.explain(xs[b], target_class=target, seed=seed)
            np.testing.assert_array_equal(one.indices[0], e.indices[b])
            np.testing.assert_allclose(one.sigma[0], e.sigma[b], rtol=1e-6)
            scale = max(float(np.abs(one.mean_abs_change).max()), 1e-30)
            # float32 sums in another tile shape: the same to float32 rounding of the largest change
            np.testing.assert_allclose(one.mean_abs_change[0], e.mean_abs_change[b], rtol=1e-5, atol=1e-6 * scale)
            np.testing.assert_allclose(one.mean_signed_change[0], e.mean_signed_change[b], rtol=1e-5, atol=1e-6 * scale)


def _png(width, height, mode):
    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, (width, height), color=0).save(buf, format="PNG")
    return buf.getvalue()


def _huge_png(width, height):
    """A valid PNG header announcing a huge image (a "decompression bomb"), with no pixel data."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


FILES = st.one_of(
    st.binary(max_size=300),  # anything at all
    st.builds(_png, st.integers(1, 40), st.integers(1, 40), st.sampled_from(["L", "RGB", "RGBA", "1", "I;16", "P"])),
    st.builds(lambda data, cut: data[:cut], st.builds(_png, st.just(28), st.just(28), st.just("L")),
              st.integers(0, 120)),  # truncated PNGs
    st.builds(lambda w, h: _huge_png(w, h), st.integers(20000, 2**31 - 1), st.integers(20000, 2**31 - 1)),
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=FILES)
def test_read_image_reads_or_names_the_file(tmp_path, data):
    path = tmp_path / "input.png"
    path.write_bytes(data)
    try:
        image, note = inputs.read_image(path)
    except (ValueError, TypeError) as err:
        assert str(path) in str(err), err
    else:
        assert image.shape == (28, 28, 1) and image.dtype == np.float32
        assert np.all((image >= 0) & (image <= 1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input.png"]  # nothing written
