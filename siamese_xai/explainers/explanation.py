"""The result of `SiameseExplainer.explain`: one frozen object for a batch of B explanations."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from siamese_xai.config import TemplateContrastConfig, explain_config_from_dict
from siamese_xai.explainers.results import BatchResult

# The array fields, in order, with their dtypes. The shard files of
# `explain_split`, the CLI's JSON and the SavedModel's outputs use these names.
# Those in OPTIONAL belong to one kind of estimator and are None under the other.
FIELDS = {
    "input": np.float32,
    "reconstruction": np.float32,
    "embedding": np.float32,
    "reference": np.float32,
    "predicted_class": np.int64,
    "distances": np.float32,
    "explained_class": np.int64,
    "contrast_class": np.int64,
    "reference_distance": np.float32,
    "indices": np.int64,
    "sigma": np.float32,
    "moved_indices": np.int64,
    "path_length": np.float32,
    "mean_abs_change": np.float32,
    "mean_signed_change": np.float32,
    "mask": np.bool_,
}
PERTURBATION_ONLY = ("indices", "sigma")  # the perturbation estimators ("mc", "linear")
PATH_ONLY = ("moved_indices", "path_length")  # the decoded path (`TemplateContrastConfig`)
OPTIONAL = PERTURBATION_ONLY + PATH_ONLY


def _is_path(config) -> bool:
    return isinstance(config, TemplateContrastConfig)


def ranking_map(config, mean_abs_change, mean_signed_change, images) -> np.ndarray:
    """The map an estimator ranks the pixels by (its mask: the q largest positive values); `Explanation.ranking`.

    Args:
        config: the estimator's config (`ExplainConfig` or `TemplateContrastConfig`).
        mean_abs_change, mean_signed_change, images: `(B, H, W, C)` as in `Explanation`.

    Returns:
        `(B, H, W, C)` float32: `mean_abs_change` (Delta_p) for the perturbation
        estimators, E_p = max(-S_p, 0) * x_p for the decoded path (S =
        `mean_signed_change`, x = `images`).
    """
    if isinstance(config, TemplateContrastConfig):
        return (np.maximum(-np.asarray(mean_signed_change), 0) * np.asarray(images)).astype(np.float32)
    return np.asarray(mean_abs_change, np.float32)


@dataclass(frozen=True, eq=False, repr=False)
class Explanation(BatchResult):
    """Explanations of B inputs (every array is read-only and has a leading axis B).

    `len(e)` is B; `e[i]` is the explanation of input i as an `Explanation`
    with B = 1 (not squeezed: `e[i].mask` has shape `(1, H, W, C)`, so every
    explanation has the same layout); slices and integer or boolean index
    arrays select several; iterating yields `e[0]`, `e[1]`, ...

    Attributes:
        input: `(B, H, W, C)` float32, the explained images in [0, 1].
        reconstruction: `(B, H, W, C)`, g(h), the decoder's image of the embedding.
        embedding: `(B, D)`, h = f(x).
        reference: `(B, D)`, c: the embedding the question moves h toward:
            the explained class's prototype c_k ("why k"), the contrast
            class's prototype c_l ("why k rather than l"), or the embedding
            of the reference image (pair explanations).
        predicted_class: `(B,)` int64, the SNN's class (nearest prototype).
        distances: `(B, C)` Euclidean distances from h to every prototype.
        explained_class: `(B,)` int64, the class explained (`predicted_class`
            unless a target class was asked for); -1 where a reference image
            replaced the prototype.
        contrast_class: `(B,)` int64, l in "why class k rather than class l"
            (the decoded path; -1 where a reference image took its place),
            -1 for the perturbation estimators, which do not ask it. Optional
            when constructing: None fills -1.
        reference_distance: `(B,)`, ||h - c|| (c = `reference`).
        mean_abs_change: `(B, H, W, C)`, the mean of |g(h_i)_p - g(h)_p| over
            the estimator's N codes h_i: Delta_p = mean_i |g(h + d_i)_p - g(h)_p|
            for the perturbations d_i; for the decoded path, its points
            h_i = h + t_i (c - h), t_i = (i - 1/2) / N.
        mean_signed_change: `(B, H, W, C)`, mean_i (g(h_i)_p - g(h)_p) over
            the same codes: positive where moving toward c brightens a pixel
            (on the path to c_l, negative where class k has ink that class l
            lacks).
        mask: `(B, H, W, C)` bool, the q pixels with the largest positive
            `ranking` (ties: lower flat index first), so it holds fewer than
            q pixels when fewer are positive (none when nothing changes).
        indices: `(B, s)` int64, J: the perturbed embedding coordinates, by
            increasing |h_j - c_j| (ties: lower index first). Perturbation
            estimators only; None for the decoded path.
        sigma: `(B,)`, the perturbations' scale, `sigma_scale * min_j |h_j - c_j|`.
            Perturbation estimators only; None for the decoded path.
        moved_indices: `(B, s)` int64, the s coordinates the path to c moves
            most (largest |c_j - h_j|, ties: lower index first). Decoded
            path only (see `siamese_xai.explainers.contrast`); None otherwise.
        path_length: `(B,)`, the length of the decoded path, ||c - h|| (0 for
            a path shorter than `siamese_xai.explainers.contrast.ZERO_PATH_RTOL`
            relative, which is not moved). Decoded path only; None otherwise.
        config: the `ExplainConfig` or `TemplateContrastConfig` that produced it.
        seed: the seed of the perturbation draws.
        run_id: the identity of the run folder the explainer came from, or None.
        class_names: the classes' names in label order, or None (then "0", "1", ...).
        decoder_path: how the decoder was evaluated, or None (not recorded):
            `{"mode": "kinks" | "layers" | "subtract", "fused": bool,
            "notes": [...]}`, the notes one plain sentence per fallback from a
            faster or exact path that did not apply to this decoder
            (`siamese_xai.decoding.evaluator`).
    """

    input: np.ndarray
    reconstruction: np.ndarray
    embedding: np.ndarray
    reference: np.ndarray
    predicted_class: np.ndarray
    distances: np.ndarray
    explained_class: np.ndarray
    reference_distance: np.ndarray
    mean_abs_change: np.ndarray
    mean_signed_change: np.ndarray
    mask: np.ndarray
    config: object
    seed: int
    run_id: str | None = None
    class_names: tuple | None = None
    contrast_class: np.ndarray | None = None
    indices: np.ndarray | None = None
    sigma: np.ndarray | None = None
    moved_indices: np.ndarray | None = None
    path_length: np.ndarray | None = None
    decoder_path: dict | None = None

    FIELDS = FIELDS
    FORMAT = "siamese-xai explanation 1"
    SHARD_FIELDS = tuple(name for name in FIELDS
                         if name not in ("input", "reconstruction", "embedding", "reference", "reference_distance"))
    MAP_FIELD = "mean_signed_change"

    @classmethod
    def fields_for(cls, config) -> tuple:
        """The fields of a result of `config`'s estimator: J and sigma, or the decoded path's own two."""
        return tuple(n for n in FIELDS if n not in (PERTURBATION_ONLY if _is_path(config) else PATH_ONLY))

    def summary(self, i: int = 0) -> str:
        """The question and what explanation i found: J and sigma, or the coordinates the path moved most."""
        name = self.class_name
        k = name(self.explained_class[i])
        if self.asks_contrast:
            against = "the other image" if self.contrast_class[i] < 0 else f"class {name(self.contrast_class[i])}"
            what = f"class {k} rather than {against}"
            found = f"moved most={self.moved_indices[i].tolist()}, path length={float(self.path_length[i]):.4g}"
        else:
            what = "pair" if self.explained_class[i] < 0 else f"class {k}"
            found = f"J={self.indices[i].tolist()}, sigma={float(self.sigma[i]):.4g}"
        return f"SNN class {name(self.predicted_class[i])}, explained {what}, {found}"

    def __post_init__(self):
        if self.contrast_class is None:  # the perturbation estimators ask no contrast class
            object.__setattr__(self, "contrast_class", np.full(len(np.asarray(self.mask)), -1, np.int64))
        present = PATH_ONLY if _is_path(self.config) else PERTURBATION_ONLY
        for name in OPTIONAL:
            if (getattr(self, name) is None) == (name in present):
                raise ValueError(
                    f"`{name}` must be {'given' if name in present else 'None'} for the estimator "
                    f"{self.config.estimator!r}. Received: {'None' if name in present else 'an array'}"
                )
        self._freeze_arrays()

    @property
    def asks_contrast(self) -> bool:
        """Whether it answers "why class k rather than class l" (the decoded path), not "why class k"."""
        return isinstance(self.config, TemplateContrastConfig)

    @property
    def ranking(self) -> np.ndarray:
        """`(B, H, W, C)` float32 the map whose q largest positive values are the mask (ties: lower flat index first).

        `mean_abs_change` (Delta_p) for the perturbation estimators
        (`"mc"`, `"linear"`); E_p = max(-S_p, 0) * x_p for the decoded path
        (S = `mean_signed_change`, x = `input`: what in x makes it k rather
        than l). Use it rather than recomputing either.
        """
        if self.asks_contrast:
            return ranking_map(self.config, self.mean_abs_change, self.mean_signed_change, self.input)
        return self.mean_abs_change

    def __repr__(self) -> str:
        def classes(a, limit=10):
            shown = ", ".join(str(int(c)) for c in a[:limit])
            return f"[{shown}{', ...' if len(a) > limit else ''}]"

        cfg = self.config
        contrast = isinstance(cfg, TemplateContrastConfig)
        return (
            f"Explanation(B={len(self)}, estimator={cfg.estimator!r}, image_shape={self.image_shape}, "
            f"s={cfg.s}, q={cfg.q}, N={cfg.n_points}, seed={self.seed})\n"
            f"  predicted_class={classes(self.predicted_class)}\n"
            f"  explained_class={classes(self.explained_class)}"
            + (f"\n  contrast_class={classes(self.contrast_class)}" if contrast else "")
            + ("" if self.run_id is None else f"\n  run_id={self.run_id!r}")
        )

    # -- conversion and files -----------------------------------------------

    def _meta(self) -> dict:
        return {"config": self.config.to_dict(), "seed": int(self.seed), "run_id": self.run_id,
                "class_names": None if self.class_names is None else list(self.class_names),
                "decoder_path": self.decoder_path}

    @classmethod
    def _from_meta(cls, arrays, meta, path) -> Explanation:
        if "contrast_class" not in arrays and "mask" in arrays:  # a file from before the field existed
            arrays["contrast_class"] = np.full(len(arrays["mask"]), -1, np.int64)
        config = explain_config_from_dict(meta["config"]) if "config" in meta else None
        contrast = isinstance(config, TemplateContrastConfig)
        needed = [name for name in FIELDS if name not in (PERTURBATION_ONLY if contrast else PATH_ONLY)]
        cls._check_file(arrays, meta, needed, path)
        return cls(**arrays, config=config, seed=meta["seed"], run_id=meta["run_id"],
                   class_names=meta.get("class_names"), decoder_path=meta.get("decoder_path"))
