"""Training: the Siamese network, the explainable autoencoder, the decoder fine-tuning, and a whole run.

The three stages share one custom loop, `siamese_xai.training.loop.fit` (a
`tf.distribute` strategy, checkpoints, TensorBoard, resumable); this module
defines each stage's data, losses and models, and `train_run` chains them into
a run folder.
"""

from __future__ import annotations

import os
import time

import keras
import numpy as np
import tensorflow as tf

from siamese_xai import files, runs
from siamese_xai.data import mnist as data
from siamese_xai.data import streaming
from siamese_xai.training import defaults
from siamese_xai.training import losses
from siamese_xai.training import models
from siamese_xai.explainers import prototypes
from siamese_xai.config import TrainConfig
from siamese_xai.training.distribute import make_strategy
from siamese_xai.training.loop import Stage, fit, worker_dir

# Seed offsets so the three stages draw different initial weights and orders.
_SNN_SEED, _AE_SEED, _DEC_SEED = 0, 1000, 2000


def _kernels(*ms):
    """Kernels of all Dense/Conv layers: what R(W) penalises (not biases)."""
    return [w for m in ms for w in m.trainable_weights if w.path.endswith("kernel")]


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
    photo = models.uses_photo_networks(x.shape[1:])
    learning_rate = cfg.learning_rate
    if photo:  # decayed to 5% along a cosine: the clusters settle at the end instead of jumping between batches
        learning_rate = keras.optimizers.schedules.CosineDecay(
            cfg.learning_rate, cfg.epochs * _steps(len(x), cfg.batch_size), alpha=0.05)
    with strategy.scope():
        snn = models.build_for_images(x.shape[1:])[0](config.embedding_dim, image_shape=tuple(x.shape[1:]))
        optimizer = keras.optimizers.Adam(learning_rate)
        optimizer.build(snn.trainable_variables)
    num_pairs = cfg.pairs_per_epoch or len(x)
    images = streaming.as_tensor(x)  # once per stage: a copy per epoch grew the resident memory by the data set each epoch
    kernels = _kernels(snn)

    def per_example(x_i, x_j, z):
        h_i = snn(x_i, training=True)
        h_j = snn(x_j, training=True)
        per_ex = losses.contrastive_loss(h_i, h_j, z, cfg.tau)
        return per_ex, {"distance2": losses.squared_distance(h_i, h_j)}

    def per_anchor(xb, yb):  # the photo tower: every pair of a batch of images (`losses.batch_contrastive_loss`)
        return losses.batch_contrastive_loss(snn(xb, training=True), yb, cfg.tau), {}

    if photo:  # an epoch is one pass over the images; pairs_per_epoch does not apply
        make_dataset = lambda epoch, skip: streaming.labelled_dataset(
            images, y, cfg.batch_size, config.seed + _SNN_SEED, epoch, skip, augment=True)
    else:
        make_dataset = lambda epoch, skip: data.make_pair_dataset(
            images, y, cfg.batch_size, config.seed + _SNN_SEED, epoch, num_pairs, skip)
    stage = Stage(
        name="snn",
        variables=snn.trainable_variables,
        per_example=per_anchor if photo else per_example,
        regularizer=lambda: cfg.mu * losses.l2_regularization(kernels),
        make_dataset=make_dataset,
        steps_per_epoch=_steps(len(x) if photo else num_pairs, cfg.batch_size),
        epochs=cfg.epochs,
        optimizer=optimizer,
        trackables={"snn": snn},
    )
    fit(stage, run_dir, strategy, config.checkpoint_every, verbose, on_step)
    return snn


