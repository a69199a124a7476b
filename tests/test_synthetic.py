"""The ground-truth generators of siamese_xai.evaluation.synthetic, above all the shapes set fixed in docs/evaluation.md."""

import numpy as np
import pytest

from siamese_xai.evaluation import synthetic


def test_shapes_is_seeded_balanced_and_in_range():
    x, y, regions = synthetic.make_shapes(50, seed=3)
    x2, y2, r2 = synthetic.make_shapes(50, seed=3)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(regions, r2)
    assert x.shape == (50, 28, 28, 1) and x.dtype == np.float32 and regions.shape == (50, 28, 28)
    assert np.bincount(y).tolist() == [10] * 5
    assert x.min() >= 0 and x.max() <= 1
    assert not np.array_equal(synthetic.make_shapes(50, seed=4)[0], x)


def test_pair_regions_are_the_two_glyphs_ink_and_gap_regions_are_missing_ink():
    x, y, regions = synthetic.make_shapes(60, seed=0, num_pair_classes=4)
    ink = x[..., 0]
    glyph_sizes = {int(g.sum()) for g in synthetic.GLYPHS}
    for i in range(60):
        r = regions[i]
        if y[i] == 4:  # the gap class: 2 x 3 pixels of missing ink inside the bar
            assert r.sum() == 6 and (ink[i][r] == 0).all()
            rows, cols = np.nonzero(r)
            left, right = ink[i][rows.min(), cols.min() - 1], ink[i][rows.min(), cols.max() + 1]
            assert left == 1 and right == 1  # bar on both sides: a gap, not an end
        else:
            assert (ink[i][r] == 1).all()  # the two glyphs' ink, which no other item touches
            assert r.sum() in {a + b for a in glyph_sizes for b in glyph_sizes}


def test_positions_are_off_any_grid():
    _, _, regions = synthetic.make_shapes(200, seed=1)
    tops = [np.nonzero(r)[0].min() for r in regions]
    assert len({t % 4 for t in tops}) == 4  # every offset modulo KernelSHAP's 4-pixel cell occurs


def test_no_noise_leaves_a_black_background_and_noise_is_clipped():
    x, _, _ = synthetic.make_shapes(20, seed=0)
    assert set(np.unique(x)) <= {0.0, 1.0}
    noisy, _, _ = synthetic.make_shapes(20, seed=0, noise=0.2)
    assert 0 < noisy.min() or noisy.min() == 0.0
    assert noisy.max() <= 1.0 and len(np.unique(noisy)) > 2


@pytest.mark.parametrize("kwargs, name", [({"n": 0}, "n"), ({"num_pair_classes": 5}, "num_pair_classes"),
                                          ({"distractors": 4}, "distractors"), ({"noise": 1.0}, "noise")])
def test_bad_arguments_are_named(kwargs, name):
    args = {"n": 5, **kwargs}
    with pytest.raises(ValueError, match=f"`{name}`"):
        synthetic.make_shapes(**args)


def test_the_constant_square_set_keeps_its_layout():
    digits = np.zeros((5, 28, 28, 1), np.float32)
    x, y, regions = synthetic.make_synthetic(digits, 20, seed=0)
    for i in range(20):
        r, c = synthetic.SQUARE_POSITIONS[y[i]]
        assert regions[i, r : r + 4, c : c + 4].all() and regions[i].sum() == 16


def test_both_square_sets_share_one_draw_of_labels_and_digits():
    digits = np.random.default_rng(1).random((30, 28, 28, 1)).astype(np.float32)
    x, y, regions = synthetic.make_synthetic(digits, 40, seed=5, num_classes=7)
    xv, yv, rv, _ = synthetic.make_varying_synthetic(digits, 40, seed=5, num_classes=7)
    np.testing.assert_array_equal(y, yv)  # the same balanced labels
    np.testing.assert_array_equal(y, synthetic.balanced_labels(np.random.default_rng(5), 40, 7))
    assert np.bincount(y).tolist() == [6, 6, 6, 6, 6, 5, 5]
    # and the same digit behind each image: they differ only inside the squares
    np.testing.assert_array_equal(np.where((regions | rv)[..., None], 0, x), np.where((regions | rv)[..., None], 0, xv))
    assert synthetic.make_shapes(40, seed=5, num_pair_classes=4)[1].tolist() == \
        synthetic.balanced_labels(np.random.default_rng(5), 40, 5).tolist()
