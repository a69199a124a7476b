"""reproduce/claims.py: the scores, the multiplicity correction and the verdict rules, against hand-computed values."""

import numpy as np
import pytest

from reproduce import claims


def test_share_counts_the_mask_inside_the_region():
    mask = np.array([1, 1, 1, 1, 0, 0], bool)
    region = np.array([0, 0, 0, 1, 1, 1], bool)
    assert claims.share(mask, region) == 0.25


def test_share_rejects_an_empty_mask_and_other_sizes():
    with pytest.raises(ValueError, match="empty mask"):
        claims.share(np.zeros(4, bool), np.ones(4, bool))
    with pytest.raises(ValueError, match="same size"):
        claims.share(np.ones(4, bool), np.ones(5, bool))


# three classes on six pixels: 0 and 1 differ on pixels 0, 1; 0 and 2 on pixels 2, 3; 1 and 2 on 0-3 (less)
MEANS = np.array([
    [1.0, 1.0, 0.0, 0.0, 0.5, 0.5],
    [0.0, 0.0, 0.0, 0.0, 0.5, 0.5],
    [1.0, 1.0, 1.0, 1.0, 0.5, 0.5],
])


def test_specificity_against_the_other_class_pairs_by_hand():
    mask = np.array([1, 1, 0, 0, 0, 0], bool)  # q = 2
    # T_abs(0, 1) = {0, 1} -> share 1; T_abs(0, 2) = {2, 3} -> 0; |m1 - m2| = [1, 1, 1, 1, 0, 0], top 2 = {0, 1} -> 1
    assert claims.specificity(mask, 0, 1, MEANS) == pytest.approx(1.0 - (0.0 + 1.0) / 2)
    # the same mask set against the pair (0, 2): share 0 minus the mean of (0, 1) and (1, 2): 1
    assert claims.specificity(mask, 2, 0, MEANS) == pytest.approx(0.0 - 1.0)


def test_ink_contrast_is_ink_of_the_given_class_minus_ink_of_the_true_one():
    # m2 - m0 = [0, 0, 1, 1, 0, 0]: top 2 = {2, 3}; m0 - m2 = [0, 0, -1, -1, 0, 0]: top 2 (stable) = {0, 1}
    mask = np.array([0, 0, 1, 1, 0, 0], bool)
    assert claims.ink_contrast(mask, 2, 0, MEANS) == 1.0
    assert claims.ink_contrast(mask, 0, 2, MEANS) == -1.0


def test_class_mean_images_by_hand_and_missing_class():
    x = np.array([[[0.0]], [[1.0]], [[0.5]]]).reshape(3, 1, 1, 1)
    np.testing.assert_allclose(claims.class_mean_images(x, [0, 0, 1], 2), [[0.5], [0.5]])
    with pytest.raises(ValueError, match=r"no image of class \[2\]"):
        claims.class_mean_images(x, [0, 0, 1], 3)


def test_holm_by_hand():
    # sorted: 0.01 * 3 = 0.03; 0.03 * 2 = 0.06; 0.04 * 1 = 0.04 -> kept monotone at 0.06
    np.testing.assert_allclose(claims.holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    out = claims.holm([0.02, np.nan])
    assert out[0] == pytest.approx(0.02) and np.isnan(out[1])  # NaN is not counted as a test


@pytest.mark.parametrize("effect, p, sign, n, expected", [
    (0.2, 0.01, 1, 50, "holds"),
    (-0.2, 0.01, 1, 50, "does not hold"),
    (-0.3, 0.001, -1, 50, "holds"),
    (0.2, 0.05, 1, 50, "not shown"),  # not below alpha
    (0.2, 0.001, 1, 9, "not shown"),  # too few images
    (0.2, float("nan"), 1, 50, "not shown"),
])
def test_verdict_rules(effect, p, sign, n, expected):
    assert claims.verdict(effect, p, sign, n) == expected


def _scores(rng, n=200, spec_shift=0.1, slope=-1.0, ink_shift=0.1):
    sse = rng.uniform(10, 80, n)
    spec = spec_shift + slope * (sse - 45) / 100 + rng.normal(0, 0.02, n)
    return {"correct_sse": sse, "correct_specificity": spec, "confused_ink_contrast": ink_shift + rng.normal(0, 0.05, 60)}


def test_judge_gives_each_claim_its_verdict():
    rng = np.random.default_rng(0)
    out = claims.judge(_scores(rng))
    assert [out[name]["verdict"] for name in ("fig4_7", "fig8", "fig9")] == ["holds"] * 3
    assert out["fig8"]["effect"] < -0.9  # a strong negative rank correlation
    assert out["fig4_7"]["n"] == 100  # the images at or below the median SSE
    assert out["fig9"]["ci95"][0] < 0.1 < out["fig9"]["ci95"][1]
    opposite = claims.judge(_scores(rng, spec_shift=-0.1, slope=1.0, ink_shift=-0.1))
    # specificity of the good half: -0.1 + (sse - 45) / 100 is negative below the median
    assert [opposite[name]["verdict"] for name in ("fig4_7", "fig8", "fig9")] == ["does not hold"] * 3
    nothing = claims.judge(_scores(rng, spec_shift=0.0, slope=0.0, ink_shift=0.0) | {"confused_ink_contrast": np.zeros(5)})
    assert nothing["fig9"]["verdict"] == "not shown"  # five images only
    assert nothing["fig8"]["verdict"] == "not shown"  # no correlation


def test_subset_is_fixed_and_independent_of_the_network():
    a, b = claims.subset_indices(10000), claims.subset_indices(10000)
    np.testing.assert_array_equal(a, b)
    assert len(a) == claims.SUBSET_SIZE == len(set(a.tolist()))
    assert len(claims.subset_indices(50)) == 50
