"""The benchmark (python -m benchmarks.evaluation.evaluate) end to end in quick mode, and its verdict rules by hand."""

import json
import math

import numpy as np
import pytest


from benchmarks.evaluation import evaluate_report as report  # noqa: E402
from benchmarks.evaluation import registry, verdicts  # noqa: E402

from siamese_xai import files  # noqa: E402


def _load_script():
    from benchmarks.evaluation import evaluate

    return evaluate


@pytest.fixture
def untrained_run(tmp_path):
    """A run folder with untrained Table 1 models and prototypes of 500 MNIST images (seconds, no training)."""
    import keras

    from siamese_xai import runs
    from siamese_xai.data.mnist import load_mnist
    from siamese_xai.training.models import build_decoder, build_siamese_subnetwork
    from siamese_xai.explainers.prototypes import compute_prototypes

    keras.utils.set_random_seed(0)
    x, y = load_mnist("train")
    snn, decoder = build_siamese_subnetwork(20), build_decoder(20)
    protos = compute_prototypes(snn, x[:500], y[:500], num_classes=10)
    runs.save_run(tmp_path / "run", snn, decoder, protos)
    return tmp_path / "run"


# minutes: three small ground-truth networks are trained and every method scored on four sets
@pytest.mark.slow
def test_quick_mode_end_to_end(untrained_run, tmp_path):
    script = _load_script()
    results = script.main(["--quick", "--run", str(untrained_run), "--out", str(tmp_path), "--figures", str(tmp_path),
                           "--randomisation", str(tmp_path / "absent.json")])
    assert json.loads((tmp_path / "results.json").read_text())["records"] == json.loads(json.dumps(results["records"]))
    assert results["mode"] == "quick"
    methods = list(registry.ENTRIES)  # every method and every variant derived from one
    faith = [m.name for m in registry.METRICS if m.kind == "faithfulness"]
    gt = [m.name for m in registry.METRICS if m.kind == "ground truth"]
    per_image = script.load_per_image(tmp_path / "per_image.npz")
    recs = {}
    for ds in ("mnist", "constant", "varying", "shapes"):
        recs[ds] = {r["method"]: r for r in results["records"] if r["dataset"] == ds}
        assert sorted(recs[ds]) == sorted(methods)
        for r in recs[ds].values():
            for key in (faith if ds == "mnist" else gt) + ["stability"]:
                assert math.isfinite(r[key]["mean"]) and math.isfinite(r[key]["ci95"]), (ds, r["method"], key)
                if key != "stability":  # every mean is the mean of the saved per-image values
                    assert np.isclose(per_image[ds][key][r["method"]].mean(), r[key]["mean"]), (ds, key)
            assert r["seconds_per_explanation"] > 0
        assert recs[ds]["occlusion"]["stability"]["mean"] == 1.0  # measured: a rerun gives the same map
    # occlusion ranks pixels by how much removing them (to 0) raises d, for any f: on the zero-fill deletion
    # of the margin it is better than a random ordering, even for an untrained network
    assert recs["mnist"]["occlusion"]["deletion_zero"]["mean"] < recs["mnist"]["random"]["deletion_zero"]["mean"]
    # f calls are counted, not declared: 12 x 12 patch positions and x itself; the probe counts its own
    assert recs["mnist"]["occlusion"]["f_calls_per_image"] == 145
    assert recs["mnist"]["kernelshap"]["f_calls_per_image"] > 1 and recs["mnist"]["probe"]["f_calls_per_image"] > 1
    assert 0 <= recs["mnist"]["probe"]["flip_rate"]["mean"] <= 1
    # verdicts: every judged method against every other on each faithfulness metric, one Holm family
    v = results["verdicts"]["faithfulness"]
    n_judged = len(registry.JUDGED)
    pairs = n_judged * (len(methods) - n_judged) + n_judged * (n_judged - 1) // 2
    assert v["family_size"] == 2 * pairs * len(faith) and v["n_comparisons"] == pairs * len(faith)
    assert set(v["beats"]["mnist"]) == set(registry.JUDGED)
    # ground-truth verdicts only on a set whose network is accurate enough (quick mode trains for one epoch)
    scored = report.scored_ground_truth(results)
    assert scored == [ds for ds in ("constant", "varying", "shapes")
                      if results["datasets"][ds]["test_accuracy"] >= report.MIN_GT_ACCURACY]
    assert results["verdicts"]["ground truth"]["family_size"] == 2 * pairs * len(gt) * ("shapes" in scored)
    assert (tmp_path / "RESULTS.md").read_text().startswith("# Benchmark")
    again = script.main(["--from-results", "--out", str(tmp_path), "--figures", str(tmp_path),
                         "--randomisation", str(tmp_path / "absent.json")])
    assert again["verdicts"]["faithfulness"]["family_size"] == v["family_size"]


