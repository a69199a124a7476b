"""Explaining a whole data set on Apache Beam (the `[beam]` extra): the same shards as `explain_split`.

`explain_split_beam` writes `OUT/manifest.json` exactly as
`siamese_xai.scale.shards.explain_split` does (same run identity, same refusal of a
folder computed with other settings, same `force`), then runs a pipeline over
the shards that have no file yet:

    shard numbers -> Reshuffle -> ReadBatches (each worker reads its shard's
    images from the source) -> RunInference(ExplainerModelHandler) ->
    GroupByKey(shard) -> WriteShard (atomic, `shards.write_shard`)

Each shard is explained in the batches `shards.batch_bounds` gives, the ones
the one-process path uses, so on one machine the folder holds the same bytes
whichever path (or mix of paths, after an interruption) wrote it, and
`shards.load_split_results` reads it. A killed pipeline is resumed by running
the same command again: finished shards are kept, as in the one-process path.

The same pipeline runs on the DirectRunner (the default here: multi-processing,
one worker per core) and on Flink, Spark or Dataflow through Beam's own
options (`beam_options`, e.g. `["--runner=FlinkRunner",
"--flink_master=host:8081", "--environment_type=DOCKER", ...]`); the workers
then need this package installed, and `run_dir`, the source's files and
`out_dir` on storage they all reach by the same paths (docs/scale.md).

The images come from a source (`siamese_xai.data.sources`: MNIST through
tensorflow-datasets, an image folder, TFRecord files): the launching process
reads them once for the manifest's SHA-256 (what makes the refusal rules
hold), and each worker reads only its shards' images.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import NamedTuple

import numpy as np

try:
    import apache_beam as beam
    from apache_beam.ml.inference.base import ModelHandler, PredictionResult, RunInference
    from apache_beam.options.pipeline_options import PipelineOptions
except ImportError as err:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "siamese_xai.scale.beam needs Apache Beam: pip install 'siamese-xai[beam]' "
        f"(or pip install 'apache-beam>=2.70,<2.80'). Import failed with: {err}"
    ) from None

from siamese_xai.scale import pair_shards, shards

# The DirectRunner in multi-processing mode, one worker process per core; --beam-option values come after, so
# a user's --runner / --direct_num_workers win.
DEFAULT_OPTIONS = ("--runner=DirectRunner", "--direct_running_mode=multi_processing")
METRICS_NAMESPACE = "siamese_xai"
EXPLAINER_PREFIX = "images_explained_by_pid_"


class ExplainBatch(NamedTuple):
    """One `explain` call's input: images `start..stop-1` of the split, all in shard `shard`."""

    shard: int
    start: int
    images: np.ndarray  # (b, *image_shape) float32, or (b, 2, *image_shape) pairs
    labels: np.ndarray  # (b,) int64


# ---------------------------------------------------------------- the pipeline's steps


class ReadBatches(beam.DoFn):
    """Shard number -> its `ExplainBatch`es, the images read from the source by the worker."""

    def __init__(self, source, manifest: dict):
        self._source, self._manifest = source, manifest

    def process(self, shard):
        start, stop = shards.shard_bounds(self._manifest, shard)
        images, labels = self._source.read(start, stop)
        if len(images) != stop - start:
            raise ValueError(f"the source gave {len(images)} images for shard {shard} (positions {start}..{stop - 1}); "
                             "it changed after the manifest was written")
        images = np.asarray(images, np.float32).reshape((stop - start,) + shards.item_shape(self._manifest))
        for a, b in shards.batch_bounds(self._manifest, shard):
            yield ExplainBatch(shard, a, images[a - start:b - start], np.asarray(labels[a - start:b - start], np.int64))


