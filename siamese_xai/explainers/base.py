"""The one protocol every explainer follows, and the names the estimators are known by.

An explainer is built once around the networks, like captum's `Attribution`
and alibi's `Explainer`: `Estimator(embed, decoder, prototypes, config)` or
`Estimator.from_run(RUN, config)`. It is then asked questions
(`siamese_xai.explainers.questions`) and returns one result for the batch, a
`siamese_xai.explainers.results.BatchResult`:

    result = explainer.explain(x, question, seed=0)

`answers` names the kinds of question the estimator answers; any other raises
a `ValueError` naming the estimator and the question (`check_answers`).
`replace(**changes)` gives the same networks with some config fields changed,
`save(RUN)` writes a run folder that `from_run` reads back.

`REGISTRY` maps each estimator's name (the command line's `--estimator`, a
file's `config.estimator`) to its explainer class and config class; the
command line, the shards and the benchmark look estimators up there, so a new
estimator is its own file plus one line here.
"""

from __future__ import annotations

import importlib

from siamese_xai import runs
from siamese_xai.explainers import questions


class Explainer:
    """The base of every estimator: construction from a run, `answers`, `replace`, `save`.

    Subclasses define `__init__(embed, decoder, prototypes, config=None, *,
    run_id=None, class_names=None, **options)` (keeping `_embed`, `_decoder`
    and `_config`, whose `estimator` is the name in `REGISTRY`),
    `explain(x, question=None, *, seed=0)` and the properties `prototypes`,
    `image_shape`, `run_id` and `class_names`.

    Each subclass also declares what the outer layers need to know of it:
    `result_class`, the `BatchResult` subclass its `explain` returns (whose
    `SHARD_FIELDS` a split keeps), and `exportable`, whether
    `siamese_xai.scale.export` can write it as a SavedModel (a graph of
    tensors; an estimator that asks f in a loop of NumPy code is not one).
    """

    result_class = None
    exportable = False

    @classmethod
    def from_run(cls, path, config=None, **options):
        """Builds the explainer from a run folder (`snn.keras`, `decoder.keras`, `prototypes.npy`).

        Args:
            path: the run folder.
            config: the estimator's config; None for its defaults.
            **options: the constructor's keyword options.

        Raises:
            FileNotFoundError: a file is missing (named in the message).
            ValueError: a file cannot be read (named in the message).
        """
        run = runs.load_run(path)
        options.setdefault("run_id", run.run_id)
        options.setdefault("class_names", run.class_names)
        return cls(run.embed, run.decoder, run.prototypes, config, **options)

    @property
    def embed(self):
        """The black box f."""
        return self._embed

    @property
    def decoder(self):
        """The decoder g."""
        return self._decoder

    @property
    def config(self):
        """The estimator's config."""
        return self._config

    @property
    def answers(self) -> tuple:
        """The kinds of question (`siamese_xai.explainers.questions.KINDS`) this estimator answers (`ANSWERS`)."""
        return ANSWERS[self.estimator]

    @property
    def estimator(self) -> str:
        """The estimator's name (`REGISTRY`)."""
        return self.config.estimator

    def check_answers(self, question) -> None:
        """Raises a ValueError naming this estimator and the question when it does not answer that kind."""
        questions.check_question(question)
        if question.kind not in self.answers:
            who = [name for name in REGISTRY if question.kind in ANSWERS[name]]
            raise ValueError(
                f"the estimator {self.estimator!r} does not answer {type(question).__name__} questions (it answers "
                f"{', '.join(self.answers)}); ask {' or '.join(repr(w) for w in who)}. Received: "
                f"question={type(question).__name__}"
            )

    def save(self, path) -> str:
        """Writes `snn.keras`, `decoder.keras`, `prototypes.npy` and `run.json` to a run folder that `from_run` reads.

        Returns:
            The run's identity.

        Raises:
            TypeError: `embed` or `decoder` is not a Keras model.
        """
        return runs.save_run(path, self.embed, self.decoder, self.prototypes, class_names=self.class_names)


# name -> (module, explainer class, config class): imported on first use, so naming an estimator loads nothing.
REGISTRY = {
    "mc": ("siamese_xai.explainers.siamese", "SiameseExplainer", "ExplainConfig"),
    "linear": ("siamese_xai.explainers.siamese", "SiameseExplainer", "ExplainConfig"),
    "template_contrast": ("siamese_xai.explainers.siamese", "SiameseExplainer", "TemplateContrastConfig"),
    "probe": ("siamese_xai.explainers.probe", "ProbeExplainer", "ProbeConfig"),
}
# name -> the kinds of question it answers (what its `answers` says once built)
ANSWERS = {
    "mc": ("class", "pair"),
    "linear": ("class", "pair"),
    "template_contrast": ("contrast", "pair"),
    "probe": questions.KINDS,  # any margin: every kind of question registered in `questions.QUESTIONS`
}


def estimator_classes(name: str):
    """`(explainer class, config class)` of the estimator called `name`.

    Raises:
        ValueError: an unknown name (the known ones in the message).
    """
    if name not in REGISTRY:
        raise ValueError(f"`estimator` must be one of {list(REGISTRY)}. Received: estimator={name!r}")
    module, explainer, config = REGISTRY[name]
    module = importlib.import_module(module)  # the estimator's module holds (or imports) its config class
    return getattr(module, explainer), getattr(module, config)