def _per_image(a, b, c):
    """mnist per-image values of three methods (mc judged; intensity, occlusion not) on every faithfulness metric."""
    names = [m.name for m in registry.METRICS if m.kind == "faithfulness"]
    return {"mnist": {"mc": {n: np.asarray(a, float) for n in names},
                      "intensity": {n: np.asarray(b, float) for n in names},
                      "occlusion": {n: np.asarray(c, float) for n in names}}}


def _margins(delta=0.1):
    return {"faithfulness": {"mnist": {m.name: delta for m in registry.METRICS if m.kind == "faithfulness"}}}


def test_beats_needs_the_primary_and_no_worse_metric():
    n = 12
    # no two differences alike: mc - intensity = -(1 + 0.003 i), mc - occlusion = -(0.5 + 0.002 i)
    low, high = np.arange(n) * 0.01, np.arange(n) * 0.013 + 1.0
    same = np.arange(n) * 0.012 + 0.5
    per = _per_image(low, high, same)
    # mc is lower than intensity everywhere: better on every lower-is-better metric, worse on every higher one
    v = verdicts.all_verdicts({"faithfulness": per}, _margins())["faithfulness"]
    cell = v["beats"]["mnist"]["mc"]["intensity"]
    assert cell["primary"] == "better" and not cell["beats"]
    assert set(cell["worse_on"]) == {m.name for m in registry.METRICS if m.kind == "faithfulness" and m.higher_is_better}
    # make mc better on every metric's own side: it beats both
    for m in registry.METRICS:
        if m.kind == "faithfulness" and m.higher_is_better:
            per["mnist"]["mc"][m.name] = high * 1.5 + 1.0
    v = verdicts.all_verdicts({"faithfulness": per}, _margins())["faithfulness"]
    assert v["beats"]["mnist"]["mc"]["intensity"]["beats"] and v["beats"]["mnist"]["mc"]["occlusion"]["beats"]
    # 2 pairs x 14 metrics x 2 edges of the margin; every difference lies far beyond +0.1, Holm x 56 still < 0.05
    assert v["family_size"] == 56 and v["n_comparisons"] == 28
    assert all(r["p_upper_holm"] < 0.05 and r["verdict"] == "better" for r in v["comparisons"])
    # the same differences within a margin wider than all of them are equivalent, not better: no beats
    v = verdicts.all_verdicts({"faithfulness": per}, _margins(delta=3.0))["faithfulness"]
    assert {r["verdict"] for r in v["comparisons"]} == {"equivalent"}
    assert not v["beats"]["mnist"]["mc"]["intensity"]["beats"]


def test_too_few_images_show_no_difference():
    per = _per_image([0.0, 0.1, 0.2], [1.0, 1.3, 1.1], [1.0, 1.2, 1.05])
    v = verdicts.all_verdicts({"faithfulness": per}, _margins())["faithfulness"]
    # three differences: the raw p at the nearer edge is about 0.009 (t = 10.6, 2 df), x 56 by Holm: nothing shown,
    # and nothing shown is not read as "not worse"
    assert all(r["verdict"] == "not shown" for r in v["comparisons"])
    cell = v["beats"]["mnist"]["mc"]["intensity"]
    assert not cell["beats"] and cell["primary"] == "not shown"
    assert len(cell["not_shown_on"]) == 13 and not cell["worse_on"]


def test_per_image_values_round_trip(tmp_path):
    script = _load_script()
    per = {"mnist": {"road_morf": {"mc": np.arange(3.0)}}, "shapes": {"rank_accuracy": {"mc": np.ones(2)}}}
    script.save_per_image(tmp_path / "p.npz", per)
    back = script.load_per_image(tmp_path / "p.npz")
    np.testing.assert_array_equal(back["mnist"]["road_morf"]["mc"], np.arange(3.0))
    np.testing.assert_array_equal(back["shapes"]["rank_accuracy"]["mc"], np.ones(2))


