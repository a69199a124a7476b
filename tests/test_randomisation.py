"""The model-parameter randomisation check: benchmarks/evaluation/randomisation.py.

The similarity statistics are checked against values computed by hand; the
randomisation against the trained weights (a copy changes, the original does
not); the end-to-end quick run on a tiny trained run against what must hold
whatever the network: a model-free map never changes, a gradient map does.
"""

import json
import math

import numpy as np
import pytest

from benchmarks.evaluation import randomisation as rz
from benchmarks.evaluation import randomisation_verdict as rv
from benchmarks.evaluation import registry


# ---------------------------------------------------------------------------
# the similarity statistics, by hand


def test_rank_correlation_matches_hand_computed_values():
    a = np.array([1.0, 2, 3, 4]).reshape(1, 2, 2)
    # one swap of neighbours: 1 - 6 * sum d^2 / (n (n^2 - 1)) = 1 - 6 * 2 / 60
    assert rv.rank_correlation(a, np.array([1.0, 3, 2, 4]).reshape(1, 2, 2))[0] == pytest.approx(0.8)
    assert rv.rank_correlation(a, -a)[0] == pytest.approx(-1.0)
    assert rv.rank_correlation(a, 10 * a + 3)[0] == pytest.approx(1.0)  # ranks only
    # ties take their average rank: ranks (1.5, 1.5, 3, 4) against (1, 2, 3, 4):
    # centred (-1, -1, .5, 1.5) and (-1.5, -.5, .5, 1.5): 4.5 / sqrt(4.5 * 5)
    tied = np.array([1.0, 1, 2, 3]).reshape(1, 2, 2)
    assert rv.rank_correlation(tied, a)[0] == pytest.approx(4.5 / math.sqrt(22.5))
    # a constant map has no ranking: 0 against a ranked map, 1 against another constant map
    flat = np.zeros((1, 2, 2))
    assert rv.rank_correlation(flat, a)[0] == 0.0
    assert rv.rank_correlation(a, flat)[0] == 0.0
    assert rv.rank_correlation(flat, flat + 5)[0] == 1.0
    # one value per image
    both = rv.rank_correlation(np.concatenate([a, a]), np.concatenate([a, -a]))
    np.testing.assert_allclose(both, [1.0, -1.0])


def test_top_q_masks_and_iou_by_hand():
    a = np.array([4.0, 3, 2, 1]).reshape(1, 2, 2)
    b = np.array([4.0, 1, 2, 3]).reshape(1, 2, 2)
    np.testing.assert_array_equal(rv.top_q_masks(a, 2).ravel(), [True, True, False, False])
    np.testing.assert_array_equal(rv.top_q_masks(b, 2).ravel(), [True, False, False, True])
    with pytest.raises(ValueError, match="q"):
        rv.top_q_masks(a, 5)


def test_tied_pixels_overlap_only_by_chance_but_identical_maps_match():
    # Each map marks one pixel; the other 49 of its top 50 are zeros tied with 733 others.
    # A raster-order tie-break would fill both masks with the same first 49 pixels (IoU ~0.96).
    a = np.zeros((1, 28, 28))
    b = np.zeros((1, 28, 28))
    a[0, 20, 20] = 1.0
    b[0, 5, 5] = 1.0
    ma, mb = rv.top_q_masks(a, 50), rv.top_q_masks(b, 50)
    assert ma.sum() == mb.sum() == 50 and ma[0, 20, 20] and mb[0, 5, 5]
    iou = (ma & mb).sum() / (ma | mb).sum()
    assert iou < 0.2  # chance: about 49 * 49 / 783 = 3 shared pixels of 97
    np.testing.assert_array_equal(rv.top_q_masks(a.copy(), 50), ma)  # the same map, the same mask


def test_map_similarity_on_hand_made_maps():
    ramp = np.arange(784, dtype=np.float64).reshape(1, 28, 28)
    same = rv.map_similarity(ramp, 3 * ramp + 2, q=100)
    for key in ("spearman", "spearman_abs", "ssim", "iou_top_q"):
        assert same[key].shape == (1,)
        assert same[key][0] == pytest.approx(1.0, abs=1e-6), key
    flipped = rv.map_similarity(ramp, -ramp, q=100)
    assert flipped["spearman"][0] == pytest.approx(-1.0)
    assert flipped["spearman_abs"][0] == pytest.approx(1.0)  # |-ramp| ranks like ramp
    assert flipped["iou_top_q"][0] == 0.0  # the last 100 pixels against the first 100
    assert flipped["ssim"][0] < 0.0  # a reversed ramp: anti-correlated structure
    with pytest.raises(ValueError, match="shape"):
        rv.map_similarity(ramp, ramp[:, :27])


# ---------------------------------------------------------------------------
# the randomisation


