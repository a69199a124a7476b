"""Checking the explainer's arithmetic against float64: a float64 twin of a decoder, and the explainer's draws.

`benchmarks/bench_exactness.py` uses these to measure how far `mc`'s Delta_p
is from the same formula evaluated in float64 with the same perturbations;
`benchmarks/bench_kinks.py` uses the exact path's activation rules and the
cap on units near a kink to profile and count.
"""

from __future__ import annotations

from siamese_xai._exact import _act_delta as act_delta
from siamese_xai._exact import _act_sums as act_sums
from siamese_xai._exact import float64_decoder as _float64_chain
from siamese_xai._fusion import _chain_layers
from siamese_xai._graph import kink_cap, perturbation_draws

__all__ = ["act_delta", "act_sums", "float64_decoder", "kink_cap", "perturbation_draws"]


def float64_decoder(decoder):
    """g evaluated in float64, layer by layer: a function from `(B, D)` codes to `(B, ...)` float64 outputs.

    Args:
        decoder: a chain-shaped Keras decoder of Dense / Conv2D / Reshape /
            Flatten / UpSampling2D layers with relu, sigmoid or linear activations.

    Raises:
        ValueError: the decoder is not a chain of Keras layers.
    """
    chain = _chain_layers(decoder)
    if chain is None:
        raise ValueError(f"`decoder` must be a chain of Keras layers for a float64 twin. Received: {decoder!r}")
    return _float64_chain(chain)
