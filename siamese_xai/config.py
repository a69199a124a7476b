"""Frozen configs for each training stage, with the paper's values as defaults.

The paper gives the autoencoder (Table 1), the code length and the explainer's
N and sigma, but no training hyper-parameters; the defaults below are this
project's choices, tuned so that the whole training stage runs in minutes on
a 2-core CPU (see docs/choices.md, "What was tuned").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


def _positive_int(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")


def _non_negative(name, value):
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
        raise ValueError(f"`{name}` must be a non-negative number. Received: {name}={value!r}")


def _positive(name, value):
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
        raise ValueError(f"`{name}` must be a positive number. Received: {name}={value!r}")


# The command line's minimum number of optimizer steps per training stage. Four epochs of the
# Siamese network are 1,876 steps on MNIST but 24 on 720 images (3 classes x 240 training
# images), too few to train it; each stage then gets at least this many steps, which leaves
# MNIST's schedule (and the paper run) unchanged. On benchmarks/schedule.py's shapes folder the
# test accuracy is 0.589 with the paper's epochs, 0.889 with 200 steps and 0.961 with 400
# (benchmarks/schedule.json).
DEFAULT_MIN_STEPS = 400


def _epochs_for(epochs, num_examples, batch_size, min_steps):
    steps_per_epoch = -(-num_examples // batch_size)
    return max(epochs, -(-min_steps // steps_per_epoch))


@dataclass(frozen=True)
class SNNConfig:
    """The Siamese network's training (contrastive loss).

    Attributes:
        tau: threshold of the contrastive loss on the squared distance.
        mu: weight of the L2 regularizer R(W) on the kernels.
        epochs: passes over `pairs_per_epoch` pairs.
        batch_size: pairs per step (global batch under a strategy).
        learning_rate: Adam's learning rate.
        pairs_per_epoch: balanced pairs drawn per epoch; None = one per
            training image.
    """

    tau: float = 1.0
    mu: float = 1e-5
    epochs: int = 4
    batch_size: int = 128
    learning_rate: float = 1e-3
    pairs_per_epoch: int | None = None

    def __post_init__(self):
        _positive("tau", self.tau)
        _non_negative("mu", self.mu)
        _positive_int("epochs", self.epochs)
        _positive_int("batch_size", self.batch_size)
        _positive("learning_rate", self.learning_rate)
        if self.pairs_per_epoch is not None:
            _positive_int("pairs_per_epoch", self.pairs_per_epoch)


@dataclass(frozen=True)
class AutoencoderConfig:
    """The explainable autoencoder's joint training.

    Attributes:
        alpha: weight of the reconstruction term ||x - g(e(x))||^2.
        beta: weight of the alignment term ||f(x) - e(x)||^2.
        lam: weight of the L2 regularizer R(W) (the paper's lambda).
        epochs, batch_size, learning_rate: as usual (Adam).
    """

    alpha: float = 1.0
    beta: float = 10.0
    lam: float = 0.0
    epochs: int = 8
    batch_size: int = 128
    learning_rate: float = 2e-3

    def __post_init__(self):
        _non_negative("alpha", self.alpha)
        _non_negative("beta", self.beta)
        if self.alpha == 0 and self.beta == 0:
            raise ValueError("`alpha` and `beta` cannot both be 0. Received: alpha=0, beta=0")
        _non_negative("lam", self.lam)
        _positive_int("epochs", self.epochs)
        _positive_int("batch_size", self.batch_size)
        _positive("learning_rate", self.learning_rate)


@dataclass(frozen=True)
class DecoderConfig:
    """Fine-tuning of the decoder alone on (f(x) -> x).

    Attributes:
        lam: weight of the L2 regularizer R(W).
        epochs, batch_size, learning_rate: as usual (Adam).
    """

    lam: float = 0.0
    epochs: int = 8
    batch_size: int = 128
    learning_rate: float = 2e-3

    def __post_init__(self):
        _non_negative("lam", self.lam)
        _positive_int("epochs", self.epochs)
        _positive_int("batch_size", self.batch_size)
        _positive("learning_rate", self.learning_rate)


@dataclass(frozen=True)
class TrainConfig:
    """All three training stages.

    Attributes:
        embedding_dim: D, the Siamese embedding and autoencoder code length
            (Table 1: 20; the paper's text: 10).
        seed: fixes initial weights and data order; the same seed and config
            give the same weights.
        snn, autoencoder, decoder: the stages' configs.
        checkpoint_every: steps between checkpoints (and at every epoch end).
        train_limit: use only the first `train_limit` training images (tests).
        deterministic: enable TensorFlow's op determinism.
    """

    embedding_dim: int = 20
    seed: int = 0
    snn: SNNConfig = field(default_factory=SNNConfig)
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    checkpoint_every: int = 200
    train_limit: int | None = None
    deterministic: bool = True

    def __post_init__(self):
        _positive_int("embedding_dim", self.embedding_dim)
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"`seed` must be a non-negative integer. Received: seed={self.seed!r}")
        _positive_int("checkpoint_every", self.checkpoint_every)
        if self.train_limit is not None:
            _positive_int("train_limit", self.train_limit)

    @classmethod
    def paper(cls, **overrides) -> "TrainConfig":
        """The configuration `make reproduce` trains (Table 1's D = 20)."""
        return cls(**overrides)

    @classmethod
    def tiny(cls, **overrides) -> "TrainConfig":
        """A seconds-long configuration for tests: 2,000 images, one epoch per stage."""
        base = dict(
            train_limit=2000,
            snn=SNNConfig(epochs=1, batch_size=64),
            autoencoder=AutoencoderConfig(epochs=1, batch_size=64),
            decoder=DecoderConfig(epochs=1, batch_size=64),
            checkpoint_every=10,
        )
        base.update(overrides)
        return cls(**base)

    def with_min_steps(self, min_steps: int, num_train: int) -> "TrainConfig":
        """Raises each stage's epochs so that it trains at least `min_steps` steps.

        A stage's steps per epoch are ceil(n / batch_size), n being the number
        of training images (for the Siamese network: `pairs_per_epoch`, or one
        pair per image); epochs already giving `min_steps` steps stay as they are.

        Args:
            min_steps: the minimum number of optimizer steps per stage (0: no minimum).
            num_train: the number of training images (after `train_limit`).

        Returns:
            A config with the same fields but possibly more epochs per stage.
        """
        if not isinstance(min_steps, int) or isinstance(min_steps, bool) or min_steps < 0:
            raise ValueError(f"`min_steps` must be a non-negative integer. Received: min_steps={min_steps!r}")
        _positive_int("num_train", num_train)
        if min_steps == 0:
            return self
        snn, ae, dec = self.snn, self.autoencoder, self.decoder
        return self.replace(
            snn=dataclasses.replace(snn, epochs=_epochs_for(snn.epochs, snn.pairs_per_epoch or num_train,
                                                            snn.batch_size, min_steps)),
            autoencoder=dataclasses.replace(ae, epochs=_epochs_for(ae.epochs, num_train, ae.batch_size, min_steps)),
            decoder=dataclasses.replace(dec, epochs=_epochs_for(dec.epochs, num_train, dec.batch_size, min_steps)),
        )

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        d["snn"] = SNNConfig(**d.get("snn", {}))
        d["autoencoder"] = AutoencoderConfig(**d.get("autoencoder", {}))
        d["decoder"] = DecoderConfig(**d.get("decoder", {}))
        return cls(**d)