def test_randomisation_file_is_read_only_for_the_evaluated_run(tmp_path):
    path = tmp_path / "randomisation.json"
    assert report.read_randomisation(path, "abc") is None
    files.write_json(path, {"run_id": "abc", "seconds": 5.0, "methods": {"mc": {"verdict": "changes"}}})
    assert report.read_randomisation(path, "abc")["methods"] == {"mc": {"verdict": "changes"}}
    assert report.read_randomisation(path, "another run") is None


def test_make_evaluate_minutes_target_counts_the_randomisation_check():
    results = {"mode": "full", "seconds": 1000.0, "records": [], "randomisation": {"seconds": 450.0}}
    assert report.targets(results)["make_evaluate_minutes"]["met"] is True  # 1450 s < 1500 s
    results["randomisation"]["seconds"] = 550.0
    assert report.targets(results)["make_evaluate_minutes"]["met"] is False
    results["randomisation"] = None
    assert report.targets(results)["make_evaluate_minutes"]["met"] is None


def test_ground_truth_is_judged_only_on_a_network_that_is_right_often_enough():
    evaluate = _load_script()
    rng = np.random.default_rng(0)
    gt = [m.name for m in registry.METRICS if m.kind == "ground truth"]
    good, poor = rng.uniform(0.5, 1.0, 30), rng.uniform(0.0, 0.5, 30)
    per_image = {"shapes": {metric: {"probe": good, "kernelshap": poor} for metric in gt}}

    def run(accuracy):
        mnist = [{"dataset": "mnist", "method": m, "f_calls_per_image": 10.0, "flip_rate": {"mean": 1.0}}
                 for m in ("probe", "kernelshap", "distance_explainer")]
        results = {"mode": "full", "records": mnist + [{"dataset": "shapes", "method": m,
                                                        **{k: {"mean": float(v.mean())} for k in gt}}
                                                       for m, v in (("probe", good), ("kernelshap", poor))],
                   "datasets": {"mnist": {"run_id": "r"}, "shapes": {"test_accuracy": accuracy}}}
        evaluate.finish(results, per_image, "absent.json")
        return results

    judged = run(report.MIN_GT_ACCURACY)
    assert judged["verdicts"]["ground truth"]["family_size"] == 2 * len(gt)
    assert judged["verdicts"]["ground truth"]["beats"]["shapes"]["probe"]["kernelshap"]["beats"]
    assert judged["targets"]["shapes_rank_accuracy"]["met"] is True
    near_chance = run(0.274)
    assert near_chance["verdicts"]["ground truth"]["family_size"] == 0
    assert near_chance["targets"]["shapes_rank_accuracy"]["met"] is None
    assert "27.4%" in near_chance["targets"]["shapes_rank_accuracy"]["measured"]


def test_sigmoid_slope_ratio_by_hand():
    from benchmarks.evaluation import ground_truth

    # y (1 - y) / 0.25: 1 at mid-grey; at 0.98, 0.0196 / 0.25 = 0.0784 (12.8 times flatter)
    np.testing.assert_allclose(ground_truth.sigmoid_slope_ratio([0.5, 0.98, 0.0]), [1.0, 0.0784, 0.0])


def test_registry_names_are_unique_and_every_script_reads_it():
    from pathlib import Path

    assert len({m.name for m in registry.METHODS}) == len(registry.METHODS)
    assert len({m.name for m in registry.METRICS}) == len(registry.METRICS)
    assert set(registry.PRIMARY) == {"faithfulness", "ground truth"}
    root = Path(__file__).resolve().parents[1] / "benchmarks" / "evaluation"
    for script in ("evaluate.py", "evaluate_report.py", "randomisation.py", "ground_truth.py"):
        assert "registry" in (root / script).read_text(), script


def test_registry_methods_run_under_every_mode_of_every_script():
    # A baseline's budgets come from the mode's settings (`ctx.settings`), and the benchmark and the randomisation
    # check each have their own MODES: a method reading a key that one script lacks would fail only minutes into
    # that script. Every registered method without a decoder runs here on one image under each mode of both, as
    # the randomisation check builds it (no explainer: `ctx.explainer` is None), with an untrained f.
    import keras

    from benchmarks.evaluation import evaluate, randomisation
    from siamese_xai.evaluation import metrics
    from siamese_xai.training.models import build_siamese_subnetwork

    keras.utils.set_random_seed(0)
    embed = build_siamese_subnetwork(8)
    xs = np.random.default_rng(0).random((3, 28, 28, 1)).astype(np.float32)
    scalar = metrics.DistanceScalar(embed, np.asarray(embed(xs), np.float32))
    names = [m.name for m in registry.METHODS if not m.decoder]
    modes = {**{f"evaluate {k}": v for k, v in evaluate.MODES.items()},
             **{f"randomisation {k}": v for k, v in randomisation.MODES.items()}}
    for mode, settings in modes.items():
        fns = registry.method_functions(None, scalar, settings, names=names)
        assert list(fns) == names, mode
        for name, fn in fns.items():
            try:
                maps, _ = registry.split(fn(xs[:1], np.array([1]), 0))
            except KeyError as err:
                pytest.fail(f"`{name}` reads the setting {err}, which the {mode} mode lacks")
            assert maps.shape == (1, 28, 28) and np.isfinite(maps).all(), (mode, name)