class ExplainerModelHandler(ModelHandler):
    """RunInference's model: the run's explainer (any estimator), loaded once per worker; one element is one batch.

    Beam's stock `TFModelHandlerNumpy` / `TFModelHandlerTensor` cannot serve here: they load with
    `tf.keras.models.load_model` (a run folder is three files plus the explanation graph, and Keras 3
    loads no SavedModel), call `model(batch)` with one tensor (the explainer needs the seed too and
    returns a dozen named arrays, not one tensor), and stack single examples into batches of their own
    choosing. Bit-equal results need the one-process path's batches, so the batches are formed before
    RunInference (`ReadBatches`) and RunInference is told to pass them one at a time.

    Args:
        run_dir: the run folder (a path every worker reaches).
        config: the estimator's config as a dict (`shards.config_dict`, the manifest's `explain_config`).
        seed: the seed of the perturbation draws.
        run_id: the manifest's run identity; a worker whose run folder differs stops.
        pairs: the elements are pairs, each image explained toward the other (`shards.explain_batch`).
        threshold: with `pairs`, the manifest's threshold of the pairs' verdict, or None.
    """

    def __init__(self, run_dir, config: dict, seed: int, run_id: str, pairs: bool = False, threshold=None):
        super().__init__()
        self._run_dir, self._config, self._seed, self._run_id = str(run_dir), dict(config), int(seed), run_id
        self._pairs, self._threshold = bool(pairs), threshold

    def load_model(self):
        from siamese_xai.explainers.base import estimator_classes

        config = shards.config_from_dict(self._config)
        explainer_class, _ = estimator_classes(config.estimator)
        explainer = explainer_class.from_run(self._run_dir, config)
        if explainer.run_id != self._run_id:
            raise ValueError(f"the run folder {self._run_dir!r} seen by this worker has run_id {explainer.run_id!r}, "
                             f"the manifest {self._run_id!r}: every worker must see the same run")
        return explainer

    def run_inference(self, batch, model, inference_args=None):
        # one counter per worker process: how the work was shared (explain_split_beam's `worker_processes`)
        counter = beam.metrics.Metrics.counter(METRICS_NAMESPACE, f"{EXPLAINER_PREFIX}{os.getpid()}")
        for element in batch:
            counter.inc(len(element.images))
            index = np.arange(element.start, element.start + len(element.images))
            yield PredictionResult(element, shards.explain_batch(model, element.images, index, element.labels,
                                                                 self._seed, self._pairs, self._threshold))

    def batch_elements_kwargs(self):
        return {"min_batch_size": 1, "max_batch_size": 1}  # an element is already one explain() batch

    def get_metrics_namespace(self) -> str:
        return METRICS_NAMESPACE


class WriteShard(beam.DoFn):
    """`(shard, [batch records])` -> the shard file, written atomically; yields the number of images."""

    def __init__(self, out_dir):
        self._out_dir = str(out_dir)

    def process(self, element):
        shard, parts = element
        record = shards.join_records(list(parts))
        shards.write_shard(self._out_dir, shard, record)
        yield len(record["index"])


class ExplainShards(beam.PTransform):
    """PCollection of shard numbers -> PCollection of image counts, one per shard file written.

    Args:
        run_dir: the run folder.
        manifest: the folder's manifest (`shards.prepare_split`).
        source: where the workers read the images (`read(start, stop)`).
        out_dir: the explain-split folder.
    """

    def __init__(self, run_dir, manifest: dict, source, out_dir):
        super().__init__()
        self._run_dir, self._manifest, self._source, self._out_dir = run_dir, manifest, source, out_dir

    def expand(self, shard_numbers):
        m = self._manifest
        handler = ExplainerModelHandler(self._run_dir, m["explain_config"], m["seed"], m["run_id"],
                                        pair_shards.holds_pairs(m), m.get("threshold"))
        return (
            shard_numbers
            | "Spread" >> beam.Reshuffle()  # so that the shards are shared among the workers
            | "Read" >> beam.ParDo(ReadBatches(self._source, m))
            | "Explain" >> RunInference(handler)
            | "ByShard" >> beam.Map(lambda r: (r.example.shard, r.inference))
            | "Gather" >> beam.GroupByKey()
            | "Write" >> beam.ParDo(WriteShard(self._out_dir))
        )


# ---------------------------------------------------------------- running it


def pipeline_options(beam_options=()) -> PipelineOptions:
    """The pipeline's options: `DEFAULT_OPTIONS` (with one worker per core), then `beam_options`."""
    defaults = list(DEFAULT_OPTIONS) + [f"--direct_num_workers={os.cpu_count() or 1}"]
    return PipelineOptions(defaults + list(beam_options or ()))


