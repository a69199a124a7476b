"""Exact changes g(h + d) - g(h) of a chain decoder, carried through it layer by layer.

At the paper's sigma (often 1e-5..1e-4 of |h|) the perturbed and unperturbed
decodings agree to 4 or 5 digits, so subtracting two float32 images loses a
few percent of the weaker changes (and h + d itself, rounded to float32,
loses about 1e-7 / (sigma |eps|) of d). Here the change is carried instead:

- an affine layer (Dense, Conv2D, a fused upsampling + conv) maps the input
  change dx to `linear(dx)` (no bias);
- a shape layer (Reshape, Flatten, UpSampling2D, the cell rearrangements)
  maps dx like x;
- ReLU: `relu(z + dz) - relu(z) = max(dz, -z) + min(z, 0)` (exact where
  z >= 0; where z < 0 it is `max(z + dz, 0)`, a rounding of the result);
- sigmoid: `sigmoid(z + dz) - sigmoid(z) = sigmoid(z + dz) * sigmoid(-z) * -expm1(-dz)`;
- the identity (linear activation): dz.

Every term's rounding is relative to the change, never to the image, so the
result equals a float64 evaluation of g(h + d) - g(h) to float32 precision.
The unperturbed pre-activations z are computed once per input and broadcast
over its perturbations.

`exact_chain(decoder_eval, decoder)` returns the evaluation, or a string
naming why it does not apply (a layer it does not know, a graph that is not a
chain); the caller falls back to the subtraction.
"""

from __future__ import annotations

import functools

import keras
import numpy as np
import tensorflow as tf

_ACTIVATIONS = {"relu", "sigmoid", "linear"}


def _act_name(fn):
    for name in _ACTIVATIONS:
        if fn is getattr(keras.activations, name):
            return name
    return None


def _plain_float32(layer):
    return layer.compute_dtype == "float32" and not getattr(layer, "lora_enabled", False) and \
        getattr(layer, "quantization_mode", None) is None


class _Step:
    """One stage of the chain: `kind` is "affine" (linear + bias, then activation), "shape" or "act"."""

    def __init__(self, kind, fn=None, bias=None, act="linear", name=""):
        self.kind, self.fn, self.bias, self.act, self.name = kind, fn, bias, act, name


def _step_of(step):
    """The `_Step` of one evaluation step (a Keras layer, a fused op or a rearrangement), or an error string."""
    from siamese_xai._fusion import _FusedUpConv  # noqa: PLC0415 (circular at import time)

    if isinstance(step, _FusedUpConv):
        act = _act_name(step.activation)
        if act is None:
            return f"fused conv '{step.conv.name}' has activation {step.activation!r}"
        return _Step("affine", step.linear, (lambda s=step: s.bias) if step.conv.bias is not None else None, act,
                     step.conv.name)
    if not isinstance(step, keras.layers.Layer):
        return _Step("shape", step, name=getattr(step, "__name__", "rearrangement"))
    layer, kind = step, type(step)
    if kind is keras.layers.Dense and _plain_float32(layer) and len(layer.input.shape) == 2:
        act = _act_name(layer.activation)
        if act is not None:
            return _Step("affine", lambda x, l=layer: tf.matmul(x, tf.cast(l.kernel, x.dtype)),
                         (lambda l=layer: l.bias) if layer.use_bias else None, act, layer.name)
    elif kind is keras.layers.Conv2D and _plain_float32(layer) and layer.data_format == "channels_last" \
            and layer.groups == 1 and layer.padding in ("same", "valid"):
        act = _act_name(layer.activation)
        if act is not None:
            def conv(x, l=layer):
                return tf.nn.conv2d(x, tf.cast(l.kernel, x.dtype), strides=l.strides, padding=l.padding.upper(),
                                    dilations=l.dilation_rate)
            return _Step("affine", conv, (lambda l=layer: l.bias) if layer.use_bias else None, act, layer.name)
    elif kind in (keras.layers.Reshape, keras.layers.Flatten):
        shape = tuple(layer.output.shape[1:])
        if all(isinstance(d, int) for d in shape):
            return _Step("shape", lambda x, shape=shape: tf.reshape(x, (-1,) + shape), name=layer.name)
    elif kind is keras.layers.UpSampling2D and layer.interpolation == "nearest" and \
            layer.data_format == "channels_last":
        def up(x, size=tuple(layer.size)):  # not the layer: it would cast a float64 input to float32
            return tf.repeat(tf.repeat(x, size[0], axis=1), size[1], axis=2)
        return _Step("shape", up, name=layer.name)
    elif kind is keras.layers.Activation:
        act = _act_name(layer.activation)
        if act is not None:
            return _Step("act", act=act, name=layer.name)
    elif kind is keras.layers.ReLU and layer.max_value is None and float(layer.negative_slope) == 0 \
            and float(layer.threshold) == 0:
        return _Step("act", act="relu", name=layer.name)
    return f"layer '{layer.name}' ({kind.__name__}) has no exact change rule"


