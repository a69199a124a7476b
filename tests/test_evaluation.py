import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

from siamese_xai import evaluation as ev

P = 28 * 28


class LinearEmbed:
    """h = x @ W with W non-zero only on a known set S of pixels: d depends on S alone."""

    def __init__(self, support, dim=3, seed=0):
        rng = np.random.default_rng(seed)
        self.w = np.zeros((P, dim))
        self.w[support] = np.abs(rng.normal(1.0, 0.2, (len(support), dim)))
        self.calls = 0

    def __call__(self, x):
        self.calls += 1
        return (np.asarray(x, np.float64).reshape(len(x), -1) @ self.w).astype(np.float32)


@pytest.fixture
def toy():
    """Images, a linear embedding on a known support, and prototypes c_b = f(x_b): image b is class b."""
    rng = np.random.default_rng(1)
    xs = rng.uniform(0.2, 1.0, (4, 28, 28, 1)).astype(np.float32)
    support = rng.choice(P, 60, replace=False)
    f = LinearEmbed(support)
    h = f(xs)
    protos = np.concatenate([h, h.mean(0, keepdims=True) + 100.0])
    true_maps = np.zeros((4, P), np.float32)
    true_maps[:, support] = xs.reshape(4, -1)[:, support] * f.w[support].sum(1)
    return xs, f, protos, true_maps.reshape(4, 28, 28), support


def test_distance_scalar_matches_hand_computation(toy):
    xs, f, protos, _, _ = toy
    scalar = ev.DistanceScalar(f, protos)
    d, near = scalar(xs, np.zeros(4, int))
    h = f(xs).astype(np.float64)
    np.testing.assert_allclose(d, ((h - protos[0]) ** 2).sum(1), rtol=1e-6)
    np.testing.assert_array_equal(near, np.arange(4))
    np.testing.assert_array_equal(scalar.classify(xs), np.arange(4))
    with pytest.raises(ValueError, match="classes"):
        scalar(xs, np.zeros(3, int))


def test_deletion_auc_of_true_ordering_beats_random(toy):
    xs, f, protos, true_maps, _ = toy
    scalar = ev.DistanceScalar(f, protos)
    classes = np.arange(4)
    true = ev.deletion_insertion(scalar, xs, classes, true_maps)
    rand = ev.deletion_insertion(scalar, xs, classes, ev.random_maps(xs, classes, seed=0))
    assert true["fraction"][0] == 0 and true["fraction"][-1] == 1 and len(true["fraction"]) == 29
    # deleting the pixels d depends on drives d up at once; inserting them first brings it down at once
    assert np.all(true["deletion_auc"] > rand["deletion_auc"])
    assert np.all(true["insertion_auc"] < rand["insertion_auc"])
    # both curves end where the other starts: the blank image and x itself
    np.testing.assert_allclose(true["deletion_distance"][:, -1], true["insertion_distance"][:, 0], rtol=1e-6)
    np.testing.assert_allclose(true["deletion_distance"][:, 0], true["insertion_distance"][:, -1], rtol=1e-6)
    # every curve point is one image through f, in one call per curve
    calls = f.calls
    ev.deletion_insertion(scalar, xs, classes, true_maps, steps=7)
    assert f.calls - calls == 2


def test_occlusion_and_gradient_free_baselines_find_the_support(toy):
    xs, f, protos, _, support = toy
    scalar = ev.DistanceScalar(f, protos)
    classes = np.arange(4)
    occ = ev.occlusion_maps(scalar, xs, classes, patch=2, stride=1)
    inside = np.zeros(P, bool)
    inside[support] = True
    # pixels outside the support get only the rise of the patches that reach into it
    assert occ.shape == (4, 28, 28)
    assert np.all(occ.reshape(4, -1)[:, inside].mean(1) > occ.reshape(4, -1)[:, ~inside].mean(1))
    rise = ev.rise_distance_maps(scalar, xs, classes, seed=0, n_masks=400)
    assert rise.shape == (4, 28, 28) and np.isfinite(rise).all()


