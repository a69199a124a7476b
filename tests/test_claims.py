"""reproduce/claims.py and reproduce/claim_stats.py: scores, control masks, statistics and verdicts by hand."""

import itertools
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from reproduce import claim_stats as st
from reproduce import claims

ROOT = Path(__file__).resolve().parents[1]


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
    np.testing.assert_allclose(st.holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    out = st.holm([0.02, np.nan])
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
    assert st.verdict(effect, p, sign, n) == expected


def _per_image(rng, n=200, m=60, spec_shift=0.1, slope=0.0, ink_shift=0.1, control_shift=0.0):
    """Per-image scores: the method = the intensity control + a shift (+ a slope in the SSE) + noise."""
    sse = rng.uniform(10, 80, n)
    classes = np.arange(n) % 10
    intensity = control_shift + rng.normal(0, 0.02, n)
    method = intensity + spec_shift + slope * (sse - 45) / 100 + rng.normal(0, 0.02, n)
    ink_intensity = rng.normal(0, 0.05, m)
    return {"correct_sse": sse, "correct_class": classes, "correct_specificity": method,
            "correct_specificity_intensity": intensity, "correct_specificity_random": rng.normal(0, 0.02, n),
            "confused_true": np.arange(m) % 10, "confused_ink_contrast": ink_intensity + ink_shift + rng.normal(0, 0.05, m),
            "confused_ink_contrast_intensity": ink_intensity, "confused_ink_contrast_random": rng.normal(0, 0.05, m)}


NAMES = ("fig4_7", "fig8", "fig9")


def test_judge_gives_each_claim_its_verdict_from_the_contrasts():
    rng = np.random.default_rng(0)
    out = claims.judge(_per_image(rng, slope=-1.0), permutations=999)
    assert [out[name]["verdict"] for name in NAMES] == ["holds"] * 3
    assert out["fig4_7"]["n"] == 100  # the images at or below the median SSE
    assert out["fig8"]["contrasts"]["intensity"]["pooled"]["effect"] < -0.9
    assert set(out["fig4_7"]["per_class"]) == {str(k) for k in range(10)}
    assert out["fig9"]["contrasts"]["random"]["within_class"]["ci95"][0] < 0.1 < out["fig9"]["contrasts"]["random"][
        "within_class"]["ci95"][1]
    opposite = claims.judge(_per_image(rng, spec_shift=-0.1, slope=1.0, ink_shift=-0.1), permutations=999)
    assert [opposite[name]["verdict"] for name in NAMES] == ["does not hold"] * 3
    assert [opposite[name]["uncontrolled"]["verdict"] for name in NAMES] == ["does not hold"] * 3


def test_a_method_equal_to_its_control_never_holds():
    rng = np.random.default_rng(1)
    data = _per_image(rng, spec_shift=0.0, ink_shift=0.0, control_shift=0.2)
    data["correct_specificity"] = data["correct_specificity_intensity"].copy()
    data["confused_ink_contrast"] = data["confused_ink_contrast_intensity"] + 0.3
    data["confused_ink_contrast_intensity"] = data["confused_ink_contrast"].copy()
    out = claims.judge(data, permutations=999)
    assert out["fig4_7"]["uncontrolled"]["verdict"] == "holds"  # the input alone scores 0.2: the old test passed
    assert out["fig9"]["uncontrolled"]["verdict"] == "holds"
    assert [out[name]["verdict"] for name in NAMES] == ["not shown"] * 3
    for name in ("fig4_7", "fig9"):
        assert out[name]["contrasts"]["intensity"]["pooled"]["p"] == 1.0
        assert out[name]["contrasts"]["intensity"]["within_class"]["effect"] == 0.0
    assert math.isnan(out["fig8"]["contrasts"]["intensity"]["pooled"]["p"])  # a constant difference has no rank


def test_a_between_class_correlation_is_not_a_verdict_for_fig8():
    # class 1 has higher SSE and higher specificity than class 0; within each class the two are unrelated
    rng = np.random.default_rng(2)
    data = _per_image(rng, slope=0.0)
    classes = data["correct_class"]
    data["correct_sse"] = data["correct_sse"] + 100 * (classes >= 5)
    data["correct_specificity"] = data["correct_specificity"] + 0.5 * (classes >= 5)
    out = claims.judge(data, permutations=999)["fig8"]
    assert out["uncontrolled"]["effect"] > 0.5 and out["uncontrolled"]["verdict"] == "does not hold"
    assert abs(out["method"]["within_class"]["effect"]) < 0.2 and out["method"]["within_class"]["p"] > 0.05
    assert out["verdict"] == "not shown"


def test_judge_needs_the_control_scores():
    data = _per_image(np.random.default_rng(0))
    del data["correct_specificity_random"]
    with pytest.raises(ValueError, match="correct_specificity_random"):
        claims.judge(data)


def test_intensity_masks_are_the_brightest_pixels_ties_in_raster_order():
    x = np.array([[0.2, 0.9, 0.9, 0.0, 0.5], [0.0, 0.0, 1.0, 0.0, 0.0]])
    np.testing.assert_array_equal(claims.intensity_masks(x, 2), [[0, 1, 1, 0, 0], [1, 0, 1, 0, 0]])
    np.testing.assert_array_equal(claims.intensity_masks(x, 3)[0], [0, 1, 1, 0, 1])
    images = np.arange(8.0).reshape(2, 2, 2, 1)
    np.testing.assert_array_equal(claims.intensity_masks(images, 1), [[0, 0, 0, 1], [0, 0, 0, 1]])


def test_random_masks_depend_on_the_image_index_only():
    masks = claims.random_masks([7, 3], 3, 10)
    assert masks.shape == (2, 10) and masks.sum(1).tolist() == [3, 3]
    expected = np.zeros(10, bool)
    expected[np.random.default_rng([claims.RANDOM_MASK_SEED, 7]).choice(10, 3, replace=False)] = True
    np.testing.assert_array_equal(masks[0], expected)
    np.testing.assert_array_equal(claims.random_masks([3], 3, 10)[0], masks[1])  # not on its position in the batch
    assert not np.array_equal(claims.random_masks([8], 3, 10)[0], masks[0])
    with pytest.raises(ValueError, match=r"`q` must be in \[1, 10\]. Received: q=11"):
        claims.random_masks([1], 11, 10)


def test_vectorised_scores_equal_one_mask_at_a_time():
    masks = np.array([[1, 1, 0, 0, 0, 0], [0, 0, 1, 1, 0, 0], [0, 1, 1, 1, 0, 0]], bool)  # q = 2, 2 and 3
    ks, ls = [0, 2, 1], [1, 0, 2]
    np.testing.assert_allclose(claims.specificities(masks, ks, ls, MEANS),
                               [claims.specificity(m, k, l, MEANS) for m, k, l in zip(masks, ks, ls)])
    # by hand for the third (q = 3, mask {1, 2, 3}): T_abs(1, 2) = {0, 1, 2} -> 2/3; T_abs(0, 1) = {0, 1} and the
    # first tied zero, 2 -> 2/3; T_abs(0, 2) = {2, 3} and the first tied zero, 0 -> 2/3
    assert claims.specificities(masks, ks, ls, MEANS)[2] == pytest.approx(2 / 3 - (2 / 3 + 2 / 3) / 2)
    # the same mask against (0, 2), q = 2 regions: mask {0, 1} of the first row scores 0 - (1 + 1) / 2
    assert claims.specificities(masks[:1], [2], [0], MEANS)[0] == pytest.approx(-1.0)
    np.testing.assert_allclose(claims.ink_contrasts(masks[:2], [2, 0], [0, 2], MEANS), [-1.0, -1.0])


def test_stratified_mean_by_hand():
    d = np.array([1.0, 3.0, 2.0, 4.0, 6.0, 100.0])
    classes = np.array([0, 0, 1, 1, 1, 2])  # class 2 has one image: left out
    out = st.stratified_mean_test(d, classes, permutations=99)
    assert out["effect"] == pytest.approx(3.0) and (out["n"], out["classes"]) == (5, 2)
    half = 1.959964 * math.sqrt(2.0 / 2 + 4.0 / 3) / 2  # s^2 = 2 (n = 2) and 4 (n = 3)
    assert out["ci95"] == pytest.approx([3.0 - half, 3.0 + half])


def test_sign_flip_p_is_the_exact_probability():
    # five equal differences: |T*| >= |T| only when every sign is the same, 2 of 32 sign patterns
    out = st.stratified_mean_test(np.ones(5), np.zeros(5), permutations=20000)
    assert out["p"] == pytest.approx(2 / 32, abs=0.006)
    assert st.stratified_mean_test(np.zeros(8), np.arange(8) % 2, permutations=50)["p"] == 1.0


def test_within_class_rank_by_hand_and_its_exact_permutation_p():
    a = np.array([1, 2, 3, 1, 2, 3, 4, 1, 2, 1, 2, 3])
    b = np.array([1, 2, 3, 4, 3, 2, 1, 5, 6, 7, 7, 7])
    classes = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 3])  # class 2: two images; class 3: b constant
    out = st.within_class_rank_test(a, b, classes, permutations=20000)
    assert out["effect"] == pytest.approx((3 * 1.0 + 4 * -1.0) / 7)
    assert out["per_class"] == {"0": {"n": 3, "rho": pytest.approx(1.0)}, "1": {"n": 4, "rho": pytest.approx(-1.0)}}
    # the exact null: every permutation of b within class 0 (6) and class 1 (24)
    rho = lambda x, y: float(np.corrcoef(x, y)[0, 1])
    null = [(3 * rho([1, 2, 3], p0) + 4 * rho([1, 2, 3, 4], p1)) / 7
            for p0 in itertools.permutations([1, 2, 3]) for p1 in itertools.permutations([4, 3, 2, 1])]
    exact = np.mean(np.abs(null) >= 1 / 7 - 1e-12)
    assert out["p"] == pytest.approx(exact, abs=0.01)
    with pytest.raises(ValueError, match="one value per image"):
        st.within_class_rank_test(a, b[:-1], classes)


