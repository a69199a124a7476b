"""The layers of a decoder that is a plain chain (one input, one output, each layer feeding the next)."""

from __future__ import annotations

import keras


def chain_layers(model):
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
