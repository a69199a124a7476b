"""Part 2 of the method: explaining a Siamese network's decision (see METHOD.md).

For an input x with embedding h = f(x) and a reference c (the prototype of the
class being explained, or the embedding of a reference image), the explainer

1. picks J, the `s` embedding coordinates with the smallest |h_j - c_j|;
2. draws N perturbations d that are non-zero only on J, with
   `sigma = sigma_scale * min_j |h_j - c_j|` (min over all D coordinates) and,
   by default, moving h toward c: `d_j = sign(c_j - h_j) * sigma * |eps_j|`;
3. decodes g(h) and every g(h + d_i) and averages the per-pixel change
   `Delta_p = mean_i |g(h + d_i)_p - g(h)_p|` (and its signed twin);
4. returns the `q` pixels with the largest Delta_p as the explanation mask.

The Siamese network f is a black box: any callable from a batch of images to a
batch of embeddings. The decoder g must be a Keras model (or a callable of
TensorFlow tensors) from `(batch, D)` codes to `(batch, *image_shape)` images.
The computation itself (steps 1-4 and the nearest prototype) is one pure
function of tensors, `siamese_xai.explainers._graph.explain_graph`, which the exported
SavedModel calls too.

Random draws are stateless: the `|eps|` block of an explanation is
`abs(tf.random.stateless_normal([N, s], seed=[seed, 0], alg="philox"))`, the
same block for every input of a batch. So the same seed gives the same
explanation, in a batch or alone, whatever the chunk size, and both estimators
(`"mc"`, `"linear"`) and the exported SavedModel see the same draws.

Edge cases (each tested):
- sigma = 0 (h_j == c_j for some j, e.g. a pair of identical images): the
  perturbations are zero, so is the change; the mask is empty and a
  `RuntimeWarning` names the inputs. Under `"toward_prototype"`, a coordinate
  of J with h_j == c_j is not moved (its sign is 0).
- `s` > D or `q` > pixels: `ValueError` when the explainer is built.
- images: float in [0, 1] or uint8 (scaled by 1/255), with or without a
  trailing 1-channel axis; another shape or dtype, NaN / inf, or floats
  outside [0, 1] raise an error naming the argument.
- an empty batch gives an empty `Explanation` (B = 0), without calling `embed`.
- an embedding length that differs from the decoder's input or the
  prototypes' width: `ValueError` when the explainer is built where it can be
  checked (Keras models), else on the first call.

Precision: sigma is small, so the image changes are small (often 1e-4..1e-2).
Subtracting two float32 decodings would lose a few percent of the weaker
changes; `"mc"` instead takes the exact change g(h + d) - g(h)
(`siamese_xai.decoding`: carried through the decoder's layers or, on a
decoder of ReLU layers, as `coef @ S` per draw with the few units that a draw
moves across their kink as sources of their own), so Delta_p equals a float64
evaluation of the paper's formula to float32 precision. `"linear"` does not
subtract either.
"""

from __future__ import annotations

import functools
import warnings

import keras
import numpy as np
import tensorflow as tf

from siamese_xai import _checks
from siamese_xai.explainers import _graph
from siamese_xai.explainers import questions
from siamese_xai.explainers.base import Explainer
from siamese_xai.explainers._graph import explain_graph
from siamese_xai.config import ExplainConfig, TemplateContrastConfig
from siamese_xai.explainers.contrast import contrast_graph
from siamese_xai.decoding.evaluator import (DEFAULT_MEMORY_BUDGET, DecoderEvaluation, check_memory_budget,
                                            decoder_evaluator, probe_codes)
from siamese_xai.explainers.explanation import Explanation
from siamese_xai.explainers.prototypes import compute_prototypes


# The most decoder rows per call: the fastest on a 2-core CPU (benchmarks/speed/bench_speed.py).
MAX_CHUNK = 1000


