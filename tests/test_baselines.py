"""The evaluation harness: benchmarks/baselines.py and benchmarks/evaluate.py."""

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import baselines as bl  # noqa: E402

from linear_toy import P, linear_toy  # noqa: E402

from siamese_xai import metrics  # noqa: E402



@pytest.fixture
def toy():
    return linear_toy()


def test_occlusion_and_gradient_free_baselines_find_the_support(toy):
    xs, f, protos, support = toy
    scalar = metrics.DistanceScalar(f, protos)
    classes = np.arange(4)
    occ = bl.occlusion_maps(scalar, xs, classes, patch=2, stride=1)
    inside = np.zeros(P, bool)
    inside[support] = True
    # pixels outside the support get only the rise of the patches that reach into it
    assert occ.shape == (4, 28, 28)
    assert np.all(occ.reshape(4, -1)[:, inside].mean(1) > occ.reshape(4, -1)[:, ~inside].mean(1))
    rise = bl.rise_distance_maps(scalar, xs, classes, seed=0, n_masks=400)
    assert rise.shape == (4, 28, 28) and np.isfinite(rise).all()
    # masks that keep the support keep x at its prototype: they are the selected low-d ones
    assert np.all(rise.reshape(4, -1)[:, inside].mean(1) > rise.reshape(4, -1)[:, ~inside].mean(1))


def test_make_synthetic_is_seeded_and_the_square_decides_the_class():
    digits = np.random.default_rng(0).random((20, 28, 28, 1)).astype(np.float32) * 0.5
    x, y, regions = bl.make_synthetic(digits, 50, seed=3)
    x2, y2, r2 = bl.make_synthetic(digits, 50, seed=3)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert x.shape == (50, 28, 28, 1) and regions.shape == (50, 28, 28)
    assert np.all(regions.reshape(50, -1).sum(1) == bl.SQUARE**2)
    assert np.all(x[..., 0][regions] == 1.0)
    for k in range(10):
        r, c = bl.SQUARE_POSITIONS[k]
        assert np.all(regions[y == k, r, c])
    assert sorted(np.bincount(y).tolist()) == [5] * 10
    with pytest.raises(ValueError, match="num_classes"):
        bl.make_synthetic(digits, 5, num_classes=11)


def _load_script():
    path = BENCHMARKS / "evaluate.py"
    spec = importlib.util.spec_from_file_location("evaluate_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def untrained_run(tmp_path):
    """A run folder with untrained Table 1 models and prototypes of 500 MNIST images (seconds, no training)."""
    import keras

    from siamese_xai import runs
    from siamese_xai.data import load_mnist
    from siamese_xai.models import build_decoder, build_siamese_subnetwork
    from siamese_xai.prototypes import compute_prototypes

    keras.utils.set_random_seed(0)
    x, y = load_mnist("train")
    snn, decoder = build_siamese_subnetwork(20), build_decoder(20)
    protos = compute_prototypes(snn, x[:500], y[:500], num_classes=10)
    runs.save_run(tmp_path / "run", snn, decoder, protos)
    return tmp_path / "run"


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
        assert recs["occlusion"]["stability"]["mean"] == 1.0  # measured: a rerun gives the same map
        assert recs["occlusion"]["stability"]["seeds"] == 2 and recs["random"]["stability"]["mean"] < 0.5
        # occlusion ranks pixels by how much removing them raises d (for any f, trained or not): deleting in
        # that order must raise d faster than deleting at random; reversing a ranking would fail this
        assert recs["occlusion"]["deletion_auc"]["mean"] > recs["random"]["deletion_auc"]["mean"], ds
    md = (tmp_path / "RESULTS.md").read_text()
    assert "quick mode" in md and "## mnist" in md and "## synthetic" in md
    assert (tmp_path / "deletion_curves.png").stat().st_size > 1000
