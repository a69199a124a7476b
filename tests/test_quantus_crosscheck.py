"""Our ROAD against Quantus' on a toy whose right order is known (skipped where Quantus is not installed).

Quantus 0.6 declares `tensorflow<2.16` and `keras<3` for its TensorFlow extra, so only its core is installed (the
`eval` extra); beside TF 2.21 / Keras 3 its ROAD and its noisy linear imputation run on a Keras 3 model, and this
test compares them with `siamese_xai.evaluation.faithfulness`. The benchmark keeps its own implementation: Quantus' ROAD scores
only whether the class survives, most relevant first.
"""

import numpy as np
import pytest

import quantus

from siamese_xai.evaluation import faithfulness as fa
from siamese_xai.evaluation import metrics

A = np.zeros((6, 6), bool)
A[1:3, 1:3] = True  # f(x) = sum of x over A; prototypes c_0 = 4, c_1 = 0


def _toy():
    import keras

    embed = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Flatten(), keras.layers.Dense(1, use_bias=False)])
    embed.layers[-1].set_weights([A.reshape(36, 1).astype(np.float32)])
    x = np.zeros((4, 6, 6, 1), np.float32)
    x[:, A] = 1.0
    x[:, 4, 1:5] = 1.0
    x[2:, 0, 5] = 0.5
    good = np.where(A, 2.0, 0.0) + np.linspace(0, 1, 36).reshape(6, 6)
    maps = np.stack([good, -good, good + 0.01, -good - 0.01])  # no ties: both tools must order pixels alike
    return embed, np.array([[4.0], [0.0]], np.float32), x, maps


def test_imputation_matches_quantus():
    from quantus.functions.perturb_func import noisy_linear_imputation as q_nli

    rng = np.random.default_rng(0)
    x = rng.random((1, 9, 9)).astype(np.float64)  # channel first, as Quantus' perturbation functions take it
    removed = rng.random((9, 9)) < 0.5
    ours = fa.noisy_linear_imputation(x[0], removed, noise=0.0)
    theirs = q_nli(arr=x, indices=np.flatnonzero(removed.ravel()), noise=0.0)
    np.testing.assert_allclose(ours, theirs[0], atol=1e-5)  # float64 solves of one linear system, ours cast to float32


def test_road_accuracy_matches_quantus_on_the_toy():
    embed, protos, x, maps = _toy()
    model = fa.prototype_logits(embed, protos, input_shape=(6, 6, 1))
    scalar = metrics.DistanceScalar(embed, protos)
    y = np.zeros(len(x), np.int64)
    np.testing.assert_array_equal(np.argmax(model.predict(x, verbose=0), -1), scalar.classify(x))
    road = quantus.ROAD(percentages=[25, 50, 75], noise=0.0, display_progressbar=False, disable_warnings=True)
    theirs = road(model=model, x_batch=x, y_batch=y, a_batch=maps[:, None], channel_first=False)
    ours = fa.road_curves(scalar, x, y, np.ones(len(x), np.int64), maps, fractions=(0.25, 0.5, 0.75), noise=0.0)
    ours_acc = ours["morf_same_class"][:, 1:].mean(0)
    assert [theirs[p] for p in (25, 50, 75)] == pytest.approx(ours_acc.tolist())
    # the known order: A first (maps 0 and 2) leaves class 0 at once; A last (1 and 3) keeps it to 75%
    np.testing.assert_array_equal(ours["morf_same_class"][:, 1:], [[0, 0, 0], [1, 1, 1], [0, 0, 0], [1, 1, 1]])
