"""The decoder study (benchmarks/studies/decoder_study.py) and the larger decoder it trains (models.LARGE_DECODER)."""

import json

import keras
import numpy as np
import pytest


from benchmarks.studies import decoder_study as ds  # noqa: E402

from siamese_xai import files
from siamese_xai.training import models  # noqa: E402

TABLE1 = {"dense1": (40,), "dense2": (128,), "reshape": (4, 4, 8), "upsampling1": (8, 8, 8), "conv1": (7, 7, 8),
          "upsampling2": (14, 14, 8), "conv2": (14, 14, 16), "upsampling3": (28, 28, 16), "conv3": (28, 28, 1)}
LARGE = {"dense1": (160,), "dense2": (256,), "reshape": (4, 4, 16), "upsampling1": (8, 8, 16), "conv1": (7, 7, 16),
         "upsampling2": (14, 14, 16), "conv2": (14, 14, 32), "upsampling3": (28, 28, 32), "conv3": (28, 28, 1)}


def _shapes(model):
    return {layer.name: tuple(layer.output.shape[1:]) for layer in model.layers[1:]}


def test_default_decoder_is_still_table_1():
    dec = models.build_decoder(20)
    assert _shapes(dec) == TABLE1
    # by hand: 20*40+40, 40*128+128, 2*2*8*8+8, 3*3*8*16+16, 3*3*16*1+1
    assert dec.count_params() == 840 + 5248 + 264 + 1168 + 145


def test_explicit_table_1_options_give_the_same_weights():
    keras.utils.set_random_seed(3)
    a = models.build_decoder(10)
    keras.utils.set_random_seed(3)
    b = models.build_decoder(10, dense_units=40, channels=(8, 8, 16))
    assert [w.name for w in a.weights] == [w.name for w in b.weights]
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


@pytest.mark.parametrize("dim", [10, 20])
def test_large_decoder_builds_and_round_trips(tmp_path, dim):
    dec = models.build_decoder(dim, **models.LARGE_DECODER)
    assert _shapes(dec) == LARGE
    # by hand: dim*160+160, 160*256+256, 2*2*16*16+16, 3*3*16*32+32, 3*3*32*1+1
    assert dec.count_params() == dim * 160 + 160 + 41216 + 1040 + 4640 + 289
    files.save_model(dec, tmp_path / "large.keras")
    back = keras.models.load_model(tmp_path / "large.keras", compile=False)
    codes = np.random.default_rng(0).normal(size=(4, dim)).astype(np.float32)
    np.testing.assert_array_equal(back(codes).numpy(), dec(codes).numpy())
    assert _shapes(back) == LARGE


