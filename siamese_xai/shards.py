"""Explaining a whole split, in shards, resumably, by one process or several.

`explain_split` feeds the images through a `tf.data` pipeline and writes the
explanations in shards of `shard_size` images, `OUT/shard-00000.npz`, ...,
each written atomically (a temporary name, then a rename), so a shard file is
either complete or absent.

`OUT/manifest.json` records what is being computed: the run's identity
(`run_id`), where the images come from (`source`, e.g. the split) and a
SHA-256 of the images themselves, their number, the shard and batch sizes,
every explanation parameter, the seed and the number of workers. It is
written first; a later call into the same folder with anything different is
refused with one line naming what differs (so results of two models or two
data sets never mix), and `force=True` starts the folder over: the old folder
is renamed away in one step and deleted after the new one exists, so a
half-replaced folder never exists.

Killed at any moment and run again, the call keeps the finished shards,
redoes the one that was being computed and writes the rest: every
explanation is seeded by `seed` alone and does not depend on the batch it was
computed in, so the result equals an uninterrupted run's.

Several processes or machines (sharing the folder on a shared disk) can
explain one split together: `num_workers=W, worker_index=I` takes the shards
I, I + W, I + 2W, ... Before computing a shard a worker claims it by creating
`OUT/.claim-NNNNN` exclusively (`O_CREAT | O_EXCL`: of two processes, one
wins), so two workers never write the same file; the claim names the worker,
its host and pid. A restarted worker removes its own dead claims and redoes
those shards; a claim held by a live process of the same worker index on this
host makes it stop with an error (that worker is already running). The merged
result (`load_split_results`) equals a one-process run's bit for bit.

Each shard holds, for its images `index` (positions in the split):

    index               (n,) int64
    label               (n,) int64, the true labels (-1 when not given)
    predicted_class     (n,) int64, the SNN's class
    explained_class     (n,) int64
    contrast_class      (n,) int64, the contrasted class of method="template_contrast" (-1 otherwise)
    distances           (n, C) float32, to every prototype
    indices             (n, s) int64, J
    sigma               (n,) float32
    mask                (n, H, W, C) bool, the q pixels that change most
    mean_abs_change     (n, H, W, C) float32, Delta_p
    mean_signed_change  (n, H, W, C) float32
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from siamese_xai import files
from siamese_xai._checks import check_images, check_positive_int, check_seed, is_int

MANIFEST_FILE = "manifest.json"
# Per image: its position and true label, then the Explanation fields of the same names.
STORED = ("predicted_class", "explained_class", "contrast_class", "distances", "indices", "sigma", "mask",
          "mean_abs_change", "mean_signed_change")
FIELDS = ("index", "label") + STORED


def shard_name(i: int) -> str:
    return f"shard-{i:05d}.npz"


def _claim_path(out_dir: Path, i: int) -> Path:
    return out_dir / f".claim-{i:05d}"


def _manifest(explainer, images, labels, shard_size, batch_size, seed, source, num_workers):
    digest = hashlib.sha256(np.ascontiguousarray(images).tobytes())
    digest.update(np.ascontiguousarray(labels).tobytes())
    return {
        "run_id": explainer.run_id,
        "source": source,
        "images_sha256": digest.hexdigest(),
        "num_images": len(images),
        "image_shape": list(explainer.image_shape),
        "shard_size": int(shard_size),
        "num_shards": -(-len(images) // int(shard_size)),
        "batch_size": int(batch_size),
        "seed": int(seed),
        "explain_config": dataclasses.asdict(explainer.config),
        "num_workers": int(num_workers),
        "fields": list(FIELDS),
    }


def _describe(value) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


def _check_manifest(out_dir: Path, manifest: dict) -> None:
    """Writes the manifest if the folder has none (atomically, first writer wins); else checks it."""
    path = out_dir / MANIFEST_FILE
    if not path.exists():
        fd, tmp = tempfile.mkstemp(prefix=f".{MANIFEST_FILE}.", suffix=".tmp.json", dir=out_dir)
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        try:
            os.link(tmp, path)  # fails if another worker wrote it first
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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _release_own_claims(out_dir: Path, mine, worker_index: int) -> None:
    """Removes the claims a dead process of this worker left on unfinished shards; stops if one is alive."""
    host = socket.gethostname()
    for i in mine:
        claim = _claim_path(out_dir, i)
        try:
            holder = json.loads(claim.read_text() or "{}")
        except FileNotFoundError:
            continue
        except ValueError:
            holder = {}  # killed while writing its claim
        if holder.get("worker") not in (None, worker_index):
            continue  # another worker's: not ours to touch
        if holder.get("host") == host and holder.get("pid") not in (None, os.getpid()) and _pid_alive(holder["pid"]):
            raise ValueError(
                f"`worker_index` {worker_index} is already running on {host} (pid {holder['pid']}, claim {claim.name}); "
                "start each worker index once"
            )
        claim.unlink(missing_ok=True)


def _claim(out_dir: Path, i: int, worker_index: int) -> bool:
    try:
        fd = os.open(_claim_path(out_dir, i), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps({"worker": worker_index, "host": socket.gethostname(), "pid": os.getpid()}))
    return True


def explain_split(explainer, images, out_dir, labels=None, shard_size: int = 500, batch_size: int = 32,
                  seed: int = 0, verbose: int = 1, *, source=None, force: bool = False, num_workers: int = 1,
                  worker_index: int = 0) -> dict:
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
        source: JSON-ready description of where the images come from (e.g.
            `{"dataset": "mnist", "split": "test"}`), recorded in the manifest.
        force: start `out_dir` over if it holds other results (one worker only).
        num_workers: W, processes sharing the split.
        worker_index: I in [0, W): this process takes shards I, I + W, ...

    Returns:
        The manifest, with `shards_kept` (finished before this call, of this
        worker's), `shards_written` (by this call) and `shards_skipped`
        (claimed by another process) added.

    Raises:
        ValueError: a bad argument, or `out_dir` holds results computed with
            other settings (named in the message).
        OSError: `out_dir` cannot be created or written.
    """
    for name, value in (("shard_size", shard_size), ("batch_size", batch_size), ("num_workers", num_workers)):
        check_positive_int(name, value)
    if not is_int(worker_index) or not 0 <= worker_index < num_workers:
        raise ValueError(f"`worker_index` must be an integer in [0, {num_workers}). Received: worker_index={worker_index!r}")
    if force and num_workers > 1:
        raise ValueError(
            "`force` starts the whole folder over, which would discard the other workers' shards; delete the folder "
            f"before starting the workers instead. Received: force=True with num_workers={num_workers}"
        )
    seed = check_seed(seed)
    # every image is checked (shape, dtype, NaN / inf, range) before anything is written
    images, _ = check_images(images, explainer.image_shape, "images", single=False)
    n = len(images)
    if labels is None:
        labels = np.full(n, -1, np.int64)
    labels = np.asarray(labels, np.int64)
    if labels.shape != (n,):
        raise ValueError(f"`labels` must have shape ({n},), one per image. Received: labels.shape={labels.shape}")
    json.dumps(source)  # must be JSON-ready: fail before anything is written
    manifest = _manifest(explainer, images, labels, shard_size, batch_size, seed, source, num_workers)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(err.errno, f"`out_dir` {str(out_dir)!r} cannot be created: {err.strerror}") from None
    if force and (out_dir / MANIFEST_FILE).exists() and files.read_json(out_dir / MANIFEST_FILE) != manifest:
        _start_over(out_dir)
    _check_manifest(out_dir, manifest)

    num_shards = manifest["num_shards"]
    mine = list(range(worker_index, num_shards, num_workers))
    files.remove_stale_temporaries(out_dir, [shard_name(i) for i in mine])  # a half-written shard of a killed run
    # a shard file exists only when complete (atomic writes), so existence is enough
    done = [i for i in mine if (out_dir / shard_name(i)).is_file()]
    _release_own_claims(out_dir, [i for i in mine if i not in done], worker_index)
    todo = np.array([i for i in mine if i not in done], np.int64)
    sizes = {i: min(shard_size, n - i * shard_size) for i in mine}
    bar = keras.utils.Progbar(sum(sizes.values()), unit_name="image") if verbose else None
    finished = sum(sizes[i] for i in done)
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

    written, skipped = [], []

    def run_shard(shard):
        parts = []
        for _, idx, xb in tf.data.Dataset.from_tensors(tf.constant(shard, tf.int64)).flat_map(shard_batches).prefetch(2):
            idx = idx.numpy()
            e = explainer.explain(xb.numpy(), seed=seed)
            parts.append({"index": idx, "label": labels[idx], **{k: getattr(e, k) for k in STORED}})
            if bar is not None:
                bar.add(len(idx))
        record = {k: np.concatenate([p[k] for p in parts]) for k in FIELDS}
        with files.atomic_path(out_dir / shard_name(shard), suffix=".npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **record)

    for shard in todo.tolist():
        if (out_dir / shard_name(shard)).is_file() or not _claim(out_dir, shard, worker_index):
            skipped.append(shard)
            continue
        try:
            run_shard(shard)
        finally:
            _claim_path(out_dir, shard).unlink(missing_ok=True)
        written.append(shard)
    return {**manifest, "shards_kept": len(done), "shards_written": len(written), "shards_skipped": len(skipped)}


def load_split_results(out_dir) -> dict:
    """Reads every shard of an `explain_split` folder into one dict of arrays (the manifest's `fields`).

    Raises:
        FileNotFoundError: the folder has no manifest, or a shard is missing
            (the run was interrupted, or a worker has not finished: run it again).
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
