"""`tf.distribute` strategies by name, for training on several devices or machines."""

from __future__ import annotations

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multiworker")


def make_strategy(strategy=None):
    """Turns a strategy name (or a strategy) into a `tf.distribute.Strategy`.

    Args:
        strategy: None or "default" (the default strategy: one device),
            "mirrored" (`MirroredStrategy` over this machine's GPUs, or its
            CPU), "multiworker" (`MultiWorkerMirroredStrategy`; the cluster
            comes from the `TF_CONFIG` environment variable, see docs/scale.md), or a
            `tf.distribute.Strategy`, returned as is.

    Raises:
        ValueError: an unknown name or another type.
    """
    if isinstance(strategy, tf.distribute.Strategy):
        return strategy
    if strategy is None or strategy == "default":
        return tf.distribute.get_strategy()
    if strategy == "mirrored":
        return tf.distribute.MirroredStrategy()
    if strategy == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(
        f"`strategy` must be one of {', '.join(STRATEGIES)} or a tf.distribute.Strategy. Received: strategy={strategy!r}"
    )
