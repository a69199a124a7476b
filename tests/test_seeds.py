"""The band across training seeds (reproduce/bands.py) and `make seeds` (reproduce/seeds.py) on tiny configs."""

import json
import math

import numpy as np
import pytest

from reproduce import bands


def test_band_is_the_prediction_interval_by_hand():
    out = bands.band([1, 2, 3, 4, 5])
    # sd = sqrt(2.5); t_{0.975, 4} = 2.776445; half = 2.776445 * sqrt(2.5) * sqrt(1.2) = 2.776445 * sqrt(3)
    half = 2.7764451051977987 * math.sqrt(3.0)
    assert (out["n"], out["mean"], out["min"], out["max"]) == (5, 3.0, 1.0, 5.0)
    assert out["sd"] == pytest.approx(math.sqrt(2.5))
    assert out["band"] == pytest.approx([3.0 - half, 3.0 + half])
    assert bands.band([7.0]) == {"n": 1, "mean": 7.0, "min": 7.0, "max": 7.0, "sd": None, "band": None}
    with pytest.raises(ValueError, match="at least one seed"):
        bands.band([])


def test_inside_counts_the_edges_and_a_zero_width_band():
    s = bands.band([1, 2, 3, 4, 5])
    assert bands.inside(s["band"][1], s) and bands.inside(3.0, s)
    assert not bands.inside(s["band"][1] + 1e-6, s)
    flat = bands.band([41.29] * 5)  # a data-only quantity: equal on every seed
    assert bands.inside(41.29, flat) and not bands.inside(41.3, flat)
    assert bands.inside(1.0, bands.band([1.0])) is None


def _record(seeds_values):
    per_seed = {s: {"metrics.prototype_accuracy": v, "fig8.mask_on_ink": v / 10} for s, v in seeds_values.items()}
    return {"seeds_done": sorted(per_seed), "quantities": bands.summarise(per_seed)}


def test_summarise_keeps_values_by_seed_and_common_quantities_only():
    per_seed = {1: {"a": 1.0, "b": 2.0}, 2: {"a": 3.0}}
    out = bands.summarise(per_seed)
    assert list(out) == ["a"]
    assert out["a"]["values"] == {"1": 1.0, "2": 3.0} and out["a"]["mean"] == 2.0


def test_check_lines_needs_five_seeds_and_says_inside_or_outside():
    few = _record({1: 0.99, 2: 0.991})
    assert bands.check_lines({"metrics.prototype_accuracy": 0.99}, few) == [
        "seed band: not available (2 of the 5 seeds needed are in seeds.json)"
    ]
    record = _record({1: 0.990, 2: 0.991, 3: 0.992, 4: 0.989, 5: 0.990})
    lines = bands.check_lines({"metrics.prototype_accuracy": 0.9905, "fig8.mask_on_ink": 0.5}, record)
    assert len(lines) == 2
    assert lines[0].startswith("OUTSIDE fig8.mask_on_ink = 0.5;")
    assert lines[1].startswith("inside  metrics.prototype_accuracy = 0.9905;")


SIGNS = {"fig4_7": 1, "fig8": -1, "fig9": 1}


def _seeds_with(claim_values, seeds=(1, 2, 3, 4, 5)):
    """A seeds.json record whose quantities hold `claims.NAME.STAT` = value + seed / 1000 for every seed."""
    per_seed = {s: {f"claims.{name}.{stat}": v + s / 1000 for name, stats in claim_values.items()
                    for stat, v in stats.items()} for s in seeds}
    verdicts = {name: {"verdicts": {str(s): "not shown" for s in seeds}} for name in bands.CLAIM_NAMES}
    return {"seeds_done": list(seeds), "quantities": bands.summarise(per_seed), "claims": verdicts}


def test_claims_across_seeds_pool_the_contrasts_and_keep_each_seeds_verdict():
    contrasts = lambda v: {stat: v for stat in bands.CONTRASTS}
    record = _seeds_with({"fig4_7": {"effect": 0.3, **contrasts(0.2)}, "fig8": {"effect": 0.3, **contrasts(0.0)},
                          "fig9": {"effect": -0.1, **contrasts(-0.2)}})
    out = bands.claims_across_seeds(record, SIGNS)
    assert out["fig4_7"]["verdict"] == "holds" and out["fig9"]["verdict"] == "does not hold"
    assert out["fig8"]["verdict"] == "not shown"  # contrasts of mean 0.003: not significant after Holm
    assert out["fig8"]["uncontrolled_verdict"] == "does not hold" and out["fig4_7"]["verdicts"]["3"] == "not shown"
    pooled = out["fig4_7"]["pooled"]["minus_random"]
    assert pooled["mean"] == pytest.approx(0.203) and pooled["n"] == 5  # the seeds' values 0.201 .. 0.205
    half = 2.7764451051977987 * math.sqrt(2.5e-6) / math.sqrt(5)
    assert pooled["ci95"] == pytest.approx([0.203 - half, 0.203 + half])
    # one seed that disagrees no longer vetoes: four seeds at 0.2, one at -0.05, pooled mean 0.15
    skew = _seeds_with({n: {"effect": 0.3, **contrasts(0.2)} for n in bands.CLAIM_NAMES})
    for stat in bands.CONTRASTS:
        skew["quantities"][f"claims.fig4_7.{stat}"] = bands.summarise(
            {s: {"v": v} for s, v in zip(range(1, 6), [0.2, 0.21, 0.19, 0.2, 0.15])})["v"]
    assert bands.claims_across_seeds(skew, SIGNS)["fig4_7"]["verdict"] == "holds"


