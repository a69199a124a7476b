"""Explaining a whole split, in shards, resumably.

`explain_split` feeds the images through a `tf.data` pipeline and writes the
explanations in shards of `shard_size` images, `OUT/shard-00000.npz`, ...,
each written atomically (a temporary name, then a rename), so a shard file is
either complete or absent. `OUT/manifest.json` records what is being
computed (the number of images, the shard size, the explainer's parameters,
the seed); it is written first, and a later call with other parameters is
refused rather than mixing results. Killed at any moment and run again, the
call keeps the finished shards, redoes the one that was being computed and
writes the rest: since every explanation is seeded by `seed` alone and does
not depend on the batch it was computed in, the result equals an
uninterrupted run's.

Each shard holds, for its images `index` (positions in the split):

    index               (n,) int64
    label               (n,) int64, the true labels (-1 when not given)
    predicted_class     (n,) int64, the SNN's class
    explained_class     (n,) int64
    distances           (n, C) float32, to every prototype
    indices             (n, s) int64, J
    sigma               (n,) float32
    mask                (n, H, W, C) bool, the q pixels that change most
    mean_abs_change     (n, H, W, C) float32, Delta_p
    mean_signed_change  (n, H, W, C) float32
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from siamese_xai import files
from siamese_xai._checks import check_images, check_seed

MANIFEST_FILE = "manifest.json"
# Per image: its position and true label, then the Explanation fields of the same names.
STORED = ("predicted_class", "explained_class", "distances", "indices", "sigma", "mask", "mean_abs_change",
          "mean_signed_change")
FIELDS = ("index", "label") + STORED


def shard_name(i: int) -> str:
    return f"shard-{i:05d}.npz"


def _manifest(explainer, n, shard_size, seed, image_shape):
    return {
        "num_images": int(n),
        "shard_size": int(shard_size),
        "num_shards": -(-int(n) // int(shard_size)),
        "image_shape": list(image_shape),
        "seed": int(seed),
        "explain_config": dataclasses.asdict(explainer.config),
        "fields": list(FIELDS),
    }


def explain_split(explainer, images, out_dir, labels=None, shard_size: int = 500, batch_size: int = 32,
                  seed: int = 0, verbose: int = 1) -> dict:
    """Explains every image, writing shards as it goes; resumes a previous call.

    Args:
        explainer: a `SiameseExplainer`.
        images: `(n, H, W, C)` (or `(n, H, W)`) float32 in [0, 1] or uint8.
        out_dir: the output folder (created if missing).
        labels: `(n,)` true labels stored beside the results, or None.
        shard_size: images per shard file.
        batch_size: images per `explain` call (memory: the `mc` method
            holds `batch_size * chunk_size` decoded images).
        seed: seed of the perturbation draws (the same for every image).
        verbose: 1 shows a progress bar.

    Returns:
        The manifest, with `shards_written` and `shards_kept` added.

    Raises:
        ValueError: a bad argument, or `out_dir` holds a run with other
            parameters (named in the message).
        OSError: `out_dir` cannot be created or written.
    """
    for name, value in (("shard_size", shard_size), ("batch_size", batch_size)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    seed = check_seed(seed)
    # every image is checked (shape, dtype, NaN / inf, range) before anything is written
    images, _ = check_images(images, explainer.image_shape, "images", single=False)
    n = len(images)
    if labels is None:
        labels = np.full(n, -1, np.int64)
    labels = np.asarray(labels, np.int64)
    if labels.shape != (n,):
        raise ValueError(f"`labels` must have shape ({n},), one per image. Received: labels.shape={labels.shape}")
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(err.errno, f"`out_dir` {str(out_dir)!r} cannot be created: {err.strerror}") from None
    manifest = _manifest(explainer, n, shard_size, seed, explainer.image_shape)
    manifest_path = out_dir / MANIFEST_FILE
    if manifest_path.exists():
        old = files.read_json(manifest_path)
        if old != manifest:
            changed = sorted(k for k in manifest if old.get(k) != manifest[k])
            raise ValueError(
                f"`out_dir` {str(out_dir)!r} holds results computed with other parameters ({', '.join(changed)}); "
                f"use another folder or delete it. Received: {', '.join(f'{k}={manifest[k]!r}' for k in changed)}"
            )
    else:
        files.write_json(manifest_path, manifest)

    files.remove_stale_temporaries(out_dir)  # a half-written shard of a killed run
    num_shards = manifest["num_shards"]
    # a shard file exists only when complete (atomic writes), so existence is enough
    done = [i for i in range(num_shards) if (out_dir / shard_name(i)).is_file()]
    todo = np.setdiff1d(np.arange(num_shards, dtype=np.int64), np.array(done, np.int64))
    bar = keras.utils.Progbar(n, unit_name="image") if verbose else None
    finished = sum(min(shard_size, n - i * shard_size) for i in done)
    if bar is not None:
        bar.update(finished)

    # The pipeline yields each remaining shard's images in batches; the
    # images stay in host memory, the pipeline gathers and prefetches.
    x_all = tf.constant(images)

    def shard_batches(shard):
        start = shard * shard_size
        idx = tf.range(start, tf.minimum(start + shard_size, n), dtype=tf.int64)
        return tf.data.Dataset.from_tensor_slices(idx).batch(batch_size).map(
            lambda b: (tf.fill(tf.shape(b), shard), b, tf.gather(x_all, b))
        )

    ds = tf.data.Dataset.from_tensor_slices(todo).flat_map(shard_batches).prefetch(2)
    parts, current = [], None

    def flush(shard):
        record = {k: np.concatenate([p[k] for p in parts]) for k in FIELDS}
        path = out_dir / shard_name(shard)
        with files.atomic_path(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **record)

    for shard, idx, xb in ds:
        shard = int(shard[0])
        if current is not None and shard != current:
            flush(current)
            parts = []
        current = shard
        idx = idx.numpy()
        e = explainer.explain(xb.numpy(), seed=seed)
        parts.append({"index": idx, "label": labels[idx], **{k: getattr(e, k) for k in STORED}})
        finished += len(idx)
        if bar is not None:
            bar.update(finished)
    if current is not None:
        flush(current)
    return {**manifest, "shards_kept": len(done), "shards_written": len(todo)}


def load_split_results(out_dir) -> dict:
    """Reads every shard of an `explain_split` folder into one dict of arrays.

    Raises:
        FileNotFoundError: the folder has no manifest, or a shard is missing
            (the run was interrupted: run it again to finish).
    """
    out_dir = Path(out_dir)
    if not (out_dir / MANIFEST_FILE).is_file():
        raise FileNotFoundError(f"{str(out_dir)!r} has no {MANIFEST_FILE}: not an explain-split folder")
    manifest = files.read_json(out_dir / MANIFEST_FILE)
    missing = [shard_name(i) for i in range(manifest["num_shards"]) if not (out_dir / shard_name(i)).is_file()]
    if missing:
        raise FileNotFoundError(f"{str(out_dir)!r} lacks {len(missing)} shards (the first: {missing[0]}); run it again to finish")
    shards = [np.load(out_dir / shard_name(i)) for i in range(manifest["num_shards"])]
    return {k: np.concatenate([s[k] for s in shards]) for k in manifest["fields"]}
