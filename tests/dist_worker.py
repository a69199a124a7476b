"""Subprocess helper for tests/test_distributed.py (not a test module).

Device layout and `TF_CONFIG` must be fixed before TensorFlow initialises its
devices, so each distributed check runs in a fresh Python process:

    python tests/dist_worker.py mirrored OUT.json
        trains the Siamese network and the autoencoder on a few hundred MNIST
        images, once under the default strategy and once under a
        `MirroredStrategy` over two logical CPU devices, with the same global
        batch and seed; writes both per-step loss trajectories and the largest
        final weight difference to OUT.json.

    TF_CONFIG=... python tests/dist_worker.py multiworker OUT_DIR
        one worker of a `MultiWorkerMirroredStrategy` cluster: trains a few
        steps of both networks (checkpointing into OUT_DIR/run) and writes its
        final weights to OUT_DIR/weights-I.npz (I = its task index), its loss
        trajectory and its share of a global batch to OUT_DIR/info-I.json.
        Killed and started again with the same TF_CONFIG and OUT_DIR, it
        resumes from its checkpoints in OUT_DIR/run (the loss trajectory then
        holds only the steps trained after the restart).
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def _config(n):
    from siamese_xai.config import AutoencoderConfig, DecoderConfig, SNNConfig, TrainConfig

    return TrainConfig.tiny(
        train_limit=n,
        snn=SNNConfig(epochs=1, batch_size=32),
        autoencoder=AutoencoderConfig(epochs=1, batch_size=32),
        decoder=DecoderConfig(epochs=1, batch_size=32),
        checkpoint_every=3,
    )


def _data(n):
    from siamese_xai.data import mnist as data

    x, y = data.load_mnist("train")
    return x[:n], y[:n]


def _train(x, y, cfg, strategy, run_dir=None):
    from siamese_xai.explainers.prototypes import embed_in_batches
    from siamese_xai.training import stages as training

    losses = {"snn": [], "autoencoder": []}
    snn = training.train_siamese(x, y, cfg, run_dir, strategy, verbose=0,
                                 on_step=lambda s, v: losses["snn"].append(v["loss"]))
    h = embed_in_batches(snn, x, 1000)
    enc, dec = training.train_autoencoder(x, h, cfg, run_dir, strategy, verbose=0,
                                          on_step=lambda s, v: losses["autoencoder"].append(v["loss"]))
    weights = snn.get_weights() + enc.get_weights() + dec.get_weights()
    return losses, weights


def mirrored(out_path):
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    tf.config.experimental.enable_op_determinism()
    n = 245  # 7 full batches of 32 and an uneven last batch of 21 (11 + 10 per replica)
    x, y = _data(n)
    cfg = _config(n)
    ref_losses, ref_w = _train(x, y, cfg, None)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    mir_losses, mir_w = _train(x, y, cfg, strategy)
    json.dump(
        {
            "replicas": strategy.num_replicas_in_sync,
            "default": ref_losses,
            "mirrored": mir_losses,
            "max_weight_diff": max(float(np.max(np.abs(a - b))) for a, b in zip(ref_w, mir_w)),
        },
        open(out_path, "w"),
    )


def multiworker(out_dir):
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    task = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    n = 256  # 8 global batches of 32: 16 examples per worker per step
    x, y = _data(n)
    losses, weights = _train(x, y, _config(n), strategy, run_dir=os.path.join(out_dir, "run"))
    np.savez(os.path.join(out_dir, f"weights-{task}.npz"), *weights)
    # what this worker's replica receives of the first global batch (auto-sharding)
    from siamese_xai.data import mnist as data

    first = next(iter(strategy.experimental_distribute_dataset(data.make_image_dataset((x,), 32, 0))))
    json.dump({"losses": losses, "local_batch": int(strategy.experimental_local_results(first[0])[0].shape[0])},
              open(os.path.join(out_dir, f"info-{task}.json"), "w"))


if __name__ == "__main__":
    {"mirrored": mirrored, "multiworker": multiworker}[sys.argv[1]](sys.argv[2])
