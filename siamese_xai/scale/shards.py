"""Explaining a whole split, in shards, resumably.

`explain_split` explains the images in batches and writes the explanations in
shards of `shard_size` images, `OUT/shard-00000.npz`, ..., each written
atomically (a temporary name, then a rename), so a shard file is either
complete or absent.

`OUT/manifest.json` records what is being computed: the run's identity
(`run_id`), where the images come from (`source`, e.g. the split) and a
SHA-256 of the images themselves, their number, the shard and batch sizes,
every explanation parameter, the seed and the class names. It is written first; a later call
into the same folder with anything different is refused with one line naming
what differs (so results of two models or two data sets never mix), and
`force=True` starts the folder over: the old folder is renamed away in one
step and deleted after the new one exists, so a half-replaced folder never
exists.

Killed at any moment and run again, the call keeps the finished shards,
redoes the one that was being computed and writes the rest: every
explanation is seeded by `seed` alone, and a shard's batches are the same
whoever computes it (`explain_shard`), so the result equals an uninterrupted
run's bit for bit.

Many machines: `siamese_xai.scale.beam` runs the same shards on Apache Beam (the
DirectRunner, Flink, Spark, Dataflow), through `prepare_split`,
`explain_shard` and `write_shard` here, into the same folder layout; a
folder one path started, the other finishes.

Any estimator of `siamese_xai.explainers.base.REGISTRY` explains a split: the
manifest records its config (`config_dict`, with its name under `estimator`),
which `config_from_dict` reads back, and each shard holds, for its images,
`index` (`(n,)` int64, positions in the split), `label` (`(n,)` int64, the
true labels, -1 when not given) and the fields of the estimator's result
that its result class keeps (`BatchResult.SHARD_FIELDS`; `stored_fields`),
with the same names, shapes and dtypes: for the decoder estimators every
`Explanation` field but those in `NOT_STORED`, with J and sigma (`indices`,
`sigma`) for the perturbation estimators and the decoded path's
`moved_indices` and `path_length` for it; for the probe its maps, found set,
margins and flips, without the images it painted.
`load_split_results` reads them back as one `SplitResults`.

A list of pairs (`pairs=True`): each image of each pair is explained toward
the other; `siamese_xai.scale.pair_shards` says what such a folder adds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import keras
import numpy as np

from siamese_xai import files
from siamese_xai.config import ExplainConfig, TemplateContrastConfig
from siamese_xai.explainers import base, explanation
from siamese_xai.scale import pair_shards
from siamese_xai.scale.pair_shards import PAIR_DISTANCE, holds_pairs, pair_question
from siamese_xai._checks import check_images, check_positive_int, check_seed

MANIFEST_FILE = "manifest.json"


def config_dict(config) -> dict:
    """An estimator's config as JSON-ready data: its fields and its name under `estimator` (`config_from_dict`)."""
    return {"estimator": config.estimator, **dataclasses.asdict(config)}


def config_from_dict(d: dict):
    """The config `config_dict` wrote, of the estimator it names (`base.REGISTRY`).

    Raises:
        ValueError: an unknown estimator or field (named in the message).
    """
    d = dict(d)
    _, config_class = base.estimator_classes(d.get("estimator", "mc"))
    names = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(d) - names - {"estimator"})
    if unknown:
        raise ValueError(f"`config` must hold only {config_class.__name__}'s fields {sorted(names)}. Received: "
                         f"{unknown} for the estimator {d.get('estimator', 'mc')!r}")
    return config_class(**{k: v for k, v in d.items() if k in names})


def stored_fields(config) -> tuple:
    """The result fields a shard holds for an explainer with this config: those its result class keeps.

    The result class is the estimator's (`Explainer.result_class`), the fields
    those a result of this config has (`BatchResult.fields_for`) that the class
    keeps in a shard (`BatchResult.SHARD_FIELDS`), in its `FIELDS` order.
    """
    result = base.estimator_classes(config.estimator)[0].result_class
    return tuple(name for name in result.fields_for(config) if name in result.SHARD_FIELDS)