def _linear_scalar():
    from siamese_xai.evaluation import metrics

    w = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]], np.float32)  # 2x2 images, pixel p -> row p
    protos = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]], np.float32)
    return metrics.DistanceScalar(lambda x: np.asarray(x).reshape(len(x), 4) @ w, protos)


def test_margin_scalar_by_hand():
    """-m = d(x, c_k) - d(x, c_l), l the runner-up of the unperturbed image; the pair rides in one class code."""
    scalar = _linear_scalar()
    margin = registry.MarginScalar(scalar)
    x = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.5]], np.float32).reshape(2, 2, 2, 1)
    # h = (1, 0): d = 1, 0, 5 -> k = 1, l = 0;  h = (1, 1): d = 2, 1, 2 -> k = 1, l = 0 (tie 0/2: lower index)
    codes = margin.codes(x, np.array([1, 1]))
    np.testing.assert_array_equal(codes, [1 * 3 + 0, 1 * 3 + 0])
    value, nearest = margin(x, codes)
    np.testing.assert_allclose(value, [0.0 - 1.0, 1.0 - 2.0])
    np.testing.assert_array_equal(nearest, [1, 1])
    # asked for class 2 of the first image: l = the nearest other, class 1
    code = margin.codes(x[:1], np.array([2]))
    assert code.tolist() == [2 * 3 + 1]
    np.testing.assert_allclose(margin(x[:1], code)[0], [5.0 - 0.0])


def test_margin_baselines_explain_the_margin_and_count_their_f_calls():
    """Occlusion driven by m: the map is the drop of m when a pixel is set to 0 (patch 1); f calls counted."""
    from siamese_xai.evaluation import baselines as bl

    scalar = _linear_scalar()
    x = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.5]], np.float32).reshape(2, 2, 2, 1)
    fn = registry._by_margin(lambda ctx, sc, xs, c, s: bl.occlusion_maps(sc, xs, c, patch=1, stride=1))(
        registry.Context(None, scalar, {}))
    maps, extras = registry.split(fn(x, np.array([1, 1]), 0))
    # image 0: m = 1 (d0 - d1); zeroing pixel 0 gives h = 0: m = 0 - 1 = -1, a drop of 2; the others change nothing
    np.testing.assert_allclose(maps[0].ravel(), [2.0, 0.0, 0.0, 0.0], atol=1e-6)
    # image 1: m = 1; pixel 2 -> h = (0, 0.5): d0 = 0.25, d1 = 1.25, m = -1 (drop 2); pixel 3 nothing
    np.testing.assert_allclose(maps[1].ravel(), [0.0, 0.0, 2.0, 0.0], atol=1e-6)
    # per image: 1 (the runner-up) + 1 (x itself) + 4 occluded images
    np.testing.assert_array_equal(extras["n_calls"], [6.0, 6.0])


