"""benchmarks/evaluate.py end to end in quick mode, and the verdict rules of benchmarks/evaluate_report.py."""

import json
import math

import numpy as np
import pytest


from benchmarks import evaluate_report as report  # noqa: E402

from siamese_xai import files  # noqa: E402


def _load_script():
    from benchmarks import evaluate

    return evaluate


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
    script = _load_script()
    results = script.main(["--quick", "--run", str(untrained_run), "--out", str(tmp_path), "--figures", str(tmp_path),
                           "--randomisation", str(tmp_path / "absent.json")])
    assert json.loads((tmp_path / "results.json").read_text())["records"] == json.loads(json.dumps(results["records"]))
    assert results["mode"] == "quick"
    methods = [m for m, _, _ in script.METHODS]
    assert {"contrast", "intensity", "edge"} <= set(methods)
    recs = {}
    for ds in ("mnist", "constant", "varying"):
        recs[ds] = {r["method"]: r for r in results["records"] if r["dataset"] == ds}
        assert sorted(recs[ds]) == sorted(methods)
        for r in recs[ds].values():
            keys = [k for k, _ in script.CURVE_METRICS] + ["stability"]
            keys += ["gt_share", "pointing"] if ds != "mnist" else []
            for key in keys:
                assert math.isfinite(r[key]["mean"]) and math.isfinite(r[key]["ci95"]), (ds, r["method"], key)
            assert r["seconds_per_explanation"] > 0
            assert len(results["curves"][ds][r["method"]]["deletion_margin"]) == 29
        assert recs[ds]["occlusion"]["stability"]["mean"] == 1.0  # measured: a rerun gives the same map
        assert recs[ds]["random"]["stability"]["mean"] < 0.5
    # Rankings that hold at quick size and fail when two methods' maps are swapped:
    # occlusion ranks pixels by how much removing them raises d (for any f, trained or not)...
    for ds in ("mnist", "constant", "varying"):
        assert recs[ds]["occlusion"]["deletion_auc_normalised"]["mean"] > recs[ds]["random"]["deletion_auc_normalised"]["mean"], ds
    # ...and on the varying set the contrastive map finds the square far more often than chance.
    assert recs["varying"]["contrast"]["gt_share"]["mean"] > recs["varying"]["random"]["gt_share"]["mean"] + 0.1
    # ceilings: model-free maps score their own share; pixel maps 1; KernelSHAP's measured by the oracle
    for ds in ("constant", "varying"):
        for m in ("random", "intensity", "edge"):
            assert recs[ds][m]["ceiling"]["mean"] == recs[ds][m]["gt_share"]["mean"]
        assert recs[ds]["gradient"]["ceiling"]["mean"] == 1.0 and recs[ds]["contrast"]["ceiling"]["mean"] == 1.0
    assert recs["varying"]["kernelshap"]["ceiling"]["mean"] == 1.0  # grid-aligned squares
    assert 0.5 <= recs["constant"]["kernelshap"]["ceiling"]["mean"] <= 1.0  # columns 6 and 18 straddle the grid
    mech = results["datasets"]["constant"]["mechanism"]
    assert mech["decoder_output"] == "sigmoid" and 0 < mech["decoded_in_square"]["mean"] < 1
    assert math.isclose(mech["times_flatter"] * mech["sigmoid_slope_ratio"]["mean"], 1.0)
    ious = mech["mask_iou_vs_sigma_scale"]
    assert set(ious) == {"0.01", "0.1", "1.0"} and ious["0.1"]["mean"] == 1.0
    assert set(results["datasets"]["varying"]["contrast_ablations"]) >= {"contrast", "contrast_S_only", "contrast_unsigned"}
    # verdicts for every method but the orderings; no randomisation file, so none can have shown it reads the model
    assert set(results["verdicts"]["mnist"]) == set(methods) - {"intensity", "edge"}
    assert not any(row["reads_model"] for v in results["verdicts"].values() for row in v.values())
    assert {"contrast_mnist_margin_deletion", "contrast_varying_gt_share"} <= set(results["targets"])
    md = (tmp_path / "RESULTS.md").read_text()
    assert "quick mode" in md and "## mnist" in md and "## constant" in md and "## varying" in md
    assert "negative control" in md and "not measured" in md and "Reading the numbers" not in md
    assert (tmp_path / "deletion_curves.png").stat().st_size > 1000


def _rec(mean, ci=0.01):
    return {"mean": mean, "ci95": ci, "n": 100}


def _recs(method_d, method_margin):
    """Records of one method and the two orderings: deletion AUC of d (higher better) and of the margin (lower)."""
    return {
        "m": {"deletion_auc": _rec(method_d), "deletion_margin_auc": _rec(method_margin)},
        "intensity": {"deletion_auc": _rec(0.76), "deletion_margin_auc": _rec(0.05)},
        "edge": {"deletion_auc": _rec(0.60), "deletion_margin_auc": _rec(0.30)},
    }


