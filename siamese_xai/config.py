"""Frozen configs for each stage (training, explaining, probing), with the paper's values as defaults.

The paper gives the autoencoder (Table 1), the code length and the explainer's
N and sigma, but no training hyper-parameters; the defaults below are this
project's choices, tuned so that the whole training stage runs in minutes on
a 2-core CPU (see docs/choices.md, "What was tuned").
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import ClassVar

from siamese_xai import _checks


# The command line's minimum number of optimizer steps per training stage. Four epochs of the
# Siamese network are 1,876 steps on MNIST but 24 on 720 images (3 classes x 240 training
# images), too few to train it; each stage then gets at least this many steps, which leaves
# MNIST's schedule (and the paper run) unchanged. On benchmarks/studies/schedule.py's shapes folder the
# test accuracy is 0.589 with the paper's epochs, 0.889 with 200 steps and 0.961 with 400
# (benchmarks/studies/schedule.json).
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
        _checks.check_positive("tau", self.tau)
        _checks.check_non_negative("mu", self.mu)
        _checks.check_positive_int("epochs", self.epochs)
        _checks.check_positive_int("batch_size", self.batch_size)
        _checks.check_positive("learning_rate", self.learning_rate)
        if self.pairs_per_epoch is not None:
            _checks.check_positive_int("pairs_per_epoch", self.pairs_per_epoch)


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
        _checks.check_non_negative("alpha", self.alpha)
        _checks.check_non_negative("beta", self.beta)
        if self.alpha == 0 and self.beta == 0:
            raise ValueError("`alpha` and `beta` cannot both be 0. Received: alpha=0, beta=0")
        _checks.check_non_negative("lam", self.lam)
        _checks.check_positive_int("epochs", self.epochs)
        _checks.check_positive_int("batch_size", self.batch_size)
        _checks.check_positive("learning_rate", self.learning_rate)


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
        _checks.check_non_negative("lam", self.lam)
        _checks.check_positive_int("epochs", self.epochs)
        _checks.check_positive_int("batch_size", self.batch_size)
        _checks.check_positive("learning_rate", self.learning_rate)


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
        _checks.check_positive_int("embedding_dim", self.embedding_dim)
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"`seed` must be a non-negative integer. Received: seed={self.seed!r}")
        _checks.check_positive_int("checkpoint_every", self.checkpoint_every)
        if self.train_limit is not None:
            _checks.check_positive_int("train_limit", self.train_limit)

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
        _checks.check_positive_int("num_train", num_train)
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


DIRECTIONS = ("toward_prototype", "positive")
ESTIMATORS = ("mc", "linear")  # the perturbation estimators of `ExplainConfig`
TEMPLATE_CONTRAST = "template_contrast"  # the decoded path's name where one string names an estimator


@dataclass(frozen=True)
class ExplainConfig:
    """The parameters of the perturbation estimators (Part 2); how fast they run is set on the explainer.

    The estimator is one choice, the question another. This config chooses how
    the change of the decoded image is estimated from random perturbations of
    h (the paper's Part 2); the question (why the SNN's class, why a named
    class k, why close to a reference image) is asked when explaining:
    `SiameseExplainer.explain(x, question)` with a question object of
    `siamese_xai.explainers.questions` (or `target_class=...`, `reference=...`). The
    question is an argument, not a field, as in captum's
    `attribute(inputs, target=..., baselines=...)`: one explainer, built once
    (its decoder evaluation traced once), answers every question, and a
    question may differ per input of a batch (B target classes or B
    references), which a field of a frozen config could not hold. "Why class
    k rather than class l" has its own estimators: the decoded path
    (`TemplateContrastConfig`) and the probe that asks f (`ProbeConfig`).

    Attributes:
        n_perturbations: N, perturbations per explanation (the paper's 5000).
        s: how many embedding coordinates to perturb, those closest to the
            reference (the set J). The paper gives no value for its
            experiments (its Fig. 3 shows s = 2 in two dimensions). Default 5,
            a quarter of Table 1's D = 20: enough coordinates that the mask
            does not hinge on a single decoder direction, few enough that they
            are all "close to the prototype" (the idea behind choosing J).
            Must be at most D.
        q: pixels in the explanation mask. The paper gives no value. Default
            100, about 13% of a 28x28 image: a typical MNIST digit has about
            150 ink pixels (mean intensity 0.13), so 100 pixels can mark the
            strokes that matter without covering the whole digit (the
            paper's figures show masks, not their size). Must be at most the
            image size.
        direction: `"toward_prototype"` (default, the paper's intent: "changes
            of features should be closer to the prototype"):
            `d_j = sign(c_j - h_j) * sigma * |eps_j|`; `"positive"`: the
            literal reading of "only positive perturbations",
            `d_j = +sigma * |eps_j|`.
        estimator: `"mc"` (default): decode all N perturbed codes (the paper).
            `"linear"`: replace the decoder by its first-order expansion at h
            (its Jacobian columns for J, by forward-mode JVPs) and average
            over the same N draws; close to `"mc"` because sigma is small.
        sigma_scale: sigma = sigma_scale * min_j |h_j - c_j| (the paper's 0.1).
    """

    n_perturbations: int = 5000
    s: int = 5
    q: int = 100
    direction: str = "toward_prototype"
    estimator: str = "mc"
    sigma_scale: float = 0.1

    # The command line's options this estimator reads: option -> config field (None: `explain`'s `seed`).
    # Any other estimator option given with it is refused by name (siamese_xai.cli).
    CLI_OPTIONS: ClassVar[dict] = {"s": "s", "q": "q", "n": "n_perturbations", "sigma_scale": "sigma_scale",
                                   "direction": "direction", "seed": None}

    def __post_init__(self):
        if self.estimator == TEMPLATE_CONTRAST:
            raise ValueError(
                f"`estimator` must be one of {list(ESTIMATORS)} (the decoded path has its own config, "
                f"TemplateContrastConfig(n_path_points=N, s=..., q=...)). Received: estimator={self.estimator!r}"
            )
        _checks.check_positive_int("n_perturbations", self.n_perturbations)
        _checks.check_positive_int("s", self.s)
        _checks.check_positive_int("q", self.q)
        _checks.check_choice("direction", self.direction, DIRECTIONS)
        _checks.check_choice("estimator", self.estimator, ESTIMATORS)
        _checks.check_positive_finite("sigma_scale", self.sigma_scale)

    @property
    def n_points(self) -> int:
        """N, the codes decoded per explanation (perturbations here)."""
        return self.n_perturbations

    @classmethod
    def tiny(cls, **overrides) -> ExplainConfig:
        """A small variant for tests and CI (N = 128)."""
        return cls(**{"n_perturbations": 128, **overrides})

    def replace(self, **changes):
        """Returns a copy with some fields changed (validated again).

        `estimator="template_contrast"` switches to the `TemplateContrastConfig` with `n_path_points = n_perturbations`
        and the same s and q.
        """
        if changes.get("estimator") == TEMPLATE_CONTRAST:
            changes.pop("estimator")
            n = changes.pop("n_perturbations", self.n_perturbations)
            return TemplateContrastConfig(n_path_points=n, s=self.s, q=self.q).replace(**changes)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """The fields as a dict (`explain_config_from_dict` reads it back)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TemplateContrastConfig:
    """The parameters of the decoded path's estimator: why class k rather than class l (`siamese_xai.explainers.contrast`).

    It answers "why class k rather than class l" (or "rather than this
    reference image") from the decoder alone: the decoded class templates
    along the path from h to c_l, gated by the input: the mask holds the q
    pixels of x with the largest max(-S_p, 0) * x_p. It never runs f on a
    changed input (`siamese_xai.explainers.probe.ProbeExplainer` asks f). The question
    (k, l or a reference image) is given when explaining, as with `ExplainConfig`.

    Attributes:
        n_path_points: N, the points t_i = (i - 1/2) / N on the path from h
            to c_l (a midpoint rule, deterministic: no seed enters).
        s: how many of the coordinates the path moves most are reported
            (`Explanation.moved_indices`). Must be at most D.
        q: pixels in the explanation mask. Must be at most the image size.
    """

    n_path_points: int = 5000
    s: int = 5
    q: int = 100

    # option -> config field, as `ExplainConfig.CLI_OPTIONS` (the seed is recorded, the path draws nothing)
    CLI_OPTIONS: ClassVar[dict] = {"s": "s", "q": "q", "n": "n_path_points", "seed": None}

    def __post_init__(self):
        _checks.check_positive_int("n_path_points", self.n_path_points)
        _checks.check_positive_int("s", self.s)
        _checks.check_positive_int("q", self.q)

    @property
    def estimator(self) -> str:
        """`"template_contrast"`: the name of this estimator where one string names it (CLI, files)."""
        return TEMPLATE_CONTRAST

    @property
    def n_points(self) -> int:
        """N, the codes decoded per explanation (path points here)."""
        return self.n_path_points

    @classmethod
    def tiny(cls, **overrides) -> TemplateContrastConfig:
        """A small variant for tests and CI (N = 128)."""
        return cls(**{"n_path_points": 128, **overrides})

    def replace(self, **changes):
        """Returns a copy with some fields changed; `estimator="mc" | "linear"` switches to an `ExplainConfig`."""
        if "n_perturbations" in changes:  # the earlier name of N, shared by every estimator
            changes["n_path_points"] = changes.pop("n_perturbations")
        estimator = changes.pop("estimator", TEMPLATE_CONTRAST)
        if estimator != TEMPLATE_CONTRAST:
            n = changes.pop("n_path_points", self.n_path_points)
            return ExplainConfig(**{"n_perturbations": n, "s": self.s, "q": self.q, "estimator": estimator,
                                    **changes})
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """The fields and `"estimator": "template_contrast"` (`explain_config_from_dict` reads it back)."""
        return {"estimator": TEMPLATE_CONTRAST, **dataclasses.asdict(self)}


def explain_config_from_dict(d: dict):
    """The `ExplainConfig` or `TemplateContrastConfig` a `to_dict()` wrote.

    Raises:
        ValueError: an unknown estimator or field (named in the message).
    """
    d = dict(d)
    estimator = d.pop("estimator", "mc")
    if estimator == TEMPLATE_CONTRAST:
        n = d.pop("n_path_points", d.pop("n_perturbations", TemplateContrastConfig.n_path_points))
        d.pop("direction", None)
        d.pop("sigma_scale", None)
        return TemplateContrastConfig(n_path_points=n, **d)
    return ExplainConfig(estimator=estimator, **d)


PROPOSALS = ("auto", "prototype", "shift", "blur", "other", "example", "mean")
INFILLS = ("blur", "mean")
LIFTS = ("auto", "positive", "found")
CANDIDATES = ("change", "ink")
SPREADS = ("change", "ink", "removed", "uniform")


@dataclass(frozen=True)
class ProbeConfig:
    """The parameters of `ProbeExplainer`.

    Attributes:
        cell: side of a candidate region in pixels; None: max(2, round(min(H, W) / 7)).
        max_regions: n, the most candidate regions probed per image (each
            costs one image through f).
        proposal: what a region is painted with: `"prototype"`, g(t) for the
            question's target embedding t (c_l; f(x2) for a pair); `"shift"`,
            clip(x + g(t) - g(h), 0, 1); `"blur"`, x blurred by a Gaussian of
            one cell side (a neutral in-fill); `"other"`, the pair question's
            other image at the same place; `"example"`, the class question's
            real image of l nearest to x (the explainer's `examples`);
            `"mean"`, the mean of the explainer's `examples` (what every
            class's images hold in common stays, what tells them apart is
            averaged away). `"auto"` (default): for the class questions
            `"example"` where the explainer holds examples of l, else
            `"prototype"`; `infill` for an accepted `Verify`, `"other"` for
            the other pair questions (docs/questions.md says why).
        infill: the neutral in-fill `"auto"` paints to part an accepted
            pair: `"blur"` or `"mean"` (`"blur"` where the explainer holds
            no examples).
        candidates: which cells are probed: `"change"` (those where p differs
            from x, the largest |p - x| first) or `"ink"` (those holding ink
            of x that p changes, the most ink first); see `candidate_regions`.
        spread: how `drop_map` spreads a region's drop over its pixels; see `spread_drops`.
        has_first: rank first the pixels of positive regions where x
            exceeds p (the evidence for k that x has), then the rest (the
            evidence that x lacks, and the other regions); see `ranking_of`.
            False: rank by `drop_map` alone.
        lift: which cells' pixels `has_first` may lift: `"positive"`, those
            of every cell with a positive drop; `"found"`, those of the found
            set only (the cells f's verdict needed, verified by f; all
            candidates where nothing flips). `"auto"` (default):
            `"positive"` for the class questions (chosen on MNIST training
            images), `"found"` for the pair questions (chosen on the pair
            set's development pairs, `benchmarks/evaluation/pairs_dev.py`:
            a cell that holds a small part of the evidence, such as content
            every image shares, is measured to move f a little; lifting all
            of its ink put it above the found set's other pixels).
        smooth: sigma in pixels of the Gaussian that smooths `drop_map`
            before it is ranked (None: half the cell side, 2 px on 28x28; 0:
            none), so that a pixel's rank also weighs the neighbouring
            cells' measurements instead of the grid's block edges.
        examples_per_class: K, how many training images of each class
            `ProbeExplainer.from_run` loads as `examples` from the data the
            run was trained on (the first K of each class in the training
            split's order); 0: none, the class questions paint g(c_l). An
            explainer built from its networks holds the examples it is given.
    """

    cell: int | None = None
    max_regions: int = 40
    proposal: str = "auto"
    infill: str = "blur"
    candidates: str = "change"
    spread: str = "change"
    has_first: bool = True
    lift: str = "auto"
    smooth: float | None = None
    examples_per_class: int = 5

    # option -> config field, as `ExplainConfig.CLI_OPTIONS`
    CLI_OPTIONS: ClassVar[dict] = {"cell": "cell", "max_regions": "max_regions", "proposal": "proposal",
                                   "examples_per_class": "examples_per_class"}

    def __post_init__(self):
        if self.cell is not None:
            _checks.check_positive_int("cell", self.cell)
        _checks.check_positive_int("max_regions", self.max_regions)
        _checks.check_choice("proposal", self.proposal, PROPOSALS)
        _checks.check_choice("infill", self.infill, INFILLS)
        _checks.check_choice("candidates", self.candidates, CANDIDATES)
        _checks.check_choice("spread", self.spread, SPREADS)
        if self.smooth is not None and (not isinstance(self.smooth, (int, float)) or isinstance(self.smooth, bool)
                                        or not 0 <= self.smooth < float("inf")):
            raise ValueError(f"`smooth` must be None or a finite number >= 0. Received: smooth={self.smooth!r}")
        _checks.check_bool("has_first", self.has_first)
        _checks.check_choice("lift", self.lift, LIFTS)
        if not isinstance(self.examples_per_class, int) or isinstance(self.examples_per_class, bool) \
                or self.examples_per_class < 0:
            raise ValueError("`examples_per_class` must be an integer >= 0. Received: "
                             f"examples_per_class={self.examples_per_class!r}")

    def replace(self, **changes) -> ProbeConfig:
        return dataclasses.replace(self, **changes)

    @property
    def estimator(self) -> str:
        """`"probe"`: this estimator's name where one string names it (CLI, files)."""
        return "probe"

    def cell_for(self, image_shape) -> int:
        """The cell side used on images of `image_shape` `(H, W, C)`."""
        return self.cell if self.cell is not None else max(2, round(min(image_shape[0], image_shape[1]) / 7))

    def smooth_for(self, image_shape) -> float:
        """The Gaussian sigma in pixels that smooths the map before ranking: `smooth`, or half the cell side."""
        return float(self.smooth) if self.smooth is not None else self.cell_for(image_shape) / 2

    def max_calls(self) -> int:
        """The most images through f per explained image: 1 + n + 1 + ceil(log2 n)."""
        n = self.max_regions
        return 2 + n + math.ceil(math.log2(n)) if n > 1 else 2 + n