def test_pool_over_seeds_is_the_t_interval_of_the_seed_estimates():
    from scipy import stats

    out = st.pool_over_seeds({"1": 1.0, "2": 2.0, "3": 3.0, "4": 4.0, "5": 5.0})
    half = 2.7764451051977987 * math.sqrt(2.5) / math.sqrt(5)
    assert (out["n"], out["mean"]) == (5, 3.0) and out["sd"] == pytest.approx(math.sqrt(2.5))
    assert out["ci95"] == pytest.approx([3.0 - half, 3.0 + half])
    assert out["p"] == pytest.approx(2 * stats.t.sf(3.0 / math.sqrt(0.5), 4))
    one = st.pool_over_seeds([0.2])
    assert one["ci95"] is None and math.isnan(one["p"])
    with pytest.raises(ValueError, match="at least one seed"):
        st.pool_over_seeds([])


@pytest.mark.parametrize("tests, sign, expected", [
    ([(0.1, 0.01), (0.2, 0.001)], 1, "holds"),
    ([(0.1, 0.01), (0.2, 0.2)], 1, "not shown"),  # one contrast not significant
    ([(0.1, 0.01), (-0.2, 0.001)], 1, "not shown"),  # mixed signs
    ([(-0.1, 0.01), (-0.2, 0.001)], 1, "does not hold"),
    ([(-0.1, 0.01), (-0.2, 0.001)], -1, "holds"),
    ([], 1, "not shown"),
])
def test_a_claim_needs_every_contrast(tests, sign, expected):
    assert st.all_agree(tests, sign, 50) == expected