# The Explanation fields a shard leaves out: the image (the manifest names its source and SHA-256)
# and the per-image vectors and images f, g and the prototypes give back from it.
NOT_STORED = tuple(name for name in explanation.FIELDS if name not in explanation.Explanation.SHARD_FIELDS)
# The Explanation fields a shard holds, in `explanation.FIELDS`'s order: those of the perturbation
# estimators ("mc", "linear"), and those of the decoded path (its own fields instead of J and sigma).
STORED = stored_fields(ExplainConfig())
PATH_STORED = stored_fields(TemplateContrastConfig())
# Per image: its position in the split and true label, then the stored fields.
FIELDS = ("index", "label") + STORED
PATH_FIELDS = ("index", "label") + PATH_STORED


def shard_name(i: int) -> str:
    return f"shard-{i:05d}.npz"


def folder_fields(config, pairs: bool = False) -> tuple:
    """The arrays each shard of a folder holds: `index`, `label`, [`pair_distance`,] the estimator's stored fields."""
    return ("index", "label") + ((PAIR_DISTANCE,) if pairs else ()) + stored_fields(config)


def _manifest(explainer, images, labels, shard_size, batch_size, seed, source, pairs=False, threshold=None):
    digest = hashlib.sha256(np.ascontiguousarray(images).tobytes())
    digest.update(np.ascontiguousarray(labels).tobytes())
    return {**({"question": pair_question(explainer, threshold), "threshold": threshold} if pairs else {}),
        "run_id": explainer.run_id,
        "source": source,
        "images_sha256": digest.hexdigest(),
        "num_images": len(images),
        "image_shape": list(explainer.image_shape),
        "shard_size": int(shard_size),
        "num_shards": -(-len(images) // int(shard_size)),
        "batch_size": int(batch_size),
        "seed": int(seed),
        "explain_config": config_dict(explainer.config),
        "class_names": [str(c) for c in explainer.class_names],
        "fields": list(folder_fields(explainer.config, pairs)),
    }


def _describe(value) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


def _check_manifest(out_dir: Path, manifest: dict) -> None:
    """Writes the manifest if the folder has none (atomically, first writer wins); else checks it."""
    path = out_dir / MANIFEST_FILE
    if not path.exists():
        fd, tmp = tempfile.mkstemp(prefix=f".{MANIFEST_FILE}.", suffix=".tmp.json", dir=out_dir)
        os.close(fd)
        os.unlink(tmp)  # mkstemp's file is private (0600); the manifest gets the umask's mode, as the shards do
        with open(tmp, "x") as fh:
            fh.write(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        try:
            os.link(tmp, path)  # fails if another process wrote it first
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    old = files.read_json(path)
    if old != manifest:
        changed = sorted(k for k in set(manifest) | set(old) if old.get(k) != manifest.get(k))
        detail = "; ".join(f"{k}: {_describe(old.get(k))} there, {_describe(manifest.get(k))} now" for k in changed)
        raise ValueError(
            f"`out_dir` {str(out_dir)!r} holds results computed with other settings ({detail}); use another "
            "folder, or force=True (--force) to start it over"
        )


def _start_over(out_dir: Path) -> None:
    """Replaces `out_dir` by an empty folder without a half-replaced state: rename away, then delete."""
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.replaced-", dir=out_dir.parent))
        os.replace(out_dir, old / "old")
        out_dir.mkdir()
        shutil.rmtree(old, ignore_errors=True)


def prepare_split(explainer, images, out_dir, labels=None, shard_size: int = 500, batch_size: int = 32,
                  seed: int = 0, *, source=None, force: bool = False, pairs: bool = False, threshold=None):
    """Checks the arguments, writes or checks `OUT/manifest.json`; returns what is left to compute.

    Args: as `explain_split`'s.

    Returns:
        `(manifest, images, labels, todo)`: the manifest, the images as
        `(n, *image_shape)` float32, the `(n,)` int64 labels, and the shard
        numbers without a finished file, ascending.

    Raises:
        ValueError: a bad argument, or `out_dir` holds results computed with
            other settings (named in the message).
        OSError: `out_dir` cannot be created or written.
    """
    for name, value in (("shard_size", shard_size), ("batch_size", batch_size)):
        check_positive_int(name, value)
    seed = check_seed(seed)
    threshold = pair_shards.check_threshold(threshold, pairs)
    # every image is checked (shape, dtype, NaN / inf, range) before anything is written
    if pairs:
        images = np.asarray(images)
        if images.ndim != 5 or images.shape[1] != 2:
            raise ValueError(f"`images` must be pairs, (n, 2, H, W, C), with pairs=True. Received: shape {images.shape}")
        flat, _ = check_images(images.reshape((-1,) + images.shape[2:]), explainer.image_shape, "images", single=False)
        images = flat.reshape((-1, 2) + flat.shape[1:])
    else:
        images, _ = check_images(images, explainer.image_shape, "images", single=False)
    n = len(images)
    if labels is None:
        labels = np.full(n, -1, np.int64)
    labels = np.asarray(labels, np.int64)
    if labels.shape != (n,):
        raise ValueError(f"`labels` must have shape ({n},), one per image. Received: labels.shape={labels.shape}")
    json.dumps(source)  # must be JSON-ready: fail before anything is written
    manifest = _manifest(explainer, images, labels, shard_size, batch_size, seed, source, pairs, threshold)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(err.errno, f"`out_dir` {str(out_dir)!r} cannot be created: {err.strerror}") from None
    if force and (out_dir / MANIFEST_FILE).exists() and files.read_json(out_dir / MANIFEST_FILE) != manifest:
        _start_over(out_dir)
    _check_manifest(out_dir, manifest)
    names = [shard_name(i) for i in range(manifest["num_shards"])]
    files.remove_stale_temporaries(out_dir, names)  # a half-written shard of a killed run
    # a shard file exists only when complete (atomic writes), so existence is enough
    todo = [i for i, name in enumerate(names) if not (out_dir / name).is_file()]
    return manifest, images, labels, todo


def shard_bounds(manifest: dict, shard: int) -> tuple:
    """`(start, stop)`: the positions of shard `shard`'s images in the split."""
    start = shard * manifest["shard_size"]
    return start, min(start + manifest["shard_size"], manifest["num_images"])


def batch_bounds(manifest: dict, shard: int) -> list:
    """The `(start, stop)` of each `explain` call of shard `shard`: `batch_size` images, the last fewer.

    Every path that computes a shard calls `explain` on exactly these
    batches, which is what makes their results equal bit for bit.
    """
    start, stop = shard_bounds(manifest, shard)
    return [(b, min(b + manifest["batch_size"], stop)) for b in range(start, stop, manifest["batch_size"])]


def item_shape(manifest: dict) -> tuple:
    """The shape of one item of the folder: `image_shape`, or `(2, *image_shape)` for a list of pairs."""
    return ((2,) if holds_pairs(manifest) else ()) + tuple(manifest["image_shape"])


def explain_batch(explainer, images, index, labels, seed: int, pairs: bool = False, threshold=None) -> dict:
    """Explains one batch and returns its shard record.

    Args:
        explainer: any estimator's explainer (`base.Explainer`).
        images: `(b, *image_shape)` float32, or `(b, 2, *image_shape)` pairs with `pairs`.
        index: `(b,)` their positions in the split.
        labels: `(b,)` their true labels.
        seed: the seed of the perturbation draws.
        pairs: explain each image of each pair toward the other (module
            docstring), not each image's own class.
        threshold: with `pairs`, tau of the pairs' verdict, or None.

    Returns:
        `{field: array}` for every name in `folder_fields`: `(b, ...)`, or
        `(b, 2, ...)` for a pair's explained fields.
    """
    fields = stored_fields(explainer.config)
    record = {"index": np.asarray(index, np.int64), "label": np.asarray(labels, np.int64)}
    if pairs:
        return {**record, **pair_shards.explain_pairs(explainer, images, fields, seed, threshold)}
    e = explainer.explain(images, seed=seed)
    return {**record, **{k: getattr(e, k) for k in fields}}


def join_records(parts) -> dict:
    """Concatenates batch records (in any order) into one record sorted by `index`."""
    parts = sorted(parts, key=lambda p: int(p["index"][0]))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def write_shard(out_dir, shard: int, record: dict) -> Path:
    """Writes one shard file atomically; returns its path."""
    path = Path(out_dir) / shard_name(shard)
    with files.atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **record)
    return path


def explain_shard(explainer, manifest: dict, shard: int, images, labels, on_batch=None) -> dict:
    """Explains shard `shard` in its batches (`batch_bounds`) and returns its record.

    Args:
        explainer: an explainer of the manifest's run, estimator and parameters.
        manifest: the folder's manifest (`prepare_split`).
        shard: the shard number.
        images: `(m, *image_shape)` float32, the shard's images only.
        labels: `(m,)` their labels.
        on_batch: called with the number of images after each batch (progress).
    """
    start, _ = shard_bounds(manifest, shard)
    parts = []
    for a, b in batch_bounds(manifest, shard):
        parts.append(explain_batch(explainer, images[a - start:b - start], np.arange(a, b), labels[a - start:b - start],
                                   manifest["seed"], holds_pairs(manifest), manifest.get("threshold")))
        if on_batch is not None:
            on_batch(b - a)
    return join_records(parts)


def progress_bar(total: int, verbose):
    """A Keras progress bar over `total` images (done, rate, time left), or None when quiet.

    `verbose="auto"` shows it only when stdout is a terminal, so that logs and
    pipes stay free of carriage-return updates.
    """
    if verbose == "auto":
        verbose = sys.stdout.isatty()
    return keras.utils.Progbar(total, unit_name="image") if verbose else None


def explain_split(explainer, images, out_dir, labels=None, shard_size: int = 500, batch_size: int = 32,
                  seed: int = 0, verbose=1, *, source=None, force: bool = False, pairs: bool = False,
                  threshold=None) -> dict:
    """Explains every image, writing shards as it goes; resumes a previous call.

    Args:
        explainer: any estimator's explainer (`base.Explainer`: a `SiameseExplainer`,
            a `ProbeExplainer`, ...), explaining each image's own decision.
        images: `(n, H, W, C)` (or `(n, H, W)`) float32 in [0, 1] or uint8.
        out_dir: the output folder (created if missing).
        labels: `(n,)` true labels stored beside the results, or None.
        shard_size: images per shard file.
        batch_size: images per `explain` call (memory: the `mc` estimator
            holds `batch_size * chunk_size` decoded images).
        seed: seed of the perturbation draws (the same for every image; recorded, unused, by an
            estimator that draws nothing).
        verbose: 1 shows a progress bar (images done, rate, time left), 0
            none, "auto" one only when stdout is a terminal.
        source: JSON-ready description of where the images come from (e.g.
            `{"dataset": "mnist", "split": "test"}`), recorded in the manifest.
        force: start `out_dir` over if it holds other results.
        pairs: `images` are `(n, 2, H, W, C)` pairs, each image explained toward the other (module docstring).
        threshold: with `pairs`, tau > 0 of the pairs' verdict (same where
            d(f(first), f(second)) <= tau; the probe is asked `Verify`), or None.

    Returns:
        The manifest, with `shards_kept` (finished before this call) and
        `shards_written` (by this call) added.

    Raises:
        ValueError: a bad argument, or `out_dir` holds results computed with
            other settings (named in the message).
        OSError: `out_dir` cannot be created or written.
    """
    manifest, images, labels, todo = prepare_split(explainer, images, out_dir, labels, shard_size, batch_size, seed,
                                                   source=source, force=force, pairs=pairs, threshold=threshold)
    n = manifest["num_images"]
    bar = progress_bar(n, verbose)
    if bar is not None:
        bar.update(n - sum(b - a for a, b in (shard_bounds(manifest, i) for i in todo)))
    for shard in todo:
        a, b = shard_bounds(manifest, shard)
        record = explain_shard(explainer, manifest, shard, images[a:b], labels[a:b],
                               on_batch=None if bar is None else bar.add)
        write_shard(out_dir, shard, record)
    return {**manifest, "shards_kept": manifest["num_shards"] - len(todo), "shards_written": len(todo)}


def _every_stored_field():
    """`(required, optional)`: the stored fields every estimator of `base.REGISTRY` has, and the others."""
    each = [stored_fields(config_from_dict({"estimator": name})) for name in base.REGISTRY]
    union = list(dict.fromkeys(n for fields in each for n in fields))
    required = tuple(n for n in union if all(n in fields for fields in each))
    return ("index", "label") + required, tuple(n for n in union if n not in required)


# A `SplitResults` holds the stored fields of its folder's estimator; those of the others are None.
_REQUIRED, _OPTIONAL = _every_stored_field()


class _SplitResultsMethods:
    """The methods of `SplitResults` (its fields are every estimator's stored fields, below)."""

    @property
    def fields(self) -> tuple:
        """The names of the arrays this result holds: `index`, `label` and its estimator's stored fields, in order."""
        return tuple(n for n in self.manifest["fields"] if getattr(self, n, None) is not None)

    @property
    def estimator(self) -> str:
        """The name of the estimator that wrote the folder (`base.REGISTRY`)."""
        return self.manifest["explain_config"].get("estimator", "mc")

    @property
    def result_class(self):
        """The result class of that estimator (`BatchResult`: its `FIELDS`, `MAP_FIELD`)."""
        return base.estimator_classes(self.estimator)[0].result_class

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, index):
        """The results of some images (a slice, or an integer or boolean index array), as a `SplitResults`."""
        if isinstance(index, (int, np.integer)):
            index = slice(int(index), int(index) + 1 if int(index) != -1 else None)
        return dataclasses.replace(self, **{name: getattr(self, name)[index] for name in self.fields})

    def arrays(self) -> dict:
        """`{field: array}` for every name in `fields`, in that order."""
        return {name: getattr(self, name) for name in self.fields}

    @property
    def run_id(self):
        return self.manifest["run_id"]

    @property
    def seed(self) -> int:
        return int(self.manifest["seed"])

    @property
    def class_names(self) -> tuple:
        return tuple(self.manifest.get("class_names") or (str(k) for k in range(self.distances.shape[1])))

    @property
    def image_shape(self) -> tuple:
        return tuple(self.manifest["image_shape"])


