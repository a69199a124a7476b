"""Export an explainer as a TensorFlow SavedModel that needs nothing but TensorFlow.

The SavedModel holds both networks (f and g), the prototypes and the
explanation graph (the same function `SiameseExplainer.explain` runs,
`siamese_xai.explainers._graph.explain_graph`). Its `serving_default` signature takes

- `images`: `(B, *image_shape)` float32 in [0, 1] (scale uint8 by 1/255 first);
- `seed`: a scalar int64, the seed of the perturbation draws;

and returns a dict of `(B, ...)` tensors named like `Explanation`'s fields:
`mask` (bool), `mean_abs_change`, `mean_signed_change`, `reconstruction`,
`embedding`, `reference`, `predicted_class` (int64, the nearest prototype,
which is also `explained_class`), `distances` `(B, C)`, `reference_distance`,
`contrast_class` (-1), and the estimator's own fields: `indices` (J, int64)
and `sigma` for `"mc"` and `"linear"`; for the decoded path
(`TemplateContrastConfig`) `moved_indices` and `path_length` instead, and
`contrast_class` the runner-up class each input is contrasted with (see
`siamese_xai.explainers.contrast`). For the same seed these equal `explainer.explain(images, seed=seed)`
up to float rounding.

Usage, in any process with TensorFlow:

    model = tf.saved_model.load(path)
    out = model.signatures["serving_default"](images=x, seed=tf.constant(0, tf.int64))

The explainer's parameters are written beside the graph, in
`assets.extra/explainer.json` (TensorFlow ignores that folder).
"""

from __future__ import annotations

import json

import tensorflow as tf

from siamese_xai.explainers.siamese import SiameseExplainer
from siamese_xai.files import atomic_path

CONFIG_ASSET = "assets.extra/explainer.json"


class _ExplainerModule(tf.Module):
    """Holds f, g and the prototypes, and the explanation as one traced function."""

    def __init__(self, explainer: SiameseExplainer):
        super().__init__(name="siamese_explainer")
        self.embed = explainer.embed
        self.decoder = explainer.decoder
        self._explainer = explainer
        spec = [
            tf.TensorSpec((None,) + tuple(explainer.image_shape), tf.float32, name="images"),
            tf.TensorSpec((), tf.int64, name="seed"),
        ]
        self.serve = tf.function(self._serve, input_signature=spec)

    def _serve(self, images, seed):
        h = self.embed(images)
        if isinstance(h, dict):
            (h,) = h.values()
        h = tf.cast(h, tf.float32)
        batch = tf.shape(h)[0]
        out = self._explainer.graph(
            h, tf.fill([batch], tf.constant(-1, tf.int64)), tf.zeros_like(h), tf.zeros([batch], tf.bool), seed,
            images=images,
        )
        out.pop("explained_class")  # always the predicted class here
        return {"embedding": h, **out}


def export_explainer(explainer: SiameseExplainer, path) -> None:
    """Writes `explainer` as a TensorFlow SavedModel folder at `path`, atomically.

    The folder appears complete or not at all; an existing one is replaced.

    Args:
        explainer: a `SiameseExplainer` whose `embed` is a Keras model, a
            `tf.Module` or another callable that TensorFlow can trace (a NumPy
            function cannot be exported).
        path: the folder to write.

    Raises:
        TypeError: the explainer's class is not `exportable` (the probe asks f
            in a loop of NumPy code: no graph to save), or `explainer.embed`
            cannot be traced by TensorFlow.
    """
    if not getattr(explainer, "exportable", False):  # the explainer class's declared capability
        raise TypeError("`explainer` must be a SiameseExplainer or another explainer whose class declares "
                        f"`exportable = True` (one traceable graph). Received: explainer={explainer!r}")
    module = _ExplainerModule(explainer)
    try:
        serve = module.serve.get_concrete_function()
    except Exception as err:  # tracing runs embed on symbolic tensors
        raise TypeError(
            "`explainer.embed` must be a Keras model or a TensorFlow-traceable callable to be exported. "
            f"Received: embed={explainer.embed!r}, which failed on a symbolic tensor: {err}"
        ) from err
    meta = {
        "config": explainer.config.to_dict(),
        "chunk_size": explainer.chunk_size,
        "run_id": explainer.run_id,
        "image_shape": list(explainer.image_shape),
        "embedding_dim": explainer.embedding_dim,
        "num_classes": explainer.num_classes,
        "decoder_fused": explainer.decoder_fused,
        "decoder_exact": explainer.decoder_exact,
        "inputs": {"images": "float32 (B, *image_shape) in [0, 1]", "seed": "int64 scalar"},
        "outputs": sorted(serve.structured_outputs),
    }
    with atomic_path(path, suffix="") as tmp:
        tf.saved_model.save(module, str(tmp), signatures={"serving_default": serve})
        (tmp / CONFIG_ASSET).parent.mkdir(parents=True, exist_ok=True)
        (tmp / CONFIG_ASSET).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
