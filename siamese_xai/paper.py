"""The paper's experiments: which MNIST test images Figs. 4-9 show, and the report.

The paper shows six quadruples and no numbers. This module fixes, by rules, which
test images stand in for its figures, so that a rerun with the same run folder
and seed makes the same figures, and collects the numbers a reader needs
into `figures/REPORT.md`.

Selection rules (applied to the MNIST test split in tensorflow-datasets order;
"reconstruction error" is the per-image sum of squared errors of g(f(x)), the
reconstruction the explainer perturbs):

- Figs. 4-7 (a 1, a 2, a 5, a 9 explained correctly): among the test images of
  that digit that the Siamese network classifies correctly (nearest
  prototype), the one at the 5th percentile of reconstruction error: a good
  reconstruction, but not the single easiest image.
- Fig. 8 (an incorrect explanation of a 2 whose reconstruction is poor): among
  the correctly classified 2s, the one at the 98th percentile of
  reconstruction error.
- Fig. 9 (a 4 that the network classifies as 9): among the 4s whose nearest
  prototype is the 9's, the one nearest to the 9 prototype. If the network
  makes no such error, the 4 nearest to the 9 prototype, and the report says so.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass

import numpy as np

from siamese_xai.prototypes import nearest_prototype


@dataclass(frozen=True)
class FigureSpec:
    """One of the paper's figures.

    Attributes:
        name: file stem, e.g. "fig4".
        caption: the paper's caption.
        digit: the true class of the image shown.
        rule: "good" (a correct, well reconstructed example), "poor" (correct,
            poorly reconstructed) or "confused" (classified as `confused_with`).
        quantile: the reconstruction-error quantile for "good" and "poor".
        confused_with: the wrong class for "confused".
    """

    name: str
    caption: str
    digit: int
    rule: str
    quantile: float = 0.05
    confused_with: int | None = None


PAPER_FIGURES = (
    FigureSpec("fig4", "Explanation of the digit 1", 1, "good"),
    FigureSpec("fig5", "Explanation of the digit 2", 2, "good"),
    FigureSpec("fig6", "Explanation of the digit 5", 5, "good"),
    FigureSpec("fig7", "Explanation of the digit 9", 9, "good"),
    FigureSpec("fig8", "The incorrect explanation of the digit 2", 2, "poor", quantile=0.98),
    FigureSpec("fig9", "The digit 4 is incorrectly classified to 9", 4, "confused", confused_with=9),
)


def figure_spec(name: str) -> FigureSpec:
    """The spec of a paper figure by name ("fig4" ... "fig9")."""
    for spec in PAPER_FIGURES:
        if spec.name == name:
            return spec
    raise ValueError(f"`name` must be one of {[s.name for s in PAPER_FIGURES]}. Received: name={name!r}")


def test_set_summary(embed, decoder, prototypes, x, batch_size: int = 1000) -> dict:
    """Embeds and reconstructs a test set once, for the selection rules.

    Args:
        embed: f, `(B, 28, 28, 1) -> (B, D)`.
        decoder: g, `(B, D) -> (B, 28, 28, 1)`.
        prototypes: `(C, D)`.
        x: `(n, 28, 28, 1)` test images.

    Returns:
        A dict with `predicted` `(n,)`, `distances` `(n, C)` and `recon_sse`
        `(n,)` (sum of squared errors of g(f(x))).
    """
    h = np.concatenate([np.asarray(embed(x[i : i + batch_size])) for i in range(0, len(x), batch_size)])
    rec = np.concatenate([np.asarray(decoder(h[i : i + batch_size])) for i in range(0, len(h), batch_size)])
    predicted, distances = nearest_prototype(h, prototypes)
    sse = np.sum((rec - x).reshape(len(x), -1) ** 2, axis=1)
    return {"predicted": predicted, "distances": distances, "recon_sse": sse}


def _at_quantile(candidates, errors, quantile):
    order = candidates[np.argsort(errors[candidates], kind="stable")]
    return int(order[int(round(quantile * (len(order) - 1)))])


def select_example(spec: FigureSpec, y, summary: dict):
    """Applies a figure's selection rule.

    Args:
        spec: the figure.
        y: `(n,)` true test labels.
        summary: from `test_set_summary`.

    Returns:
        `(index, note)`: the test index and a sentence on how it was chosen.
    """
    y = np.asarray(y)
    predicted, errors = summary["predicted"], summary["recon_sse"]
    if spec.rule in ("good", "poor"):
        candidates = np.flatnonzero((y == spec.digit) & (predicted == spec.digit))
        if len(candidates) == 0:
            raise ValueError(f"No correctly classified {spec.digit} in the test set for {spec.name}")
        index = _at_quantile(candidates, errors, spec.quantile)
        note = (
            f"the correctly classified {spec.digit} at the {spec.quantile:.0%} quantile of reconstruction error "
            f"among {len(candidates)}"
        )
        return index, note
    if spec.rule == "confused":
        k = spec.confused_with
        to_k = summary["distances"][:, k]
        confused = np.flatnonzero((y == spec.digit) & (predicted == k))
        if len(confused):
            index = int(confused[np.argmin(to_k[confused])])
            return index, (
                f"of the {len(confused)} test {spec.digit}s that the network classifies as {k}, "
                f"the one nearest to the {k} prototype"
            )
        of_digit = np.flatnonzero(y == spec.digit)
        index = int(of_digit[np.argmin(to_k[of_digit])])
        return index, (
            f"the network classifies no test {spec.digit} as {k}; this is the {spec.digit} nearest to the "
            f"{k} prototype (still classified as {int(predicted[index])})"
        )
    raise ValueError(f"`spec.rule` must be good, poor or confused. Received: rule={spec.rule!r}")


def explanation_record(explanation, index: int, true_class: int, recon_sse: float, note: str = "") -> dict:
    """The numbers REPORT.md shows for one explained test image (JSON-ready)."""
    order = np.argsort(explanation.distances, kind="stable")
    return {
        "test_index": int(index),
        "true_class": int(true_class),
        "predicted_class": int(explanation.predicted_class),
        "explained_class": None if explanation.explained_class is None else int(explanation.explained_class),
        "nearest_prototypes": [
            {"class": int(c), "distance": round(float(explanation.distances[c]), 4)} for c in order[:2]
        ],
        "recon_sse": round(float(recon_sse), 3),
        "J": [int(j) for j in explanation.indices],
        "sigma": float(explanation.sigma),
        "s": int(explanation.s),
        "q": int(explanation.q),
        "N": int(explanation.n_perturbations),
        "direction": explanation.direction,
        "method": explanation.method,
        "seed": int(explanation.seed),
        "mask_pixels": int(explanation.mask.sum()),
        "mask_on_ink": round(float((explanation.input[explanation.mask] > 0.5).mean()) if explanation.mask.any() else 0.0, 3),
        "selection": note,
    }


def machine_description() -> str:
    """One line naming the machine: CPU, cores, OS, Python and TensorFlow versions."""
    import os

    import tensorflow as tf

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            names = [line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")]
        if names:
            cpu = names[0]
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, TensorFlow {tf.__version__}"
    )