def test_claims_across_seeds_without_per_seed_controls_or_seeds_give_no_verdict():
    old = _seeds_with({name: {"effect": 0.2} for name in bands.CLAIM_NAMES})
    out = bands.claims_across_seeds(old, SIGNS)
    assert out["fig9"]["verdict"] == "not shown (seeds.json holds no per-seed control contrasts)"
    assert out["fig9"]["uncontrolled_verdict"] == "holds" and out["fig8"]["uncontrolled_verdict"] == "does not hold"
    assert list(out["fig9"]["pooled"]) == ["effect"]
    partial = _seeds_with({"fig4_7": {"effect": 0.2, **{stat: 0.2 for stat in bands.CONTRASTS}},
                           "fig8": {"effect": 0.2}, "fig9": {"effect": 0.2}})
    out = bands.claims_across_seeds(partial, SIGNS)  # the family is incomplete: no claim gets a controlled verdict
    assert out["fig4_7"]["verdict"] == "not shown (seeds.json holds no per-seed control contrasts)"
    assert out["fig4_7"]["pooled"]["minus_random"]["mean"] == pytest.approx(0.203)
    few = bands.claims_across_seeds(_seeds_with({name: {"effect": 0.2} for name in bands.CLAIM_NAMES}, (1, 2)), SIGNS)
    assert few["fig8"]["verdict"] == few["fig8"]["uncontrolled_verdict"] == "not shown (2 of 5 seeds)"
    assert bands.claims_across_seeds({}, SIGNS)["fig4_7"]["verdict"] == "not shown (0 of 5 seeds)"


def _figure(name, sse, ink):
    return {"figure": name, "recon_sse": sse, "nearest_prototypes": [{"class": 1, "distance": 0.1}], "sigma": 1e-4,
            "mask_on_ink": ink, "class_difference": {"share_in_top_abs": 0.2, "share_in_top_k_over_l": 0.3}}


def test_run_quantities_names_every_report_number():
    metrics = {"prototype_accuracy": 0.99, "recon_sse_decoder": 38.8, "seconds": {"snn": 80.0}}
    figures = [_figure(f"fig{i}", 10.0 * i, 0.1 * (i - 3)) for i in range(4, 10)]
    claims = {"claims": {n: {"effect": 0.5} for n in bands.CLAIM_NAMES}}
    out = bands.run_quantities(metrics, figures, {"iou_mean": {"50": 0.9, "500": 0.97, "5000": 0.98}}, claims)
    assert out["metrics.prototype_accuracy"] == 0.99 and "metrics.seconds" not in out  # wall times left out
    assert out["fig8.recon_sse"] == 80.0 and out["fig9.share_in_top_k_over_l"] == 0.3
    assert out["figs4_7.mask_on_ink"] == pytest.approx(np.mean([0.1, 0.2, 0.3, 0.4]))
    assert out["convergence.iou_500"] == 0.97 and out["claims.fig9.effect"] == 0.5
    assert len(out) == 2 + 6 * 6 + 1 + 3 + 3


def test_tables_show_no_band_from_too_few_seeds():
    text = "\n".join(bands.render_band_table({"metrics.prototype_accuracy": 0.99}, _record({1: 0.99})))
    assert "No band yet: seeds.json holds 1 of the 5" in text
    record = _record({1: 0.990, 2: 0.991, 3: 0.992, 4: 0.989, 5: 0.990})
    table = bands.render_band_table({"metrics.prototype_accuracy": 0.9905, "fig8.mask_on_ink": 0.5}, record)
    row = next(line for line in table if "fig8.mask_on_ink" in line)
    assert row.endswith("| **no** |")


class _Interrupted(Exception):
    pass


