"""The one base of every explainer's result: B explanations, frozen, indexable, saved and loaded exactly.

Each estimator's result (`siamese_xai.explainers.explanation.Explanation`,
`siamese_xai.explainers.probe_explanation.ProbeExplanation`) is a frozen dataclass that
declares its array fields once, in `FIELDS` (name -> dtype, the schema of
its data, as alibi's per-method defaults declare theirs), and its parameters
(`config`, `run_id`, `class_names`, ...) in `_meta`. This base gives them all
the same behaviour: `len`, `e[i]` (B = 1, not squeezed), slices and index
arrays, iteration, `fields`, `class_name`, `to_dict`, and `save`/`load` of
one `.npz` file (written atomically; the parameters as JSON beside the arrays,
never pickled).

Every result holds at least the fields of `COMMON` (`input`, `distances`,
`predicted_class`, `explained_class`, `contrast_class`, `ranking`, the map
whose largest values are the mask's pixels, and `mask`), as arrays in
`FIELDS` or as properties; a result class that lacks one is refused when it
is defined. So a benchmark, a plot, a split's shards and its report read any
estimator the same way.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from siamese_xai import files

META_KEY = "__meta__"


def readonly(a, dtype) -> np.ndarray:
    """A read-only copy of `a` as `dtype`."""
    a = np.array(a, dtype=dtype, copy=True)
    a.flags.writeable = False
    return a


def _jsonable(a):
    """An array as nested lists, NaN as None (JSON has no NaN); None stays None."""
    if a is None:
        return None
    if a.dtype.kind == "f" and np.isnan(a).any():
        return np.where(np.isnan(a), None, a.astype(object)).tolist()
    return a.tolist()


# What every result holds (a field or a property), with its shape for B explanations of (H, W, C) images:
# input (B, H, W, C); distances (B, K) from f(x) to every prototype; predicted_class (B,) the nearest one;
# explained_class and contrast_class (B,) k and l (-1 where the question has none); ranking (B, H, W, C), larger
# first; mask (B, H, W, C) bool.
COMMON = ("input", "distances", "predicted_class", "explained_class", "contrast_class", "ranking", "mask")


class BatchResult:
    """Mixin of a frozen dataclass of B explanations; subclasses set `FIELDS`, `FORMAT` and `_meta`/`_from_meta`."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        missing = [name for name in COMMON if name not in cls.FIELDS and not hasattr(cls, name)]
        if missing:
            raise TypeError(f"a result class must hold every field of `COMMON`; {cls.__name__} lacks {missing}")

    FIELDS: dict = {}
    FORMAT: str = ""
    # The fields a split's shard keeps (`siamese_xai.scale.shards`): the rest (the image, what f, g and the
    # prototypes give back from it) would make a split's results several times larger than its maps.
    SHARD_FIELDS: tuple = ()
    # The signed map a split's report draws beside the mask (`siamese_xai.scale.gallery`).
    MAP_FIELD: str = ""

    @classmethod
    def fields_for(cls, config) -> tuple:
        """The array fields a result made with `config` holds, in `FIELDS` order (every one unless overridden)."""
        return tuple(cls.FIELDS)

    def summary(self, i: int = 0) -> str:
        """One line saying what explanation i found (the command line prints it)."""
        raise NotImplementedError

    def _freeze_arrays(self):
        """Makes every present array field read-only with its dtype and checks the common leading axis B."""
        batch = None
        for name, dtype in self.FIELDS.items():
            a = getattr(self, name)
            if a is None:
                continue
            if not (isinstance(a, np.ndarray) and a.dtype == dtype and not a.flags.writeable):
                a = readonly(a, dtype)
                object.__setattr__(self, name, a)
            if a.ndim == 0 or (batch is not None and len(a) != batch):
                raise ValueError(
                    f"`{name}` must have a leading axis B={batch} like the other fields. Received: shape {a.shape}"
                )
            batch = len(a)
        if getattr(self, "class_names", None) is not None:
            object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))

    # -- a sequence of explanations -----------------------------------------

    def __len__(self) -> int:
        return len(self.mask)

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)) and not isinstance(index, (bool, np.bool_)):
            b = len(self)
            if not -b <= index < b:
                raise IndexError(f"`index` must be in [-{b}, {b}). Received: index={index}")
            index = slice(index % b, index % b + 1)
        elif not isinstance(index, slice):
            index = np.asarray(index)
            if index.dtype.kind not in "iub":
                raise IndexError(f"`index` must be an int, a slice or an int/bool array. Received: {index.dtype}")
        return dataclasses.replace(self, **{name: getattr(self, name)[index] for name in self.fields})

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    @property
    def fields(self) -> tuple:
        """The names of the array fields this result holds, in `FIELDS` order."""
        return tuple(name for name in self.FIELDS if getattr(self, name) is not None)

    @property
    def image_shape(self) -> tuple:
        return tuple(self.input.shape[1:])

    def class_name(self, k: int) -> str:
        """The name of class k ("0", "1", ... without class names); "-" for -1 (no class: a pair question)."""
        k = int(k)
        if k < 0:
            return "-"
        return self.class_names[k] if self.class_names is not None else str(k)

    # -- conversion and files -----------------------------------------------

    def _meta(self) -> dict:
        """The parameters as JSON-ready data (`_from_meta` reads them back)."""
        raise NotImplementedError

    @classmethod
    def _from_meta(cls, arrays: dict, meta: dict, path):
        """The result from a file's arrays and parameters."""
        raise NotImplementedError

    def to_dict(self) -> dict:
        """Every field, JSON-ready: arrays as nested lists (None where the estimator has no such field), the parameters."""
        out = {name: _jsonable(getattr(self, name)) for name in self.FIELDS}
        out.update(self._meta())
        return out

    def save(self, path) -> None:
        """Writes the result to one `.npz` file (atomically); `load` of the same class reads it back exactly."""
        meta = np.array(json.dumps({"format": self.FORMAT, **self._meta()}))
        with files.atomic_path(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **{name: getattr(self, name) for name in self.fields}, **{META_KEY: meta})

    @classmethod
    def load(cls, path):
        """Reads a file written by `save`.

        Raises:
            ValueError: the file is not a result of this kind written by `save`.
        """
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
        except (OSError, ValueError) as err:
            raise ValueError(f"`path` must be a file written by {cls.__name__}.save. Received: {path!r} ({err})") from None
        meta = json.loads(str(arrays.pop(META_KEY))) if META_KEY in arrays else {}
        return cls._from_meta(arrays, meta, path)

    @classmethod
    def _check_file(cls, arrays, meta, needed, path):
        """Raises the ValueError of `load` where a needed array or the format tag is missing."""
        missing = [name for name in needed if name not in arrays] + ([] if meta else [META_KEY])
        if missing or meta.get("format") != cls.FORMAT:
            raise ValueError(
                f"`path` must be a file written by {cls.__name__}.save. Received: {path!r}, "
                f"which lacks {missing or ['its format tag']}"
            )
