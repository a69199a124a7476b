"""The exact change act(z + dz) - act(z) of relu, sigmoid and the identity, without subtracting nearby numbers.

- ReLU: `relu(z + dz) - relu(z) = max(dz, -z) + min(z, 0)` (exact where
  z >= 0; where z < 0 it is `max(z + dz, 0)`, a rounding of the result);
- sigmoid: `sigmoid(z + dz) - sigmoid(z) = sigmoid(z + dz) * sigmoid(-z) * -expm1(-dz)`;
- the identity (linear activation): dz.

Each rule works on G groups of n rows against the unperturbed terms of z
(`act_base`), computed once per group and broadcast over its rows.
"""

from __future__ import annotations

import functools

import keras
import tensorflow as tf

_ACTIVATIONS = {"relu", "sigmoid", "linear"}


def act_name(fn):
    """"relu", "sigmoid" or "linear" for those Keras activations, else None."""
    for name in _ACTIVATIONS:
        if fn is getattr(keras.activations, name):
            return name
    return None


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


def act_delta(act, base, dz, groups):
    """act(z + dz) - act(z) without subtracting nearby numbers; `base` holds z's precomputed terms."""
    if act == "linear":
        return dz
    rule = _relu_delta if act == "relu" else _sigmoid_delta
    return tf.reshape(rule(_grouped(dz, groups), *base), tf.shape(dz))


def act_sums(act, base, dz, groups):
    """Sums over each group's n rows of |act(z + dz) - act(z)| and of act(z + dz) - act(z): `(G, ...)` each."""
    if act == "linear":
        return _linear_sums(_grouped(dz, groups))
    rule = _relu_sums if act == "relu" else _sigmoid_sums
    return rule(_grouped(dz, groups), *base)


def act_base(act, z):
    z = z[:, None]
    if act == "relu":
        return (-z, tf.minimum(z, 0.0))
    if act == "sigmoid":
        return (z, -tf.sigmoid(-z))
    return None


def apply_act(act, z):
    if act == "relu":
        return tf.nn.relu(z)
    return tf.sigmoid(z) if act == "sigmoid" else z