def train_autoencoder(x, h, config: TrainConfig, run_dir=None, strategy=None, verbose: int = 1, on_step=None,
                      decoder_options=None):
    """Trains the explainable autoencoder with the joint loss; f is fixed.

    `alpha ||x - g(e(x))||^2 + beta ||h - e(x)||^2 + lambda R(W)`

    Args:
        x: `(n, 28, 28, 1)` training images.
        h: `(n, D)` their Siamese embeddings f(x), computed once (f is frozen).
        config: the training config (uses `config.autoencoder`).
        run_dir, strategy, verbose, on_step: as in `train_siamese`.
        decoder_options: keyword arguments of `models.build_decoder` (None:
            Table 1's decoder; `models.LARGE_DECODER` is a larger one, not the paper's).

    Returns:
        `(encoder, decoder)`.
    """
    cfg = config.autoencoder
    strategy = strategy or tf.distribute.get_strategy()
    _check_embeddings(x, h, config.embedding_dim)
    keras.utils.set_random_seed(config.seed + _AE_SEED)
    with strategy.scope():
        _, build_encoder, build_decoder = models.build_for_images(x.shape[1:])
        if decoder_options and build_decoder is not models.build_decoder:
            raise ValueError(f"`decoder_options` apply to Table 1's decoder; images of shape {tuple(x.shape[1:])} get "
                             f"the photo decoder (`models.build_photo_decoder`). Received: {decoder_options!r}")
        encoder = build_encoder(config.embedding_dim, image_shape=tuple(x.shape[1:]))
        decoder = build_decoder(config.embedding_dim, image_shape=tuple(x.shape[1:]), **(decoder_options or {}))
        variables = encoder.trainable_variables + decoder.trainable_variables
        optimizer = keras.optimizers.Adam(cfg.learning_rate)
        optimizer.build(variables)
    kernels = _kernels(encoder, decoder)
    tensors = (streaming.as_tensor(x), tf.constant(h))

    def per_example(xb, hb):
        code = encoder(xb, training=True)
        recon = decoder(code, training=True)
        per_ex = losses.joint_autoencoder_loss(xb, recon, hb, code, cfg.alpha, cfg.beta)
        return per_ex, {"recon_sse": losses.reconstruction_sse(xb, recon), "alignment_sse": losses.squared_distance(hb, code)}

    stage = Stage(
        name="autoencoder",
        variables=variables,
        per_example=per_example,
        regularizer=lambda: cfg.lam * losses.l2_regularization(kernels),
        make_dataset=lambda epoch, skip: streaming.image_dataset(tensors, cfg.batch_size, config.seed + _AE_SEED, epoch, skip),
        steps_per_epoch=_steps(len(x), cfg.batch_size),
        epochs=cfg.epochs,
        optimizer=optimizer,
        trackables={"encoder": encoder, "decoder": decoder},
        images=_image_summaries(x, h, decoder, encoder),
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
    tensors = (streaming.as_tensor(x), tf.constant(h))

    def per_example(xb, hb):
        sse = losses.reconstruction_sse(xb, tuned(hb, training=True))
        return sse, {}

    stage = Stage(
        name="decoder",
        variables=tuned.trainable_variables,
        per_example=per_example,
        regularizer=lambda: cfg.lam * losses.l2_regularization(kernels),
        make_dataset=lambda epoch, skip: streaming.image_dataset(tensors, cfg.batch_size, config.seed + _DEC_SEED, epoch, skip),
        steps_per_epoch=_steps(len(x), cfg.batch_size),
        epochs=cfg.epochs,
        optimizer=optimizer,
        trackables={"decoder": tuned},
        images=_image_summaries(x, h, tuned),
    )
    fit(stage, run_dir, strategy, config.checkpoint_every, verbose, on_step)
    return tuned


SUMMARY_IMAGES = 8


def _image_summaries(x, h, decoder, encoder=None):
    """TensorBoard images after each epoch: the first 8 training images x, g(f(x)) and (with e) g(e(x)).

    Inference calls only: they draw no random numbers, so the weights are the same with or without them.
    """
    x0, h0 = np.asarray(x[:SUMMARY_IMAGES]), h[:SUMMARY_IMAGES]

    def images():
        out = {"x": x0, "g_f_x": decoder(h0, training=False)}
        if encoder is not None:
            out["g_e_x"] = decoder(encoder(x0, training=False), training=False)
        return out

    return images


def _check_embeddings(x, h, embedding_dim):
    if h.shape != (len(x), embedding_dim):
        raise ValueError(
            f"`h` must be ({len(x)}, {embedding_dim}): one embedding of length embedding_dim per image. "
            f"Received: h.shape={h.shape}"
        )


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
        `alignment_sse` (mean ||e(x) - f(x)||^2), with those of `evaluate_embedding`.
    """
    batched = lambda model, inputs: prototypes.embed_in_batches(model, inputs, batch_size)
    h = batched(snn, x)
    code = batched(encoder, x)
    rec_e = batched(decoder, code)
    out = _embedding_metrics(h, batched(decoder, h), protos, x, y)
    out.update({
        "recon_sse_autoencoder": _sse(x, rec_e),
        "alignment_sse": float(np.mean(np.sum((code - h) ** 2, axis=1))),
        "num_test_images": int(len(x)),
    })
    return dict(sorted(out.items(), key=lambda kv: _EVALUATE_ORDER.index(kv[0])))


_EVALUATE_ORDER = ("embedding_within_class_sq_spread", "embedding_between_class_sq_distance",
                   "recon_sse_class_mean_image", "prototype_accuracy", "recon_sse_autoencoder", "recon_sse_decoder",
                   "alignment_sse", "num_test_images")


def _sse(a, b):
    return float(np.mean(np.sum((a - b).reshape(len(a), -1) ** 2, axis=1)))


def _embedding_metrics(h, rec_f, protos, x, y):
    # How much of an image the embedding keeps beyond its class: the contrastive
    # loss pulls same-class embeddings together, and the decoder can only
    # reconstruct the within-class detail that survives.
    y = np.asarray(y)
    class_means = np.stack([h[y == k].mean(0) for k in range(len(protos))])
    within = float(np.mean(np.sum((h - class_means[y]) ** 2, axis=1)))
    between = prototypes.between_class_sq_distance(class_means)  # pairs k != l only
    image_means = np.stack([x[y == k].mean(0) for k in range(len(protos))])
    return {
        "embedding_within_class_sq_spread": within,
        "embedding_between_class_sq_distance": between,
        "recon_sse_class_mean_image": _sse(x, image_means[y]),
        "prototype_accuracy": prototypes.prototype_accuracy(h, y, protos),
        "recon_sse_decoder": _sse(x, rec_f),
    }


def evaluate_embedding(embed, decoder, protos, x, y, batch_size: int = 1000) -> dict:
    """`evaluate`'s figures that need no encoder: for a user's own tower (`siamese-xai fit`).

    Args:
        embed: f, a callable from images to `(batch, D)` embeddings.
        decoder: g.
        protos: `(C, D)` prototypes; every class must have a test image.
        x: `(n, H, W, C)` test images.
        y: `(n,)` test labels.

    Returns:
        `embedding_within_class_sq_spread`, `embedding_between_class_sq_distance`,
        `recon_sse_class_mean_image`, `prototype_accuracy` and `recon_sse_decoder`.
    """
    h = prototypes.embed_in_batches(embed, x, batch_size)
    return _embedding_metrics(h, prototypes.embed_in_batches(decoder, h, batch_size), protos, x, y)


# A test accuracy within this share of the way from chance (1 / C) to 1 counts as chance.
CHANCE_BAND = 0.1


def diagnose(metrics: dict, num_classes: int) -> list:
    """What did not work in a run, as sentences for the user: `[(unusable, sentence), ...]`, empty when all did.

    Three checks on the test metrics of `evaluate` (or the same keys from `fit`):
    the nearest-prototype accuracy within `CHANCE_BAND` of chance; the
    prototypes closer (mean squared distance between class means) than the
    within-class spread (mean squared distance to the own class mean); the
    decoder's g(f(x)) no better than each class's mean image. The first two
    make the run unusable (its explanations would explain a network that
    separates nothing); the third leaves it usable (explanations then show
    class templates rather than the image's own detail).

    Args:
        metrics: with `prototype_accuracy`, `embedding_within_class_sq_spread`,
            `embedding_between_class_sq_distance`, `recon_sse_decoder` and
            `recon_sse_class_mean_image`.
        num_classes: C.

    Returns:
        A list of `(unusable: bool, sentence: str)`.
    """
    found = []
    chance = 1 / num_classes
    acc = metrics["prototype_accuracy"]
    within, between = metrics["embedding_within_class_sq_spread"], metrics["embedding_between_class_sq_distance"]
    remedy = ("try more steps (--min-steps or --snn-epochs), more images per class, or check that each class "
              "folder holds only its class")
    if acc <= chance + CHANCE_BAND * (1 - chance):
        sentence = (f"the Siamese network did not learn: nearest-prototype test accuracy {acc:.1%} against "
                    f"chance {chance:.1%}; {remedy}")
        found.append((True, sentence))
    elif between <= within:
        sentence = (f"the Siamese network does not separate the classes: its prototypes lie {between:.3g} apart "
                    f"(squared distance) against a within-class spread of {within:.3g}; {remedy}")
        found.append((True, sentence))
    dec, mean = metrics["recon_sse_decoder"], metrics["recon_sse_class_mean_image"]
    if dec >= mean:
        sentence = (f"the decoder draws no better than the class means: squared error of g(f(x)) {dec:.4g} "
                    f"against {mean:.4g} for each class's mean image, so explanations will show class "
                    "templates rather than an image's own detail; try more decoder epochs (--decoder-epochs) "
                    "or a longer embedding (--embedding-dim)")
        found.append((False, sentence))
    return found


def train_run(config: TrainConfig, run_dir, data_dir=None, strategy=None, force: bool = False, verbose: int = 1, *,
              dataset=None, image_size=None, test_fraction: float = 0.2, min_steps: int = 0,
              size_defaults: bool = False) -> dict:
    """Trains all three stages on a labelled image set (MNIST by default) and writes the run folder.

    Each stage whose model file already exists is loaded instead of trained
    (unless `force`); a stage interrupted mid-way resumes from its checkpoint.
    The run folder then holds `snn.keras`, `encoder.keras`,
    `decoder_joint.keras` (the decoder before fine-tuning), `decoder.keras`,
    `prototypes.npy` (C x D), `classes.json` (the class names), `config.json`,
    `metrics.json` (with a `data` record: where the images came from, their
    shape and counts) and `run.json` (the run's identity), each written
    through `siamese_xai.runs`'s writers.

    Args:
        config: the training config.
        run_dir: the run folder (created if missing).
        data_dir: MNIST's location, or an image folder (see `siamese_xai.data.datasets.load_dataset`).
        strategy: a `tf.distribute.Strategy` or its name (see `make_strategy`).
        force: retrain every stage, discarding old models and checkpoints.
        verbose: 1 shows progress.
        dataset: a prepared tensorflow-datasets image classification set by name.
        image_size: `(H, W)` to resize images of other sizes to (else sizes must agree).
        test_fraction: the test share of an image folder without train/ and test/.
        min_steps: each stage trains at least this many steps (`TrainConfig.with_min_steps`;
            0, the default, keeps `config`'s epochs). The config written to
            `config.json` is the one trained, with the raised epochs.
        size_defaults: replace `config`'s schedule by the defaults for the
            images' size and number (`siamese_xai.training.defaults.for_images`; the
            paper's for images under the photo size) and print them first;
            the photo schedule then ignores `min_steps`.

    Under `MultiWorkerMirroredStrategy` every worker runs this with the same
    arguments; the chief writes `run_dir`, the other workers write the same
    files to `run_dir/workers/worker-I` (see `siamese_xai.training.loop.worker_dir`).

    Returns:
        The metrics written to `metrics.json`.
    """
    strategy = make_strategy(strategy)
    # data first: a missing data set must not leave a half-made run folder behind
    load = dict(data_dir=data_dir, dataset=dataset, image_size=image_size, test_fraction=test_fraction, seed=config.seed)
    x_train, y_train, class_names = streaming.load_images(split="train", **load)  # streamed from 48 px on
    x_test, y_test, _ = streaming.load_images(split="test", **load)
    x_test = np.asarray(x_test)  # the test images are evaluated in memory
    # what `ProbeExplainer.from_run` reads its examples from: the folder absolute, the split's test share
    data_record = {"data_dir": None if data_dir is None else os.path.abspath(data_dir), "dataset": dataset,
                   "test_fraction": test_fraction,
                   "image_shape": list(x_train.shape[1:]), "num_train": len(x_train), "num_test": len(x_test),
                   "class_names": list(class_names)}
    if config.train_limit:
        x_train, y_train = x_train[: config.train_limit], y_train[: config.train_limit]
    if size_defaults:
        config, line = defaults.for_images(config, tuple(x_train.shape[1:]), len(x_train))
        if models.uses_photo_networks(x_train.shape[1:]):
            min_steps = 0  # the photo schedule's own least steps per stage stand (`defaults.for_images`)
        if verbose:
            print(f"{line}; {streaming.describe(x_train)}")
    fitted = config.with_min_steps(min_steps, len(x_train))
    if fitted != config and verbose:
        print(f"{len(x_train)} training images: epochs raised to {fitted.snn.epochs} / {fitted.autoencoder.epochs} / "
              f"{fitted.decoder.epochs} (Siamese network / autoencoder / decoder) for at least {min_steps} steps each")
    config = fitted
    run_dir = worker_dir(run_dir, strategy)
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
    runs.write_config(run_dir, config.to_dict())
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
        runs.write_model(run_dir, path.name, model)
        return model

    snn = stage("snn", run_dir / runs.SNN_FILE, lambda: train_siamese(x_train, y_train, config, run_dir, strategy, verbose))
    h_train = streaming.embed(snn, x_train, 1000)
    protos = prototypes.prototypes_from_embeddings(h_train, y_train, len(class_names))
    runs.write_class_names(run_dir, class_names)
    runs.write_prototypes(run_dir, protos)

    pair = {}

    def joint():
        pair["encoder"], pair["decoder"] = train_autoencoder(x_train, h_train, config, run_dir, strategy, verbose)
        runs.write_model(run_dir, runs.DECODER_JOINT_FILE, pair["decoder"])
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
    metrics["data"] = data_record
    runs.write_metrics(run_dir, metrics)
    runs.write_identity(run_dir, snn, decoder, protos)  # last: the finished run's recorded identity
    return metrics
