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
from benchmarks.evaluation import registry


# ---------------------------------------------------------------------------
# the similarity statistics, by hand


def test_rank_correlation_matches_hand_computed_values():
    a = np.array([1.0, 2, 3, 4]).reshape(1, 2, 2)
    # one swap of neighbours: 1 - 6 * sum d^2 / (n (n^2 - 1)) = 1 - 6 * 2 / 60
    assert rz.rank_correlation(a, np.array([1.0, 3, 2, 4]).reshape(1, 2, 2))[0] == pytest.approx(0.8)
    assert rz.rank_correlation(a, -a)[0] == pytest.approx(-1.0)
    assert rz.rank_correlation(a, 10 * a + 3)[0] == pytest.approx(1.0)  # ranks only
    # ties take their average rank: ranks (1.5, 1.5, 3, 4) against (1, 2, 3, 4):
    # centred (-1, -1, .5, 1.5) and (-1.5, -.5, .5, 1.5): 4.5 / sqrt(4.5 * 5)
    tied = np.array([1.0, 1, 2, 3]).reshape(1, 2, 2)
    assert rz.rank_correlation(tied, a)[0] == pytest.approx(4.5 / math.sqrt(22.5))
    # a constant map has no ranking: 0 against a ranked map, 1 against another constant map
    flat = np.zeros((1, 2, 2))
    assert rz.rank_correlation(flat, a)[0] == 0.0
    assert rz.rank_correlation(a, flat)[0] == 0.0
    assert rz.rank_correlation(flat, flat + 5)[0] == 1.0
    # one value per image
    both = rz.rank_correlation(np.concatenate([a, a]), np.concatenate([a, -a]))
    np.testing.assert_allclose(both, [1.0, -1.0])


def test_top_q_masks_and_iou_by_hand():
    a = np.array([4.0, 3, 2, 1]).reshape(1, 2, 2)
    b = np.array([4.0, 1, 2, 3]).reshape(1, 2, 2)
    np.testing.assert_array_equal(rz.top_q_masks(a, 2).ravel(), [True, True, False, False])
    np.testing.assert_array_equal(rz.top_q_masks(b, 2).ravel(), [True, False, False, True])
    with pytest.raises(ValueError, match="q"):
        rz.top_q_masks(a, 5)


def test_tied_pixels_overlap_only_by_chance_but_identical_maps_match():
    # Each map marks one pixel; the other 49 of its top 50 are zeros tied with 733 others.
    # A raster-order tie-break would fill both masks with the same first 49 pixels (IoU ~0.96).
    a = np.zeros((1, 28, 28))
    b = np.zeros((1, 28, 28))
    a[0, 20, 20] = 1.0
    b[0, 5, 5] = 1.0
    ma, mb = rz.top_q_masks(a, 50), rz.top_q_masks(b, 50)
    assert ma.sum() == mb.sum() == 50 and ma[0, 20, 20] and mb[0, 5, 5]
    iou = (ma & mb).sum() / (ma | mb).sum()
    assert iou < 0.2  # chance: about 49 * 49 / 783 = 3 shared pixels of 97
    np.testing.assert_array_equal(rz.top_q_masks(a.copy(), 50), ma)  # the same map, the same mask


def test_map_similarity_on_hand_made_maps():
    ramp = np.arange(784, dtype=np.float64).reshape(1, 28, 28)
    same = rz.map_similarity(ramp, 3 * ramp + 2, q=100)
    for key in ("spearman", "spearman_abs", "ssim", "iou_top_q"):
        assert same[key].shape == (1,)
        assert same[key][0] == pytest.approx(1.0, abs=1e-6), key
    flipped = rz.map_similarity(ramp, -ramp, q=100)
    assert flipped["spearman"][0] == pytest.approx(-1.0)
    assert flipped["spearman_abs"][0] == pytest.approx(1.0)  # |-ramp| ranks like ramp
    assert flipped["iou_top_q"][0] == 0.0  # the last 100 pixels against the first 100
    assert flipped["ssim"][0] < 0.0  # a reversed ramp: anti-correlated structure
    with pytest.raises(ValueError, match="shape"):
        rz.map_similarity(ramp, ramp[:, :27])


def test_summarise_and_the_changes_verdict_by_hand():
    s = rz.summarise([1.0, 2.0, 3.0])
    half = 4.302653 * 1.0 / math.sqrt(3)  # sd = 1; Student t_{0.975, 2} = 4.302653 (metrics.mean_ci)
    assert s == pytest.approx({"mean": 2.0, "lo": 2.0 - half, "hi": 2.0 + half, "n": 3})

    def stage(hi_signed, hi_abs):
        return {"spearman": {"hi": hi_signed}, "spearman_abs": {"hi": hi_abs}}

    assert rz.changes(stage(0.49, 0.9)) is True  # the signed ranking decides `changes`
    assert rz.changes(stage(0.49, 0.9), "spearman_abs") is False
    assert rz.changes(stage(0.5, 0.3)) is False  # the bound must be *below* 0.5
    assert rz.changes(stage(0.51, 0.3), "spearman_abs") is True
    assert rz.changes(stage(0.7, 0.3), threshold=0.8) is True


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