@pytest.fixture(scope="module")
def snn():
    import keras

    from siamese_xai.training.models import build_siamese_subnetwork

    keras.utils.set_random_seed(1)
    return build_siamese_subnetwork(8)


def test_cascade_runs_from_the_output_layer_down(snn):
    assert rz.cascade_layers(snn) == ["embedding", "dense1", "conv2", "conv1"]


def test_randomising_the_copy_leaves_the_original_untouched(snn):
    before = [np.array(w) for w in snn.get_weights()]
    copy = rz.randomised_copy(snn)
    for i, name in enumerate(rz.cascade_layers(copy)):
        rz.reinitialise_layer(copy.get_layer(name), seed=i + 1)
    for b, w, c in zip(before, snn.get_weights(), copy.get_weights()):
        np.testing.assert_array_equal(w, b)
        if c.ndim > 1:  # kernels are drawn again
            assert not np.allclose(c, b)
        else:  # biases: the layers' own initializer is zeros
            np.testing.assert_array_equal(c, 0.0)


def test_reinitialisation_is_seeded_and_uses_the_layers_initializer(snn):
    copies = [rz.randomised_copy(snn) for _ in range(3)]
    for copy, seed in zip(copies, (7, 7, 8)):
        rz.reinitialise_layer(copy.get_layer("dense1"), seed=seed)
    k7, k7b, k8 = (c.get_layer("dense1").get_weights()[0] for c in copies)
    np.testing.assert_array_equal(k7, k7b)
    assert not np.allclose(k7, k8)
    fan_in, fan_out = k7.shape
    limit = math.sqrt(6 / (fan_in + fan_out))  # Glorot-uniform, dense1's own initializer
    assert np.abs(k7).max() <= limit and np.abs(k7).max() > 0.9 * limit


def test_a_non_keras_f_cannot_be_randomised():
    with pytest.raises(TypeError, match="model"):
        rz.randomised_copy(lambda x: x)


# ---------------------------------------------------------------------------
# the maps, and the check end to end on a tiny trained run


