"""An `UpSampling2D(nearest) -> Conv2D` pair evaluated as one convolution on the un-upsampled image.

`fuse(chain)` replaces each such pair of a chain of Keras layers by a
`FusedUpConv` (the same function, rounded differently) and returns the
evaluation steps and the layout of the last step's output.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

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


class Layout:
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


class FusedUpConv:
    """`UpSampling2D(nearest)` then `Conv2D(stride 1)` as one conv on cells (see above)."""

    def __init__(self, up, conv, layout_in: Layout, last: bool):
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
        self.layout = Layout((bh, bw), (oh, ow), (nh, nw), (out_h, out_w), conv.filters)
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


def fusable(up, conv):
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


# A fused layer reads the previous one's cells directly (no interleave) when
# they are exact and at most this many rows high: larger cells make the
# regrouped kernel mostly zeros.
MAX_CELL_IN = 2


def fuse(chain):
    """The evaluation steps of a chain with its fusable pairs fused, and the last step's `Layout`.

    Args:
        chain: the layers of a chain decoder (`chain_layers`), or None.

    Returns:
        `(steps, layout)`: the steps (Keras layers, `FusedUpConv`s and
        rearrangements `Layout.to_space`) and the layout of the output (None:
        the image itself); `(None, None)` where nothing is fused.
    """
    if chain is None:
        return None, None
    pairs = [i for i in range(len(chain) - 1) if fusable(chain[i], chain[i + 1])]
    if not pairs:
        return None, None
    steps, layout, i = [], None, 0
    while i < len(chain):
        if i in pairs:
            if layout is not None and not (layout.exact and max(layout.bh, layout.bw) <= MAX_CELL_IN):
                steps.append(layout.to_space)
                layout = None
            if layout is None:
                h, w, c = chain[i].input.shape[1:]
                layout = Layout((1, 1), (0, 0), (h, w), (h, w), c)
            op = FusedUpConv(chain[i], chain[i + 1], layout, i + 2 == len(chain))
            steps.append(op)
            layout = op.layout
            i += 2
        else:
            if layout is not None:
                steps.append(layout.to_space)
                layout = None
            steps.append(chain[i])
            i += 1
    return steps, layout