@pytest.mark.slow
def test_two_tiny_seeds_resume_after_an_interruption_and_summarise(tmp_path, monkeypatch):
    """Seed 1 finishes; seed 2 is interrupted inside its Siamese stage; the rerun skips 1 and resumes 2.

    The interruption is an exception raised after global step 25 (the tiny config
    checkpoints every 10 steps), in this process; a SIGKILL of a real training
    process is tested in tests/test_training.py.
    """
    import inspect

    from reproduce import seeds
    from siamese_xai.training import loop
    from siamese_xai.training import stages as training
    from siamese_xai.config import TrainConfig
    from siamese_xai.config import ExplainConfig

    work, out = tmp_path / "work", tmp_path / "out"
    kwargs = dict(explain_config=ExplainConfig.tiny(), subset_size=100, reference_n=256, verbose=0)
    seeds.run_seeds([1], work, out, TrainConfig.tiny(), **kwargs)
    first = (work / "seed-1" / seeds.QUANTITIES_FILE).read_bytes()

    real_fit, signature, steps = training.fit, inspect.signature(training.fit), []

    def fit_stopping_at(stop):
        def fit(*args, **kw):
            bound = signature.bind(*args, **kw)
            name = bound.arguments["stage"].name

            def on_step(global_step, values):
                steps.append((name, global_step))
                if (name, global_step) == stop:
                    raise _Interrupted

            bound.arguments["on_step"] = on_step
            return real_fit(*bound.args, **bound.kwargs)

        return fit

    monkeypatch.setattr(training, "fit", fit_stopping_at(("snn", 25)))
    with pytest.raises(_Interrupted):
        seeds.run_seeds([1, 2], work, out, TrainConfig.tiny(), **kwargs)
    assert not (work / "seed-2" / seeds.QUANTITIES_FILE).exists()
    assert json.loads((out / "seeds.json").read_text())["seeds_done"] == [1]  # seed 1 was skipped, not redone

    steps.clear()
    monkeypatch.setattr(training, "fit", fit_stopping_at(None))
    record = seeds.run_seeds([1, 2], work, out, TrainConfig.tiny(), **kwargs)
    assert (work / "seed-1" / seeds.QUANTITIES_FILE).read_bytes() == first
    snn_steps = [s for name, s in steps if name == "snn"]
    assert snn_steps[0] == 21  # from the checkpoint at step 20, not from the start
    assert [s["stage"] for s in loop.read_sessions(work / "seed-2")] == ["snn", "autoencoder", "decoder"]
    assert loop.read_sessions(work / "seed-2")[0]["restored_from"] == "ckpt-20"

    assert record == json.loads((out / "seeds.json").read_text())
    assert record["seeds_done"] == [1, 2]
    per_seed = {s: json.loads((work / f"seed-{s}" / seeds.QUANTITIES_FILE).read_text())["quantities"] for s in (1, 2)}
    assert set(record["quantities"]) == set(per_seed[1]) and len(per_seed[1]) >= 50
    for name, s in record["quantities"].items():
        v = np.array([per_seed[1][name], per_seed[2][name]])
        assert (s["mean"], s["min"], s["max"]) == pytest.approx((v.mean(), v.min(), v.max())), name
        assert s["sd"] == pytest.approx(v.std(ddof=1)), name
    # the seed reached the weights and the pair draws: the two trainings differ
    assert per_seed[1]["metrics.recon_sse_decoder"] != per_seed[2]["metrics.recon_sse_decoder"]
    assert per_seed[1]["metrics.alignment_sse"] != per_seed[2]["metrics.alignment_sse"]
    assert set(record["claims"]) == set(bands.CLAIM_NAMES)
    assert record["claims"]["fig8"]["verdict"] == "not shown (2 of 5 seeds)"  # never a verdict from two seeds


def _claim(verdict, effect, sign=1):
    t = lambda e: {"effect": e, "ci95": [e - 0.1, e + 0.1], "p": 0.001, "p_holm": 0.002, "n": 40}
    both = lambda e: {"pooled": t(e), "within_class": t(e) | {"ci95": None}}
    return {"statement": f"claim {verdict}", "measure": "m", "sign": sign, "n": 40, "verdict": verdict,
            "uncontrolled": t(effect) | {"verdict": "holds"}, "method": both(effect),
            "controls": {"intensity": both(0.1), "random": both(0.0)},
            "contrasts": {"intensity": both(effect - 0.1), "random": both(effect)},
            "per_class": {"1": {"n": 30, "method": effect, "intensity": 0.1, "random": 0.0},
                          "7": {"n": 10, "method": None, "intensity": 0.1, "random": 0.0}}}