# The elementwise rules are XLA-compiled (one pass over memory instead of two
# to five; the convolutions stay with TensorFlow's kernels, which XLA's CPU
# backend runs slower). Module-level functions with `reduce_retracing`: every
# layer of a decoder has its own shape, so a trace per shape would be retraced
# once per layer and per tile size; after the first retrace the trace is
# generalised to unknown dimensions (one per rank). XLA still compiles each
# concrete shape once and caches it, so this changes no result.
_xla = functools.partial(tf.function, jit_compile=True, reduce_retracing=True)


@_xla
def _relu_delta(dzg, neg_z, min_z):
    return tf.maximum(dzg, neg_z) + min_z


def _sigmoid_rule(dzg, z, minus_sig_neg_z):
    # -sigmoid(-z) = -(1 - sigmoid(z)) is precomputed: no subtraction anywhere.
    return tf.sigmoid(z + dzg) * (tf.math.expm1(-dzg) * minus_sig_neg_z)


_sigmoid_delta = _xla(_sigmoid_rule)


@_xla
def _relu_sums(dzg, neg_z, min_z):
    y = tf.maximum(dzg, neg_z) + min_z
    return tf.reduce_sum(tf.abs(y), axis=1), tf.reduce_sum(y, axis=1)


@_xla
def _sigmoid_sums(dzg, z, minus_sig_neg_z):
    y = _sigmoid_rule(dzg, z, minus_sig_neg_z)
    return tf.reduce_sum(tf.abs(y), axis=1), tf.reduce_sum(y, axis=1)


@_xla
def _linear_sums(dzg):
    return tf.reduce_sum(tf.abs(dzg), axis=1), tf.reduce_sum(dzg, axis=1)


def _grouped(dz, groups):
    """`(G * n, ...)` -> `(G, n, ...)`, against z's `(G, 1, ...)`."""
    return tf.reshape(dz, tf.concat([[groups, -1], tf.shape(dz)[1:]], 0))


def _act_delta(act, base, dz, groups):
    """act(z + dz) - act(z) without subtracting nearby numbers; `base` holds z's precomputed terms."""
    if act == "linear":
        return dz
    rule = _relu_delta if act == "relu" else _sigmoid_delta
    return tf.reshape(rule(_grouped(dz, groups), *base), tf.shape(dz))


def _act_sums(act, base, dz, groups):
    """Sums over each group's n rows of |act(z + dz) - act(z)| and of act(z + dz) - act(z): `(G, ...)` each."""
    if act == "linear":
        return _linear_sums(_grouped(dz, groups))
    rule = _relu_sums if act == "relu" else _sigmoid_sums
    return rule(_grouped(dz, groups), *base)


def _act_base(act, z):
    z = z[:, None]
    if act == "relu":
        return (-z, tf.minimum(z, 0.0))
    if act == "sigmoid":
        return (z, -tf.sigmoid(-z))
    return None


def _apply_act(act, z):
    if act == "relu":
        return tf.nn.relu(z)
    return tf.sigmoid(z) if act == "sigmoid" else z


