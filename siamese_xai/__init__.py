"""siamese-xai: explanations for Siamese neural networks.

Plotting lives in `siamese_xai.plotting` (not re-exported here, so that
importing the package does not import matplotlib's pyplot).

The reference implementation of L. Utkin, M. Kovalev and E. Kasimov, "An
explanation method for Siamese neural networks" (2019).
"""

from siamese_xai.shards import explain_split, load_split_results
from siamese_xai.config import AutoencoderConfig, DecoderConfig, SNNConfig, TrainConfig
from siamese_xai.data import DataNotFoundError, load_mnist
from siamese_xai.explain import ExplainConfig, SiameseExplainer
from siamese_xai.explanation import Explanation
from siamese_xai.export import export_explainer
from siamese_xai.models import build_decoder, build_encoder, build_siamese_subnetwork
from siamese_xai.prototypes import compute_prototypes, nearest_prototype
from siamese_xai.training import train_run

__version__ = "0.1.0"

__all__ = [
    "AutoencoderConfig",
    "DataNotFoundError",
    "DecoderConfig",
    "ExplainConfig",
    "Explanation",
    "SiameseExplainer",
    "SNNConfig",
    "TrainConfig",
    "build_decoder",
    "build_encoder",
    "build_siamese_subnetwork",
    "compute_prototypes",
    "explain_split",
    "export_explainer",
    "load_mnist",
    "load_split_results",
    "nearest_prototype",
    "train_run",
]