def test_verdict_rules_by_hand():
    # better than both on d, no worse on the margin, changes: has shown it reads the model
    row = report.method_verdict(_recs(0.90, 0.05), "m", changes=True)
    assert row["vs_intensity"] == {"d": "better", "margin": "overlap"} and row["beats_intensity"] and row["beats_edge"]
    assert row["reads_model"] and row["verdict"] == "has shown that it reads the model"
    # the occlusion: better on d than the intensity ordering, worse on the margin: does not beat it
    row = report.method_verdict(_recs(0.90, 0.11), "m", changes=True)
    assert row["vs_intensity"] == {"d": "better", "margin": "worse"} and not row["beats_intensity"]
    assert not row["reads_model"] and "does not beat the intensity ordering" in row["verdict"]
    # beats both but the randomisation check was not run, or the map does not change
    assert "was not measured" in report.method_verdict(_recs(0.90, 0.01), "m", changes=None)["verdict"]
    row = report.method_verdict(_recs(0.90, 0.01), "m", changes=False)
    assert not row["reads_model"] and "does not change" in row["verdict"]


def test_straddling_columns():
    # columns 6-9 cross the 8 boundary and 18-21 the 20 boundary; 0, 12 and 24 start a 4-pixel cell
    assert report.square_columns() == ([0, 6, 12, 18, 24], [6, 18])
    assert report.square_columns(cell=8) == ([0, 6, 12, 18, 24], [6])  # 6-9 crosses 8; 18-21 lies in 16-23


def test_randomisation_file_is_read_only_for_the_evaluated_run(tmp_path):
    path = tmp_path / "randomisation.json"
    assert report.randomisation_changes(path, "abc") is None
    files.write_json(path, {"run_id": "abc", "methods": {"mc": {"changes": False, "iou": 0.9},
                                                         "contrast": {"changes": True}}})
    assert report.randomisation_changes(path, "abc") == {"mc": False, "contrast": True}
    assert report.randomisation_changes(path, "another run") is None


def test_targets_from_records():
    by = {"contrast": (0.02, 0.96), "intensity": (0.05, 0.06), "occlusion": (0.11, 0.74), "kernelshap": (0.3, 1.0),
          "random": (0.5, 0.02), "mc": (0.3, 0.1)}
    records = [{"dataset": "mnist", "method": m, "deletion_margin_auc": _rec(v[0])} for m, v in by.items()]
    records += [{"dataset": "varying", "method": m, "gt_share": _rec(v[1])} for m, v in by.items()]
    results = {"records": records, "verdicts": {"mnist": {"contrast": {"changes_under_randomisation": None}}}}
    t = report.targets(results)
    assert t["contrast_mnist_margin_deletion"]["met"]
    assert t["contrast_mnist_margin_deletion"]["verdicts"] == {"intensity": "better", "occlusion": "better"}
    assert t["contrast_mnist_changes_under_randomisation"]["met"] is None
    v = t["contrast_varying_gt_share"]
    assert v["met"] and v["best_baseline"] == "kernelshap" and v["vs_best_baseline"] == "worse"
    records[0]["deletion_margin_auc"] = _rec(0.055)  # within the intensity ordering's interval
    assert not report.targets(results)["contrast_mnist_margin_deletion"]["met"]
    assert np.isclose(v["threshold"], 0.8)


def test_sigmoid_slope_ratio_by_hand():
    import ground_truth

    # y (1 - y) / 0.25: 1 at mid-grey; at 0.98, 0.0196 / 0.25 = 0.0784 (12.8 times flatter)
    np.testing.assert_allclose(ground_truth.sigmoid_slope_ratio([0.5, 0.98, 0.0]), [1.0, 0.0784, 0.0])


def test_make_evaluate_time_counts_the_randomisation_check(tmp_path):
    # `make evaluate` runs the randomisation check and then evaluate.py: 1000 s + 150 s is under 20 minutes,
    # 1000 s + 250 s is not, and a check of another run leaves the total undecided
    path = tmp_path / "randomisation.json"
    results = {"mode": "full", "seconds": 1000.0, "records": [], "datasets": {"mnist": {"run_id": "abc"}}}
    for seconds, word in ((150.0, "**met**"), (250.0, "**missed**")):
        files.write_json(path, {"run_id": "abc", "seconds": seconds, "methods": {}})
        report.add_verdicts(results, path)
        line = next(x for x in report._targets_md(results) if "20 minutes" in x)
        assert f"1000 s + {seconds:.0f} s for the randomisation check = {1000 + seconds:.0f} s ({word})" in line
    files.write_json(path, {"run_id": "another run", "seconds": 10.0, "methods": {}})
    report.add_verdicts(results, path)
    line = next(x for x in report._targets_md(results) if "20 minutes" in x)
    assert "not known" in line and "met" not in line