class SiameseExplainer(Explainer):
    """Explains a Siamese network's decisions with perturbed embeddings and a decoder.

    Example:
        explainer = SiameseExplainer.from_run("runs/paper")
        e = explainer.explain(x_test[:8])         # (8, 28, 28, 1) in [0, 1] or uint8
        e.predicted_class, e.mask.sum(axis=(1, 2, 3))

    Args:
        embed: the black box f: a callable from a float32 array
            `(B, *image_shape)` in [0, 1] to `(B, D)` embeddings (a Keras model,
            a SavedModel signature wrapped to take one positional array, or a
            NumPy function; a single-entry dict output is unwrapped). It is
            called once per `explain` call, on all the inputs at once, and
            never looked into. Its output length is checked against D here
            when it is a Keras model, otherwise on every call.
        decoder: g: a Keras model (or a callable of TensorFlow tensors, which
            `"linear"` differentiates) from `(B, D)` float32 codes to
            `(B, *image_shape)`; its output shape defines `image_shape`.
        prototypes: `(C, D)` finite class prototypes in f's embedding space.
        config: the estimator and its parameters: an `ExplainConfig` (the
            perturbation estimators, `"mc"` or `"linear"`; defaults to the
            paper's) or a `TemplateContrastConfig` (the decoded path, for
            "why class k rather than class l").
        chunk_size: decoder rows per call in `"mc"` (perturbations per block
            in `"linear"`); bounds memory, never changes the result beyond
            float rounding. None (default): the most rows whose activations
            fit `memory_budget`, at most 1000 (fastest on a 2-core CPU, see
            `benchmarks/speed/bench_speed.py`; Table 1's decoder then holds about
            50 MB of activations, so 28 px images get 1000).
        memory_budget: bytes the decoder's evaluation may hold at once
            (default `DEFAULT_MEMORY_BUDGET`, 1 GiB; at least 16 MiB): it
            sets the rows per decoder call where `chunk_size` is None, and
            the most units near a ReLU kink per layer before `"mc"` carries
            the change through the layers instead of splitting it at the
            kinks (`siamese_xai.decoding.kinks`), so a 224x224x3 image
            explains with N = 5000 in bounded memory
            (`benchmarks/speed/explain_memory.py`). The process's peak is this
            plus TensorFlow and the networks (about 1 GB).
        fuse_decoder: evaluate each `UpSampling2D(nearest) -> Conv2D` pair of
            a chain-shaped Keras decoder as one convolution on the
            un-upsampled image (the same function up to float rounding, about
            3.5x faster on Table 1's decoder). It is checked against the
            decoder when the explainer is built and dropped, quietly, if
            they differ by more than 1e-4 (every explanation's
            `decoder_path` says so).
        exact_differences: `"mc"` takes each change g(h + d) - g(h) exactly,
            carrying d through the decoder without subtracting two nearby
            float32 images (equal to a float64 evaluation to float32 precision
            on the change), for chain decoders of Dense / Conv2D / Reshape /
            Flatten / UpSampling2D layers with relu, sigmoid or linear
            activations; any other decoder's images are subtracted, quietly
            (every explanation's `decoder_path` says so). False: always
            subtract (kept for comparisons).
        kink_split: with `exact_differences`, split the change at the ReLU
            kinks where every activation before the last is relu or linear
            (`siamese_xai.decoding.kinks`: the same function, far fewer
            FLOPs). False: carry it through every layer (for comparisons).
        run_id: the identity of the run folder the networks came from, copied
            into every explanation (set by `from_run`).
        class_names: the classes' names in label order (e.g. "ankle boot"),
            copied into every explanation; "0", "1", ... by default.

    Raises:
        ValueError: the prototypes, decoder and embed disagree on D, `s > D`,
            or `q` exceeds the image size.
    """

    result_class = Explanation
    exportable = True  # one traceable graph (`graph`): siamese_xai.scale.export writes it

    def __init__(self, embed, decoder, prototypes, config: ExplainConfig | TemplateContrastConfig | None = None, *,
                 chunk_size: int | None = None, memory_budget: int = DEFAULT_MEMORY_BUDGET, fuse_decoder: bool = True,
                 exact_differences: bool = True, kink_split: bool = True, run_id: str | None = None,
                 class_names=None):
        if config is None:
            config = ExplainConfig()
        if not isinstance(config, (ExplainConfig, TemplateContrastConfig)):
            raise TypeError(
                f"`config` must be an ExplainConfig or a TemplateContrastConfig. Received: config={config!r}"
            )
        if chunk_size is not None:
            _checks.check_positive_int("chunk_size", chunk_size)
        memory_budget = check_memory_budget(memory_budget)
        _checks.check_bool("fuse_decoder", fuse_decoder)
        _checks.check_bool("exact_differences", exact_differences)
        _checks.check_bool("kink_split", kink_split)
        p, image_shape = _checks.check_networks(embed, decoder, prototypes, config)
        num_classes, dim = p.shape

        if class_names is None:
            class_names = [str(k) for k in range(num_classes)]
        class_names = tuple(str(c) for c in class_names)
        if len(class_names) != num_classes:
            raise ValueError(
                f"`class_names` must name each of the {num_classes} classes. Received: {len(class_names)} names"
            )
        self._embed, self._decoder, self._config = embed, decoder, config
        self._options = {"chunk_size": chunk_size, "memory_budget": memory_budget, "fuse_decoder": fuse_decoder,
                         "kink_split": kink_split,
                         "exact_differences": exact_differences, "run_id": run_id, "class_names": class_names}
        # A Keras model is still called as a black box, through a tf.function:
        # same result, without eager Keras's per-call overhead (~4 ms).
        self._embed_fn = tf.function(embed, reduce_retracing=True) if isinstance(embed, keras.Model) else embed
        p.flags.writeable = False
        self._prototypes = p
        self._num_classes, self._dim = num_classes, dim
        self._image_shape = image_shape
        mode = ("kinks" if kink_split else "layers") if exact_differences and config.estimator == "mc" else "subtract"
        self._dec = decoder_evaluator(decoder, probe_codes(p), mode=mode, fuse=fuse_decoder,
                                      memory_budget=memory_budget)
        self._chunk_size = int(chunk_size) if chunk_size is not None else min(MAX_CHUNK,
                                                                              self._dec.rows_within_budget())
        internal_shape = tuple(self._dec.internal(tf.zeros((1, dim), tf.float32)).shape[1:])
        graph_fn = contrast_graph if self.asks_contrast else explain_graph
        self._graph = functools.partial(
            graph_fn, decoder=self._dec, internal_shape=internal_shape, config=config, chunk_size=self._chunk_size
        )
        self._core = tf.function(
            self.graph,
            input_signature=[
                tf.TensorSpec((None, dim), tf.float32, name="embeddings"),
                tf.TensorSpec((None,), tf.int64, name="targets"),
                tf.TensorSpec((None, dim), tf.float32, name="references"),
                tf.TensorSpec((None,), tf.bool, name="use_reference"),
                tf.TensorSpec((), tf.int64, name="seed"),
                tf.TensorSpec((None,), tf.int64, name="contrasts"),
                tf.TensorSpec((None,) + image_shape, tf.float32, name="images"),
            ],
        )

    # -- constructors -------------------------------------------------------

    @classmethod
    def from_data(cls, embed, decoder, x, y, config=None, *, num_classes: int | None = None,
                  batch_size: int = 1024, **options) -> SiameseExplainer:
        """Builds the explainer with prototypes computed from training data (c_k = mean of f(x_i), y_i = k).

        Args:
            embed, decoder: as in the constructor.
            x: `(n, *image_shape)` training images, float in [0, 1] or uint8.
            y: `(n,)` integer labels in [0, num_classes).
            config: an `ExplainConfig` or a `TemplateContrastConfig`.
            num_classes: C; defaults to `max(y) + 1`.
            batch_size: images per call of `embed`.
            **options: the constructor's keyword options.
        """
        x = _checks.scale_images(x, "x")
        prototypes = compute_prototypes(embed, x, y, num_classes=num_classes, batch_size=batch_size)
        return cls(embed, decoder, prototypes, config, **options)

    def replace(self, **config_changes) -> SiameseExplainer:
        """A new explainer around the same networks, prototypes and options, with some config fields changed.

        `estimator=` switches the estimator ("mc", "linear", "template_contrast"),
        carrying N, s and q across (see `ExplainConfig.replace`).
        """
        new = type(self)(self._embed, self._decoder, self._prototypes, self._config.replace(**config_changes),
                         **self._options)
        new._embed_fn = self._embed_fn  # f does not depend on the config: one trace serves every variant
        return new

    # -- properties ---------------------------------------------------------

    @property
    def prototypes(self) -> np.ndarray:
        """`(C, D)` float32 prototypes (read-only)."""
        return self._prototypes

    @property
    def asks_contrast(self) -> bool:
        """Whether the estimator is the decoded path, which answers "why class k rather than class l"."""
        return isinstance(self._config, TemplateContrastConfig)

    @property
    def chunk_size(self) -> int:
        """Decoder rows per call: the option, or the most within `memory_budget` (at most 1000)."""
        return self._chunk_size

    @property
    def memory_budget(self) -> int:
        """Bytes the decoder's evaluation may hold at once while explaining."""
        return self._options["memory_budget"]

    @property
    def run_id(self) -> str | None:
        return self._options["run_id"]

    @property
    def class_names(self) -> tuple:
        """The classes' names in label order."""
        return self._options["class_names"]

    @property
    def embedding_dim(self) -> int:
        """D."""
        return self._dim

    @property
    def num_classes(self) -> int:
        """C."""
        return self._num_classes

    @property
    def image_shape(self) -> tuple:
        """The shape of one image, the decoder's output shape."""
        return self._image_shape

    @property
    def decoder_exact(self) -> bool:
        """Whether `mc` carries the change g(h + d) - g(h) through the layers (no subtraction of two images)."""
        return self._dec.exact is not None

    @property
    def decoder_fused(self) -> bool:
        """Whether the fused (sub-pixel) evaluation of the decoder is in use."""
        return self._dec.fused

    @property
    def decoder_evaluation(self) -> DecoderEvaluation:
        """The decoder's evaluation, fixed when the explainer was built (`mode`, `fused`, `exact_note`, `kinks`)."""
        return self._dec

    @property
    def kink_cap(self) -> int:
        """The most units near a ReLU kink per input and layer before `mc` carries the change through the layers."""
        n = self._config.n_perturbations
        return _graph.kink_cap(self.chunk_size, max(1, self.chunk_size // n), n,
                               self._dec.kink_candidates_within_budget(self._config.s))

    def perturbation_draws(self, seed: int = 0) -> np.ndarray:
        """`(N, s)` float32 |eps|, the draws every input of an explanation with this seed uses."""
        cfg = self._config
        return _graph.perturbation_draws(tf.constant(seed, tf.int64), cfg.n_perturbations, cfg.s).numpy()

    # -- explanations -------------------------------------------------------

    def _question_arguments(self, question) -> dict:
        """A question as `explain`'s keyword arguments, or a ValueError naming the estimator and the question."""
        self.check_answers(question)
        if isinstance(question, questions.WhyClass):
            return {"target_class": question.target}
        if isinstance(question, questions.RatherThan):
            return {"target_class": question.target, "contrast_class": question.contrast}
        return {"reference": question.other}

    def explain(self, x, question=None, *, target_class=None, reference=None, seed: int = 0,
                contrast_class=None) -> Explanation:
        """Explains the SNN's class of one image or a batch (or "why class k?", or "why close to this image?").

        Every input uses the same perturbation draws (seeded by `seed` only),
        so an input's result does not depend on the rest of the batch (bit for
        bit when `embed` returns the same embedding for an input in any batch;
        the explanation magnifies an embedding's rounding by about 1 / sigma).
        `embed` is called once, on all the images (and references) at once.

        The question is asked here, the estimator was chosen by the config:
        "why the SNN's class?" (no arguments), "why class k?"
        (`target_class`), "why close to this image?" (`reference`), and,
        with a `TemplateContrastConfig`, "why class k rather than class l?"
        (`contrast_class`, or the runner-up; with `reference`, "rather than
        this image").

        Args:
            x: one image `image_shape` (e.g. `(28, 28, 1)`, or `(28, 28)`) or a
                batch `(B, *image_shape)`; float in [0, 1] or uint8 in [0, 255]
                (scaled by 1/255). An empty batch gives an empty Explanation
                without calling `embed`.
            question: the question as an object of `siamese_xai.explainers.questions`
                (`WhyClass` and `Pair` for mc and linear; `RatherThan` and
                `Pair` for the decoded path; see `answers`), instead of
                `target_class`, `reference` and `contrast_class`; another
                kind raises a ValueError that names the estimator and the question.
            target_class: None (each input's own nearest-prototype class), one
                class for all, or a sequence of B classes.
            reference: None, or images (one for all, or B) whose embeddings
                replace the prototypes: J are the coordinates where f(x) is
                closest to f(reference), and the perturbations move f(x) toward
                it (a pair explanation; `explained_class` is then -1).
            seed: seed of the perturbation draws (the decoded path is
                deterministic: recorded, unused).
            contrast_class: with a `TemplateContrastConfig` only: None (each input's
                runner-up prototype), one class for all, or B classes: l in
                "why class k rather than class l". With `reference`, the
                reference's embedding is the contrast instead, and
                `target_class` may then name k.

        Returns:
            An `Explanation` of B inputs (B = 1 for one image).

        Raises:
            ValueError, TypeError: a bad argument (named in the message).
        """
        if question is not None:
            given = {"target_class": target_class, "reference": reference, "contrast_class": contrast_class}
            if any(v is not None for v in given.values()):
                raise ValueError("`target_class`, `reference` and `contrast_class` must be None when `question` is "
                                 f"given. Received: {[k for k, v in given.items() if v is not None]}")
            return self.explain(x, seed=seed, **self._question_arguments(question))
        xs, seed, targets, contrasts, refs = _checks.check_request(
            x, target_class, reference, seed, contrast_class, self._image_shape, self._num_classes,
            self.asks_contrast,
        )
        batch, contrast = len(xs), self.asks_contrast
        if batch == 0:
            return self._empty(xs, seed)
        h = self._call_embed(xs if refs is None else np.concatenate([xs, refs]))
        h, h_ref = h[:batch], h[batch:]
        if refs is None:
            h_ref = np.zeros_like(h)
        elif len(h_ref) == 1:
            h_ref = np.repeat(h_ref, batch, axis=0)
        use_ref = np.full(batch, refs is not None)
        if contrast and contrast_class is not None:
            own = np.where(targets < 0, self._nearest(h), targets)
            same = np.flatnonzero(own == contrasts)
            if same.size:
                raise ValueError(
                    "`contrast_class` must differ from the explained class. Received: the same class for inputs "
                    f"{same.tolist()} (class {own[same].tolist()})"
                )
        out = self._core(tf.constant(h), tf.constant(targets), tf.constant(h_ref), tf.constant(use_ref),
                         tf.constant(seed, tf.int64), tf.constant(contrasts), tf.constant(xs))
        out = {k: v.numpy() for k, v in out.items()}
        zero = np.flatnonzero(out["path_length" if contrast else "sigma"] == 0)
        if zero.size and contrast:
            warnings.warn(
                f"h equals the contrast c_l (to 1e-5 relative) for inputs {zero.tolist()}: the path has length 0, so there is no "
                "change and the mask is empty.",
                RuntimeWarning,
                stacklevel=2,
            )
        elif zero.size:
            warnings.warn(
                f"sigma = 0 for inputs {zero.tolist()}: some h_j equals c_j exactly, so the perturbations are zero "
                "and so is the explanation (empty mask).",
                RuntimeWarning,
                stacklevel=2,
            )
        return Explanation(input=xs, embedding=h, config=self._config, seed=seed, run_id=self.run_id,
                           class_names=self.class_names, decoder_path=self._dec.summary(), **out)

    def explain_pair(self, x1, x2, seed: int = 0) -> Explanation:
        """Why f finds x1 close to (or far from) x2: `explain(x1, reference=x2, seed=seed)`."""
        return self.explain(x1, reference=x2, seed=seed)

    def graph(self, h, targets, references, use_reference, seed, contrasts=None, images=None):
        """The explanation of embeddings as a traceable function of tensors (see `siamese_xai.explainers._graph`).

        Args:
            h: `(B, D)` float32 embeddings.
            targets: `(B,)` int64 classes to explain, -1 for each input's nearest.
            references: `(B, D)` float32 embeddings replacing the prototype where `use_reference`.
            use_reference: `(B,)` bool.
            seed: scalar int64.
            contrasts: `(B,)` int64 contrast classes, -1 for the runner-up
                (`TemplateContrastConfig` only; None: all -1).
            images: `(B, *image_shape)` float32 the inputs (`TemplateContrastConfig`
                only, where they weigh the mask; required there).

        Returns:
            A dict of `(B, ...)` tensors named like `Explanation`'s fields.
        """
        prototypes = tf.constant(self._prototypes)
        if contrasts is None:
            contrasts = tf.fill(tf.shape(targets), tf.constant(-1, tf.int64))
        if self.asks_contrast:
            if images is None:
                raise ValueError(
                    "`images` must be given with a TemplateContrastConfig (they weigh the mask). Received: None"
                )
            return self._graph(h, images, prototypes, targets, contrasts, references, use_reference)
        out = self._graph(h, prototypes, targets, references, use_reference, seed)
        return {**out, "contrast_class": tf.fill(tf.shape(targets), tf.constant(-1, tf.int64))}

    def _nearest(self, h):
        d = ((h[:, None, :].astype(np.float64) - self._prototypes[None].astype(np.float64)) ** 2).sum(-1)
        return d.argmin(axis=1)

    def _empty(self, xs, seed):
        b, d, s = 0, self._dim, self._config.s
        image = np.zeros((b, *self._image_shape), np.float32)
        own = ({"moved_indices": np.zeros((b, s)), "path_length": np.zeros(b)} if self.asks_contrast
               else {"indices": np.zeros((b, s)), "sigma": np.zeros(b)})
        return Explanation(
            input=xs, reconstruction=image, embedding=np.zeros((b, d)), reference=np.zeros((b, d)),
            predicted_class=np.zeros(b), distances=np.zeros((b, self._num_classes)), explained_class=np.zeros(b),
            reference_distance=np.zeros(b), mean_abs_change=image, mean_signed_change=image, mask=image,
            config=self._config, seed=seed, run_id=self.run_id, class_names=self.class_names, **own,
        )

    def _call_embed(self, xs):
        out = self._embed_fn(tf.constant(xs) if self._embed_fn is not self._embed else xs)
        return _checks.check_embeddings(out, len(xs), self._dim)
