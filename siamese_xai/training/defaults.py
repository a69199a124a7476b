"""Training defaults chosen by the image size and the number of images (`for_images`).

The paper's networks and schedule (`TrainConfig.paper`) are for 28x28 digits
and stay the defaults for every image whose shorter side is under
`models.PHOTO_MIN_SIDE`. Larger images get the photo networks
(`siamese_xai.training.models`, "Photos") and the schedule below, measured on the
96x96 photos of `benchmarks/speed/photos.py` (`benchmarks/speed/photos.json`):

- the Siamese network: batches of `PHOTO_SNN_BATCH` images, the paper's
  contrastive loss over every pair of a batch (`losses.batch_contrastive_loss`:
  496 pairs a step instead of 16) with tau = 2 D (the mean squared distance of
  two independent standardised embeddings), Adam from `PHOTO_SNN_LR` decayed
  along a cosine to 5% of it, each image
  mirrored left-right with probability 1/2, and at least `PHOTO_SNN_STEPS`
  steps. In trials on the photos, balanced pairs (the paper's sampler) with
  tau = 1 collapsed (every embedding alike, loss 0.5) and reached 46% at
  48x48 in 940 steps; with all pairs, the tower's standardisations and these
  choices the 96x96 photos reached 100% test accuracy in 940 steps in one
  trial and 86% (88% on the training images) in another, so the default
  has 1,400 steps and the decaying learning rate;
- the autoencoder and the decoder: batches of `PHOTO_AE_BATCH` images and at
  least `PHOTO_AE_STEPS` steps each (one epoch of 3,000 images). With 450
  steps they took three quarters of the 96 px run's time (527 of 795 s) for
  a g(f(x)) no better than the class-mean images: the tower's embeddings keep
  almost nothing of an image beyond its class (docs/photos.md), and the
  accuracy depends on the Siamese network alone.

`train_run(size_defaults=True)` does not raise this schedule by `min_steps`
(the command line passes `siamese_xai.config.DEFAULT_MIN_STEPS` by default; a
`--min-steps` given turns the size defaults off).
"""

from __future__ import annotations

import dataclasses

from siamese_xai.training import models
from siamese_xai.config import TrainConfig

PHOTO_SNN_BATCH = 32
PHOTO_SNN_LR = 3e-3
PHOTO_SNN_STEPS = 1400
PHOTO_AE_BATCH = 32
PHOTO_AE_STEPS = 90


def _epochs(steps, num, batch):
    return max(1, -(-steps // -(-num // batch)))


def for_images(config: TrainConfig, image_shape, num_train: int):
    """The training defaults for `num_train` images of `image_shape`, and a line that states them.

    Args:
        config: the config asked for (its seed, embedding length and limits are kept).
        image_shape: `(H, W, C)`.
        num_train: the number of training images (after `train_limit`).

    Returns:
        `(config, line)`: `config` unchanged for images under the photo size,
        else with the photo schedule; `line` says which networks and schedule.
    """
    h, w, c = image_shape
    what = f"{h}x{w}x{c} images, {num_train} training images"
    if not models.uses_photo_networks(image_shape):
        return config, (f"{what}: the paper's networks (Table 1) and schedule (photo networks and their schedule "
                        f"from a shorter side of {models.PHOTO_MIN_SIDE} px)")
    snn = dataclasses.replace(config.snn, batch_size=PHOTO_SNN_BATCH, learning_rate=PHOTO_SNN_LR,
                              epochs=_epochs(PHOTO_SNN_STEPS, num_train, PHOTO_SNN_BATCH),
                              tau=2.0 * config.embedding_dim)
    ae = dataclasses.replace(config.autoencoder, batch_size=PHOTO_AE_BATCH,
                             epochs=_epochs(PHOTO_AE_STEPS, num_train, PHOTO_AE_BATCH))
    dec = dataclasses.replace(config.decoder, batch_size=PHOTO_AE_BATCH,
                              epochs=_epochs(PHOTO_AE_STEPS, num_train, PHOTO_AE_BATCH))
    levels = len(models.photo_levels(image_shape)) - 1
    line = (f"{what}: photo networks ({levels} levels; Siamese tower of {models.tower_filters(1)}-"
            f"{models.tower_filters(levels)} filters with batch normalisation and global pooling, trained on every "
            f"pair of each batch), "
            f"Siamese network {snn.epochs} epochs of {snn.batch_size} mirrored images at learning rate "
            f"{snn.learning_rate:g}, autoencoder {ae.epochs} and decoder {dec.epochs} epochs of {ae.batch_size} images")
    return config.replace(snn=snn, autoencoder=ae, decoder=dec), line