def test_this_projects_methods_are_read_through_the_result_protocol():
    # Every judged method is an explainer's `ranking` (the map its mask holds the top of), read the same way;
    # the per-image values a result carries (the probe's f calls, flips, set size) come with it.
    import types

    import keras

    from siamese_xai.config import ExplainConfig
    from siamese_xai.evaluation import metrics
    from siamese_xai.explainers.probe import ProbeExplainer
    from siamese_xai.explainers.siamese import SiameseExplainer
    from siamese_xai.training.models import build_decoder, build_siamese_subnetwork

    keras.utils.set_random_seed(0)
    embed, decoder = build_siamese_subnetwork(8), build_decoder(8)
    xs = np.random.default_rng(0).random((3, 28, 28, 1)).astype(np.float32)
    protos = np.random.default_rng(1).normal(size=(4, 8)).astype(np.float32)
    explainer = SiameseExplainer(embed, decoder, protos, ExplainConfig(n_perturbations=64))
    scalar = metrics.DistanceScalar(embed, protos)
    classes = scalar.classify(xs)
    own = [m.name for m in registry.METHODS if m.kind == registry.THIS_PROJECT]
    fns = registry.method_functions(explainer, scalar, {}, names=own)
    direct = {m: explainer.replace(estimator=m) for m in ("mc", "linear", "template_contrast")}
    direct["probe"] = ProbeExplainer(embed, decoder, protos)
    for name in own:
        maps, extras = registry.split(fns[name](xs, classes, 2))
        want = direct[name].explain(xs, target_class=classes.tolist(), seed=2)
        np.testing.assert_array_equal(maps, want.ranking[..., 0], err_msg=name)
        assert set(extras) == ({"n_calls", "flips", "set_size"} if name == "probe" else set()), name
        if name == "probe":  # its raw map and proposal are handed on, and its steps on them give its ranking
            arrays = registry.split_arrays(fns[name](xs, classes, 2))[2]
            np.testing.assert_array_equal(arrays["drop_map"], want.drop_map[..., 0])
            variant = registry.Variant("probe_again", "probe", "drop_map", registry.PROBE_PROCESSING, "")
            np.testing.assert_allclose(registry.variant_maps(variant, maps, arrays, arrays["proposal"], xs,
                                                             registry.probe_sigma(xs.shape[1:])), maps, rtol=1e-6)
    np.testing.assert_array_equal(registry.split(fns["mc"](xs, classes, 2))[0],
                                  direct["mc"].explain(xs, target_class=classes.tolist(), seed=2).mean_abs_change[..., 0])
    rgb = types.SimpleNamespace(explain=lambda x, target_class, seed: types.SimpleNamespace(
        ranking=np.zeros((3, 28, 28, 3), np.float32), fields=("ranking",)))
    with pytest.raises(ValueError, match=r"ranking must be one gray map per image.*Received: \(3, 28, 28, 3\)"):
        registry.explained_maps(rgb, xs, classes)


def test_results_md_is_the_rendering_of_the_committed_results_json():
    # RESULTS.md holds no word that results.json lacks: rendering the committed JSON gives the committed page
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "benchmarks" / "evaluation"
    results = files.read_json(root / "results.json")
    assert report.render_markdown(results) == (root / "RESULTS.md").read_text()


def test_post_processing_variants_apply_the_probes_own_steps_by_hand():
    from siamese_xai.explainers.regions import post_processed

    maps = np.array([[[1.0, -1.0], [0.5, 2.0]]], np.float32)  # (1, 2, 2)
    xs = np.array([[[0.9, 0.9], [0.1, 0.8]]], np.float32)[..., None]
    proposal = np.array([[[0.0, 0.0], [0.5, 0.0]]], np.float32)  # x > p everywhere but (1, 0)
    # gated: the positive pixels where x > p lifted by 1 + max |map| = 3; the rest unchanged
    gated = registry.post_process(maps, (registry.GATED,), xs, proposal, sigma=1.0)
    np.testing.assert_array_equal(gated, [[[4.0, -1.0], [0.5, 5.0]]])
    np.testing.assert_array_equal(registry.post_process(maps, (registry.SMOOTHED,), xs, proposal, sigma=0.0), maps)
    # the probe's exact steps are its own function's, on any map
    rng = np.random.default_rng(0)
    big, x, p = (v.astype(np.float32) for v in (rng.normal(size=(2, 9, 9)), rng.random((2, 9, 9, 1)), rng.random((2, 9, 9))))
    np.testing.assert_array_equal(registry.post_process(big, registry.PROBE_PROCESSING, x, p, 2.0),
                                  post_processed(x, p[..., None], big[..., None], 2.0)[..., 0])
    # every map method has the probe's steps as a variant; the probe's raw map has each step alone
    names = {v.name for v in registry.VARIANTS}
    assert {f"{m.name}+smoothed+gated" for m in registry.METHODS if m.name != "probe"} <= names
    assert {"probe_raw", "probe_raw+smoothed", "probe_raw+gated"} <= names and "probe_raw" in registry.JUDGED
    gate = registry.VARIANT_BY_NAME["occlusion+smoothed+gated"]
    with pytest.raises(ValueError, match="proposal=None"):
        registry.variant_maps(gate, big, {}, None, x, 2.0)
