"""What a folder of pairs adds to `siamese_xai.scale.shards`: its question, its extra field, each pair explained both ways.

A list of pairs (`shards.explain_split(..., pairs=True)`;
`siamese_xai.data.sources.PairListSource`) has items of two images
`(2, H, W, C)`, and each of the two is explained toward the other
(`explain_pairs`): the first asked `Pair(second)`, the second `Pair(first)`,
both in one `explain` call. With a threshold tau the pair has a verdict, same
(d <= tau) or different; an estimator that answers `Verify` (the probe) is
asked `Verify(other, tau)` instead, so that its found set is the change that
flips the verdict. The manifest records `"question"` (`"pair"` or `"verify"`,
`pair_question`), the threshold (`"threshold"`, null without one) and the
SHA-256 of both images; a shard holds `pair_distance` (`(n,)` float64,
d(f(first), f(second))) and each of the estimator's stored fields with a role
axis after the first: `(n, 2, ...)`, `[:, 0]` the first image's, `[:, 1]` the
second's.
"""

from __future__ import annotations

import numpy as np

# The manifest's `"question"` of a list of pairs: without a threshold, or with one asked of an estimator that
# answers `Verify`.
PAIR_QUESTIONS = ("pair", "verify")
# The field of a pair folder's shards beside its estimator's: d(f(first), f(second)) per pair.
PAIR_DISTANCE = "pair_distance"


def holds_pairs(manifest: dict) -> bool:
    """Whether a folder's manifest is that of a list of pairs (`explain_split(..., pairs=True)`)."""
    return manifest.get("question") in PAIR_QUESTIONS


def pair_question(explainer, threshold) -> str:
    """The manifest's `"question"` of a list of pairs: `"verify"` with a threshold the estimator can ask, else `"pair"`."""
    return "verify" if threshold is not None and "verify" in explainer.answers else "pair"


def check_threshold(threshold, pairs: bool):
    """`threshold` as a float > 0, or None; a ValueError naming it where it is not one, or given without pairs."""
    if threshold is None:
        return None
    if not pairs:
        raise ValueError(f"`threshold` is the verdict of a list of pairs: it needs pairs=True. Received: "
                         f"threshold={threshold!r} with pairs=False")
    from siamese_xai.explainers.questions import Verify

    return float(Verify(None, threshold).threshold)  # a finite number > 0, or a ValueError naming it


def explain_pairs(explainer, images, fields, seed: int, threshold=None) -> dict:
    """Explains each image of each pair toward the other, in one `explain` call (module docstring).

    Args:
        explainer: any estimator's explainer (`base.Explainer`).
        images: `(b, 2, *image_shape)` float32 pairs.
        fields: the result fields to keep (`shards.stored_fields`).
        seed: the seed of the perturbation draws.
        threshold: tau of the pairs' verdict, or None.

    Returns:
        `{PAIR_DISTANCE: (b,) float64, field: (b, 2, ...) for each of fields}`.
    """
    from siamese_xai.explainers.questions import Pair, Verify, distance

    b = len(images)
    both, others = np.concatenate([images[:, 0], images[:, 1]]), np.concatenate([images[:, 1], images[:, 0]])
    asked = pair_question(explainer, threshold)
    e = explainer.explain(both, Verify(others, threshold) if asked == "verify" else Pair(others), seed=seed)
    h = np.asarray(e.embedding, np.float64)  # f(both) as the explanation computed it: no second pass of f
    return {PAIR_DISTANCE: distance(h[:b], h[b:]),
            **{k: np.stack([getattr(e, k)[:b], getattr(e, k)[b:]], axis=1) for k in fields}}
