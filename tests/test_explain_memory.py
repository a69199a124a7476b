"""`mc` in bounded memory: the rows per decoder call and the kink candidates follow `memory_budget`."""

import keras
import numpy as np
import pytest

from siamese_xai.config import ExplainConfig
from siamese_xai.decoding import evaluator, kinks
from siamese_xai.explainers import _graph
from siamese_xai.explainers.siamese import SiameseExplainer
from siamese_xai.training.models import build_decoder, build_photo_decoder

D = 8


def _photo_case(seed=0):
    """A 48x48x3 photo decoder (randomly initialised), a linear embed, prototypes and 2 images."""
    keras.utils.set_random_seed(seed)
    dec = build_photo_decoder(D, image_shape=(48, 48, 3))
    rng = np.random.default_rng(seed)
    proj = rng.normal(0, 0.05, (48 * 48 * 3, D)).astype(np.float32)
    protos = rng.normal(0, 1, (3, D)).astype(np.float32)
    embed = lambda x: (np.asarray(x, np.float64).reshape(len(x), -1) @ proj).astype(np.float32)  # noqa: E731
    return embed, dec, protos, rng.random((2, 48, 48, 3)).astype(np.float32)


@pytest.mark.parametrize("bad", [0, 1000, 2.5, "1GiB", None, True])
def test_memory_budget_is_checked_with_a_clear_error(bad):
    embed, dec, protos, _ = _photo_case()
    with pytest.raises(ValueError, match=r"`memory_budget` must be an integer number of bytes, at least 16777216"):
        SiameseExplainer(embed, dec, protos, ExplainConfig.tiny(), memory_budget=bad)


def test_the_paper_decoder_keeps_its_chunk_and_kink_cap_at_the_default_budget():
    """28 px (Table 1's decoder, D = 20, N = 5000): 1000 rows per call and kink_cap(1000, 1, 5000), as before the budget."""
    keras.utils.set_random_seed(0)
    dec = build_decoder(20)
    protos = np.random.default_rng(0).normal(0, 1, (10, 20)).astype(np.float32)
    ex = SiameseExplainer(lambda x: np.zeros((len(x), 20), np.float32), dec, protos, ExplainConfig())
    assert ex.memory_budget == evaluator.DEFAULT_MEMORY_BUDGET == 2**30
    assert ex.chunk_size == 1000
    assert ex.kink_cap == _graph.kink_cap(1000, 1, 5000) == 409
    assert ex.decoder_evaluation.kinks.block_rows(1) >= 1000  # so its sums step over 1000 draws at a time, as before


def test_chunk_and_kink_cap_follow_the_budget_by_hand():
    embed, dec, protos, _ = _photo_case()
    ex = SiameseExplainer(embed, dec, protos, ExplainConfig(n_perturbations=5000, s=5), memory_budget=64 << 20)
    ev = ex.decoder_evaluation
    # the widest activation per row: the fused last conv's cells, 24 x 24 x (4 x 3)... or an inner layer's
    assert ev.widest >= 48 * 48 * 3
    assert ex.chunk_size == min(1000, (64 << 20) // (evaluator.ROW_BYTES * ev.widest))
    relu = ev.kinks.relu_layers
    assert relu == 4  # dense1, dense2 and the convs of levels 3 and 2 (48 px: 4 levels, the last one sigmoid)
    budget_cap = ((64 << 20) // (evaluator.SOURCE_BYTES * ev.widest) - 5) // relu
    assert 0 < budget_cap < _graph.kink_cap(ex.chunk_size, 1, 5000)
    assert ex.kink_cap == budget_cap


def test_two_budgets_give_the_same_explanation_to_float32_precision():
    """The draws are stateless (seeded), so only the summation's blocking changes: |diff| <= 1e-6 of the largest change."""
    embed, dec, protos, xs = _photo_case()
    cfg = ExplainConfig(n_perturbations=400, s=3, q=200)
    big = SiameseExplainer(embed, dec, protos, cfg, memory_budget=1 << 30, kink_split=False)
    small = SiameseExplainer(embed, dec, protos, cfg, memory_budget=16 << 20, kink_split=False)
    assert small.chunk_size < cfg.n_perturbations <= big.chunk_size
    a, b = big.explain(xs, seed=4), small.explain(xs, seed=4)
    scale = a.mean_abs_change.max(axis=(1, 2, 3), keepdims=True)
    assert scale.min() > 0
    assert np.all(np.abs(a.mean_abs_change - b.mean_abs_change) <= 1e-6 * scale)
    assert np.all(np.abs(a.mean_signed_change - b.mean_signed_change) <= 1e-6 * scale)
    np.testing.assert_array_equal(a.mask, b.mask)
    np.testing.assert_array_equal(a.sigma, b.sigma)