def _watch(out_dir: Path, manifest: dict, todo, bar, stop: threading.Event, every: float = 0.5):
    """Advances `bar` as shard files appear (workers may be other processes or machines)."""
    pending = set(todo)
    while pending:
        for shard in sorted(pending):
            if (out_dir / shards.shard_name(shard)).is_file():
                pending.discard(shard)
                a, b = shards.shard_bounds(manifest, shard)
                bar.add(b - a)
        if stop.wait(every):
            break


def explain_split_beam(run_dir, explainer, source, out_dir, shard_size: int = 500, batch_size: int = 32,
                       seed: int = 0, verbose="auto", *, force: bool = False, beam_options=(), labels=None,
                       threshold=None) -> dict:
    """`explain_split` on Apache Beam: the same folder, computed by a pipeline's workers.

    Args:
        run_dir: the run folder `explainer` was loaded from; the workers load it too.
        explainer: the explainer, of any estimator (its run identity, config
            and image shape go into the manifest; the workers build the same
            estimator from `run_dir` and that config).
        source: `MnistSource`, `ImageFolderSource`, `TFRecordSource` or
            `PairListSource` (whose items are pairs, each image explained toward the other; or any
            object with `describe()`, `load()` and `read(start, stop)`).
        out_dir: the output folder.
        shard_size, batch_size, seed, force, threshold: as `shards.explain_split`'s.
        verbose: 1 shows a progress bar of the written shards (images, rate,
            time left), 0 none, "auto" one when stdout is a terminal.
        beam_options: Beam pipeline options (strings, as on a command line).
        labels: `(n,)` labels instead of the source's, or None.

    Returns:
        The manifest, with `shards_kept`, `shards_written` and
        `worker_processes` (`{pid: images it explained}`, from Beam's metrics)
        added.

    Raises:
        ValueError: a bad argument or a folder computed with other settings,
            before the pipeline starts.
    """
    images, source_labels = source.load()
    manifest, _, _, todo = shards.prepare_split(
        explainer, images, out_dir, source_labels if labels is None else labels, shard_size, batch_size, seed,
        source=source.describe(), force=force, pairs=getattr(source, "pairs", False), threshold=threshold)
    del images
    out_dir = Path(out_dir)
    if todo:
        options = pipeline_options(beam_options)
        bar = shards.progress_bar(manifest["num_images"], verbose)
        stop = threading.Event()
        watcher = None
        if bar is not None:
            done = set(range(manifest["num_shards"])) - set(todo)
            bar.update(sum(b - a for a, b in (shards.shard_bounds(manifest, i) for i in done)))
            watcher = threading.Thread(target=_watch, args=(out_dir, manifest, todo, bar, stop), daemon=True)
            watcher.start()
        try:
            pipeline = beam.Pipeline(options=options)
            _ = (pipeline | "Shards" >> beam.Create(todo)
                 | "ExplainShards" >> ExplainShards(run_dir, manifest, source, out_dir))
            outcome = pipeline.run()
            outcome.wait_until_finish()
        finally:
            stop.set()
            if watcher is not None:
                watcher.join()
        missing = [shards.shard_name(i) for i in todo if not (out_dir / shards.shard_name(i)).is_file()]
        if missing:
            raise RuntimeError(f"the pipeline finished but {len(missing)} shards are missing (the first: {missing[0]})")
    return {**manifest, "shards_kept": manifest["num_shards"] - len(todo), "shards_written": len(todo),
            "worker_processes": _writers(outcome) if todo else {}}


def _writers(outcome) -> dict:
    """`{pid: images explained}` from the pipeline's counters (empty where the runner reports no metrics)."""
    try:
        counters = outcome.metrics().query(beam.metrics.MetricsFilter().with_namespace(METRICS_NAMESPACE))["counters"]
    except (NotImplementedError, AttributeError, KeyError):
        return {}
    return {c.key.metric.name[len(EXPLAINER_PREFIX):]: c.committed for c in counters
            if c.key.metric.name.startswith(EXPLAINER_PREFIX) and c.committed}
