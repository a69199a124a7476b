"""The result of `ProbeExplainer.explain` (`siamese_xai.probe`): one frozen object for B explanations."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

# The array fields of a `ProbeExplanation`, in order, with their dtypes.
FIELDS = {
    "input": np.float32,
    "proposal": np.float32,
    "embedding": np.float32,
    "distances": np.float32,
    "predicted_class": np.int64,
    "explained_class": np.int64,
    "contrast_class": np.int64,
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
}


@dataclass(frozen=True, eq=False, repr=False)
class ProbeExplanation:
    """B explanations by `ProbeExplainer` (every array read-only, leading axis B).

    Attributes:
        input: `(B, H, W, C)` the explained images in [0, 1].
        proposal: `(B, H, W, C)` p, what the regions were painted with.
        embedding: `(B, D)` h = f(x).
        distances: `(B, K)` ||h - c_j|| for every class j.
        predicted_class: `(B,)` the nearest prototype's class.
        explained_class: `(B,)` k.
        contrast_class: `(B,)` l.
        margin: `(B,)` m(x) = ||h - c_l||^2 - ||h - c_k||^2.
        drop_map: `(B, H, W, C)` the measured margin drop delta_r of each
            candidate region spread over its pixels (by default in proportion
            to |p - x|; it sums to delta_r over the region; larger: more
            evidence for k over l); 0 outside the candidates.
        ranking: `(B, H, W, C)` the map the pixels are ranked by (larger
            first): `drop_map`, with the pixels of positive regions where x
            exceeds p (the evidence x has) lifted above all others
            (`siamese_xai.probe.ranking_of`; `has_first=False`: `drop_map`
            itself). Only its order is meaningful.
        regions: `(B, H, W)` int32 the candidate index of each pixel
            (0..n-1, in the order of `region_drop`), -1 outside every candidate.
        region_drop: `(B, max_regions)` delta_r per candidate, NaN past n.
        mask: `(B, H, W, C)` bool the found set's pixels (all channels of its cells).
        set_size: `(B,)` how many regions the found set holds.
        flips: `(B,)` bool whether f classes `counterfactual` as l.
        final_margin: `(B,)` m(counterfactual) (< 0 where l is nearer than k).
        counterfactual: `(B, H, W, C)` x with the found set painted with p.
        n_calls: `(B,)` images this explanation passed through f.
        config: the `ProbeConfig` used.
        cell: the cell side in pixels.
        run_id: the run folder's identity, or None.
        class_names: the classes' names, or None.
    """

    input: np.ndarray
    proposal: np.ndarray
    embedding: np.ndarray
    distances: np.ndarray
    predicted_class: np.ndarray
    explained_class: np.ndarray
    contrast_class: np.ndarray
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

    def __post_init__(self):
        batch = None
        for name, dtype in FIELDS.items():
            a = np.array(getattr(self, name), dtype=dtype, copy=True)
            a.flags.writeable = False
            if a.ndim == 0 or (batch is not None and len(a) != batch):
                raise ValueError(f"`{name}` must have a leading axis B={batch}. Received: shape {a.shape}")
            batch = len(a)
            object.__setattr__(self, name, a)
        if self.class_names is not None:
            object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))

    def __len__(self) -> int:
        return len(self.mask)

    def __getitem__(self, index) -> ProbeExplanation:
        if isinstance(index, (int, np.integer)) and not isinstance(index, (bool, np.bool_)):
            b = len(self)
            if not -b <= index < b:
                raise IndexError(f"`index` must be in [-{b}, {b}). Received: index={index}")
            index = slice(index % b, index % b + 1)
        return dataclasses.replace(self, **{name: getattr(self, name)[index] for name in FIELDS})

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def class_name(self, k: int) -> str:
        """The name of class k ("0", "1", ... without class names)."""
        return self.class_names[int(k)] if self.class_names is not None else str(int(k))

    def __repr__(self) -> str:
        return (f"ProbeExplanation(B={len(self)}, proposal={self.config.proposal!r}, cell={self.cell}, "
                f"flips={int(self.flips.sum())}/{len(self)}, mean n_calls={float(np.mean(self.n_calls)) if len(self) else 0:.1f})")
