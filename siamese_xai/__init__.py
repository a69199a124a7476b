"""siamese-xai: explanations for Siamese neural networks.

The reference implementation of L. Utkin, M. Kovalev and E. Kasimov, "An
explanation method for Siamese neural networks" (2019).

The names below are imported on first use (PEP 562), so `import siamese_xai`
and the command line start without loading TensorFlow until they need it.
Plotting lives in `siamese_xai.plotting` (not re-exported, so that importing
the package does not import matplotlib's pyplot).
"""

import importlib

__version__ = "0.1.0"

# name -> the module that defines it
_EXPORTS = {
    "AutoencoderConfig": "siamese_xai.config",
    "DecoderConfig": "siamese_xai.config",
    "SNNConfig": "siamese_xai.config",
    "TrainConfig": "siamese_xai.config",
    "DataNotFoundError": "siamese_xai.data.mnist",
    "LabelledImages": "siamese_xai.data.datasets",
    "load_dataset": "siamese_xai.data.datasets",
    "load_mnist": "siamese_xai.data.mnist",
    "ExplainConfig": "siamese_xai.config",
    "TemplateContrastConfig": "siamese_xai.config",
    "SiameseExplainer": "siamese_xai.explainers.siamese",
    "Explanation": "siamese_xai.explainers.explanation",
    "export_explainer": "siamese_xai.scale.export",
    "fit_explainer": "siamese_xai.training.fitting",
    "build_decoder": "siamese_xai.training.models",
    "build_encoder": "siamese_xai.training.models",
    "build_siamese_subnetwork": "siamese_xai.training.models",
    "compute_prototypes": "siamese_xai.explainers.prototypes",
    "nearest_prototype": "siamese_xai.explainers.prototypes",
    "ProbeConfig": "siamese_xai.config",
    "ProbeExplainer": "siamese_xai.explainers.probe",
    "ProbeExplanation": "siamese_xai.explainers.probe_explanation",
    "Pair": "siamese_xai.explainers.questions",
    "Rank": "siamese_xai.explainers.questions",
    "RatherThan": "siamese_xai.explainers.questions",
    "Verify": "siamese_xai.explainers.questions",
    "WhyClass": "siamese_xai.explainers.questions",
    "load_run": "siamese_xai.runs",
    "save_run": "siamese_xai.runs",
    "explain_split": "siamese_xai.scale.shards",
    "load_split_results": "siamese_xai.scale.shards",
    "train_run": "siamese_xai.training.stages",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'siamese_xai' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