class ExactChain:
    """The decoder as steps that carry a change exactly (see the module docstring)."""

    def __init__(self, steps, first_is_dense):
        self.steps = steps
        self.first_is_dense = first_is_dense

    def base(self, codes):
        """`(G, D)` codes -> `(output in the internal layout, per-step terms for `delta`)`, all float32.

        Computed in float64 (G rows only) and rounded once: near a ReLU's
        kink the change depends on z itself, whose float32 accumulation
        error (~1e-7 of the terms) would otherwise be of the change's size.
        """
        x, terms = tf.cast(codes, tf.float64), []
        for st in self.steps:
            if st.kind == "shape":
                terms.append(None)
                x = st.fn(x)
                continue
            z = x
            if st.kind == "affine":
                z = st.fn(x)
                if st.bias is not None:
                    z = tf.nn.bias_add(z, tf.cast(st.bias(), tf.float64))
            terms.append(_act_base(st.act, tf.cast(z, tf.float32)))
            x = _apply_act(st.act, z)
        return tf.cast(x, tf.float32), terms

    def delta(self, terms, dx, groups, start=0):
        """The exact change of the output for input changes `dx` (`(G * n, ...)`, G groups of n rows)."""
        for st, base in zip(self.steps[start:], terms[start:]):
            if st.kind == "shape":
                dx = st.fn(dx)
                continue
            if st.kind == "affine":
                dx = st.fn(dx)
            dx = _act_delta(st.act, base, dx, groups)
        return dx

    def sums_from_basis(self, terms, eps, basis):
        """Sums over the n perturbations of |change| and change, `(G, ...)` each in the internal layout.

        The same changes as `delta_from_basis`, summed inside the last
        activation's rule (the rows of changes are never written out).
        """
        last = max(i for i, st in enumerate(self.steps) if st.kind != "shape")
        groups = tf.shape(basis)[0]
        head = ExactChain(self.steps[:last], self.first_is_dense)
        st = self.steps[last]
        if last == 0:
            dx = tf.reshape(tf.matmul(eps[None], basis), (-1, basis.shape[2]))
        else:
            dx = head.delta_from_basis(terms[:last], eps, basis)
        if st.kind == "affine":
            dx = st.fn(dx)
        sums = _act_sums(st.act, terms[last], dx, groups)
        for tail in self.steps[last + 1 :]:  # rearrangements of each row commute with the sums
            sums = tuple(tail.fn(t) for t in sums)
        return sums

    def delta_from_basis(self, terms, eps, basis):
        """The change for codes `h + |eps| @ basis`, `eps` `(n, s)` shared, `basis` `(G, s, D)`.

        A first Dense layer is applied to the s basis rows once (its input
        change is non-zero along s directions only): `dz1 = |eps| @ (basis @ W1)`.

        Returns:
            `(G * n, ...)` changes in the internal layout.
        """
        groups, s, dim = tf.shape(basis)[0], basis.shape[1], basis.shape[2]
        if self.first_is_dense:
            first = self.steps[0]
            rows = tf.reshape(first.fn(tf.reshape(basis, (-1, dim))), (groups, s, -1))
            dz = tf.reshape(tf.matmul(eps[None], rows), (-1, tf.shape(rows)[-1]))
            return self.delta(terms, _act_delta(first.act, terms[0], dz, groups), groups, start=1)
        dcodes = tf.reshape(tf.matmul(eps[None], basis), (-1, dim))
        return self.delta(terms, dcodes, groups)




def exact_chain(steps):
    """An `ExactChain` over evaluation steps (Keras layers, fused ops, rearrangements), or a reason string."""
    if not steps:
        return "the decoder is not a chain of Keras layers"
    out = []
    for step in steps:
        st = _step_of(step)
        if isinstance(st, str):
            return st
        out.append(st)
    return ExactChain(out, first_is_dense=type(steps[0]) is keras.layers.Dense)


def float64_decoder(steps):
    """A float64 evaluation of the same chain (for checks): `codes -> output in the internal layout`.

    Args:
        steps: the evaluation steps of a chain decoder, all Keras layers (no fusion).
    """
    def run(codes):
        x = tf.constant(np.asarray(codes, np.float64))
        for layer in steps:
            kind = type(layer)
            if kind is keras.layers.Dense:
                x = tf.matmul(x, tf.cast(layer.kernel, tf.float64))
                if layer.use_bias:
                    x = x + tf.cast(layer.bias, tf.float64)
                x = _act64(layer.activation, x)
            elif kind is keras.layers.Conv2D:
                x = tf.nn.conv2d(x, tf.cast(layer.kernel, tf.float64), strides=layer.strides,
                                 padding=layer.padding.upper(), dilations=layer.dilation_rate)
                if layer.use_bias:
                    x = x + tf.cast(layer.bias, tf.float64)
                x = _act64(layer.activation, x)
            elif kind in (keras.layers.Reshape, keras.layers.Flatten):
                x = tf.reshape(x, (-1,) + tuple(layer.output.shape[1:]))
            elif kind is keras.layers.UpSampling2D:
                x = tf.repeat(tf.repeat(x, layer.size[0], axis=1), layer.size[1], axis=2)
            elif kind is keras.layers.Activation:
                x = _act64(layer.activation, x)
            else:
                raise ValueError(f"no float64 rule for layer '{layer.name}' ({kind.__name__})")
        return x.numpy()

    return run


def _act64(fn, x):
    name = _act_name(fn)
    if name is None:
        raise ValueError(f"no float64 rule for activation {fn!r}")
    if name == "relu":
        return tf.maximum(x, tf.constant(0.0, tf.float64))
    if name == "sigmoid":
        return 1.0 / (1.0 + tf.exp(-x))
    return x