def test_claims_table_has_one_verdict_row_per_claim_from_the_json():
    claims = {"claims": {"fig4_7": _claim("holds", 0.3), "fig8": _claim("does not hold", 0.2, -1),
                         "fig9": _claim("not shown", 0.0)},
              "per_image": {"correct_index": [0] * 40, "confused_index": [1] * 7}, "subset_size": 50}
    seeds = _seeds_with({name: {"effect": 0.2} for name in bands.CLAIM_NAMES})
    across = bands.across_seeds_record(claims, seeds)
    assert across["seeds_done"] == [1, 2, 3, 4, 5] and across["source"] == "figures/seeds.json"
    lines = bands.render_claims_table(claims, across)
    rows = [line for line in lines if line.startswith("| claim ") and not line.startswith("| claim |")]
    assert len(rows) == 3
    assert rows[0].startswith("| claim holds | m | **holds** | 0.300 [0.200, 0.400], n = 40, 0.002 | holds | 0.203 [")
    assert rows[1].endswith("| **not shown (seeds.json holds no per-seed control contrasts)** |")
    assert "does not hold | 1: not shown, 2: not shown" in rows[1]  # pooled uncontrolled verdict, each seed's
    text = "\n".join(lines)
    assert "40 correctly classified images of a fixed subset of 50 test images and all 7 misclassified" in text
    assert "| fig8 | within classes | 0.200 | 0.100 | 0.000 | 0.100, 0.002 | 0.200, 0.002 |" in text
    assert "| fig9 | method | 0.000 | — |" in text and "| fig4_7 | n | 30 | 10 |" in text
    few = bands.render_claims_table(claims, bands.across_seeds_record(claims, {"seeds_done": [1, 2]}))
    assert all(line.endswith("| **not shown (2 of 5 seeds)** |") for line in few
               if line.startswith("| claim ") and not line.startswith("| claim |"))


def _fake_seed_record(seed):
    return {"quantities": {"metrics.prototype_accuracy": 0.99 + seed / 1000, "fig8.mask_on_ink": 0.1 * seed,
                           **{f"claims.{name}.effect": 0.1 * seed for name in bands.CLAIM_NAMES}},
            "claims": {name: {"verdict": "holds", "uncontrolled": {"effect": 0.1 * seed}} for name in bands.CLAIM_NAMES},
            "figures": {"fig4": seed}, "explain_config": {"q": 100}}


def test_run_seeds_skips_finished_seeds_and_trains_the_others_with_their_seed(tmp_path, monkeypatch):
    """The bookkeeping of `make seeds` without training: finished seeds are read, the others trained with their seed."""
    from reproduce import seeds
    from siamese_xai import files
    from siamese_xai.training import stages as training
    from siamese_xai.config import TrainConfig

    work, out = tmp_path / "work", tmp_path / "out"
    files.write_json(work / "seed-1" / seeds.QUANTITIES_FILE, _fake_seed_record(1))
    trained = []
    monkeypatch.setattr(training, "train_run", lambda config, run_dir, **kw: trained.append((config.seed, str(run_dir))))
    monkeypatch.setattr(seeds, "seed_record", lambda run_dir, *a, **kw: _fake_seed_record(int(str(run_dir)[-1])))
    partial = seeds.run_seeds([1, 2, 3, 4, 5], work, out, TrainConfig.tiny(), verbose=0, collect_only=True)
    assert trained == [] and partial["seeds_done"] == [1] and partial["seeds_planned"] == [1, 2, 3, 4, 5]
    assert partial["claims"]["fig8"]["verdict"] == "not shown (1 of 5 seeds)"
    record = seeds.run_seeds([1, 2, 3, 4, 5], work, out, TrainConfig.tiny(), verbose=0)
    assert trained == [(s, str(work / f"seed-{s}")) for s in (2, 3, 4, 5)]  # seed 1 was finished
    assert record["seeds_done"] == [1, 2, 3, 4, 5] and record == files.read_json(out / "seeds.json")
    acc = record["quantities"]["metrics.prototype_accuracy"]
    assert acc["mean"] == pytest.approx(0.993) and (acc["min"], acc["max"]) == pytest.approx((0.991, 0.995))
    fig8 = record["claims"]["fig8"]
    assert fig8["verdicts"] == {str(s): "holds" for s in range(1, 6)}
    assert fig8["effects"] == {str(s): pytest.approx(0.1 * s) for s in range(1, 6)}
    # the fake seeds have no control contrasts: the pooled uncontrolled statistic (0.3, positive) gets its verdict
    assert fig8["verdict"] == "not shown (seeds.json holds no per-seed control contrasts)"
    assert fig8["uncontrolled_verdict"] == "does not hold" and fig8["pooled"]["effect"]["mean"] == pytest.approx(0.3)
    assert "seed" not in record["train_config"]  # the seed is what varies
    trained.clear()
    seeds.run_seeds([1, 2, 3, 4, 5], work, out, TrainConfig.tiny(), verbose=0)
    assert trained == []  # a rerun only collects
