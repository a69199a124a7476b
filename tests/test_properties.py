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

from siamese_xai import _checks, inputs

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

    from siamese_xai.explain import ExplainConfig, SiameseExplainer

    proj = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    inputs_ = keras.Input((4,))
    x = keras.layers.Dense(30, activation="sigmoid")(inputs_)
    decoder = keras.Model(inputs_, keras.layers.Reshape(SHAPE)(x))
    embed = lambda xs: np.asarray(xs, np.float64).reshape(len(xs), -1) @ proj
    prototypes = np.random.default_rng(1).normal(size=(3, 4))
    return SiameseExplainer(embed, decoder, prototypes, ExplainConfig.tiny(n_perturbations=16, s=2, q=4))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(x=arrays(), target=st.one_of(st.none(), st.integers(-2, 4), st.floats(0, 3), st.text(max_size=2)),
       seed=st.one_of(st.integers(-(2**64), 2**64), st.floats(allow_nan=True), st.none(), st.booleans()))
def test_explain_explains_or_raises_a_clear_error(explainer, tmp_path, x, target, seed):
    before = sorted(os.listdir(tmp_path))
    try:
        e = explainer.explain(x, target_class=target, seed=seed)
    except (ValueError, TypeError) as err:
        assert any(f"`{name}`" in str(err) for name in ("x", "target_class", "seed")), err
    else:
        assert len(e) in (1, x.shape[0] if x.ndim else 1) and e.mask.shape[1:] == SHAPE
        assert np.isfinite(e.mean_abs_change).all()
    assert sorted(os.listdir(tmp_path)) == before  # nothing written


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