SplitResults = dataclasses.make_dataclass(
    "SplitResults",
    [(name, np.ndarray) for name in _REQUIRED] + [("manifest", dict)]
    + [(name, "np.ndarray | None", dataclasses.field(default=None)) for name in _OPTIONAL + (PAIR_DISTANCE,)],
    bases=(_SplitResultsMethods,),
    frozen=True,
    eq=False,
    namespace={"__module__": __name__},
)
SplitResults.__doc__ = """The explanations of a whole split, as `load_split_results` reads them back.

    Not an estimator's result: a shard keeps the fields its result class
    names in `SHARD_FIELDS` (for the decoder estimators the masks, the
    changes, the classes, the distances; for the probe its maps, found set,
    margins and flips) but not the images and what f and g give back from
    them, which the result requires. Every stored field has the result
    attribute's name, shape and dtype, so code that reads `e.mask` or
    `e.distances` reads a `SplitResults` alike; the images come from the
    manifest's source (`siamese_xai.data.sources`), in the order of `index`.
    `len(r)` is the number of images and `r[a:b]` (or an index array) selects
    some, as with a result.

    Attributes:
        index: `(n,)` int64, each image's position in the split.
        label: `(n,)` int64, the true labels (-1 when not given).
        (one attribute per field any estimator stores): as the attribute of
            the folder's estimator's result (`(n, 2, ...)` in a folder of
            pairs: the first image's, then the second's); the other
            estimators' fields are None.
        pair_distance: `(n,)` float64 d(f(first), f(second)) in a folder of pairs, else None.
        manifest: the folder's `manifest.json` (the run's identity, the
            source, the explanation parameters, the seed, the class names);
            `run_id`, `seed`, `class_names` and `image_shape` read it.
    """


