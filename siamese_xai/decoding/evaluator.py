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
probe codes) falls back to the next one, quietly (no Python warning: the
result is the same function, only slower or with float32 rounding of the
subtraction); `DecoderEvaluation.mode` says which one is in use,
`exact_note` why the exact change is not, and `notes` each fallback in one
plain sentence (the explainer copies them into every `Explanation`'s
`decoder_path`).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from siamese_xai import _checks
from siamese_xai.decoding.chain import chain_layers
from siamese_xai.decoding.exact import ExactChain, exact_chain
from siamese_xai.decoding.fused import Layout, fuse as fused_steps
from siamese_xai.decoding.kinks import KinkPlan, kink_plan

MODES = ("kinks", "layers", "subtract")

# The memory the decoder's evaluation may hold at once while explaining (`memory_budget`), in bytes.
DEFAULT_MEMORY_BUDGET = 1 << 30
MIN_MEMORY_BUDGET = 16 << 20
# Bytes per decoded row and unit of the widest activation: float32, about six copies live at once (the
# input and output of a layer, the change and its activation rule's temporaries).
ROW_BYTES = 24
# Bytes per source row and unit of the split at the kinks: float64, about four copies (the rows, their
# masked copy, the crossed units' one-hot rows and the concatenation).
SOURCE_BYTES = 32


def check_memory_budget(memory_budget) -> int:
    """`memory_budget` as an int of bytes, or a ValueError naming it, what was expected and what was received."""
    if not _checks.is_int(memory_budget) or memory_budget < MIN_MEMORY_BUDGET:
        raise ValueError(
            f"`memory_budget` must be an integer number of bytes, at least {MIN_MEMORY_BUDGET} (16 MiB). "
            f"Received: memory_budget={memory_budget!r}"
        )
    return int(memory_budget)


