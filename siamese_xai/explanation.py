"""The result of `SiameseExplainer.explain`: one frozen object for a batch of B explanations."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import numpy as np

from siamese_xai import files

# The array fields, in order, with their dtypes. The shard files of
# `explain_split`, the CLI's JSON and the SavedModel's outputs use these names.
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
    "mean_abs_change": np.float32,
    "mean_signed_change": np.float32,
    "mask": np.bool_,
}
_META_KEY = "__meta__"
_FORMAT = "siamese-xai explanation 1"


def _readonly(a, dtype):
    a = np.array(a, dtype=dtype, copy=True)
    a.flags.writeable = False
    return a


@dataclass(frozen=True, eq=False, repr=False)
class Explanation:
    """Explanations of B inputs (every array is read-only and has a leading axis B).

    `len(e)` is B; `e[i]` is the explanation of input i as an `Explanation`
    with B = 1 (not squeezed: `e[i].mask` has shape `(1, H, W, C)`, so every
    explanation has the same layout); slices and integer or boolean index
    arrays select several; iterating yields `e[0]`, `e[1]`, ...

    Attributes:
        input: `(B, H, W, C)` float32, the explained images in [0, 1].
        reconstruction: `(B, H, W, C)`, g(h), the decoder's image of the embedding.
        embedding: `(B, D)`, h = f(x).
        reference: `(B, D)`, c: the explained class's prototype, or the
            embedding of the reference image (pair explanations).
        predicted_class: `(B,)` int64, the SNN's class (nearest prototype).
        distances: `(B, C)` Euclidean distances from h to every prototype.
        explained_class: `(B,)` int64, the class explained (`predicted_class`
            unless a target class was asked for); -1 where a reference image
            replaced the prototype.
        contrast_class: `(B,)` int64, l in "why class k rather than class l"
            (`method="template_contrast"`; -1 where a reference image took its place),
            -1 for the paper's methods. Optional when constructing: None
            fills -1.
        reference_distance: `(B,)`, ||h - c||.
        indices: `(B, s)` int64, J: the perturbed embedding coordinates, by
            increasing |h_j - c_j| (ties: lower index first).
        sigma: `(B,)`, the perturbations' scale, `sigma_scale * min_j |h_j - c_j|`.
        mean_abs_change: `(B, H, W, C)`, Delta_p = mean_i |g(h + d_i)_p - g(h)_p|.
        mean_signed_change: `(B, H, W, C)`, mean_i (g(h + d_i)_p - g(h)_p):
            positive where moving toward c brightens a pixel.
        mask: `(B, H, W, C)` bool, the q pixels with the largest Delta_p (ties:
            lower flat index first); pixels with Delta_p == 0 are never in it,
            so it holds fewer than q pixels when fewer change (none when sigma == 0).
            With `method="template_contrast"` (see `siamese_xai.contrast`): the path
            from h to c_l replaces the perturbations (t_i = (i - 1/2) / N,
            h_i = h + t_i (c_l - h)); `mean_abs_change` and
            `mean_signed_change` are the means of |g(h_i) - g(h)| and
            g(h_i) - g(h) over the path (negative: where class k has ink
            that class l lacks; positive: the reverse), the mask is the q
            pixels with the largest max(-S_p, 0) * x_p (S =
            `mean_signed_change`: what in x makes it k rather than l), `sigma` and
            `reference_distance` are ||h - c_l||, `indices` the s coordinates
            the path moves most.
        config: the `ExplainConfig` that produced it.
        seed: the seed of the perturbation draws.
        run_id: the identity of the run folder the explainer came from, or None.
        class_names: the classes' names in label order, or None (then "0", "1", ...).
    """

    input: np.ndarray
    reconstruction: np.ndarray
    embedding: np.ndarray
    reference: np.ndarray
    predicted_class: np.ndarray
    distances: np.ndarray
    explained_class: np.ndarray
    reference_distance: np.ndarray
    indices: np.ndarray
    sigma: np.ndarray
    mean_abs_change: np.ndarray
    mean_signed_change: np.ndarray
    mask: np.ndarray
    config: object
    seed: int
    run_id: str | None = None
    class_names: tuple | None = None
    contrast_class: np.ndarray | None = None

    def __post_init__(self):
        if self.class_names is not None:
            object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        if self.contrast_class is None:  # the paper's methods have no contrast class
            object.__setattr__(self, "contrast_class", np.full(len(np.asarray(self.mask)), -1, np.int64))
        batch = None
        for name, dtype in FIELDS.items():
            a = getattr(self, name)
            if not (isinstance(a, np.ndarray) and a.dtype == dtype and not a.flags.writeable):
                a = _readonly(a, dtype)
                object.__setattr__(self, name, a)
            if a.ndim == 0 or (batch is not None and len(a) != batch):
                raise ValueError(
                    f"`{name}` must have a leading axis B={batch} like the other fields. Received: shape {a.shape}"
                )
            batch = len(a)

    # -- a sequence of explanations -----------------------------------------

    def __len__(self) -> int:
        return len(self.mask)

    def __getitem__(self, index) -> Explanation:
        if isinstance(index, (int, np.integer)) and not isinstance(index, (bool, np.bool_)):
            b = len(self)
            if not -b <= index < b:
                raise IndexError(f"`index` must be in [-{b}, {b}). Received: index={index}")
            index = slice(index % b, index % b + 1)
        elif not isinstance(index, slice):
            index = np.asarray(index)
            if index.dtype.kind not in "iub":
                raise IndexError(f"`index` must be an int, a slice or an int/bool array. Received: {index.dtype}")
        return dataclasses.replace(self, **{name: getattr(self, name)[index] for name in FIELDS})

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    @property
    def image_shape(self) -> tuple:
        return tuple(self.input.shape[1:])

    @property
    def ranking(self) -> np.ndarray:
        """`(B, H, W, C)` float32 the map whose q largest positive values are the mask (ties: lower flat index first).

        `mean_abs_change` (Delta_p) for the paper's methods; max(-S_p, 0) * x_p
        for `method="template_contrast"` (S = `mean_signed_change`, x = `input`).
        """
        if self.config.method == "template_contrast":
            return (np.maximum(-self.mean_signed_change, 0) * self.input).astype(np.float32)
        return self.mean_abs_change

    def class_name(self, k: int) -> str:
        """The name of class k ("0", "1", ... without class names); "-" for -1 (a reference image)."""
        k = int(k)
        if k < 0:
            return "-"
        return self.class_names[k] if self.class_names is not None else str(k)

    def __repr__(self) -> str:
        def classes(a, limit=10):
            shown = ", ".join(str(int(c)) for c in a[:limit])
            return f"[{shown}{', ...' if len(a) > limit else ''}]"

        cfg = self.config
        return (
            f"Explanation(B={len(self)}, method={cfg.method!r}, image_shape={self.image_shape}, "
            f"s={cfg.s}, q={cfg.q}, N={cfg.n_perturbations}, seed={self.seed})\n"
            f"  predicted_class={classes(self.predicted_class)}\n"
            f"  explained_class={classes(self.explained_class)}"
            + (f"\n  contrast_class={classes(self.contrast_class)}" if cfg.method == "template_contrast" else "")
            + ("" if self.run_id is None else f"\n  run_id={self.run_id!r}")
        )

    # -- conversion and files -----------------------------------------------

    def _meta(self) -> dict:
        return {"config": dataclasses.asdict(self.config), "seed": int(self.seed), "run_id": self.run_id,
                "class_names": None if self.class_names is None else list(self.class_names)}

    def to_dict(self) -> dict:
        """Every field, JSON-ready: arrays as nested lists, the config as a dict."""
        out = {name: getattr(self, name).tolist() for name in FIELDS}
        out.update(self._meta())
        return out

    def save(self, path) -> None:
        """Writes the explanation to one `.npz` file (atomically); `Explanation.load` reads it back exactly."""
        meta = np.array(json.dumps({"format": _FORMAT, **self._meta()}))
        with files.atomic_path(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **{name: getattr(self, name) for name in FIELDS}, **{_META_KEY: meta})

    @classmethod
    def load(cls, path) -> Explanation:
        """Reads a file written by `save`.

        Raises:
            ValueError: the file is not an explanation written by `save`.
        """
        from siamese_xai.explain import RENAMED, ExplainConfig

        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
        except (OSError, ValueError) as err:
            raise ValueError(f"`path` must be an explanation file written by Explanation.save. Received: {path!r} ({err})") from None
        if "contrast_class" not in arrays and "mask" in arrays:  # a file from before the field existed
            arrays["contrast_class"] = np.full(len(arrays["mask"]), -1, np.int64)
        missing = [name for name in (*FIELDS, _META_KEY) if name not in arrays]
        meta = json.loads(str(arrays.pop(_META_KEY))) if _META_KEY in arrays else {}
        if missing or meta.get("format") != _FORMAT:
            raise ValueError(
                f"`path` must be an explanation file written by Explanation.save. Received: {path!r}, "
                f"which lacks {missing or ['its format tag']}"
            )
        config = dict(meta["config"])
        config["method"] = RENAMED.get(config.get("method"), config.get("method"))  # a file from before a rename
        return cls(**arrays, config=ExplainConfig(**config), seed=meta["seed"], run_id=meta["run_id"],
                   class_names=meta.get("class_names"))
