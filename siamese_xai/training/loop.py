"""The custom training loop every stage uses: distributed, checkpointed, resumable, logged.

`fit` runs under a `tf.distribute` strategy (the default strategy when none
is given): a `tf.function` step calls `strategy.run` on each replica,
per-example losses are divided by the global batch size, and the replicas'
losses are summed with `strategy.reduce`. Progress goes to a
`keras.utils.Progbar`, scalars to TensorBoard through `tf.summary`, and state
(models, optimizer, position in the data) to a `tf.train.CheckpointManager`,
so that a killed run restarted with the same command resumes where its last
checkpoint left off and ends with the same weights.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import keras
import tensorflow as tf

from siamese_xai import files


@dataclass
class Stage:
    """What `fit` needs to know about one training stage."""

    name: str
    variables: list
    # per-example losses and a dict of per-example metrics from a batch
    per_example: Callable
    # regularizer (a scalar for the whole model, added once per step)
    regularizer: Callable
    # make_dataset(epoch, skip_batches) -> tf.data.Dataset of batches
    make_dataset: Callable
    steps_per_epoch: int
    epochs: int
    optimizer: keras.optimizers.Optimizer
    trackables: dict
    # images(): {tag: (n, H, W, C) in [0, 1]} written to TensorBoard after every epoch, or None
    images: Callable | None = None
    # compile the train step with XLA (one replica only). Off: on a 2-core CPU XLA ran every stage's
    # step several times slower than TensorFlow's oneDNN kernels (benchmarks/speed/bench_reproduce.py)
    jit_compile: bool = False


def worker_dir(run_dir, strategy):
    """Where this worker keeps its state: `run_dir` on the chief, a sub-folder elsewhere.

    Under `MultiWorkerMirroredStrategy` TensorFlow asks every worker to take
    part in each checkpoint save, but only the chief should write the run
    folder. TensorFlow's tutorials send the other workers' saves to a
    temporary folder that is deleted; here they go to
    `run_dir/workers/worker-I` and are kept (on the worker's own disk, or
    beside the chief's on a shared one), so two workers never write the same
    file and each can restore from its own copy after a restart.
    """
    if run_dir is None:
        return None
    extended = strategy.extended
    if getattr(extended, "should_checkpoint", True):
        return Path(run_dir)
    task_id = getattr(getattr(strategy, "cluster_resolver", None), "task_id", 0) or 0
    run_dir = Path(run_dir)
    if run_dir.parent.name == "workers" and run_dir.name == f"worker-{task_id}":
        return run_dir  # already this worker's folder (train_run maps it once)
    return run_dir / "workers" / f"worker-{task_id}"


def is_chief(strategy=None) -> bool:
    """Whether this process writes the run folder (True except on non-chief multi-worker workers)."""
    strategy = strategy or tf.distribute.get_strategy()
    return bool(getattr(strategy.extended, "should_checkpoint", True))


def fit(stage: Stage, run_dir=None, strategy=None, checkpoint_every: int = 200, verbose: int = 1,
        on_step: Callable | None = None) -> dict:
    """Runs one stage's custom training loop, resuming from its checkpoint if any.

    Args:
        stage: the stage's models, losses and data.
        run_dir: the run folder; checkpoints go to `run_dir/checkpoints/NAME`
            and TensorBoard logs to `run_dir/logs/NAME`. None: no checkpoints,
            no logs.
        strategy: a `tf.distribute.Strategy`; None uses the default strategy.
        checkpoint_every: steps between checkpoints.
        verbose: 1 shows a progress bar.
        on_step: called as `on_step(global_step, values)` after every step,
            `values` a dict of the step's reduced scalars (e.g. `"loss"`).

    Returns:
        The last epoch's mean metrics, e.g. `{"loss": ...}`.

    With a `run_dir`, each call that finishes appends one JSON line to
    `run_dir/logs/sessions.jsonl` (this worker's folder under multi-worker
    training; `read_sessions` reads it): the stage, the checkpoint it resumed
    from (`restored_from`, None when it started from scratch), the restored
    `restored_epoch`, `restored_step_in_epoch` and `restored_global_step`,
    `steps_run` (steps trained in this call), `global_step` and `steps_total`
    at the end, and `seconds`. A stage that was killed twice and then
    finished shows one line, of the finishing call.
    """
    strategy = strategy or tf.distribute.get_strategy()
    run_dir = worker_dir(run_dir, strategy)
    chief = is_chief(strategy)
    epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="step_in_epoch")
    ckpt = tf.train.Checkpoint(optimizer=stage.optimizer, epoch=epoch_var, step_in_epoch=step_var, **stage.trackables)
    manager = writer = restored_from = None
    if run_dir is not None:
        manager = tf.train.CheckpointManager(ckpt, Path(run_dir) / "checkpoints" / stage.name, max_to_keep=2)
        restored_from = manager.latest_checkpoint
        if restored_from:
            ckpt.restore(restored_from).assert_existing_objects_matched()
        if chief:
            writer = tf.summary.create_file_writer(str(Path(run_dir) / "logs" / stage.name))

    trackers = {}

    def train_step(batch):
        def replica_step(*b):
            with tf.GradientTape() as tape:
                per_ex, extras = stage.per_example(*b)
                # The global batch is counted across replicas: the last batch of
                # an epoch may split unevenly, and dividing by the local size
                # times the replica count would then weight examples unequally.
                global_batch = tf.distribute.get_replica_context().all_reduce(
                    tf.distribute.ReduceOp.SUM, tf.shape(per_ex)[0]
                )
                loss = tf.nn.compute_average_loss(per_ex, global_batch_size=global_batch)
                loss += stage.regularizer() / strategy.num_replicas_in_sync
            grads = tape.gradient(loss, stage.variables)
            stage.optimizer.apply(grads, stage.variables)
            out = {"loss": loss}
            out.update({k: tf.nn.compute_average_loss(v, global_batch_size=global_batch) for k, v in extras.items()})
            return out

        per_replica = strategy.run(replica_step, args=tuple(batch))
        return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in per_replica.items()}

    # XLA compiles the whole step (forward, gradient, Adam) of one replica; across replicas the
    # collective all-reduce stays with TensorFlow, so there the step is not compiled.
    xla = stage.jit_compile and strategy.num_replicas_in_sync == 1
    train_step = tf.function(train_step, jit_compile=True if xla else None)  # None: as a plain @tf.function

    results = {}
    global_step = int(epoch_var.numpy()) * stage.steps_per_epoch + int(step_var.numpy())
    session = {"stage": stage.name, "restored_from": Path(restored_from).name if restored_from else None,
               "restored_epoch": int(epoch_var.numpy()), "restored_step_in_epoch": int(step_var.numpy()),
               "restored_global_step": global_step, "steps_run": 0}
    t0 = time.perf_counter()
    while int(epoch_var.numpy()) < stage.epochs:
        epoch = int(epoch_var.numpy())
        start = int(step_var.numpy())
        if verbose:
            print(f"[{stage.name}] epoch {epoch + 1}/{stage.epochs}" + (f" (resumed at step {start})" if start else ""))
            bar = keras.utils.Progbar(stage.steps_per_epoch, unit_name="step")
        dist = strategy.experimental_distribute_dataset(stage.make_dataset(epoch, start))
        for t in trackers.values():
            t.reset_state()
        for batch in dist:
            values = train_step(batch)
            if not trackers:
                with strategy.scope():
                    trackers.update({k: keras.metrics.Mean(name=k) for k in values})
            for k, v in values.items():
                trackers[k].update_state(v)
            step_var.assign_add(1)
            global_step += 1
            session["steps_run"] += 1
            if writer is not None:
                with writer.as_default(step=global_step):
                    for k, v in values.items():
                        tf.summary.scalar(f"{stage.name}/{k}", v)
            if on_step is not None:
                on_step(global_step, {k: float(v) for k, v in values.items()})
            if verbose:
                bar.update(int(step_var.numpy()), [(k, float(v)) for k, v in values.items()])
            if manager is not None and int(step_var.numpy()) % checkpoint_every == 0:
                manager.save(checkpoint_number=global_step)
        results = {k: float(t.result()) for k, t in trackers.items()}
        epoch_var.assign_add(1)
        step_var.assign(0)
        if manager is not None:
            manager.save(checkpoint_number=global_step)
        if writer is not None:
            with writer.as_default(step=int(epoch_var.numpy())):
                for k, v in results.items():
                    tf.summary.scalar(f"{stage.name}/epoch_{k}", v)
                for tag, images in (stage.images() if stage.images else {}).items():
                    tf.summary.image(f"{stage.name}/{tag}", tf.clip_by_value(images, 0.0, 1.0), max_outputs=len(images))
            writer.flush()
    if run_dir is not None:
        session.update(global_step=global_step, steps_total=stage.epochs * stage.steps_per_epoch,
                       seconds=round(time.perf_counter() - t0, 1))
        _record_session(run_dir, session)
    return results


SESSIONS_FILE = "logs/sessions.jsonl"


def _record_session(run_dir, session: dict) -> None:
    """Appends one line to `run_dir/logs/sessions.jsonl` (atomically: a kill leaves the old file)."""
    path = Path(run_dir) / SESSIONS_FILE
    old = path.read_text() if path.exists() else ""
    with files.atomic_path(path) as tmp:
        tmp.write_text(old + json.dumps(session, sort_keys=True) + "\n")


def read_sessions(run_dir) -> list:
    """The training sessions recorded in `run_dir/logs/sessions.jsonl`, oldest first (see `fit`)."""
    path = Path(run_dir) / SESSIONS_FILE
    return [json.loads(line) for line in path.read_text().splitlines() if line] if path.exists() else []