def load_split_results(out_dir) -> SplitResults:
    """Reads every shard of an `explain_split` folder into one `SplitResults`.

    Raises:
        FileNotFoundError: the folder has no manifest, or a shard is missing
            (the run was interrupted: run it again).
        ValueError: the folder was written with other fields than its
            estimator's (an older version of the package): explain the split
            again with `force=True`.
    """
    out_dir = Path(out_dir)
    if not (out_dir / MANIFEST_FILE).is_file():
        raise FileNotFoundError(f"{str(out_dir)!r} has no {MANIFEST_FILE}: not an explain-split folder")
    manifest = files.read_json(out_dir / MANIFEST_FILE)
    try:
        expected = folder_fields(config_from_dict(manifest.get("explain_config", {})), holds_pairs(manifest))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{str(out_dir)!r} records an explainer config this version cannot read ({err}); explain "
                         "the split again with force=True (--force)") from None
    if sorted(manifest.get("fields", ())) != sorted(expected):
        raise ValueError(
            f"{str(out_dir)!r} must hold the fields {list(expected)} (its estimator's). Received: a folder with "
            f"{manifest.get('fields')}; explain the split again with force=True (--force)"
        )
    missing = [shard_name(i) for i in range(manifest["num_shards"]) if not (out_dir / shard_name(i)).is_file()]
    if missing:
        raise FileNotFoundError(f"{str(out_dir)!r} lacks {len(missing)} shards (the first: {missing[0]}); run it again to finish")
    shards = [np.load(out_dir / shard_name(i)) for i in range(manifest["num_shards"])]
    return SplitResults(**{k: np.concatenate([s[k] for s in shards]) for k in manifest["fields"]}, manifest=manifest)