def _readme_claims_row():
    row = [line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("| the paper's figure claims")]
    assert len(row) == 1, "README.md has no (or several) claims row"
    return row[0]


def test_readme_claims_row_says_the_verdicts_of_the_json_files():
    record = json.loads((ROOT / "figures" / "claims.json").read_text())["claims"]
    across = json.loads((ROOT / "figures" / "claims_seeds.json").read_text())
    row = _readme_claims_row()
    labels = {"fig4_7": "Figs. 4-7", "fig8": "Fig. 8", "fig9": "Fig. 9"}
    this_run = dict(re.findall(r"(Figs?\. [\d-]+) \*\*([^*]+)\*\*", row.split("across")[0]))
    assert this_run == {labels[n]: record[n]["verdict"] for n in NAMES}
    uncontrolled = dict(re.findall(r"(Figs?\. [\d-]+) \*\*[^*]+\*\* \(uncontrolled: ([^;)]+)", row.split("across")[0]))
    assert uncontrolled == {labels[n]: record[n]["uncontrolled"]["verdict"] for n in NAMES}
    seeds = row.split("across", 1)[1]
    assert f"{len(across['seeds_done'])} seeds" in seeds
    for name in NAMES:
        assert across["claims"][name]["verdict"] in seeds
        assert f"{labels[name]} {across['claims'][name]['uncontrolled_verdict']}" in seeds


