"""Training: the Siamese network, the explainable autoencoder, the decoder fine-tuning.

One custom loop (`fit`) serves all three stages. It runs under a
`tf.distribute` strategy (the default strategy when none is given): a
`tf.function` step calls `strategy.run` on each replica, per-example losses are
divided by the global batch size, and the replicas' losses are summed with
`strategy.reduce`. Progress goes to a `keras.utils.Progbar`, scalars to
TensorBoard through `tf.summary`, and state (models, optimizer, position in
the data) to a `tf.train.CheckpointManager`, so that a killed run restarted
with the same command resumes where its last checkpoint left off and ends
with the same weights.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from siamese_xai import data, files, losses, models, prototypes, runs
from siamese_xai.config import TrainConfig
from siamese_xai.distribute import STRATEGIES, make_strategy  # noqa: F401 (the CLI's names)

# Seed offsets so the three stages draw different initial weights and orders.
_SNN_SEED, _AE_SEED, _DEC_SEED = 0, 1000, 2000


def _kernels(*ms):
    """Kernels of all Dense/Conv layers: what R(W) penalises (not biases)."""
    return [w for m in ms for w in m.trainable_weights if w.path.endswith("kernel")]


@dataclass
class _Stage:
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


def _worker_dir(run_dir, strategy):
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


def fit(stage: _Stage, run_dir=None, strategy=None, checkpoint_every: int = 200, verbose: int = 1,
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
    run_dir = _worker_dir(run_dir, strategy)
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

    @tf.function
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


def _steps(n, batch_size):
    return -(-n // batch_size)


def train_siamese(x, y, config: TrainConfig, run_dir=None, strategy=None, verbose: int = 1, on_step=None) -> keras.Model:
    """Trains the Siamese subnetwork f with the contrastive loss on balanced pairs.

    Args:
        x: `(n, 28, 28, 1)` float32 training images.
        y: `(n,)` labels.
        config: the training config (uses `config.snn`, `embedding_dim`, `seed`).
        run_dir: where checkpoints and logs go (None: nowhere).
        strategy: a `tf.distribute.Strategy` (None: the default); the
            batch size is the global batch, split across its replicas.
        verbose: 1 shows progress.
        on_step: `on_step(global_step, values)` after every step (see `fit`).

    Returns:
        The trained subnetwork, `(batch, 28, 28, 1) -> (batch, D)`.
    """
    cfg = config.snn
    strategy = strategy or tf.distribute.get_strategy()
    keras.utils.set_random_seed(config.seed + _SNN_SEED)
    with strategy.scope():
        snn = models.build_siamese_subnetwork(config.embedding_dim)
        optimizer = keras.optimizers.Adam(cfg.learning_rate)
        optimizer.build(snn.trainable_variables)
    num_pairs = cfg.pairs_per_epoch or len(x)
    kernels = _kernels(snn)

    def per_example(x_i, x_j, z):
        h_i = snn(x_i, training=True)
        h_j = snn(x_j, training=True)
        per_ex = losses.contrastive_loss(h_i, h_j, z, cfg.tau)
        return per_ex, {"distance2": losses.squared_distance(h_i, h_j)}

    stage = _Stage(
        name="snn",
        variables=snn.trainable_variables,
        per_example=per_example,
        regularizer=lambda: cfg.mu * losses.l2_regularization(kernels),
        make_dataset=lambda epoch, skip: data.make_pair_dataset(
            x, y, cfg.batch_size, config.seed + _SNN_SEED, epoch, num_pairs, skip
        ),
        steps_per_epoch=_steps(num_pairs, cfg.batch_size),
        epochs=cfg.epochs,
        optimizer=optimizer,
        trackables={"snn": snn},
    )
    fit(stage, run_dir, strategy, config.checkpoint_every, verbose, on_step)
    return snn


def train_autoencoder(x, h, config: TrainConfig, run_dir=None, strategy=None, verbose: int = 1, on_step=None):
    """Trains the explainable autoencoder with the joint loss; f is fixed.

    `alpha ||x - g(e(x))||^2 + beta ||h - e(x)||^2 + lambda R(W)`

    Args:
        x: `(n, 28, 28, 1)` training images.
        h: `(n, D)` their Siamese embeddings f(x), computed once (f is frozen).
        config: the training config (uses `config.autoencoder`).
        run_dir, strategy, verbose, on_step: as in `train_siamese`.

    Returns:
        `(encoder, decoder)`.
    """
    cfg = config.autoencoder
    strategy = strategy or tf.distribute.get_strategy()
    _check_embeddings(x, h, config.embedding_dim)
    keras.utils.set_random_seed(config.seed + _AE_SEED)
    with strategy.scope():
        encoder = models.build_encoder(config.embedding_dim)
        decoder = models.build_decoder(config.embedding_dim)
        variables = encoder.trainable_variables + decoder.trainable_variables
        optimizer = keras.optimizers.Adam(cfg.learning_rate)
        optimizer.build(variables)
    kernels = _kernels(encoder, decoder)

    def per_example(xb, hb):
        code = encoder(xb, training=True)
        recon = decoder(code, training=True)
        per_ex = losses.joint_autoencoder_loss(xb, recon, hb, code, cfg.alpha, cfg.beta)
        return per_ex, {"recon_sse": losses.reconstruction_sse(xb, recon), "alignment_sse": losses.squared_distance(hb, code)}

    stage = _Stage(
        name="autoencoder",
        variables=variables,
        per_example=per_example,
        regularizer=lambda: cfg.lam * losses.l2_regularization(kernels),
        make_dataset=lambda epoch, skip: data.make_image_dataset((x, h), cfg.batch_size, config.seed + _AE_SEED, epoch, skip),
        steps_per_epoch=_steps(len(x), cfg.batch_size),
        epochs=cfg.epochs,
        optimizer=optimizer,
        trackables={"encoder": encoder, "decoder": decoder},
    )
    fit(stage, run_dir, strategy, config.checkpoint_every, verbose, on_step)
    return encoder, decoder


def finetune_decoder(decoder, x, h, config: TrainConfig, run_dir=None, strategy=None, verbose: int = 1, on_step=None) -> keras.Model:
    """Trains the decoder alone on the Siamese embeddings: `g(f(x)) -> x`.

    Args:
        decoder: the autoencoder's decoder; a copy is trained and returned.
        x: `(n, 28, 28, 1)` training images.
        h: `(n, D)` their Siamese embeddings.
        config: the training config (uses `config.decoder`).
        run_dir, strategy, verbose, on_step: as in `train_siamese`.

    Returns:
        The fine-tuned decoder.
    """
    cfg = config.decoder
    strategy = strategy or tf.distribute.get_strategy()
    _check_embeddings(x, h, config.embedding_dim)
    keras.utils.set_random_seed(config.seed + _DEC_SEED)
    with strategy.scope():
        tuned = keras.models.clone_model(decoder)
        tuned.set_weights(decoder.get_weights())
        optimizer = keras.optimizers.Adam(cfg.learning_rate)
        optimizer.build(tuned.trainable_variables)
    kernels = _kernels(tuned)

    def per_example(xb, hb):
        sse = losses.reconstruction_sse(xb, tuned(hb, training=True))
        return sse, {}

    stage = _Stage(
        name="decoder",
        variables=tuned.trainable_variables,
        per_example=per_example,
        regularizer=lambda: cfg.lam * losses.l2_regularization(kernels),
        make_dataset=lambda epoch, skip: data.make_image_dataset((x, h), cfg.batch_size, config.seed + _DEC_SEED, epoch, skip),
        steps_per_epoch=_steps(len(x), cfg.batch_size),
        epochs=cfg.epochs,
        optimizer=optimizer,
        trackables={"decoder": tuned},
    )
    fit(stage, run_dir, strategy, config.checkpoint_every, verbose, on_step)
    return tuned


def _check_embeddings(x, h, embedding_dim):
    if h.shape != (len(x), embedding_dim):
        raise ValueError(
            f"`h` must be ({len(x)}, {embedding_dim}): one embedding of length embedding_dim per image. "
            f"Received: h.shape={h.shape}"
        )


def predict(model, x, batch_size: int = 1000) -> np.ndarray:
    """`model(x)` in batches of 1000, as a float32 NumPy array: `prototypes.embed_in_batches`.

    Kept for callers of the old name; the batch size is the one `train_run`
    uses, so the same model gives the same arrays bit for bit.
    """
    return prototypes.embed_in_batches(model, x, batch_size)


def evaluate(snn, encoder, decoder, protos, x, y, batch_size: int = 1000) -> dict:
    """The run's quality figures on a test set.

    Args:
        snn, encoder, decoder: the trained models.
        protos: `(C, D)` prototypes.
        x: `(n, 28, 28, 1)` test images.
        y: `(n,)` test labels.

    Returns:
        `prototype_accuracy`, `recon_sse_autoencoder` (mean per-image SSE of
        g(e(x))), `recon_sse_decoder` (the same for g(f(x))) and
        `alignment_sse` (mean ||e(x) - f(x)||^2).
    """
    batched = lambda model, inputs: prototypes.embed_in_batches(model, inputs, batch_size)
    h = batched(snn, x)
    code = batched(encoder, x)
    rec_e = batched(decoder, code)
    rec_f = batched(decoder, h)
    sse = lambda a, b: float(np.mean(np.sum((a - b).reshape(len(a), -1) ** 2, axis=1)))
    # How much of an image the embedding keeps beyond its class: the contrastive
    # loss pulls same-class embeddings together, and the decoder can only
    # reconstruct the within-class detail that survives.
    y = np.asarray(y)
    class_means = np.stack([h[y == k].mean(0) for k in range(len(protos))])
    within = float(np.mean(np.sum((h - class_means[y]) ** 2, axis=1)))
    between = float(np.mean(np.sum((class_means[:, None] - class_means[None]) ** 2, axis=-1)))
    image_means = np.stack([x[y == k].mean(0) for k in range(len(protos))])
    return {
        "embedding_within_class_sq_spread": within,
        "embedding_between_class_sq_distance": between,
        "recon_sse_class_mean_image": sse(x, image_means[y]),
        "prototype_accuracy": prototypes.prototype_accuracy(h, y, protos),
        "recon_sse_autoencoder": sse(x, rec_e),
        "recon_sse_decoder": sse(x, rec_f),
        "alignment_sse": float(np.mean(np.sum((code - h) ** 2, axis=1))),
        "num_test_images": int(len(x)),
    }


def train_run(config: TrainConfig, run_dir, data_dir=None, strategy=None, force: bool = False, verbose: int = 1) -> dict:
    """Trains all three stages on MNIST and writes the run folder.

    Each stage whose model file already exists is loaded instead of trained
    (unless `force`); a stage interrupted mid-way resumes from its checkpoint.
    The run folder then holds `snn.keras`, `encoder.keras`,
    `decoder_joint.keras` (the decoder before fine-tuning), `decoder.keras`,
    `prototypes.npy` (C x D), `config.json` and `metrics.json`.

    Args:
        config: the training config.
        run_dir: the run folder (created if missing).
        data_dir: MNIST's location (see `siamese_xai.data.load_mnist`).
        strategy: a `tf.distribute.Strategy` or its name (see `make_strategy`).
        force: retrain every stage, discarding old models and checkpoints.
        verbose: 1 shows progress.

    Under `MultiWorkerMirroredStrategy` every worker runs this with the same
    arguments; the chief writes `run_dir`, the other workers write the same
    files to `run_dir/workers/worker-I` (see `_worker_dir`).

    Returns:
        The metrics written to `metrics.json`.
    """
    strategy = make_strategy(strategy)
    # data first: a missing data set must not leave a half-made run folder behind
    x_train, y_train = data.load_mnist("train", data_dir)
    x_test, y_test = data.load_mnist("test", data_dir)
    if config.train_limit:
        x_train, y_train = x_train[: config.train_limit], y_train[: config.train_limit]
    run_dir = _worker_dir(run_dir, strategy)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(err.errno, f"`run_dir` {str(run_dir)!r} cannot be created: {err.strerror}") from None
    files.remove_stale_temporaries(run_dir)  # a model file half-written when a run was killed
    config_path = run_dir / runs.CONFIG_FILE
    if config_path.exists() and not force:
        old = files.read_json(config_path)
        if old != config.to_dict():
            raise ValueError(
                f"`run_dir` {run_dir} holds a run with another config; pass force=True (--force) to retrain it. "
                f"Received: a config that differs from {config_path}"
            )
    if force:
        for name in (runs.SNN_FILE, runs.ENCODER_FILE, runs.DECODER_JOINT_FILE, runs.DECODER_FILE, runs.PROTOTYPES_FILE,
                     runs.METRICS_FILE, runs.IDENTITY_FILE):
            (run_dir / name).unlink(missing_ok=True)
        import shutil

        shutil.rmtree(run_dir / runs.CHECKPOINTS_DIR, ignore_errors=True)
    files.write_json(config_path, config.to_dict())
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()

    metrics_path = run_dir / runs.METRICS_FILE
    seconds = files.read_json(metrics_path).get("seconds", {}) if metrics_path.exists() else {}

    def stage(name, path, train_fn):
        if path.exists():
            if verbose:
                print(f"[{name}] {path} exists, skipping")
            return runs.load_model(run_dir, path.name)
        t0 = time.perf_counter()
        model = train_fn()
        seconds[name] = round(time.perf_counter() - t0, 1)
        files.save_model(model, path)
        return model

    snn = stage("snn", run_dir / runs.SNN_FILE, lambda: train_siamese(x_train, y_train, config, run_dir, strategy, verbose))
    h_train = prototypes.embed_in_batches(snn, x_train, 1000)
    protos = prototypes.prototypes_from_embeddings(h_train, y_train, 10)
    files.write_npy(run_dir / runs.PROTOTYPES_FILE, protos)

    pair = {}

    def joint():
        pair["encoder"], pair["decoder"] = train_autoencoder(x_train, h_train, config, run_dir, strategy, verbose)
        files.save_model(pair["decoder"], run_dir / runs.DECODER_JOINT_FILE)
        return pair["encoder"]

    if not (run_dir / runs.ENCODER_FILE).exists():
        (run_dir / runs.DECODER_JOINT_FILE).unlink(missing_ok=True)
    encoder = stage("autoencoder", run_dir / runs.ENCODER_FILE, joint)
    decoder_joint = pair.get("decoder") or runs.load_model(run_dir, runs.DECODER_JOINT_FILE)
    decoder = stage(
        "decoder", run_dir / runs.DECODER_FILE, lambda: finetune_decoder(decoder_joint, x_train, h_train, config, run_dir, strategy, verbose)
    )

    metrics = evaluate(snn, encoder, decoder, protos, x_test, y_test)
    joint_metrics = evaluate(snn, encoder, decoder_joint, protos, x_test, y_test)
    metrics["recon_sse_autoencoder_before_finetune"] = joint_metrics["recon_sse_autoencoder"]
    metrics["recon_sse_decoder_before_finetune"] = joint_metrics["recon_sse_decoder"]
    metrics["train_prototype_accuracy"] = prototypes.prototype_accuracy(h_train, y_train, protos)
    metrics["seconds"] = seconds
    files.write_json(metrics_path, metrics)
    runs.write_identity(run_dir, snn, decoder, protos)  # last: the finished run's recorded identity
    return metrics