# minutes: a tiny run, every registered method on the trained and two random f, explainers retrained from scratch
@pytest.mark.slow
def test_quick_run_end_to_end(tiny_run, tmp_path):
    from siamese_xai import runs

    run_dir = tiny_run[0]
    before = runs.load_run(run_dir)
    out = tmp_path / "randomisation.json"
    result = rz.main(["--quick", "--run", str(run_dir), "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert result["run_id"] == before.run_id
    assert runs.load_run(run_dir).run_id == before.run_id  # the run folder is untouched
    assert [s["stage"] for s in result["cascade"]] == ["embedding", "dense1", "conv2", "conv1"]
    # every registered method, and a `_kept` variant of each decoder method: read from the registry, so a
    # method added there is checked here too
    expected = {m.name for m in registry.METHODS} | {f"{m.name}_kept" for m in registry.METHODS if m.decoder}
    assert set(result["methods"]) == expected
    seeds = len(rz.MODES["quick"]["randomisation_seeds"])
    for name, m in result["methods"].items():
        assert m["verdict"] in (rv.CHANGES, rv.SAME, rv.NOT_SHOWN), name
        for key in rv.VERDICT_KEYS:
            assert np.shape(m["per_image_similarity"][key]) == (4, seeds), (name, key)
            assert len(m["per_seed"][key]) == seeds, (name, key)
    for m in registry.METHODS:
        if m.decoder:
            assert len(result["methods"][m.name]["budgets"]) == len(rz.MODES["quick"]["budgets"])
    # the check of the check: every model-free map, its seed fixed, does not change
    assert result["check_of_the_check"]["passed"]
    # the probe and the contrast ask for l, and got the trained f's
    assert result["methods"]["probe"]["question"].startswith("k and l fixed")
    assert result["methods"]["mc"]["question"].startswith("k fixed")
    for name in ("occlusion_margin", "kernelshap_margin", "distance_explainer_margin", "gradient_margin",
                 "integrated_gradients_margin"):  # every baseline of the margin asks l too
        assert result["methods"][name]["question"].startswith("k and l fixed"), name


# ---------------------------------------------------------------------------
# the rule, by hand


def test_relative_similarity_by_hand():
    # (s - floor) / (1 - floor); no room above a floor of 1
    np.testing.assert_allclose(rv.relative_similarity([0.6, 0.2, 0.5], [0.2, 0.2, 1.0]), [0.5, 0.0, np.nan])
    # per image and seed: the floor broadcasts over the seeds
    np.testing.assert_allclose(rv.relative_similarity([[1.0, 0.5]], [0.5]), [[1.0, 0.0]])


def test_pooled_interval_by_hand():
    # rows 1.5, 4, 2; columns 2, 3; mean 2.5: MS_image = 2 (1 + 2.25 + .25) / 2 = 3.5, MS_seed = 3 (.25 + .25) = 1.5,
    # residuals 0, 0, -.5, .5, .5, -.5: MS_res = 1 / 2. Var = (3.5 + 1.5 - .5) / 6 = .75;
    # Satterthwaite df = 4.5^2 / (3.5^2 / 2 + 1.5^2 / 1 + .5^2 / 2) = 20.25 / 8.5
    from scipy import stats

    p = rv.pooled_interval([[1.0, 2], [3, 5], [2, 2]])
    half = stats.t.ppf(0.975, 20.25 / 8.5) * math.sqrt(0.75)
    assert p["mean"] == 2.5 and p["df"] == pytest.approx(20.25 / 8.5)
    assert (p["lo"], p["hi"]) == pytest.approx((2.5 - half, 2.5 + half))
    # no seed effect (columns equal): the seed component is 0, Var = MS_image / (n S), df = n - 1
    q = rv.pooled_interval([[1.0, 1.5], [3, 2.5], [2, 2]])  # rows 1.25, 2.75, 2; columns 2, 2
    ms_image = 2 * (0.75 ** 2 + 0.75 ** 2 + 0) / 2
    assert q["df"] == pytest.approx(2) and q["hi"] - q["mean"] == pytest.approx(
        stats.t.ppf(0.975, 2) * math.sqrt(ms_image / 6))
    # one seed: the Student-t interval over images
    assert rv.pooled_interval([[1.0], [2], [3]])["hi"] == pytest.approx(2 + 4.302653 / math.sqrt(3), rel=1e-6)
    # all equal: a point
    assert rv.pooled_interval(np.ones((4, 3)))["lo"] == rv.pooled_interval(np.ones((4, 3)))["hi"] == 1.0
    with pytest.raises(ValueError, match="values"):
        rv.pooled_interval([[1.0, np.nan], [2, 3]])


def test_verdict_words_on_hand_made_intervals():
    room = {"ssim": 0.5, "spearman": 0.5}

    def iv(lo, hi):
        return {"lo": lo, "hi": hi}

    assert rv.verdict_word({"ssim": iv(0.1, 0.49), "spearman": iv(-0.1, 0.2)}, room)[0] == "changes"
    assert rv.verdict_word({"ssim": iv(0.51, 0.9), "spearman": iv(0.8, 1.0)}, room)[0] == "does not change"
    # an interval reaching the threshold: neither (the old rule's 0.44 [0.40, 0.49] stays "changes" only below)
    assert rv.verdict_word({"ssim": iv(0.40, 0.50), "spearman": iv(0.1, 0.2)}, room)[0] == "not shown"
    assert rv.verdict_word({"ssim": iv(0.40, 0.6), "spearman": iv(0.1, 0.2)}, room)[0] == "not shown"
    # the two measures disagree
    assert rv.verdict_word({"ssim": iv(0.1, 0.2), "spearman": iv(0.6, 0.9)}, room)[0] == "not shown"
    # a template: no room above the floor on one measure
    word, reason = rv.verdict_word({"ssim": iv(0.1, 0.2), "spearman": iv(0.1, 0.2)}, {"ssim": 0.04, "spearman": 0.5})
    assert word == "not shown" and "template" in reason
    with pytest.raises(ValueError, match="spearman"):
        rv.verdict_word({"ssim": iv(0.1, 0.2)}, room)


def test_judge_a_model_free_map_does_not_change_and_a_new_one_changes():
    n, seeds = 5, 3
    floor = {"ssim": np.full(n, 0.2), "spearman": np.full(n, 0.0)}
    same = rv.judge({"ssim": np.ones((n, seeds)), "spearman": np.ones((n, seeds))}, floor)
    assert same["verdict"] == "does not change" and same["relative"]["ssim"]["mean"] == 1.0
    assert len(same["per_seed"]["ssim"]) == seeds and np.shape(same["per_image_relative"]["ssim"]) == (n, seeds)
    rng = np.random.default_rng(0)
    new = {"ssim": 0.2 + 0.02 * rng.standard_normal((n, seeds)), "spearman": 0.02 * rng.standard_normal((n, seeds))}
    assert rv.judge(new, floor)["verdict"] == "changes"
    methods = {"random": same, "edge": same, "probe": rv.judge(new, floor)}
    assert rv.check_of_the_check(methods, ["random", "edge"])["passed"]
    assert not rv.check_of_the_check(methods, ["random", "probe"])["passed"]


def test_floors_are_the_mean_similarity_to_every_other_image():
    maps = np.random.default_rng(0).random((3, 12, 12))
    got = rv.floors(maps, q=10)
    pair = {(i, j): rv.map_similarity(maps[[i]], maps[[j]], q=10) for i in range(3) for j in range(3) if i != j}
    for key in ("ssim", "spearman", "iou_top_q"):
        for i in range(3):
            others = [pair[(i, j)][key][0] for j in range(3) if j != i]
            assert got[key][i] == pytest.approx(np.mean(others), abs=1e-6), (key, i)


# ---------------------------------------------------------------------------
# the question, fixed from the trained f


class _Distances:
    """A scalar whose squared distances are given by hand, one row per image (the image's first pixel indexes it)."""

    def __init__(self, rows):
        self.rows = np.asarray(rows, np.float64)
        self.prototypes = np.zeros((self.rows.shape[1], 2), np.float32)
        self.embed, self.calls = None, 0

    def all_distances(self, xs):
        return self.rows[np.asarray(xs)[:, 0, 0, 0].astype(int)]


def test_k_and_l_come_from_the_trained_f_whatever_f_is_explained():
    xs = np.zeros((2, 4, 4, 1))
    xs[1, 0, 0, 0] = 1
    trained = _Distances([[0.0, 2, 1], [5.0, 0, 3]])  # k = 0, l = 2; k = 1, l = 2
    randomised = _Distances([[3.0, 0, 9], [0.0, 9, 1]])  # its runner-ups to the same k: 1 and 0
    k, l = rz.trained_question(trained, xs)
    np.testing.assert_array_equal(k, [0, 1])
    np.testing.assert_array_equal(l, [2, 2])
    contrast = rz.TrainedContrast(trained)
    np.testing.assert_array_equal(contrast(xs, k), [2, 2])
    assert contrast.calls == 1
    # a margin baseline asks the fixed pair, not the random f's runner-up: codes k * C + l
    np.testing.assert_array_equal(registry.MarginScalar(randomised, contrast).codes(xs, k), [0 * 3 + 2, 1 * 3 + 2])
    np.testing.assert_array_equal(registry.MarginScalar(randomised).codes(xs, k), [0 * 3 + 1, 1 * 3 + 0])
    # so does a white-box baseline of the margin (the gradient's, Integrated Gradients'): l from the context
    asked = []
    build = registry._white_margin(lambda ctx, x, c, l: asked.append(np.asarray(l).tolist()))
    build(registry.Context(None, randomised, {}, rz.TrainedContrast(trained)))(xs, k, 0)
    build(registry.Context(None, randomised, {}))(xs, k, 0)  # no context's l: the runner-up under this f
    assert asked == [[2, 2], [1, 0]]


def test_explained_maps_pass_l_only_to_an_explainer_that_asks_it():
    class Result:
        def __init__(self, n):
            self.ranking = np.zeros((n, 4, 4, 1))

    class Explainer:
        def __init__(self, answers):
            self.answers, self.asked = answers, None

        def explain(self, x, **kwargs):
            self.asked = kwargs
            return Result(len(x))

    xs = np.zeros((2, 4, 4, 1))
    contrast = Explainer(("contrast", "pair"))
    registry.explained_maps(contrast, xs, [0, 1], 3, contrasts=[2, 2])
    assert contrast.asked == {"target_class": [0, 1], "seed": 3, "contrast_class": [2, 2]}
    whyk = Explainer(("class", "pair"))
    registry.explained_maps(whyk, xs, [0, 1], 3, contrasts=[2, 2])
    assert whyk.asked == {"target_class": [0, 1], "seed": 3}


def test_docs_block_is_replaced_between_its_markers(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(f"before\n{rv.DOCS_BEGIN}\nold\n{rv.DOCS_END}\nafter\n")
    interval = {"mean": 0.1, "lo": 0.0, "hi": 0.2}
    method = {"question": "k fixed", "relative": {"ssim": interval, "spearman": interval},
              "per_seed": {"ssim": [interval], "spearman": [interval]}, "verdict": "changes"}
    result = {"run_id": "r", "n_images": 2, "mode": "quick", "seconds": 1.0, "machine": "m", "date": "d",
              "load_average_1_5_15_min": [1, 1, 1], "protocol": {"seeds": [0]},
              "seeds": [{"budgets": [{"steps": 8, "images": 10, "epochs": [1, 1]}]}],
              "methods": {"gradient": method, "mc": {**method, "budgets": [{"verdict": "changes", "relative": {
                  "ssim": interval}}]}},
              "check_of_the_check": {"rule": "r", "verdicts": {"random": "does not change"}, "passed": True}}
    rv.write_docs(result, page)
    text = page.read_text()
    assert text.startswith("before\n") and text.endswith("after\n") and "old" not in text
    assert "| gradient | k fixed | 0.10 [0.00, 0.20]" in text and "passed" in text
    with pytest.raises(ValueError, match="markers"):
        rv.write_docs(result, _no_markers(tmp_path))


def _no_markers(tmp_path):
    page = tmp_path / "plain.md"
    page.write_text("no markers\n")
    return page
