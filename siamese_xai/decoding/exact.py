"""Exact changes g(h + d) - g(h) of a chain decoder, carried through it layer by layer.

At the paper's sigma (often 1e-5..1e-4 of |h|) the perturbed and unperturbed
decodings agree to 4 or 5 digits, so subtracting two float32 images loses a
few percent of the weaker changes (and h + d itself, rounded to float32,
loses about 1e-7 / (sigma |eps|) of d). Here the change is carried instead:

- an affine layer (Dense, Conv2D, a fused upsampling + conv) maps the input
  change dx to `linear(dx)` (no bias);
- a shape layer (Reshape, Flatten, UpSampling2D, the cell rearrangements)
  maps dx like x;
- an activation: its exact rule (`siamese_xai.decoding.rules`).

Every term's rounding is relative to the change, never to the image, so the
result equals a float64 evaluation of g(h + d) - g(h) to float32 precision.
The unperturbed pre-activations z are computed once per input and broadcast
over its perturbations.

`exact_chain(steps)` returns the evaluation, or a string naming why it does
not apply (a layer it does not know, a graph that is not a chain); the
caller falls back to the subtraction.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from siamese_xai.decoding import rules
from siamese_xai.decoding.fused import FusedUpConv


def _plain_float32(layer):
    return layer.compute_dtype == "float32" and not getattr(layer, "lora_enabled", False) and \
        getattr(layer, "quantization_mode", None) is None


class Step:
    """One stage of the chain: `kind` is "affine" (linear + bias, then activation), "shape" or "act"."""

    def __init__(self, kind, fn=None, bias=None, act="linear", name=""):
        self.kind, self.fn, self.bias, self.act, self.name = kind, fn, bias, act, name


def step_of(step):
    """The `Step` of one evaluation step (a Keras layer, a fused op or a rearrangement), or an error string."""
    if isinstance(step, FusedUpConv):
        act = rules.act_name(step.activation)
        if act is None:
            return f"fused conv '{step.conv.name}' has activation {step.activation!r}"
        return Step("affine", step.linear, (lambda s=step: s.bias) if step.conv.bias is not None else None, act,
                    step.conv.name)
    if not isinstance(step, keras.layers.Layer):
        return Step("shape", step, name=getattr(step, "__name__", "rearrangement"))
    layer, kind = step, type(step)
    if kind is keras.layers.Dense and _plain_float32(layer) and len(layer.input.shape) == 2:
        act = rules.act_name(layer.activation)
        if act is not None:
            return Step("affine", lambda x, l=layer: tf.matmul(x, tf.cast(l.kernel, x.dtype)),
                        (lambda l=layer: l.bias) if layer.use_bias else None, act, layer.name)
    elif kind is keras.layers.Conv2D and _plain_float32(layer) and layer.data_format == "channels_last" \
            and layer.groups == 1 and layer.padding in ("same", "valid"):
        act = rules.act_name(layer.activation)
        if act is not None:
            def conv(x, l=layer):
                return tf.nn.conv2d(x, tf.cast(l.kernel, x.dtype), strides=l.strides, padding=l.padding.upper(),
                                    dilations=l.dilation_rate)
            return Step("affine", conv, (lambda l=layer: l.bias) if layer.use_bias else None, act, layer.name)
    elif kind in (keras.layers.Reshape, keras.layers.Flatten):
        shape = tuple(layer.output.shape[1:])
        if all(isinstance(d, int) for d in shape):
            return Step("shape", lambda x, shape=shape: tf.reshape(x, (-1,) + shape), name=layer.name)
    elif kind is keras.layers.UpSampling2D and layer.interpolation == "nearest" and \
            layer.data_format == "channels_last":
        def up(x, size=tuple(layer.size)):  # not the layer: it would cast a float64 input to float32
            return tf.repeat(tf.repeat(x, size[0], axis=1), size[1], axis=2)
        return Step("shape", up, name=layer.name)
    elif kind is keras.layers.Activation:
        act = rules.act_name(layer.activation)
        if act is not None:
            return Step("act", act=act, name=layer.name)
    elif kind is keras.layers.ReLU and layer.max_value is None and float(layer.negative_slope) == 0 \
            and float(layer.threshold) == 0:
        return Step("act", act="relu", name=layer.name)
    return f"layer '{layer.name}' ({kind.__name__}) has no exact change rule"


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
            terms.append(rules.act_base(st.act, tf.cast(z, tf.float32)))
            x = rules.apply_act(st.act, z)
        return tf.cast(x, tf.float32), terms

    def delta(self, terms, dx, groups, start=0):
        """The exact change of the output for input changes `dx` (`(G * n, ...)`, G groups of n rows)."""
        for st, base in zip(self.steps[start:], terms[start:]):
            if st.kind == "shape":
                dx = st.fn(dx)
                continue
            if st.kind == "affine":
                dx = st.fn(dx)
            dx = rules.act_delta(st.act, base, dx, groups)
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
        sums = rules.act_sums(st.act, terms[last], dx, groups)
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
            return self.delta(terms, rules.act_delta(first.act, terms[0], dz, groups), groups, start=1)
        dcodes = tf.reshape(tf.matmul(eps[None], basis), (-1, dim))
        return self.delta(terms, dcodes, groups)


def exact_chain(steps):
    """An `ExactChain` over evaluation steps (Keras layers, fused ops, rearrangements), or a reason string."""
    if not steps:
        return "the decoder is not a chain of Keras layers"
    out = []
    for step in steps:
        st = step_of(step)
        if isinstance(st, str):
            return st
        out.append(st)
    return ExactChain(out, first_is_dense=type(steps[0]) is keras.layers.Dense)
