"""Part 2 of the method: explaining a Siamese network's decision (see METHOD.md).

For an input x with embedding h = f(x) and a reference c (the prototype of the
class being explained, or the embedding of a second input), the explainer

1. picks J, the `s` embedding coordinates with the smallest |h_j - c_j|;
2. draws N perturbations d that are non-zero only on J, with
   `sigma = sigma_scale * min_j |h_j - c_j|` (min over all D coordinates) and,
   by default, moving h toward c: `d_j = sign(c_j - h_j) * sigma * |eps_j|`;
3. decodes g(h) and every g(h + d_i) and averages the per-pixel change
   `Delta_p = mean_i |g(h + d_i)_p - g(h)_p|` (and its signed twin);
4. returns the `q` pixels with the largest Delta_p as the explanation mask.

The Siamese network f is a black box: any callable from a batch of images to a
batch of embeddings. The decoder g must be a Keras model (or a callable of
TensorFlow tensors) from `(batch, D)` codes to `(batch, *image_shape)` images.

Random draws are stateless: the `|eps|` block of an explanation is
`abs(tf.random.stateless_normal([N, s], seed=[seed, 0], alg="philox"))`, the
same block for every input of a batch. So the same seed gives the same
explanation, in a batch or alone, whatever the chunk size, and both methods
(`"mc"`, `"linear"`) and the exported SavedModel see the same draws.

Edge cases (each tested):
- sigma = 0 (h_j == c_j for some j, e.g. a pair of identical images): the
  perturbations are zero, so is the change; the mask is empty and a
  `RuntimeWarning` names the inputs. Under `"toward_prototype"`, a coordinate
  of J with h_j == c_j is not moved (its sign is 0).
- `s` > D or `q` > pixels: `ValueError` when the explainer is built.
- images: float in [0, 1] or uint8 (scaled by 1/255), with or without a
  trailing 1-channel axis; another shape or dtype, NaN / inf, or floats
  outside [0, 1] raise an error naming the argument.
- an empty batch gives an empty list, without calling `embed`.
- an embedding length that differs from the decoder's input or the
  prototypes' width: `ValueError` when the explainer is built where it can be
  checked (Keras models), else on the first call.

Precision: sigma is small, so the image changes are small (often 1e-4..1e-2)
and `"mc"`, which subtracts two float32 decoder outputs, carries rounding of
about 1e-7 / change (1e-5..1e-3 relative). `"linear"` does not subtract.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from siamese_xai import runs
from siamese_xai.prototypes import compute_prototypes, nearest_prototype

DIRECTIONS = ("toward_prototype", "positive")
METHODS = ("mc", "linear")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _check_positive_int(name, value):
    if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {list(choices)}. Received: {name}={value!r}")


@dataclass(frozen=True)
class ExplainConfig:
    """Parameters of the explanation (Part 2 of the method).

    Attributes:
        n_perturbations: N, perturbations per explanation (the paper's 5000).
        s: how many embedding coordinates to perturb, those closest to the
            reference (the set J). The paper gives no value for its
            experiments (its Fig. 3 shows s = 2 in two dimensions). Default 5,
            a quarter of Table 1's D = 20: enough coordinates that the mask
            does not hinge on a single decoder direction, few enough that they
            are all "close to the prototype" (the idea behind choosing J).
            Must be at most D.
        q: pixels in the explanation mask. The paper gives no value. Default
            100, about 13% of a 28x28 image: a typical MNIST digit has about
            150 ink pixels (mean intensity 0.13), so 100 pixels can mark the
            strokes that matter without covering the whole digit (the
            paper's figures show masks, not their size). Must be at most the
            image size.
        direction: `"toward_prototype"` (default, the paper's intent: "changes
            of features should be closer to the prototype"):
            `d_j = sign(c_j - h_j) * sigma * |eps_j|`; `"positive"`: the
            literal reading of "only positive perturbations",
            `d_j = +sigma * |eps_j|`.
        method: `"mc"` (default): decode all N perturbed codes (the paper).
            `"linear"`: replace the decoder by its first-order expansion at h
            (its Jacobian columns for J, by forward-mode JVPs) and average
            over the same N draws; close to `"mc"` because sigma is small.
        chunk_size: decoder rows per call in `"mc"` (and perturbations per
            block in `"linear"`); bounds memory, never changes the result
            beyond float rounding. 1000 was fastest on a 2-core CPU (see
            `benchmarks/bench_speed.py`); the Table 1 decoder then holds about
            50 MB of activations.
        sigma_scale: sigma = sigma_scale * min_j |h_j - c_j| (the paper's 0.1).
        fuse_decoder: evaluate each `UpSampling2D(nearest) -> Conv2D` pair of
            a chain-shaped Keras decoder as one convolution on the
            un-upsampled image (the same function up to float rounding, about
            3.5x faster on Table 1's decoder; other layers run as they are).
            It is checked against the decoder itself when the explainer is
            built and dropped, with a warning, if they differ by more than
            1e-4. Results with and without it agree to float rounding, which
            is about 1e-3 of the (small) mean change.
    """

    n_perturbations: int = 5000
    s: int = 5
    q: int = 100
    direction: str = "toward_prototype"
    method: str = "mc"
    chunk_size: int = 1000
    sigma_scale: float = 0.1
    fuse_decoder: bool = True

    def __post_init__(self):
        _check_positive_int("n_perturbations", self.n_perturbations)
        _check_positive_int("s", self.s)
        _check_positive_int("q", self.q)
        _check_choice("direction", self.direction, DIRECTIONS)
        _check_choice("method", self.method, METHODS)
        _check_positive_int("chunk_size", self.chunk_size)
        if (
            not isinstance(self.sigma_scale, (int, float, np.floating, np.integer))
            or isinstance(self.sigma_scale, bool)
            or not math.isfinite(self.sigma_scale)
            or not self.sigma_scale > 0
        ):
            raise ValueError(
                f"`sigma_scale` must be a positive finite number. Received: sigma_scale={self.sigma_scale!r}"
            )
        if not isinstance(self.fuse_decoder, bool):
            raise ValueError(f"`fuse_decoder` must be True or False. Received: fuse_decoder={self.fuse_decoder!r}")

    @classmethod
    def tiny(cls, **overrides) -> ExplainConfig:
        """A small variant for tests and CI (N = 128)."""
        return cls(**{"n_perturbations": 128, "chunk_size": 64, **overrides})

    def replace(self, **changes) -> ExplainConfig:
        """Returns a copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def _readonly(a, dtype=None):
    a = np.array(a, dtype=dtype, copy=True)
    a.flags.writeable = False
    return a


@dataclass(frozen=True)
class Explanation:
    """The explanation of one input (every array is read-only).

    Attributes:
        input: `(H, W, C)` float32, the explained image in [0, 1].
        reconstruction: `(H, W, C)`, g(h), the decoder's image of the embedding.
        embedding: `(D,)`, h = f(x).
        reference: `(D,)`, c: the explained class's prototype, or f(x2) for a
            pair explanation.
        predicted_class: the SNN's class of x (nearest prototype).
        distances: `(C,)` Euclidean distances from h to every prototype.
        explained_class: the class explained (`predicted_class` unless a
            target class was asked for); None for a pair explanation.
        reference_distance: ||h - c||.
        indices: `(s,)` int64, J: the perturbed embedding coordinates, by
            increasing |h_j - c_j| (ties: lower index first).
        sigma: the perturbations' scale, `sigma_scale * min_j |h_j - c_j|`.
        mean_abs_change: `(H, W, C)` float32, Delta_p = mean_i |g(h + d_i)_p - g(h)_p|.
        mean_signed_change: `(H, W, C)` float32, mean_i (g(h + d_i)_p - g(h)_p):
            positive where moving toward c brightens a pixel, negative where it
            darkens it.
        mask: `(H, W, C)` bool, the q pixels with the largest Delta_p (ties:
            lower flat index first). Pixels with Delta_p == 0 are never in the
            mask, so it holds fewer than q pixels when fewer change (none when
            sigma == 0).
        n_perturbations, s, q, direction, method, sigma_scale: the parameters used.
        seed: the seed of the perturbation draws.
    """

    input: np.ndarray
    reconstruction: np.ndarray
    embedding: np.ndarray
    reference: np.ndarray
    predicted_class: int
    distances: np.ndarray
    explained_class: int | None
    reference_distance: float
    indices: np.ndarray
    sigma: float
    mean_abs_change: np.ndarray
    mean_signed_change: np.ndarray
    mask: np.ndarray
    n_perturbations: int
    s: int
    q: int
    direction: str
    method: str
    sigma_scale: float
    seed: int

    def __post_init__(self):
        for name in (
            "input",
            "reconstruction",
            "embedding",
            "reference",
            "distances",
            "indices",
            "mean_abs_change",
            "mean_signed_change",
            "mask",
        ):
            a = getattr(self, name)
            if not isinstance(a, np.ndarray) or a.flags.writeable:
                object.__setattr__(self, name, _readonly(a))


# ---------------------------------------------------------------------------
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

    def __call__(self, x):
        """Cells in -> cells out (`self.layout`), bias and activation applied."""
        kernel = tf.convert_to_tensor(self.conv.kernel)
        w = tf.einsum("rsqt,RSQT,tTio->rRsSiqQo", self.sel_h, self.sel_w, kernel)
        w = tf.reshape(w, (self.sel_h.shape[0], self.sel_w.shape[0], self.cells_in, self.layout.shape[-1]))
        x = tf.pad(x, [[0, 0], [self.pad_h, max(self.pad_h_hi, 0)], [self.pad_w, max(self.pad_w_hi, 0)], [0, 0]])
        if self.pad_h_hi < 0 or self.pad_w_hi < 0:
            x = x[:, : x.shape[1] + min(self.pad_h_hi, 0), : x.shape[2] + min(self.pad_w_hi, 0), :]
        y = tf.nn.conv2d(x, w, strides=1, padding="VALID")
        if self.conv.bias is not None:
            y = tf.nn.bias_add(y, tf.tile(tf.convert_to_tensor(self.conv.bias), [self.layout.bh * self.layout.bw]))
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

    def __init__(self, decoder, fuse):
        self.decoder = decoder
        self.steps = None
        self.out_layout = None
        chain = _chain_layers(decoder) if fuse else None
        if chain is None:
            return
        pairs = [i for i in range(len(chain) - 1) if _fusable(chain[i], chain[i + 1])]
        if not pairs:
            return
        steps, layout, i = [], None, 0
        while i < len(chain):
            if i in pairs:
                last = i + 2 == len(chain)
                if layout is not None and not (layout.exact and max(layout.bh, layout.bw) <= self.MAX_CELL_IN):
                    steps.append(layout.to_space)
                    layout = None
                if layout is None:
                    h, w, c = chain[i].input.shape[1:]
                    layout = _Layout((1, 1), (0, 0), (h, w), (h, w), c)
                op = _FusedUpConv(chain[i], chain[i + 1], layout, last)
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


# ---------------------------------------------------------------------------
# Input checks.


def _to_numpy(x):
    if hasattr(x, "numpy") and callable(x.numpy):  # tf.Tensor, tf.Variable
        x = x.numpy()
    return np.asarray(x)


def _scale_images(x, name):
    """uint8 -> float32 / 255; floats are checked to be finite and in [0, 1]."""
    x = _to_numpy(x)
    if x.dtype == np.uint8:
        return x.astype(np.float32) / np.float32(255.0)
    if x.dtype.kind != "f":
        raise TypeError(
            f"`{name}` must be a float array with values in [0, 1] or a uint8 array in [0, 255]. "
            f"Received: {name}.dtype={x.dtype}"
        )
    bad = ~np.isfinite(x)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"`{name}` must be finite. Received: {int(bad.sum())} NaN or inf values (the first at index {first})"
        )
    if x.size and (x.min() < 0 or x.max() > 1):
        raise ValueError(
            f"`{name}` must hold values in [0, 1] (uint8 images in [0, 255] are scaled by 1/255). "
            f"Received: values in [{float(x.min()):g}, {float(x.max()):g}]"
        )
    return x.astype(np.float32, copy=False)


def _check_images(x, image_shape, name, single):
    """Validates and converts images to float32 in [0, 1].

    Args:
        x: one image `image_shape` (or without its trailing 1-channel axis)
            when `single`, else a batch `(B, *image_shape)`.
        image_shape: the decoder's output shape, e.g. `(28, 28, 1)`.
        name: the argument's name, for errors.
        single: whether `x` is one image.

    Returns:
        `(B, *image_shape)` float32 (B = 1 when `single`).
    """
    x = _to_numpy(x)
    shapes = [tuple(image_shape)]
    if len(image_shape) > 1 and image_shape[-1] == 1:
        shapes.append(tuple(image_shape[:-1]))
    got = x.shape if single else x.shape[1:]
    if (not single and x.ndim == 0) or got not in shapes:
        want = " or ".join(str(s) if single else str(("B",) + s).replace("'", "") for s in shapes)
        raise ValueError(f"`{name}` must have shape {want}. Received: {name}.shape={x.shape}")
    x = _scale_images(x, name)
    return x.reshape((1 if single else x.shape[0],) + tuple(image_shape))


def _check_seed(seed):
    if (
        not isinstance(seed, (int, np.integer))
        or isinstance(seed, (bool, np.bool_))
        or not _INT64_MIN <= int(seed) <= _INT64_MAX
    ):
        raise ValueError(f"`seed` must be an integer in the int64 range. Received: seed={seed!r}")
    return int(seed)


def _output_dim(model):
    try:
        shape = model.output_shape
    except (AttributeError, ValueError, RuntimeError):
        return None
    if isinstance(shape, tuple) and shape and isinstance(shape[-1], (int, type(None))):
        return shape
    return None


# ---------------------------------------------------------------------------


class SiameseExplainer:
    """Explains a Siamese network's decisions with perturbed embeddings and a decoder.

    Example:
        explainer = SiameseExplainer.from_run("runs/paper")
        e = explainer.explain(x_test[0])          # x: (28, 28, 1) in [0, 1] or uint8
        e.predicted_class, e.mask.sum()

    Args:
        embed: the black box f: a callable from a float32 array
            `(B, *image_shape)` in [0, 1] to `(B, D)` embeddings (a Keras model,
            a SavedModel signature wrapped to take one positional array, or a
            NumPy function; a single-entry dict output is unwrapped). It is
            called once per `explain*` call, on all the inputs at once, and
            never looked into. Its output length is checked against D here
            when it is a Keras model, otherwise on every call.
        decoder: g: a Keras model (or a callable of TensorFlow tensors, which
            `"linear"` differentiates) from `(B, D)` float32 codes to
            `(B, *image_shape)`; its output shape defines `image_shape`.
        prototypes: `(C, D)` finite class prototypes in f's embedding space.
        config: an `ExplainConfig`; defaults to the paper's parameters.

    Raises:
        ValueError: the prototypes, decoder and embed disagree on D, `s > D`,
            or `q` exceeds the image size.
    """

    def __init__(self, embed, decoder, prototypes, config: ExplainConfig | None = None):
        if config is None:
            config = ExplainConfig()
        if not isinstance(config, ExplainConfig):
            raise TypeError(f"`config` must be an ExplainConfig. Received: config={config!r}")
        if not callable(embed):
            raise TypeError(f"`embed` must be callable. Received: embed={embed!r}")
        if not callable(decoder):
            raise TypeError(f"`decoder` must be callable. Received: decoder={decoder!r}")
        p = _to_numpy(prototypes)
        if p.ndim != 2 or p.shape[0] < 1 or p.shape[1] < 1 or p.dtype.kind not in "fiu":
            raise ValueError(
                "`prototypes` must be a 2-D numeric array (C, D). "
                f"Received: prototypes.shape={p.shape}, dtype={p.dtype}"
            )
        p = p.astype(np.float32)
        if not np.isfinite(p).all():
            raise ValueError("`prototypes` must be finite. Received: NaN or inf values")
        num_classes, dim = p.shape

        dec_in = getattr(decoder, "input_shape", None)
        if isinstance(dec_in, tuple) and dec_in and dec_in[-1] is not None and dec_in[-1] != dim:
            raise ValueError(
                f"`decoder` must take codes of length D={dim}, the prototypes' width. "
                f"Received: decoder input shape {dec_in}"
            )
        emb_out = _output_dim(embed)
        if emb_out is not None and emb_out[-1] is not None and (len(emb_out) != 2 or emb_out[-1] != dim):
            raise ValueError(
                f"`embed` must return embeddings of shape (B, D) with D={dim}, the prototypes' width. "
                f"Received: embed output shape {emb_out}"
            )
        try:
            probe = _to_numpy(decoder(tf.zeros((1, dim), tf.float32)))
        except Exception as err:  # any failure here means g cannot take these codes
            raise ValueError(
                f"`decoder` must map (B, D={dim}) float32 codes to images. Received: an error on a (1, {dim}) "
                f"input: {err}"
            ) from err
        if probe.ndim < 2 or probe.shape[0] != 1:
            raise ValueError(
                f"`decoder` must map (B, D) codes to (B, *image_shape) images. Received: output shape {probe.shape}"
            )
        image_shape = tuple(int(d) for d in probe.shape[1:])
        size = int(np.prod(image_shape))
        emb_in = getattr(embed, "input_shape", None)
        known = isinstance(emb_in, tuple) and len(emb_in) > 1 and all(d is not None for d in emb_in[1:])
        if known and tuple(emb_in[1:]) != image_shape:
            raise ValueError(
                f"`embed` must take images of the decoder's output shape {image_shape}. "
                f"Received: embed input shape {emb_in}"
            )
        if config.s > dim:
            raise ValueError(f"`s` must be at most the embedding length D={dim}. Received: s={config.s}")
        if config.q > size:
            raise ValueError(
                f"`q` must be at most the number of pixels {size} (image shape {image_shape}). Received: q={config.q}"
            )

        self._embed, self._decoder, self._config = embed, decoder, config
        # A Keras model is still called as a black box, through a tf.function:
        # same result, without eager Keras's per-call overhead (~4 ms).
        self._embed_fn = tf.function(embed, reduce_retracing=True) if isinstance(embed, keras.Model) else embed
        self._prototypes = _readonly(p)
        self._num_classes, self._dim = num_classes, dim
        self._image_shape, self._size = image_shape, size
        self._dec = _Decoder(decoder, config.fuse_decoder)
        if self._dec.fused and not self._fused_matches(p):
            warnings.warn(
                "The fused evaluation of `decoder` differs from the decoder itself; using the decoder as is.",
                RuntimeWarning,
                stacklevel=2,
            )
            self._dec = _Decoder(decoder, fuse=False)
        self._internal_shape = tuple(self._dec.internal(tf.zeros((1, dim), tf.float32)).shape[1:])
        self._core = tf.function(
            self._graph,
            input_signature=[
                tf.TensorSpec((None, dim), tf.float32, name="embeddings"),
                tf.TensorSpec((None, dim), tf.float32, name="references"),
                tf.TensorSpec((), tf.int64, name="seed"),
            ],
        )

    def _fused_matches(self, prototypes):
        rng = np.random.default_rng(0)
        scale = prototypes.std() + 1.0
        codes = prototypes[rng.integers(0, len(prototypes), 16)] + rng.normal(0, scale, (16, self._dim))
        codes = tf.constant(codes.astype(np.float32))
        ref = _to_numpy(self._decoder(codes))
        got = self._dec(codes).numpy()
        return ref.shape == got.shape and np.abs(ref - got).max() <= 1e-4 * max(1.0, float(np.abs(ref).max()))

    # -- constructors -------------------------------------------------------

    @classmethod
    def from_run(cls, path, config: ExplainConfig | None = None) -> SiameseExplainer:
        """Builds the explainer from a run folder.

        Args:
            path: a folder holding `snn.keras` (f), `decoder.keras` (g) and
                `prototypes.npy` (`(C, D)`); other files are ignored.
            config: an `ExplainConfig`; defaults to the paper's.

        Raises:
            FileNotFoundError: a file is missing (named in the message).
            ValueError: a file cannot be read (named in the message).
        """
        run = runs.load_run(path)
        return cls(run.embed, run.decoder, run.prototypes, config)

    @classmethod
    def from_data(
        cls,
        embed,
        decoder,
        x,
        y,
        config: ExplainConfig | None = None,
        *,
        num_classes: int | None = None,
        batch_size: int = 1024,
    ) -> SiameseExplainer:
        """Builds the explainer with prototypes computed from training data.

        c_k is the mean of f(x_i) over the training examples of class k.

        Args:
            embed, decoder: as in the constructor.
            x: `(n, *image_shape)` training images, float in [0, 1] or uint8.
            y: `(n,)` integer labels in [0, num_classes).
            config: an `ExplainConfig`.
            num_classes: C; defaults to `max(y) + 1`.
            batch_size: images per call of `embed`.
        """
        x = _scale_images(x, "x")
        prototypes = compute_prototypes(embed, x, y, num_classes=num_classes, batch_size=batch_size)
        return cls(embed, decoder, prototypes, config)

    def replace(self, **config_changes) -> SiameseExplainer:
        """A new explainer around the same networks and prototypes, with some config fields changed."""
        return type(self)(self._embed, self._decoder, self._prototypes, self._config.replace(**config_changes))

    # -- properties ---------------------------------------------------------

    @property
    def embed(self):
        """The black-box embedding f."""
        return self._embed

    @property
    def decoder(self):
        """The decoder g."""
        return self._decoder

    @property
    def prototypes(self) -> np.ndarray:
        """`(C, D)` float32 prototypes (read-only)."""
        return self._prototypes

    @property
    def config(self) -> ExplainConfig:
        return self._config

    @property
    def embedding_dim(self) -> int:
        """D."""
        return self._dim

    @property
    def num_classes(self) -> int:
        """C."""
        return self._num_classes

    @property
    def image_shape(self) -> tuple:
        """The shape of one image, the decoder's output shape."""
        return self._image_shape

    @property
    def decoder_fused(self) -> bool:
        """Whether the fused (sub-pixel) evaluation of the decoder is in use."""
        return self._dec.fused

    # -- explanations -------------------------------------------------------

    def explain(self, x, target_class: int | None = None, seed: int = 0) -> Explanation:
        """Explains the SNN's class of one image (or, with `target_class`, "why class j?").

        Args:
            x: one image, `image_shape` (e.g. `(28, 28, 1)`, or `(28, 28)`),
                float in [0, 1] or uint8 in [0, 255] (scaled by 1/255).
            target_class: the class to explain; defaults to the SNN's own
                (nearest-prototype) class.
            seed: seed of the perturbation draws.

        Returns:
            An `Explanation`.

        Raises:
            ValueError, TypeError: a bad argument (named in the message).
        """
        xs = _check_images(x, self._image_shape, "x", single=True)
        return self._explain(xs, target_class, seed)[0]

    def explain_batch(self, xs, target_class=None, seed: int = 0) -> list[Explanation]:
        """Explains B images at once; item b equals `explain(xs[b], ..., seed=seed)`.

        Every input uses the same perturbation draws (seeded by `seed` only),
        so the result of an input does not depend on the rest of the batch
        (bit for bit when `embed` returns the same embedding for an input in
        any batch; the explanation magnifies an embedding's rounding by about
        1 / sigma). `embed` is called once, on the whole batch.

        Args:
            xs: `(B, *image_shape)` (or `(B, 28, 28)` for one channel), float
                in [0, 1] or uint8. An empty batch (B = 0) gives an empty list
                without calling `embed`.
            target_class: None (each input's own class), one class for all,
                or a sequence of B classes.
            seed: seed of the perturbation draws.

        Returns:
            A list of B `Explanation`s.
        """
        xs = _check_images(xs, self._image_shape, "xs", single=False)
        return self._explain(xs, target_class, seed)

    def explain_pair(self, x1, x2, seed: int = 0) -> Explanation:
        """Explains why the network finds x1 close to (or far from) x2.

        The method runs with f(x2) in place of the prototype: J are the
        coordinates where f(x1) is closest to f(x2), and the perturbations
        move f(x1) toward f(x2). `embed` is called once, on both images.

        Args:
            x1: the explained image, as in `explain`.
            x2: the reference image, same shape rules.
            seed: seed of the perturbation draws.

        Returns:
            An `Explanation` of x1 with `reference` = f(x2),
            `reference_distance` = ||f(x1) - f(x2)|| and `explained_class` None.
        """
        a = _check_images(x1, self._image_shape, "x1", single=True)
        b = _check_images(x2, self._image_shape, "x2", single=True)
        seed = _check_seed(seed)
        h = self._call_embed(np.concatenate([a, b]))
        classes, distances = nearest_prototype(h[:1], self._prototypes)
        return self._finish(a, h[:1], h[1:], classes, distances, [None], seed)[0]

    def _explain(self, xs, target_class, seed):
        seed = _check_seed(seed)
        targets = self._check_targets(target_class, len(xs))
        if len(xs) == 0:
            return []
        h = self._call_embed(xs)
        classes, distances = nearest_prototype(h, self._prototypes)
        explained = [int(c) if t is None else t for c, t in zip(classes, targets)]
        reference = self._prototypes[np.asarray(explained, dtype=np.int64)]
        return self._finish(xs, h, reference, classes, distances, explained, seed)

    def _check_targets(self, target_class, batch):
        def one(t):
            if t is None:
                return None
            if (
                not isinstance(t, (int, np.integer))
                or isinstance(t, (bool, np.bool_))
                or not 0 <= int(t) < self._num_classes
            ):
                raise ValueError(
                    f"`target_class` must be None or an integer in [0, {self._num_classes}). "
                    f"Received: target_class={t!r}"
                )
            return int(t)

        if target_class is None or isinstance(target_class, (int, np.integer, str, bytes)):
            return [one(target_class)] * batch
        try:
            targets = list(target_class)
        except TypeError:
            return [one(target_class)] * batch  # not a sequence: `one` says why
        if len(targets) != batch:
            raise ValueError(
                f"`target_class` must be None, one class, or one class per input ({batch}). "
                f"Received: {len(targets)} classes"
            )
        return [one(t) for t in targets]

    def _call_embed(self, xs):
        out = self._embed_fn(tf.constant(xs) if self._embed_fn is not self._embed else xs)
        if isinstance(out, dict):
            if len(out) != 1:
                raise ValueError(
                    f"`embed` must return one array (or a dict with one entry). Received: a dict with keys {sorted(out)}"
                )
            out = next(iter(out.values()))
        h = _to_numpy(out)
        if h.shape != (len(xs), self._dim):
            raise ValueError(
                f"`embed` must return one embedding of length D={self._dim} (the decoder's input length and "
                f"the prototypes' width) per input, shape {(len(xs), self._dim)}. Received: shape {h.shape}"
            )
        h = h.astype(np.float32)
        bad = ~np.isfinite(h).all(axis=1)
        if bad.any():
            raise ValueError(
                f"`embed` must return finite embeddings. Received: NaN or inf for inputs {np.flatnonzero(bad).tolist()}"
            )
        return h

    def _finish(self, xs, h, reference, classes, distances, explained, seed):
        out = {k: v.numpy() for k, v in self._core(tf.constant(h), tf.constant(reference, tf.float32), seed).items()}
        zero = np.flatnonzero(out["sigma"] == 0)
        if zero.size:
            warnings.warn(
                f"sigma = 0 for inputs {zero.tolist()}: some h_j equals c_j exactly, so the perturbations are zero "
                "and so is the explanation (empty mask).",
                RuntimeWarning,
                stacklevel=3,
            )
        cfg = self._config
        results = []
        for b in range(len(xs)):
            results.append(
                Explanation(
                    input=_readonly(xs[b]),
                    reconstruction=_readonly(out["reconstruction"][b]),
                    embedding=_readonly(h[b]),
                    reference=_readonly(reference[b], np.float32),
                    predicted_class=int(classes[b]),
                    distances=_readonly(distances[b]),
                    explained_class=explained[b],
                    reference_distance=float(out["reference_distance"][b]),
                    indices=_readonly(out["indices"][b], np.int64),
                    sigma=float(out["sigma"][b]),
                    mean_abs_change=_readonly(out["mean_abs_change"][b]),
                    mean_signed_change=_readonly(out["mean_signed_change"][b]),
                    mask=_readonly(out["mask"][b]),
                    n_perturbations=cfg.n_perturbations,
                    s=cfg.s,
                    q=cfg.q,
                    direction=cfg.direction,
                    method=cfg.method,
                    sigma_scale=float(cfg.sigma_scale),
                    seed=seed,
                )
            )
        return results

    # -- the graph ----------------------------------------------------------

    def _perturbation_draws(self, seed):
        """`(N, s)` |eps|, the same block for every input (see the module docstring)."""
        cfg = self._config
        seeds = tf.stack([tf.cast(seed, tf.int64), tf.constant(0, tf.int64)])
        eps = tf.random.stateless_normal([cfg.n_perturbations, cfg.s], seed=seeds, alg="philox")
        return tf.abs(eps)

    def _group_sums(self, hg, bg, eps, n, num_chunks):
        """Sums of |change| and change over all N perturbations, for a group of G inputs.

        Args:
            hg: `(G, D)` embeddings.
            bg: `(G, s, D)` code change per unit |eps_j|.
            eps: `(N, s)` |eps|.
            n: perturbations per block.
            num_chunks: blocks, ceil(N / n).

        Returns:
            `(x0, sum_abs, sum_signed)`, each `(G, P)` in the internal layout.
        """
        cfg, dim, s = self._config, self._dim, self._config.s
        g = tf.shape(hg)[0]
        x0 = tf.reshape(self._dec.internal(hg), (g, -1))
        if cfg.method == "linear":
            codes = tf.repeat(hg, s, axis=0)
            with tf.autodiff.ForwardAccumulator(codes, tf.reshape(bg, (-1, dim))) as acc:
                y = self._dec.internal(codes)
            # cols[g, j] = sigma * sign_j * dg/dh_{J_j}: the change per unit |eps_j|, to first order.
            cols = tf.reshape(acc.jvp(y, unconnected_gradients=tf.UnconnectedGradients.ZERO), (g, s, -1))
        sum_abs = tf.zeros_like(x0)
        sum_sgn = tf.zeros_like(x0)
        for k in tf.range(num_chunks):
            e = eps[k * n : (k + 1) * n][None]  # (1, n, s), broadcast over the group
            if cfg.method == "mc":
                codes = hg[:, None, :] + tf.matmul(e, bg)
                y = self._dec.internal(tf.reshape(codes, (-1, dim)))
                diff = tf.reshape(y, (g, tf.shape(e)[1], -1)) - x0[:, None, :]
                sum_sgn += tf.reduce_sum(diff, axis=1)
            else:
                diff = tf.matmul(e, cols)
            sum_abs += tf.reduce_sum(tf.abs(diff), axis=1)
        if cfg.method == "linear":
            # The signed change is linear in eps: its sum needs no N x P matrix.
            sum_sgn = tf.matmul(tf.reduce_sum(eps, axis=0)[None, None], cols)[:, 0]
        return x0, sum_abs, sum_sgn

    def _graph(self, h, c, seed):
        """Perturb, decode and average, for B embeddings with their references.

        Inputs are processed in tiles of G inputs x n perturbations (G * n <=
        chunk_size, n <= N), so memory stays bounded whatever B and N are, and
        the per-input draws do not depend on the tiling.

        Args:
            h: `(B, D)` embeddings.
            c: `(B, D)` references (prototypes or f(x2)).
            seed: scalar int64.

        Returns:
            A dict of `(B, ...)` tensors: indices, sigma, reference_distance,
            reconstruction, mean_abs_change, mean_signed_change, mask.
        """
        cfg = self._config
        n_all, s, dim = cfg.n_perturbations, cfg.s, self._dim
        n = min(n_all, cfg.chunk_size)
        group = max(1, cfg.chunk_size // n_all)
        num_chunks = -(-n_all // n)

        dist = tf.abs(h - c)
        _, idx = tf.math.top_k(-dist, k=s)  # smallest |h_j - c_j|; ties: lower index first
        sigma = tf.cast(cfg.sigma_scale, tf.float32) * tf.reduce_min(dist, axis=1)
        if cfg.direction == "toward_prototype":
            sign = tf.sign(tf.gather(c, idx, batch_dims=1) - tf.gather(h, idx, batch_dims=1))
        else:
            sign = tf.ones_like(idx, dtype=tf.float32)
        # basis[b, j] is the code change per unit |eps_j|: d = |eps| @ basis[b].
        basis = (sigma[:, None] * sign)[:, :, None] * tf.one_hot(idx, dim, dtype=tf.float32)
        eps = self._perturbation_draws(seed)

        batch = tf.shape(h)[0]
        num_groups = (batch + group - 1) // group
        internal_shape = self._internal_shape
        ta_x0 = tf.TensorArray(tf.float32, size=num_groups, infer_shape=False)
        ta_abs = tf.TensorArray(tf.float32, size=num_groups, infer_shape=False)
        ta_sgn = tf.TensorArray(tf.float32, size=num_groups, infer_shape=False)
        for gi in tf.range(num_groups):
            g0 = gi * group
            g1 = tf.minimum(batch, g0 + group)
            x0_flat, acc_abs, acc_sgn = self._group_sums(h[g0:g1], basis[g0:g1], eps, n, num_chunks)
            ta_x0 = ta_x0.write(gi, x0_flat)
            ta_abs = ta_abs.write(gi, acc_abs)
            ta_sgn = ta_sgn.write(gi, acc_sgn)

        nonzero = tf.cast(sigma > 0, tf.float32)[:, None]  # sigma == 0: no perturbation, no change

        def image(ta, scale=None):
            flat = ta.concat()
            if scale is not None:
                flat = flat * scale
            return self._dec.to_image(tf.reshape(flat, (-1,) + tuple(internal_shape)))

        x0 = image(ta_x0)
        mean_abs = image(ta_abs, nonzero / n_all)
        mean_sgn = image(ta_sgn, nonzero / n_all)
        flat = tf.reshape(mean_abs, (batch, -1))
        _, top = tf.math.top_k(flat, k=cfg.q)  # ties: lower index first
        in_top = tf.reduce_any(tf.equal(top[:, :, None], tf.range(self._size)[None, None, :]), axis=1)
        mask = tf.reshape(tf.logical_and(in_top, flat > 0), tf.shape(mean_abs))
        return {
            "indices": idx,
            "sigma": sigma,
            "reference_distance": tf.norm(h - c, axis=1),
            "reconstruction": x0,
            "mean_abs_change": mean_abs,
            "mean_signed_change": mean_sgn,
            "mask": mask,
        }