def test_ground_truth_scores_by_hand():
    regions = np.zeros((2, 28, 28), bool)
    regions[:, 0:4, 0:4] = True
    maps = np.zeros((2, 28, 28))
    maps[0, 0:4, 0:4] = 1.0  # exactly the region
    maps[1, 10:14, 10:14] = 1.0  # elsewhere
    maps[1, 0, 0] = 0.5  # in the region, but the 17th largest: just outside the top 16
    gt = ev.ground_truth_scores(maps, regions)
    np.testing.assert_allclose(gt["share"], [1.0, 0.0])
    np.testing.assert_allclose(gt["pointing"], [1.0, 0.0])
    with pytest.raises(ValueError, match="regions"):
        ev.ground_truth_scores(maps, regions[:, :10])


def test_stability_and_mean_ci():
    rng = np.random.default_rng(0)
    m = rng.random((3, 28, 28))
    assert np.allclose(ev.stability(np.stack([m, m, m]), q=50), 1.0)
    other = ev.stability(np.stack([m, rng.random((3, 28, 28))]), q=50)
    assert np.all(other < 0.3)
    with pytest.raises(ValueError, match="maps_per_seed"):
        ev.stability(m[None], q=50)
    s = ev.mean_ci([1.0, 2.0, 3.0])
    assert s["mean"] == 2.0 and s["n"] == 3
    assert math.isclose(s["ci95"], 1.96 * 1.0 / math.sqrt(3))


def test_make_synthetic_is_seeded_and_the_square_decides_the_class():
    digits = np.random.default_rng(0).random((20, 28, 28, 1)).astype(np.float32) * 0.5
    x, y, regions = ev.make_synthetic(digits, 50, seed=3)
    x2, y2, r2 = ev.make_synthetic(digits, 50, seed=3)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert x.shape == (50, 28, 28, 1) and regions.shape == (50, 28, 28)
    assert np.all(regions.reshape(50, -1).sum(1) == ev.SQUARE**2)
    assert np.all(x[..., 0][regions] == 1.0)
    for k in range(10):
        r, c = ev.SQUARE_POSITIONS[k]
        assert np.all(regions[y == k, r, c])
    assert sorted(np.bincount(y).tolist()) == [5] * 10
    with pytest.raises(ValueError, match="num_classes"):
        ev.make_synthetic(digits, 5, num_classes=11)


def _load_script():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "evaluate.py"
    spec = importlib.util.spec_from_file_location("evaluate_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def untrained_run(tmp_path):
    """A run folder with untrained Table 1 models and prototypes of 500 MNIST images (seconds, no training)."""
    import keras

    from siamese_xai import files, runs
    from siamese_xai.data import load_mnist
    from siamese_xai.models import build_decoder, build_siamese_subnetwork
    from siamese_xai.prototypes import compute_prototypes

    keras.utils.set_random_seed(0)
    x, y = load_mnist("train")
    snn, decoder = build_siamese_subnetwork(20), build_decoder(20)
    run_dir = tmp_path / "run"
    files.save_model(snn, run_dir / runs.SNN_FILE)
    files.save_model(decoder, run_dir / runs.DECODER_FILE)
    files.write_npy(run_dir / runs.PROTOTYPES_FILE, compute_prototypes(snn, x[:500], y[:500], num_classes=10))
    return run_dir


def test_quick_mode_end_to_end(untrained_run, tmp_path):
    run_dir = untrained_run
    script = _load_script()
    script.main(["--quick", "--run", str(run_dir), "--out", str(tmp_path), "--figures", str(tmp_path)])
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["mode"] == "quick"
    methods = [m for m, _, _ in script.METHODS]
    for ds in ("mnist", "synthetic"):
        recs = {r["method"]: r for r in results["records"] if r["dataset"] == ds}
        assert sorted(recs) == sorted(methods)
        for r in recs.values():
            keys = ["deletion_auc", "insertion_auc", "deletion_class_auc", "insertion_class_auc", "stability"]
            keys += ["gt_share", "pointing"] if ds == "synthetic" else []
            for key in keys:
                assert math.isfinite(r[key]["mean"]) and math.isfinite(r[key]["ci95"]), (ds, r["method"], key)
            assert r["seconds_per_explanation"] > 0
            assert len(results["curves"][ds][r["method"]]["deletion_distance"]) == 29
        assert recs["occlusion"]["stability"]["mean"] == 1.0
    md = (tmp_path / "RESULTS.md").read_text()
    assert "quick mode" in md and "## mnist" in md and "## synthetic" in md
    assert (tmp_path / "deletion_curves.png").stat().st_size > 1000