def widest_units(steps, decoder, dim) -> int:
    """The most float values per row of any activation of the evaluation steps (or of g's output), codes included."""
    x = tf.zeros((1, dim), tf.float32)
    if not steps:
        return max(dim, int(np.prod(_checks.to_numpy(decoder(x)).shape[1:])))
    widest = dim
    for step in steps:
        x = step(x)
        widest = max(widest, int(np.prod(x.shape[1:])))
    return widest


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
                 kinks: KinkPlan | None = None, exact_note: str | None = "not requested", *, widest: int = 1,
                 memory_budget: int = DEFAULT_MEMORY_BUDGET, notes=()):
        self._decoder, self._steps, self._out_layout = decoder, steps, out_layout
        self._exact, self._kinks, self._exact_note = exact, kinks, exact_note
        self._widest, self._budget = int(widest), int(memory_budget)
        self._notes = tuple(notes)

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

    @property
    def notes(self) -> tuple:
        """Each fallback taken when the evaluation was built, one plain sentence each (empty: none)."""
        return self._notes

    def summary(self) -> dict:
        """The path in use as JSON-ready data: `mode`, `fused` and the fallbacks' `notes`."""
        return {"mode": self.mode, "fused": self.fused, "notes": list(self._notes)}

    @property
    def widest(self) -> int:
        """The most float values per row of any of the decoder's activations (its output included)."""
        return self._widest

    @property
    def memory_budget(self) -> int:
        """The bytes the evaluation may hold at once while explaining."""
        return self._budget

    def rows_within_budget(self) -> int:
        """The most decoded rows per call whose activations fit the memory budget (at least 1)."""
        return max(1, self._budget // (ROW_BYTES * self._widest))

    def kink_candidates_within_budget(self, s: int) -> int | None:
        """The most candidate units per input and ReLU layer whose sources fit the budget (None: no split).

        The split at the kinks holds `s` + (candidates per layer x ReLU layers) source rows of the widest
        activation in float64 (`siamese_xai.decoding.kinks`).
        """
        if self._kinks is None:
            return None
        return max(0, (self._budget // (SOURCE_BYTES * self._widest) - s) // max(1, self._kinks.relu_layers))

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


def decoder_evaluator(decoder, probe_codes, *, mode: str = "kinks", fuse: bool = True,
                      memory_budget: int = DEFAULT_MEMORY_BUDGET) -> DecoderEvaluation:
    """The evaluation of `decoder` the explainer uses.

    With `fuse`, each `UpSampling2D(nearest) -> Conv2D` pair of a chain-shaped
    Keras decoder is evaluated as one convolution on the un-upsampled image.
    The fused evaluation is checked against the decoder itself on
    `probe_codes`; where they differ by more than 1e-4 (relative to the
    output's scale) it is dropped.

    With an exact `mode`, the evaluation also carries changes g(h + d) - g(h)
    through the layers without subtracting two images, where every layer has
    a rule; it is checked against the decoder's own difference for large d
    on `probe_codes`. Where it does not apply, or disagrees, the mode is
    "subtract" and `exact_note` says why. The split at the kinks is checked
    against the layer-by-layer change and dropped where they differ. No
    fallback warns: each is one sentence of the result's `notes`.

    Args:
        decoder: g, `(B, D) -> (B, *image_shape)`.
        probe_codes: `(n, D)` float32 codes to check the evaluation on.
        mode: "kinks", "layers" or "subtract": the most exact mode wanted.
        fuse: try the fused evaluation.
        memory_budget: the bytes the evaluation may hold at once, here (the
            check of the split at the kinks) and while explaining (rows per
            decoder call, candidates per ReLU layer); at least 16 MiB.

    Returns:
        A `DecoderEvaluation`.

    Raises:
        ValueError: `mode`, `fuse` or `memory_budget` is not one of the accepted values.
    """
    _checks.check_choice("mode", mode, MODES)
    _checks.check_bool("fuse", fuse)
    budget = {"memory_budget": check_memory_budget(memory_budget), "notes": []}
    codes = tf.constant(np.asarray(probe_codes, np.float32))
    chain = chain_layers(decoder)
    steps, layout = fused_steps(chain) if fuse else (None, None)
    budget["widest"] = widest_units(steps if steps is not None else chain, decoder, codes.shape[1])
    plain = DecoderEvaluation(decoder, steps, layout, **budget)
    if plain.fused:
        ref = _checks.to_numpy(decoder(codes))
        got = plain(codes).numpy()
        if ref.shape != got.shape or np.abs(ref - got).max() > 1e-4 * max(1.0, float(np.abs(ref).max())):
            budget["notes"].append("The fused evaluation of the decoder differed from the decoder itself on probe "
                                   "codes, so the decoder is evaluated as it is.")
            steps, layout = None, None
            plain = DecoderEvaluation(decoder, **budget)
    if mode == "subtract":
        return plain
    found = exact_chain(steps if steps is not None else chain)
    if not isinstance(found, str) and not _exact_agrees(plain, found, decoder, codes):
        found = "its exact change differed from the decoder's own g(h + d) - g(h) on probe codes"
    if isinstance(found, str):
        budget["notes"].append(
            f"mc subtracts two float32 decodings for this decoder ({found}), so each change carries rounding of "
            "about 1e-7 of the image relative to the change.")
        return DecoderEvaluation(decoder, steps, layout, exact_note=found, **budget)
    plan = kink_plan(found, plain.to_image, codes.shape[1]) if mode == "kinks" else None
    cap = DecoderEvaluation(decoder, kinks=plan, **budget).kink_candidates_within_budget(3) if plan else 0
    if plan is not None and not _kinks_agree(plain, found, plan, codes, cap):
        plan = None
        budget["notes"].append("The exact change split at the decoder's ReLU kinks differed from the layer-by-layer "
                               "exact change on probe codes, so mc carries it through the layers (the same result, "
                               "slower).")
    return DecoderEvaluation(decoder, steps, layout, exact=found, kinks=plan, exact_note=None, **budget)


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


def _kinks_agree(evaluator, exact, kinks, codes, cap):
    """The split into sources (`kinks`) against the layer-by-layer exact change, on probe codes.

    Changes of 1e-4..1e-1 of a code move many units across their kinks, so both the linear pattern and the
    crossed units are checked. Four codes at once where their sources fit the memory budget (`cap` candidate
    units per layer for one code), else one code at a time; a code with more than `cap` candidates (a change
    too large for the split, which the explainer then carries through the layers too) is not compared.
    False where a compared code differs, or where no code could be compared.
    """
    n, dim = codes.shape
    s = min(3, dim)
    rng = np.random.default_rng(2)
    basis = np.zeros((n, s, dim), np.float32)
    for i in range(n):
        basis[i, np.arange(s), rng.choice(dim, s, replace=False)] = rng.choice([-1.0, 1.0], s) * 10.0 ** -(1 + i % 4)
    eps = tf.constant(np.abs(rng.normal(size=(16, s))).astype(np.float32))
    verdicts = []
    for lo in range(0, n, 4):  # four codes at once (the sources of four within the budget), else one by one
        verdict = _kinks_agree_on(evaluator, exact, kinks, codes[lo : lo + 4], tf.constant(basis[lo : lo + 4]), eps,
                                  cap // 4)
        if verdict is None:
            verdict = [_kinks_agree_on(evaluator, exact, kinks, codes[i : i + 1], tf.constant(basis[i : i + 1]), eps,
                                       cap) for i in range(lo, min(n, lo + 4))]
        verdicts += verdict if isinstance(verdict, list) else [verdict]
        if False in verdicts:
            return False
    return True in verdicts


def _kinks_agree_on(evaluator, exact, kinks, codes, basis, eps, cap):
    """Whether the split agrees on these codes; None where some code has more than `cap` candidates."""
    g = codes.shape[0]
    try:
        prepared = kinks.prepare(codes, basis, eps, cap=cap)
        if not bool(prepared["ok"]):
            return None
        image = lambda sums: np.concatenate(  # noqa: E731 (padding positions of an internal layout dropped)
            [evaluator.to_image(t).numpy().reshape(g, -1) for t in sums], axis=1)
        got = image(kinks.sums(prepared, 0, eps.shape[0]))
        _, terms = exact.base(codes)
        ref = image(exact.sums_from_basis(terms, eps, basis))
    except Exception:  # a rule that does not fit this decoder: keep the layer-by-layer path
        return False
    scale = np.maximum(np.abs(ref).max(axis=1, keepdims=True), 1e-30)
    return got.shape == ref.shape and float((np.abs(got - ref) / scale).max()) <= 1e-4
