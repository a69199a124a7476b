"""The decoder g as the explainer evaluates it: a plain call, or a fused evaluation of upsampling + conv pairs.

`decoder_evaluator(decoder, fuse, probe_codes)` is the one entry point; the
rest of this module is how the fusion works.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
import tensorflow as tf

from siamese_xai._checks import to_numpy
from siamese_xai._exact import exact_chain
from siamese_xai._kinks import kink_plan

# The decoder, as the explainer evaluates it.
#
# `UpSampling2D(nearest)` followed by `Conv2D(stride 1)` is one linear map
# (before bias and activation) that never needs the upsampled tensor: output
# row Y reads upsampled rows Y + t - p (t < k), i.e. input rows
# floor((Y + t - p) / u). Written on a grid of "cells" (b rows of the image
# per cell, the b sub-rows stored as channels), that map is an ordinary small
# convolution whose kernel is the layer's kernel regrouped. Zero padding of
# the upsampled image is zero padding of the cells, so the result is the same
# function, rounded differently. This skips the largest activations of
# Table 1's decoder (the 28x28x16 upsampled tensor and its 1-channel conv) and
# most of the interleaving between layers.


class _Layout:
    """A `(H, W, C)` activation stored as `(nh, nw, bh * bw * C)` cells.

    Image row y lives in cell (y + oh) // bh, sub-row (y + oh) % bh (same for
    columns); the channel of (sub-row a, sub-column b, c) is (a * bw + b) * C + c.
    Positions outside the image hold garbage unless the layout is exact.
    """

    def __init__(self, b, o, n, size, channels):
        (self.bh, self.bw), (self.oh, self.ow), (self.nh, self.nw) = b, o, n
        self.size, self.channels = size, channels

    @property
    def exact(self):
        return (self.oh, self.ow) == (0, 0) and (self.nh * self.bh, self.nw * self.bw) == tuple(self.size)

    @property
    def shape(self):
        return (self.nh, self.nw, self.bh * self.bw * self.channels)

    def to_space(self, y):
        """`(B, nh, nw, bh*bw*C)` -> `(B, H, W, C)`."""
        if self.bh == self.bw:
            y = tf.nn.depth_to_space(y, self.bh)
        else:
            y = tf.reshape(y, (-1, self.nh, self.nw, self.bh, self.bw, self.channels))
            y = tf.transpose(y, (0, 1, 3, 2, 4, 5))
            y = tf.reshape(y, (-1, self.nh * self.bh, self.nw * self.bw, self.channels))
        (h, w) = self.size
        return y[:, self.oh : self.oh + h, self.ow : self.ow + w, :]


def _cell_axis(u, k, padding, n, b_in, n_in, last):
    """One axis of a fused upsampling + conv from cells of b_in rows to cells of u * b_in rows.

    Returns:
        `(select, pad_lo, pad_hi, b_out, o_out, n_out, out)`: `select[r, s, q, t]
        = 1` when tap t of output sub-row q reads input cell offset r (from
        the lowest) and sub-row s; the cell padding of the input; the output
        cells' size, offset and count; the output length.
    """
    p = (k - 1) // 2 if padding == "same" else 0
    out = u * n if padding == "same" else u * n - k + 1
    b_out = u * b_in

    def span(o):
        return (-o - p) // b_out, (b_out - 1 - o + k - 1 - p) // b_out

    # The last layer may start its cells anywhere (the image is cut out at the
    # end): pick the offset with the smallest kernel. Inner layers start at 0
    # so that the next layer can read their cells directly.
    o_out = min(range(b_out), key=lambda o: (span(o)[1] - span(o)[0], o)) if last else 0
    r_min, r_max = span(o_out)
    n_out = -(-(out + o_out) // b_out)
    select = np.zeros((r_max - r_min + 1, b_in, b_out, k), np.float32)
    for q in range(b_out):
        for t in range(k):
            row = (q - o_out + t - p) // u
            select[row // b_in - r_min, row % b_in, q, t] = 1.0
    return select, -r_min, (n_out - 1 + r_max) - (n_in - 1), b_out, o_out, n_out, out


class _FusedUpConv:
    """`UpSampling2D(nearest)` then `Conv2D(stride 1)` as one conv on cells (see above)."""

    def __init__(self, up, conv, layout_in: _Layout, last: bool):
        self.conv = conv
        (uh, uw), (kh, kw) = up.size, conv.kernel_size
        (h, w), self.cin = layout_in.size, layout_in.channels
        sel_h, self.pad_h, self.pad_h_hi, bh, oh, nh, out_h = _cell_axis(
            uh, kh, conv.padding, h, layout_in.bh, layout_in.nh, last
        )
        sel_w, self.pad_w, self.pad_w_hi, bw, ow, nw, out_w = _cell_axis(
            uw, kw, conv.padding, w, layout_in.bw, layout_in.nw, last
        )
        self.sel_h, self.sel_w = tf.constant(sel_h), tf.constant(sel_w)
        self.layout = _Layout((bh, bw), (oh, ow), (nh, nw), (out_h, out_w), conv.filters)
        self.cells_in = layout_in.bh * layout_in.bw * self.cin

    def linear(self, x):
        """Cells in -> cells out (`self.layout`), the convolution alone (no bias, no activation)."""
        kernel = tf.cast(self.conv.kernel, x.dtype)  # float64 for the exact path's unperturbed pass
        sel_h, sel_w = tf.cast(self.sel_h, x.dtype), tf.cast(self.sel_w, x.dtype)
        w = tf.einsum("rsqt,RSQT,tTio->rRsSiqQo", sel_h, sel_w, kernel)
        w = tf.reshape(w, (self.sel_h.shape[0], self.sel_w.shape[0], self.cells_in, self.layout.shape[-1]))
        x = tf.pad(x, [[0, 0], [self.pad_h, max(self.pad_h_hi, 0)], [self.pad_w, max(self.pad_w_hi, 0)], [0, 0]])
        if self.pad_h_hi < 0 or self.pad_w_hi < 0:
            x = x[:, : x.shape[1] + min(self.pad_h_hi, 0), : x.shape[2] + min(self.pad_w_hi, 0), :]
        return tf.nn.conv2d(x, w, strides=1, padding="VALID")

    @property
    def bias(self):
        """The bias per output cell channel, or None."""
        if self.conv.bias is None:
            return None
        return tf.tile(tf.convert_to_tensor(self.conv.bias), [self.layout.bh * self.layout.bw])

    @property
    def activation(self):
        return self.conv.activation

    def __call__(self, x):
        """Cells in -> cells out (`self.layout`), bias and activation applied."""
        y = self.linear(x)
        if self.conv.bias is not None:
            y = tf.nn.bias_add(y, self.bias)
        return self.conv.activation(y)


def _fusable(up, conv):
    return (
        type(up) is keras.layers.UpSampling2D
        and type(conv) is keras.layers.Conv2D
        and up.interpolation == "nearest"
        and up.data_format == "channels_last"
        and conv.data_format == "channels_last"
        and tuple(conv.strides) == (1, 1)
        and tuple(conv.dilation_rate) == (1, 1)
        and conv.groups == 1
        and conv.padding in ("same", "valid")
        and not getattr(conv, "lora_enabled", False)
        and conv.compute_dtype == "float32"
        and len(up.input.shape) == 4
        and all(isinstance(d, int) for d in up.input.shape[1:])
    )


def _chain_layers(model):
    """The layers of a single-input, single-output Keras model that is a plain chain, else None."""
    if not isinstance(model, keras.Model):
        return None
    try:
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            return None
        prev, chain = model.inputs[0], []
        for layer in model.layers:
            if isinstance(layer, keras.layers.InputLayer):
                if layer.output is not prev:
                    return None
                continue
            if layer.input is not prev:
                return None
            chain.append(layer)
            prev = layer.output
        return chain if prev is model.outputs[0] else None
    except (AttributeError, ValueError, TypeError):
        return None


class _Decoder:
    """The decoder g as evaluated inside the explainer's graph.

    `internal(codes)` returns the decoder's output in an internal layout (the
    cells of a fused last layer); `to_image` maps it to `(B, *image_shape)`.
    The explainer sums changes in the internal layout (a fixed rearrangement
    of pixels commutes with |.| and sums) and rearranges once at the end.
    """

    # A fused layer reads the previous one's cells directly (no interleave)
    # when they are exact and at most this many rows high: larger cells make
    # the regrouped kernel mostly zeros.
    MAX_CELL_IN = 2

    def __init__(self, decoder, fuse, exact=False):
        self.decoder = decoder
        self.steps = None
        self.out_layout = None
        self.exact = None  # an `ExactChain` when the exact change applies
        self.exact_note = "not requested"
        self.kinks = None  # a `KinkPlan`: the exact change as a few sources, where the chain's kinks allow
        chain = _chain_layers(decoder)
        self._fuse(chain if fuse else None)
        if exact:
            found = exact_chain(self.steps if self.steps is not None else chain)
            if isinstance(found, str):
                self.exact_note = found
            else:
                self.exact, self.exact_note = found, None
                self.kinks = kink_plan(found)

    def _fuse(self, chain):
        if chain is None:
            return
        pairs = [i for i in range(len(chain) - 1) if _fusable(chain[i], chain[i + 1])]
        if not pairs:
            return
        steps, layout, i = [], None, 0
        while i < len(chain):
            if i in pairs:
                if layout is not None and not (layout.exact and max(layout.bh, layout.bw) <= self.MAX_CELL_IN):
                    steps.append(layout.to_space)
                    layout = None
                if layout is None:
                    h, w, c = chain[i].input.shape[1:]
                    layout = _Layout((1, 1), (0, 0), (h, w), (h, w), c)
                op = _FusedUpConv(chain[i], chain[i + 1], layout, i + 2 == len(chain))
                steps.append(op)
                layout = op.layout
                i += 2
            else:
                if layout is not None:
                    steps.append(layout.to_space)
                    layout = None
                steps.append(chain[i])
                i += 1
        self.steps, self.out_layout = steps, layout

    @property
    def fused(self):
        return self.steps is not None

    def internal(self, codes):
        if self.steps is None:
            return self.decoder(codes)
        x = codes
        for step in self.steps:
            x = step(x)
        return x

    def to_image(self, y):
        return y if self.out_layout is None else self.out_layout.to_space(y)

    def __call__(self, codes):
        return self.to_image(self.internal(codes))


def decoder_evaluator(decoder, fuse: bool, probe_codes, exact: bool = False) -> _Decoder:
    """The evaluation of `decoder` the explainer uses.

    With `fuse`, each `UpSampling2D(nearest) -> Conv2D` pair of a chain-shaped
    Keras decoder is evaluated as one convolution on the un-upsampled image.
    The fused evaluation is checked against the decoder itself on
    `probe_codes`; where they differ by more than 1e-4 (relative to the
    output's scale) it is dropped with a `RuntimeWarning`.

    With `exact`, the evaluator also carries changes g(h + d) - g(h) through
    the layers without subtracting two images (`siamese_xai._exact`), where
    every layer has a rule; it is checked against the decoder's own
    difference for large d on `probe_codes`. Where it does not apply, or
    disagrees, `exact` is None and `exact_note` says why.

    Args:
        decoder: g, `(B, D) -> (B, *image_shape)`.
        fuse: try the fused evaluation.
        probe_codes: `(n, D)` float32 codes to check the fusion on.
        exact: build the exact change evaluation.

    Returns:
        An object with `internal(codes)` (the output in an internal layout),
        `to_image(y)` (that layout -> `(B, *image_shape)`), `__call__`, `fused`,
        `exact` and `exact_note`.
    """
    evaluator = _Decoder(decoder, fuse, exact)
    codes = tf.constant(np.asarray(probe_codes, np.float32))
    if evaluator.fused:
        ref = to_numpy(decoder(codes))
        got = evaluator(codes).numpy()
        if ref.shape != got.shape or np.abs(ref - got).max() > 1e-4 * max(1.0, float(np.abs(ref).max())):
            warnings.warn(
                "The fused evaluation of `decoder` differs from the decoder itself; using the decoder as is.",
                RuntimeWarning,
                stacklevel=3,
            )
            evaluator = _Decoder(decoder, False, exact)
    if evaluator.exact is not None and not _exact_agrees(evaluator, decoder, codes):
        evaluator.exact = evaluator.kinks = None
        evaluator.exact_note = "its exact change differed from the decoder's own g(h + d) - g(h) on probe codes"
    if evaluator.kinks is not None:
        _image_positions(evaluator, codes.shape[1])
    if evaluator.kinks is not None and not _kinks_agree(evaluator, codes):
        evaluator.kinks = None
        warnings.warn(
            "The exact change split at the decoder's ReLU kinks differed from the layer-by-layer exact change on "
            "probe codes; using the layer-by-layer path (the same result, slower).",
            RuntimeWarning,
            stacklevel=3,
        )
    return evaluator


def _exact_agrees(evaluator, decoder, codes):
    """The exact change against the decoder's own difference, for changes large enough that rounding is small."""
    n, dim = codes.shape
    s = min(3, dim)
    rng = np.random.default_rng(1)
    basis = np.zeros((n, s, dim), np.float32)
    for i in range(n):
        basis[i, np.arange(s), rng.choice(dim, s, replace=False)] = rng.choice([-0.05, 0.05], s)
    eps = np.abs(rng.normal(size=(4, s))).astype(np.float32)
    try:
        _, terms = evaluator.exact.base(codes)
        got = evaluator.to_image(evaluator.exact.delta_from_basis(terms, tf.constant(eps), tf.constant(basis)))
        got = got.numpy().reshape(n, 4, -1)
    except Exception:  # a rule that does not fit this decoder: fall back
        return False
    d = np.einsum("ks,nsd->nkd", eps, basis)
    ref = to_numpy(decoder((codes.numpy()[:, None] + d).reshape(-1, dim))).reshape(n, 4, -1)
    ref = ref - to_numpy(decoder(codes)).reshape(n, 1, -1)
    scale = max(float(np.abs(ref).max()), 1e-12)
    return got.shape == ref.shape and float(np.abs(got - ref).max()) <= 1e-3 * scale


def _image_positions(evaluator, dim):
    """Tells `evaluator.kinks` which positions of the last step's output reach the image (the rest is padding)."""
    plan = evaluator.kinks
    x = tf.zeros((1, dim), tf.float64)
    for st in plan.chain.steps[: plan.last + 1]:
        x = st.fn(x) if st.kind != "act" else x
    size = int(np.prod(x.shape[1:]))
    y = tf.reshape(tf.range(size, dtype=tf.float64), x.shape)
    for st in plan.chain.steps[plan.last + 1 :]:
        y = st.fn(y)
    keep = np.unique(evaluator.to_image(y).numpy().astype(np.int64))
    if len(keep) < size:
        plan.keep, plan.size = keep, size


def _kinks_agree(evaluator, codes):
    """The split into sources (`siamese_xai._kinks`) against the layer-by-layer exact change, on probe codes.

    Changes of 1e-3..1e-1 of a code move many units across their kinks, so both the linear pattern and the
    crossed units are checked.
    """
    n, dim = codes.shape
    s = min(3, dim)
    rng = np.random.default_rng(2)
    basis = np.zeros((n, s, dim), np.float32)
    for i in range(n):
        basis[i, np.arange(s), rng.choice(dim, s, replace=False)] = rng.choice([-1.0, 1.0], s) * 10.0 ** -(1 + i % 3)
    eps = tf.constant(np.abs(rng.normal(size=(16, s))).astype(np.float32))
    basis = tf.constant(basis)
    try:
        prepared = evaluator.kinks.prepare(codes, basis, eps, cap=10**9)
        image = lambda sums: np.concatenate(  # noqa: E731 (padding positions of an internal layout dropped)
            [evaluator.to_image(t).numpy().reshape(n, -1) for t in sums], axis=1)
        got = image(evaluator.kinks.sums(prepared, 0, 16))
        _, terms = evaluator.exact.base(codes)
        ref = image(evaluator.exact.sums_from_basis(terms, eps, basis))
    except Exception:  # a rule that does not fit this decoder: keep the layer-by-layer path
        return False
    scale = np.maximum(np.abs(ref).max(axis=1, keepdims=True), 1e-30)
    return got.shape == ref.shape and float((np.abs(got - ref) / scale).max()) <= 1e-4