@pytest.mark.parametrize("kwargs, name", [
    ({"dense_units": 0}, "dense_units"), ({"dense_units": 4.0}, "dense_units"),
    ({"channels": (8, 8)}, "channels"), ({"channels": (8, 0, 16)}, "channels"), ({"channels": 8}, "channels"),
])
def test_bad_decoder_widths_are_named(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`.*Received: {name}="):
        models.build_decoder(20, **kwargs)


def test_per_image_sse_by_hand():
    x = np.zeros((2, 2, 2, 1), np.float32)
    r = x.copy()
    r[0, 0, 0, 0], r[0, 1, 1, 0], r[1, 0, 1, 0] = 0.5, -1.0, 2.0
    np.testing.assert_allclose(ds.per_image_sse(x, r), [0.25 + 1.0, 4.0])
    with pytest.raises(ValueError, match="`recon`"):
        ds.per_image_sse(x, r[:1])


@pytest.mark.parametrize("a, b, expected", [
    ((1.0, 0.1), (0.5, 0.1), "above"),     # 0.9 > 0.6
    ((0.5, 0.1), (1.0, 0.1), "below"),
    ((1.0, 0.3), (0.5, 0.3), "overlap"),   # 0.7 < 0.8
    ((1.0, 0.25), (0.5, 0.25), "overlap"),  # touching: 0.75 == 0.75
    ((0.0, 0.0), (0.0, 0.0), "overlap"),
])
def test_relation_of_two_intervals_by_hand(a, b, expected):
    assert ds.relation({"mean": a[0], "ci95": a[1]}, {"mean": b[0], "ci95": b[1]}) == expected


def test_nearest_two_by_hand():
    protos = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 2.0]], np.float32)
    h = np.array([[0.5, 0.0], [0.0, 1.5], [1.5, 0.0]], np.float32)  # the last one: c_0 and c_1 tie, lower index first
    k, l = ds.nearest_two(h, protos)
    assert k.tolist() == [0, 2, 0] and l.tolist() == [2, 0, 1]


@pytest.mark.slow
def test_quick_study_end_to_end_writes_every_configuration_and_resumes(tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    argv = ["--quick", "--work", str(work), "--out", str(out), "--paper-run", ""]
    result = ds.main(argv)
    saved = check_study(work, out, result)
    # a rerun reuses every trained model and evaluation
    stamps = {p: p.stat().st_mtime_ns for p in work.rglob("*") if p.suffix in (".keras", ".npy") or p.name == "eval.json"}
    # per data set: 2 x (f, prototypes) and 7 x (joint, decoder, eval); MNIST also evaluates the model-free orderings
    assert len(stamps) == 3 * (2 * 2 + 7 * 3) + 2
    again = ds.main(argv)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert again["configurations"] == saved["configurations"]


def check_study(work, out, result):
    """What a finished study must have written (also run by hand on a kept quick study)."""
    saved = json.loads((out / "decoder_study.json").read_text())
    names = [r["name"] for r in saved["configurations"]]
    assert names == [f"D{d}-beta{b:g}-table1" for d in (10, 20) for b in (1, 10, 100)] + ["D20-beta10-large"]
    for rec in saved["configurations"]:
        stats = [rec["mnist"]["recon_sse"], rec["mnist"]["template_sse"]] + [
            rec["mnist"][m][q] for m in ("mc", "contrast") for q in ("deletion_auc_d", "insertion_auc_d", "deletion_auc_margin")
        ] + [rec[s][m]["gt_share"] for s in ("square", "varying") for m in ("mc", "contrast")]
        assert all(np.isfinite([st["mean"], st["ci95"]]).all() and st["ci95"] >= 0 for st in stats)
        assert 0 <= rec["square"]["contrast"]["gt_share"]["mean"] <= 1
        assert rec["mnist"]["recon_sse"]["n"] == ds.MODES["quick"]["recon_test"]
        is_ref = (rec["beta"], rec["decoder"]) == (10, "table1")
        assert rec["vs_reference"]["reference"] == f"D{rec['embedding_dim']}-beta10-table1"
        if is_ref:
            assert set(rec["vs_reference"].values()) == {rec["name"], "overlap"}
    assert set(saved["mnist_model_free"]) == {"D10", "D20"}
    assert saved["training_seconds_by_stage"]["autoencoder"] > 0
    # the large configuration really trained the larger decoder, the others Table 1's
    large = keras.models.load_model(work / "mnist" / "D20-beta10-large" / "decoder.keras", compile=False)
    table1 = keras.models.load_model(work / "mnist" / "D20-beta10-table1" / "decoder.keras", compile=False)
    assert _shapes(large) == LARGE and _shapes(table1) == TABLE1
    # one table, one row per configuration, the large one marked, numbers from the JSON
    md = (out / "decoder_study.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| D")]
    assert len(rows) == 7 and [r.split(" | ")[0][2:] for r in rows][:6] == names[:6]
    assert "not the paper's" in rows[-1] and all("not the paper's" not in r for r in rows[:6])
    assert ds.render_markdown(saved) == md
    assert f"{saved['configurations'][0]['mnist']['recon_sse']['mean']:.1f} ± " in rows[0]
    assert (out / "decoder_study.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result["configurations"] == saved["configurations"]
    return saved


def test_a_unit_keeps_its_models_for_the_same_settings_and_drops_them_for_others(tmp_path):
    info = ds.open_unit(tmp_path, {"beta": 10})
    (tmp_path / "decoder.keras").write_text("a model")
    (tmp_path / "eval.json").write_text("{}")
    info["seconds"]["decoder"] = 1.5
    files.write_json(tmp_path / "info.json", info)
    again = ds.open_unit(tmp_path, {"beta": 10})
    assert (tmp_path / "decoder.keras").read_text() == "a model" and (tmp_path / "eval.json").exists()
    assert again["seconds"] == {"decoder": 1.5}
    other = ds.open_unit(tmp_path, {"beta": 100})
    assert not (tmp_path / "decoder.keras").exists() and not (tmp_path / "eval.json").exists()
    assert other == {"stamp": {"beta": 100}, "seconds": {}}
    assert files.read_json(tmp_path / "info.json") == other
    (tmp_path / "decoder.keras").write_text("a model")
    ds.open_unit(tmp_path, {"channels": (16, 32)})  # a tuple reads back from info.json as a list
    (tmp_path / "decoder.keras").write_text("a model")
    ds.open_unit(tmp_path, {"channels": (16, 32)})
    assert (tmp_path / "decoder.keras").exists()
