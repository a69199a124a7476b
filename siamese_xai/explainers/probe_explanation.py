"""The result of `ProbeExplainer.explain` (`siamese_xai.explainers.probe`): one frozen object for B explanations."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from siamese_xai.config import ProbeConfig
from siamese_xai.explainers.results import BatchResult

# The array fields of a `ProbeExplanation`, in order, with their dtypes.
FIELDS = {
    "input": np.float32,
    "proposal": np.float32,
    "embedding": np.float32,
    "distances": np.float32,
    "predicted_class": np.int64,
    "explained_class": np.int64,
    "contrast_class": np.int64,
    "target": np.float32,
    "margin": np.float32,
    "drop_map": np.float32,
    "ranking": np.float32,
    "regions": np.int32,
    "region_drop": np.float32,
    "mask": np.bool_,
    "set_size": np.int64,
    "flips": np.bool_,
    "final_margin": np.float32,
    "counterfactual": np.float32,
    "n_calls": np.int64,
    "proposal_kind": np.str_,
}


@dataclass(frozen=True, eq=False, repr=False)
class ProbeExplanation(BatchResult):
    """B explanations by `ProbeExplainer` (every array read-only, leading axis B).

    Attributes:
        input: `(B, H, W, C)` the explained images in [0, 1].
        proposal: `(B, H, W, C)` p, what the regions were painted with.
        embedding: `(B, D)` h = f(x).
        distances: `(B, K)` ||h - c_j|| for every class j.
        predicted_class: `(B,)` the nearest prototype's class.
        explained_class: `(B,)` k (-1 for a pair question).
        contrast_class: `(B,)` l, the class a change moves x to (-1 for a pair question).
        target: `(B, D)` the embedding a change moves h toward (or, for an
            accepted `Verify`, away from): c_l, or f of the question's other image.
        margin: `(B,)` m(x), the question's margin (`siamese_xai.explainers.questions`;
            "why k rather than l": ||h - c_l||^2 - ||h - c_k||^2).
        drop_map: `(B, H, W, C)` the measured margin drop delta_r of each
            candidate region spread over its pixels (by default in proportion
            to |p - x|; it sums to delta_r over the region; larger: more
            evidence for k over l); 0 outside the candidates.
        ranking: `(B, H, W, C)` the map the pixels are ranked by (larger
            first): `drop_map`, with the pixels of positive regions where x
            exceeds p (the evidence x has) lifted above all others
            (`siamese_xai.explainers.regions.ranking_of`; `has_first=False`: `drop_map`
            itself). Only its order is meaningful.
        regions: `(B, H, W)` int32 the candidate index of each pixel
            (0..n-1, in the order of `region_drop`), -1 outside every candidate.
        region_drop: `(B, max_regions)` delta_r per candidate, NaN past n.
        mask: `(B, H, W, C)` bool the found set's pixels (all channels of its cells).
        set_size: `(B,)` how many regions the found set holds (for `Pair`,
            which has no decision to flip: the regions with a positive drop).
        flips: `(B,)` bool whether f's decision on `counterfactual` is no
            longer the explained one (`Decision.flipped`: classed l; the
            verdict changed; the ranking swapped). Always False for `Pair`.
        final_margin: `(B,)` m(counterfactual), measured by f (NaN for `Pair`: not asked).
        counterfactual: `(B, H, W, C)` x with the found set painted with p.
        n_calls: `(B,)` images this explanation passed through f.
        proposal_kind: `(B,)` str, the proposal each image was painted with
            (`ProbeConfig.proposal` with "auto" resolved: "example" where a
            real image of l was painted, "prototype" for g(c_l), ...);
            "unrecorded" in a result made without it.
        config: the `ProbeConfig` used.
        cell: the cell side in pixels.
        question: the question asked, as data (`siamese_xai.explainers.questions.describe`:
            its kind, and a verification's threshold).
        run_id: the run folder's identity, or None.
        class_names: the classes' names, or None.
        examples: the real images the explainer held, as data, or None
            (built without any): `{"count": n, "source": ...}`, from a run
            also `"per_class"` (`ProbeConfig.examples_per_class`), and
            `"missing"` (why none) where the run's data could not be read.
    """

    input: np.ndarray
    proposal: np.ndarray
    embedding: np.ndarray
    distances: np.ndarray
    predicted_class: np.ndarray
    explained_class: np.ndarray
    contrast_class: np.ndarray
    target: np.ndarray
    margin: np.ndarray
    drop_map: np.ndarray
    ranking: np.ndarray
    regions: np.ndarray
    region_drop: np.ndarray
    mask: np.ndarray
    set_size: np.ndarray
    flips: np.ndarray
    final_margin: np.ndarray
    counterfactual: np.ndarray
    n_calls: np.ndarray
    config: object
    cell: int
    run_id: str | None = None
    class_names: tuple | None = None
    question: dict = dataclasses.field(default_factory=lambda: {"kind": "contrast"})
    proposal_kind: np.ndarray | None = None
    examples: dict | None = None

    FIELDS = FIELDS
    FORMAT = "siamese-xai probe explanation 1"
    # a shard leaves out the images and embeddings f, g and the prototypes give back from the input (and the
    # proposal's name, a string: the manifest's config says which proposal was asked for)
    SHARD_FIELDS = tuple(name for name in FIELDS
                         if name not in ("input", "proposal", "embedding", "target", "counterfactual",
                                         "proposal_kind"))
    MAP_FIELD = "drop_map"

    def summary(self, i: int = 0) -> str:
        """The question's margin and the found set: how many regions, whether they flip f, how many f calls."""
        calls = f"({int(self.n_calls[i])} f calls)"
        kind = self.question.get("kind")
        if kind == "pair":
            return f"d = {float(self.margin[i]):.4g}; {int(self.set_size[i])} regions hold some of the distance {calls}"
        flips = "flip" if self.flips[i] else "do not flip"
        if kind in ("class", "contrast"):
            k, l = self.class_name(self.explained_class[i]), self.class_name(self.contrast_class[i])
            return (f"SNN class {self.class_name(self.predicted_class[i])}, explained {k} rather than {l}: "
                    f"{int(self.set_size[i])} regions painted {flips} f to {l} {calls}")
        return (f"{kind} margin {float(self.margin[i]):.4g}: {int(self.set_size[i])} regions painted {flips} "
                f"the decision {calls}")

    def __post_init__(self):
        if self.proposal_kind is None:
            object.__setattr__(self, "proposal_kind", np.full(len(self.mask), "unrecorded"))
        for name in FIELDS:
            if getattr(self, name) is None:
                raise ValueError(f"`{name}` must be given. Received: None")
        object.__setattr__(self, "question", dict(self.question))
        if self.examples is not None:
            object.__setattr__(self, "examples", dict(self.examples))
        self._freeze_arrays()

    def _meta(self) -> dict:
        return {"config": dataclasses.asdict(self.config), "cell": int(self.cell), "run_id": self.run_id,
                "class_names": None if self.class_names is None else list(self.class_names),
                "question": dict(self.question), "examples": self.examples}

    @classmethod
    def _from_meta(cls, arrays, meta, path) -> ProbeExplanation:
        cls._check_file(arrays, meta, [name for name in FIELDS if name != "proposal_kind"], path)
        return cls(**arrays, config=ProbeConfig(**meta["config"]), cell=meta["cell"], run_id=meta["run_id"],
                   class_names=meta["class_names"], question=meta["question"], examples=meta.get("examples"))

    def __repr__(self) -> str:
        return (f"ProbeExplanation(B={len(self)}, question={self.question['kind']!r}, "
                f"proposal={self.config.proposal!r}, cell={self.cell}, "
                f"flips={int(self.flips.sum())}/{len(self)}, mean n_calls={float(np.mean(self.n_calls)) if len(self) else 0:.1f})")
