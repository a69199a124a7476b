"""The decoder g as the explainer evaluates it, fixed when it is built: how it decodes and how it takes changes.

`decoder_evaluator(decoder, probe_codes, mode=..., fuse=...)` is the one
entry point. The mode says how `mc` computes a change g(h + d) - g(h):

- "kinks": the exact change as a few sources split at the decoder's ReLU
  kinks (`siamese_xai.decoding.kinks`), where every activation before the
  last is relu or linear, else as "layers";
- "layers": the exact change carried through every layer
  (`siamese_xai.decoding.exact`);
- "subtract": two float32 decodings subtracted.

An exact mode that does not apply to the decoder (or disagrees with it on
probe codes) falls back to the next one; `DecoderEvaluation.mode` says which
one is in use and `exact_note` why the exact change is not.
"""

from __future__ import annotations

import warnings

import numpy as np
import tensorflow as tf

from siamese_xai import _checks
from siamese_xai.decoding.chain import chain_layers
from siamese_xai.decoding.exact import ExactChain, exact_chain
from siamese_xai.decoding.fused import Layout, fuse as fused_steps
from siamese_xai.decoding.kinks import KinkPlan, kink_plan

MODES = ("kinks", "layers", "subtract")


def probe_codes(prototypes, n: int = 16):
    """`(n, D)` codes spread around the prototypes `(C, D)` (seeded), to check an evaluation on."""
    rng = np.random.default_rng(0)
    picked = prototypes[rng.integers(0, len(prototypes), n)]
    return picked + rng.normal(0, prototypes.std() + 1.0, (n, prototypes.shape[1]))


class DecoderEvaluation:
    """The decoder g as evaluated inside the explainer's graph; read-only once built.

    `internal(codes)` returns the decoder's output in an internal layout (the
    cells of a fused last layer); `to_image` maps it to `(B, *image_shape)`.
    The explainer sums changes in the internal layout (a fixed rearrangement
    of pixels commutes with |.| and sums) and rearranges once at the end.
    """

    def __init__(self, decoder, steps=None, out_layout: Layout | None = None, exact: ExactChain | None = None,
                 kinks: KinkPlan | None = None, exact_note: str | None = "not requested"):
        self._decoder, self._steps, self._out_layout = decoder, steps, out_layout
        self._exact, self._kinks, self._exact_note = exact, kinks, exact_note

    @property
    def decoder(self):
        """The decoder g itself."""
        return self._decoder

    @property
    def fused(self) -> bool:
        """Whether upsampling + conv pairs are evaluated as one convolution (`siamese_xai.decoding.fused`)."""
        return self._steps is not None

    @property
    def exact(self) -> ExactChain | None:
        """The exact change carried through the layers, or None (the change is a subtraction)."""
        return self._exact

    @property
    def kinks(self) -> KinkPlan | None:
        """The exact change split into sources at the ReLU kinks, or None."""
        return self._kinks

    @property
    def exact_note(self) -> str | None:
        """Why there is no exact change ("not requested", a layer without a rule, ...); None where there is."""
        return self._exact_note

    @property
    def mode(self) -> str:
        """The mode in use: "kinks", "layers" or "subtract" (see the module docstring)."""
        if self._kinks is not None:
            return "kinks"
        return "layers" if self._exact is not None else "subtract"

    def internal(self, codes):
        """`(B, D)` codes -> the output in the internal layout."""
        if self._steps is None:
            return self._decoder(codes)
        x = codes
        for step in self._steps:
            x = step(x)
        return x

    def to_image(self, y):
        """The internal layout -> `(B, *image_shape)`."""
        return y if self._out_layout is None else self._out_layout.to_space(y)

    def __call__(self, codes):
        return self.to_image(self.internal(codes))


