"""Removal curves, ROAD's imputation, the paired tests and the ground-truth scores against hand-computed values."""

import numpy as np
import pytest

from siamese_xai.evaluation import faithfulness as fa
from siamese_xai.evaluation import metrics

# A toy network whose right order is known: f(x) = sum of x over the region A (one number), prototypes
# c_0 = 4 and c_1 = 0. For an image with h = 4 (the class is 0, the runner-up 1) the margin is
# d(x, c_1) - d(x, c_0) = h^2 - (h - 4)^2 = 8h - 16: only the pixels of A move it.
A = np.zeros((6, 6), bool)
A[1:3, 1:3] = True


def toy_embed(xs):
    return (np.asarray(xs)[..., 0] * A).sum(axis=(1, 2))[:, None]


def toy_images():
    x = np.zeros((2, 6, 6, 1), np.float32)
    x[:, A] = 1.0  # h = 4
    x[:, 4, 1:5] = 1.0  # ink outside A that f ignores
    return x


TOY = metrics.DistanceScalar(toy_embed, np.array([[4.0], [0.0]]))
GOOD = np.where(A, 2.0, 0.0) + np.linspace(0, 1, 36).reshape(6, 6)  # A first
BAD = -GOOD  # A last


def test_holm_matches_hand_values():
    # sorted: 0.01 * 3 = 0.03, 0.03 * 2 = 0.06, 0.04 * 1 = 0.04 -> monotone 0.03, 0.06, 0.06
    np.testing.assert_allclose(metrics.holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(metrics.holm([0.5, 0.5]), [1.0, 1.0])


def test_paired_test_exact_p_and_direction():
    a = np.arange(1.0, 7.0)
    t = metrics.paired_test(a, np.zeros(6), higher_is_better=True)
    assert t["p"] == pytest.approx(2 / 64)  # all six differences positive: exact two-sided 2 / 2^6
    assert t["a_better_side"] and t["median_difference"] == 3.5
    assert not metrics.paired_test(a, np.zeros(6), higher_is_better=False)["a_better_side"]
    assert metrics.paired_test(a, a, True)["p"] == 1.0
    assert metrics.paired_verdict(t, 0.01) == "better" and metrics.paired_verdict(t, 0.2) == "overlap"


def test_region_scores_hand_values():
    maps = np.array([[[3.0, 2.0], [1.0, 0.0]]])
    region = np.array([[[False, True], [False, False]]])
    s = metrics.region_scores(maps, region)
    assert s["rank_accuracy"][0] == 0.0  # the top pixel (3) is outside R
    assert s["mass"][0] == pytest.approx(2 / 6)
    assert s["roc_auc"][0] == pytest.approx(2 / 3)  # 2 beats 1 and 0, loses to 3
    with pytest.raises(ValueError, match="regions"):
        metrics.region_scores(maps, np.zeros_like(region))


def test_noisy_linear_imputation_solves_the_neighbour_equations():
    x = np.array([[0.0, 1.0, 0.0], [1.0, 9.0, 1.0], [0.0, 1.0, 0.0]])
    centre = np.zeros((3, 3), bool)
    centre[1, 1] = True
    out = fa.noisy_linear_imputation(x, centre, noise=0.0)
    assert out[1, 1] == pytest.approx(4 / 6)  # 4 direct neighbours of weight 1/6 at 1, diagonals at 0
    np.testing.assert_array_equal(out[~centre], x[~centre])
    row = np.array([[0.0, 7.0, 7.0, 3.0]])
    gap = np.array([[False, True, True, False]])
    # in one row only the two direct neighbours exist: u1 = (0 + u2) / 2, u2 = (u1 + 3) / 2
    np.testing.assert_allclose(fa.noisy_linear_imputation(row, gap, noise=0.0)[0], [0, 1, 2, 3], atol=1e-6)
    noisy = fa.noisy_linear_imputation(x, centre, noise=0.01, rng=np.random.default_rng(1))
    assert noisy[1, 1] != pytest.approx(4 / 6, abs=1e-9) and abs(noisy[1, 1] - 4 / 6) < 0.05


def test_fill_images_kinds():
    x = toy_images()
    assert (fa.fill_images(x, "zero") == 0).all()
    mean = np.full((6, 6, 1), 0.25, np.float32)
    assert (fa.fill_images(x, "mean", mean) == 0.25).all()
    blur = fa.fill_images(x, "blur", blur_sigma=1.0)
    assert blur.shape == x.shape and 0 < blur[0, 1, 1, 0] < 1 and blur[0, 0, 0, 0] > 0
    with pytest.raises(ValueError, match="kind"):
        fa.fill_images(x, "noise")
    with pytest.raises(ValueError, match="mean_image"):
        fa.fill_images(x, "mean")


@pytest.mark.parametrize("support", [False, True])
def test_removal_curves_prefer_the_known_order(support):
    x = toy_images()
    k, l = np.zeros(2, np.int64), np.ones(2, np.int64)
    fill = fa.fill_images(x, "zero")
    good = fa.removal_curves(TOY, x, k, l, np.stack([GOOD] * 2), fill, support=support, steps=4)
    bad = fa.removal_curves(TOY, x, k, l, np.stack([BAD] * 2), fill, support=support, steps=4)
    assert good["deletion"][0, 0] == pytest.approx(16.0)  # 8 * 4 - 16
    assert (good["deletion_auc"] < bad["deletion_auc"]).all()
    assert (good["insertion_auc"] > bad["insertion_auc"]).all()
    if support:
        # 8 ink pixels, 4 steps of 2: the good order empties A after two steps: margins 16, 0, -16, -16, -16
        np.testing.assert_allclose(good["deletion"][0], [16, 0, -16, -16, -16])
        assert good["deletion_auc"][0] == pytest.approx(np.trapezoid([16, 0, -16, -16, -16], [0, .25, .5, .75, 1]))


def test_road_prefers_the_known_order_and_lerf_reverses_it():
    x = toy_images()
    k, l = np.zeros(2, np.int64), np.ones(2, np.int64)
    good = fa.road_curves(TOY, x, k, l, np.stack([GOOD] * 2), fractions=(0.1, 0.5), noise=0.0)
    bad = fa.road_curves(TOY, x, k, l, np.stack([BAD] * 2), fractions=(0.1, 0.5), noise=0.0)
    assert good["morf"][0, 0] == pytest.approx(16.0)
    assert (good["morf_auc"] < bad["morf_auc"]).all()
    assert (good["lerf_auc"] > bad["lerf_auc"]).all()
    with pytest.raises(ValueError, match="fractions"):
        fa.road_curves(TOY, x, k, l, np.stack([GOOD] * 2), fractions=(0.5, 0.1))


def test_maps_of_the_wrong_shape_are_refused():
    x = toy_images()
    with pytest.raises(ValueError, match="maps"):
        fa.removal_curves(TOY, x, [0, 0], [1, 1], np.zeros((2, 5, 5)), fa.fill_images(x, "zero"))


def test_a_stack_is_imputed_as_each_image_alone():
    rng = np.random.default_rng(0)
    xs = rng.random((3, 7, 7, 1)).astype(np.float32)
    removed = rng.random((3, 7, 7)) < 0.6
    stacked = fa.noisy_linear_imputation(xs, removed, noise=0.0)
    alone = np.stack([fa.noisy_linear_imputation(xs[i], removed[i], noise=0.0) for i in range(3)])
    np.testing.assert_allclose(stacked, alone, atol=1e-6)  # float64 solves of the same equations, cast to float32
    assert stacked.shape == xs.shape