@pytest.fixture(scope="module")
def tiny(tiny_run):
    from siamese_xai import runs
    from siamese_xai.data.mnist import load_mnist

    run = runs.load_run(tiny_run[0])
    x, _ = load_mnist("test")
    return run, np.array(x[:6])


def test_decoder_methods_equal_explain_with_the_stages_prototypes(tiny):
    # DecoderMethods feeds the stage's c_k (c_l) as the reference embedding instead of
    # rebuilding the explainer around the stage's prototypes: the maps must be the same.
    from siamese_xai.config import ExplainConfig, TemplateContrastConfig
    from siamese_xai.explainers.siamese import SiameseExplainer
    from siamese_xai.explainers.prototypes import nearest_prototype

    run, xs = tiny
    prototypes = run.prototypes[::-1].copy()  # other prototypes than the explainer was built with
    h = np.asarray(run.embed(xs), np.float32)
    k = nearest_prototype(h, prototypes)[0]
    l = (k + 3) % len(prototypes)
    maps = rz.DecoderMethods(run.decoder, run.embed, run.prototypes, 64, 32)(h, xs, k, l, prototypes, seed=3)
    config = ExplainConfig(n_perturbations=64)
    for method in ("mc", "linear"):
        e = SiameseExplainer(run.embed, run.decoder, prototypes, config.replace(estimator=method)).explain(
            xs, target_class=k.tolist(), seed=3)
        np.testing.assert_allclose(maps[method], e.mean_abs_change[..., 0], rtol=1e-4, atol=1e-7)
    e = SiameseExplainer(run.embed, run.decoder, prototypes, TemplateContrastConfig(n_path_points=32)).explain(
        xs, target_class=k.tolist(), contrast_class=l.tolist())
    np.testing.assert_allclose(maps["template_contrast"], e.ranking[..., 0], rtol=1e-4, atol=1e-7)


# minutes: a tiny run's cascade, an explainer retrained from scratch, every registered method
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
    stages = result["stages"]
    assert stages == ["original", "embedding", "dense1", "conv2", "conv1"]
    assert {"randomised", "prototypes", "explained_class", "decoder_kept", "retrained", "floor", "ceiling",
            "verdict"} <= set(result["protocol"])
    # every registered method, and a `_kept` variant of each decoder method: read from the registry, so a
    # method added there is checked here too
    expected = {m.name for m in registry.METHODS} | {f"{m.name}_kept" for m in registry.METHODS if m.decoder}
    assert set(result["methods"]) == expected
    for name, m in result["methods"].items():
        assert m["stages"][0]["stage"] == "original" and m["stages"][-1]["stage"] == "conv1", name
        for key in ("spearman", "spearman_abs", "ssim", "iou_top_q"):
            # every map equals itself at the trained stage
            assert m["stages"][0][key]["mean"] == pytest.approx(1.0, abs=1e-6), (name, key)
            assert set(m["stages"][-1][key]) == {"mean", "lo", "hi", "n"}
        assert m["verdict"] in ("changes", "does not change", "undecided (template)"), name
        assert m["changes_spearman"] == rz.changes(m["stages"][-1]), name
    # a deterministic model-free map never changes: its similarity stays at its ceiling of 1
    controls = [m.name for m in registry.METHODS if m.kind == registry.MODEL_FREE and m.deterministic]
    assert controls
    for control in controls:
        assert result["methods"][control]["verdict"] == "does not change", control
    # the retrained variant decides; the kept one is labelled a diagnostic
    assert "decides" in result["methods"]["mc"]["variant"] and "diagnostic" in result["methods"]["mc_kept"]["variant"]
    last = result["stage_details"][-1]
    assert last["randomised_layers"] == stages[1:]
    assert last["retrain_steps"] > 0 and "sse_retrained" in last


def test_verdict_rule_by_hand():
    ones = np.ones(6)
    floor = {"iou_top_q": ones * 0.2, "ssim": ones * 0.4}
    ceiling = {"iou_top_q": ones, "ssim": ones}
    # s at the floor: r = 0 on both, far below 0.5: changes
    near_floor = {"iou_top_q": np.array([0.2, 0.22, 0.18, 0.2, 0.21, 0.19]), "ssim": ones * 0.4 + 0.01 * np.arange(6)}
    assert rz.verdict(near_floor, floor, ceiling)["verdict"] == "changes"
    # r = (0.6 - 0.2) / 0.8 = 0.5 on IoU: not below 0.5
    half = {"iou_top_q": ones * 0.6 + 0.01 * np.arange(6) - 0.025, "ssim": near_floor["ssim"]}
    assert rz.verdict(half, floor, ceiling)["verdict"] == "does not change"
    # a template: the floor is within 0.05 of the ceiling, so nothing can be decided
    template = {"iou_top_q": ones * 0.97, "ssim": ones * 0.97}
    assert rz.verdict(near_floor, template, ceiling)["verdict"] == "undecided (template)"
    np.testing.assert_allclose(rz.relative_similarity([0.6, 0.2], [0.2, 0.2], [1.0, 0.2]), [0.5, np.nan])