def decoder_evaluator(decoder, probe_codes, *, mode: str = "kinks", fuse: bool = True) -> DecoderEvaluation:
    """The evaluation of `decoder` the explainer uses.

    With `fuse`, each `UpSampling2D(nearest) -> Conv2D` pair of a chain-shaped
    Keras decoder is evaluated as one convolution on the un-upsampled image.
    The fused evaluation is checked against the decoder itself on
    `probe_codes`; where they differ by more than 1e-4 (relative to the
    output's scale) it is dropped with a `RuntimeWarning`.

    With an exact `mode`, the evaluation also carries changes g(h + d) - g(h)
    through the layers without subtracting two images, where every layer has
    a rule; it is checked against the decoder's own difference for large d
    on `probe_codes`. Where it does not apply, or disagrees, the mode is
    "subtract", with a `RuntimeWarning`, and `exact_note` says why. The split at the kinks is checked
    against the layer-by-layer change and dropped, with a `RuntimeWarning`,
    where they differ.

    Args:
        decoder: g, `(B, D) -> (B, *image_shape)`.
        probe_codes: `(n, D)` float32 codes to check the evaluation on.
        mode: "kinks", "layers" or "subtract": the most exact mode wanted.
        fuse: try the fused evaluation.

    Returns:
        A `DecoderEvaluation`.

    Raises:
        ValueError: `mode` or `fuse` is not one of the accepted values.
    """
    _checks.check_choice("mode", mode, MODES)
    _checks.check_bool("fuse", fuse)
    codes = tf.constant(np.asarray(probe_codes, np.float32))
    chain = chain_layers(decoder)
    steps, layout = fused_steps(chain) if fuse else (None, None)
    plain = DecoderEvaluation(decoder, steps, layout)
    if plain.fused:
        ref = _checks.to_numpy(decoder(codes))
        got = plain(codes).numpy()
        if ref.shape != got.shape or np.abs(ref - got).max() > 1e-4 * max(1.0, float(np.abs(ref).max())):
            warnings.warn(
                "The fused evaluation of `decoder` differs from the decoder itself; using the decoder as is.",
                RuntimeWarning,
                stacklevel=3,
            )
            steps, layout = None, None
            plain = DecoderEvaluation(decoder)
    if mode == "subtract":
        return plain
    found = exact_chain(steps if steps is not None else chain)
    if not isinstance(found, str) and not _exact_agrees(plain, found, decoder, codes):
        found = "its exact change differed from the decoder's own g(h + d) - g(h) on probe codes"
    if isinstance(found, str):
        warnings.warn(
            f"`mc` subtracts two float32 decodings for this decoder ({found}): the change carries rounding of about "
            "1e-7 / change relative. A chain of Dense / Conv2D / Reshape / UpSampling2D layers with relu, sigmoid "
            "or linear activations gets the exact change.",
            RuntimeWarning,
            stacklevel=3,
        )
        return DecoderEvaluation(decoder, steps, layout, exact_note=found)
    plan = kink_plan(found, plain.to_image, codes.shape[1]) if mode == "kinks" else None
    if plan is not None and not _kinks_agree(plain, found, plan, codes):
        plan = None
        warnings.warn(
            "The exact change split at the decoder's ReLU kinks differed from the layer-by-layer exact change on "
            "probe codes; using the layer-by-layer path (the same result, slower).",
            RuntimeWarning,
            stacklevel=3,
        )
    return DecoderEvaluation(decoder, steps, layout, exact=found, kinks=plan, exact_note=None)


def _exact_agrees(evaluator, exact, decoder, codes):
    """The exact change against the decoder's own difference, for changes large enough that rounding is small."""
    n, dim = codes.shape
    s = min(3, dim)
    rng = np.random.default_rng(1)
    basis = np.zeros((n, s, dim), np.float32)
    for i in range(n):
        basis[i, np.arange(s), rng.choice(dim, s, replace=False)] = rng.choice([-0.05, 0.05], s)
    eps = np.abs(rng.normal(size=(4, s))).astype(np.float32)
    try:
        _, terms = exact.base(codes)
        got = evaluator.to_image(exact.delta_from_basis(terms, tf.constant(eps), tf.constant(basis)))
        got = got.numpy().reshape(n, 4, -1)
    except Exception:  # a rule that does not fit this decoder: fall back
        return False
    d = np.einsum("ks,nsd->nkd", eps, basis)
    ref = _checks.to_numpy(decoder((codes.numpy()[:, None] + d).reshape(-1, dim))).reshape(n, 4, -1)
    ref = ref - _checks.to_numpy(decoder(codes)).reshape(n, 1, -1)
    scale = max(float(np.abs(ref).max()), 1e-12)
    return got.shape == ref.shape and float(np.abs(got - ref).max()) <= 1e-3 * scale


def _kinks_agree(evaluator, exact, kinks, codes):
    """The split into sources (`kinks`) against the layer-by-layer exact change, on probe codes.

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
        prepared = kinks.prepare(codes, basis, eps, cap=10**9)
        image = lambda sums: np.concatenate(  # noqa: E731 (padding positions of an internal layout dropped)
            [evaluator.to_image(t).numpy().reshape(n, -1) for t in sums], axis=1)
        got = image(kinks.sums(prepared, 0, 16))
        _, terms = exact.base(codes)
        ref = image(exact.sums_from_basis(terms, eps, basis))
    except Exception:  # a rule that does not fit this decoder: keep the layer-by-layer path
        return False
    scale = np.maximum(np.abs(ref).max(axis=1, keepdims=True), 1e-30)
    return got.shape == ref.shape and float((np.abs(got - ref) / scale).max()) <= 1e-4