class _FakeExplainer:
    """Masks = each image's two brightest pixels; distances make the label the nearest class, then the next one."""

    class config:
        q = 2

    def explain(self, x, seed=0):
        flat = x.reshape(len(x), -1)
        mask = claims.intensity_masks(flat, 2)
        labels = flat[:, -1].astype(int)  # the label is stored in the last pixel
        distances = np.ones((len(x), 3))
        distances[np.arange(len(x)), labels] = 0.0
        distances[np.arange(len(x)), (labels + 1) % 3] = 0.5
        return _Result(mask.reshape(x.shape), distances)


class _Result:
    def __init__(self, mask, distances):
        self.mask, self.distances = mask, distances

    def __len__(self):
        return len(self.mask)


def test_per_image_scores_gives_each_image_its_controls():
    rng = np.random.default_rng(0)
    y = np.arange(12) % 3
    x = rng.uniform(0, 0.5, (12, 6))
    x[:, -1] = y
    predicted = y.copy()
    predicted[[4, 9]] = [2, 1]  # two misclassified images
    summary = {"predicted": predicted, "recon_sse": np.arange(12.0)}
    means = np.abs(rng.normal(size=(3, 6)))
    out = claims.per_image_scores(_FakeExplainer(), x, y, means, subset_size=12, chunk=5, summary=summary)
    correct = [i for i in np.sort(claims.subset_indices(12, 12)) if i not in (4, 9)]
    assert out["correct_index"] == correct and out["correct_class"] == y[correct].tolist()
    assert out["confused_index"] == [4, 9] and out["confused_true"] == [1, 0] and out["confused_class"] == [2, 1]
    # the method's masks are the intensity masks here: the two must score the same, the random ones by their index
    np.testing.assert_allclose(out["correct_specificity"], out["correct_specificity_intensity"])
    np.testing.assert_allclose(out["confused_ink_contrast"], out["confused_ink_contrast_intensity"])
    ks, ls = y[correct], (y[correct] + 1) % 3
    np.testing.assert_allclose(out["correct_specificity_random"],
                               claims.specificities(claims.random_masks(correct, 2, 6), ks, ls, means))
    np.testing.assert_allclose(out["confused_ink_contrast_random"],
                               claims.ink_contrasts(claims.random_masks([4, 9], 2, 6), [2, 1], [1, 0], means))


def test_subset_is_fixed_and_independent_of_the_network():
    a, b = claims.subset_indices(10000), claims.subset_indices(10000)
    np.testing.assert_array_equal(a, b)
    assert len(a) == claims.SUBSET_SIZE == len(set(a.tolist()))
    assert len(claims.subset_indices(50)) == 50
