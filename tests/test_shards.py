import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from siamese_xai.data import mnist as data
from siamese_xai.scale import shards
from siamese_xai.config import ExplainConfig
from siamese_xai.explainers.siamese import SiameseExplainer


@pytest.fixture(scope="module")
def explainer(tiny_run):
    return SiameseExplainer.from_run(tiny_run[0], ExplainConfig.tiny())


def _assert_same(a, b, fields=shards.FIELDS):
    """Two results (`SplitResults`, or one shard file's arrays as dicts) hold `fields`, equal bit for bit."""
    a, b = (r.arrays() if isinstance(r, shards.SplitResults) else r for r in (a, b))
    assert sorted(a) == sorted(b) == sorted(fields)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def _refused_keys(message):
    """The manifest keys a refusal names: "(key: OLD there, NEW now; key: ...)"."""
    import re

    return set(re.findall(r"(?:\(|; )([a-z_0-9]+): ", message.split("other settings", 1)[1]))


def _other_image_shape_explainer(run_id):
    """An explainer of 14 x 14 images (a linear embedding and decoder), carrying `run_id`."""
    import keras

    proj = np.random.default_rng(0).normal(0, 0.1, (14 * 14, 8)).astype(np.float32)
    inputs = keras.Input((8,))
    decoder = keras.Model(inputs, keras.layers.Reshape((14, 14, 1))(keras.layers.Dense(14 * 14)(inputs)))
    return SiameseExplainer(lambda x: np.asarray(x, np.float32).reshape(len(x), -1) @ proj, decoder,
                            np.eye(3, 8, dtype=np.float32), ExplainConfig.tiny(), run_id=run_id)


def test_shards_hold_what_explain_gives(explainer, tmp_path):
    x, y = data.load_mnist("test")
    result = shards.explain_split(explainer, x[:40], tmp_path, labels=y[:40], shard_size=16, batch_size=8, seed=3, verbose=0)
    assert result["num_shards"] == 3 and result["shards_written"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", "shard-00000.npz", "shard-00001.npz", "shard-00002.npz"]
    got = shards.load_split_results(tmp_path)
    assert isinstance(got, shards.SplitResults) and len(got) == 40
    assert list(got.arrays()) == list(shards.FIELDS) and len(shards.FIELDS) == 11
    assert got.run_id == explainer.run_id and got.seed == 3 and got.class_names == explainer.class_names
    np.testing.assert_array_equal(got.index, np.arange(40))
    np.testing.assert_array_equal(got.label, y[:40])
    # every stored field is explain's on the same batches of 8: the same computation in this process, bit for bit
    batches = [explainer.explain(x[i : i + 8], seed=3) for i in range(0, 40, 8)]
    for name in shards.STORED:
        want = np.concatenate([getattr(e, name) for e in batches])
        assert getattr(got, name).dtype == want.dtype and getattr(got, name).shape == want.shape, name
        np.testing.assert_array_equal(getattr(got, name), want, err_msg=name)
    np.testing.assert_array_equal(got.contrast_class, -1)
    # one batch of 40: the same up to the embedding's float32 rounding (see SiameseExplainer.explain); equal bit for
    # bit on the AVX-512 machine these bounds were measured on, the bounds leave room for another ISA's rounding
    e = explainer.explain(x[:40], seed=3)
    for name in ("predicted_class", "explained_class", "indices"):
        np.testing.assert_array_equal(getattr(got, name), getattr(e, name), err_msg=name)
    # sigma = 0.1 * min_j |h_j - c_j| inherits h's absolute rounding, not a relative one (a small |h_j - c_j| has
    # few exact bits): h moves by up to 6e-7 ||h|| between batch sizes (contrast.ZERO_PATH_RTOL's measurement), so
    # sigma by up to 0.1 * 6e-7 ||h||; allowed 1e-7 ||h||. Seen with AVX2 kernels: 3e-9 (2.7e-4 of that sigma).
    np.testing.assert_allclose(got.sigma, e.sigma, rtol=0, atol=1e-7 * float(np.linalg.norm(e.embedding, axis=1).max()))
    np.testing.assert_allclose(got.distances, e.distances, rtol=1e-5)
    scale = float(np.abs(e.mean_abs_change).max())
    np.testing.assert_allclose(got.mean_abs_change, e.mean_abs_change, rtol=1e-3, atol=1e-5 * scale)
    np.testing.assert_allclose(got.mean_signed_change, e.mean_signed_change, rtol=1e-3, atol=1e-5 * scale)
    assert (got.mask == e.mask).mean() > 0.999


def test_a_resumed_run_keeps_finished_shards_and_redoes_the_rest(explainer, tmp_path):
    x, _ = data.load_mnist("test")
    shards.explain_split(explainer, x[:30], tmp_path / "ref", shard_size=10, verbose=0)
    reference = shards.load_split_results(tmp_path / "ref")
    out = tmp_path / "run"
    shards.explain_split(explainer, x[:30], out, shard_size=10, verbose=0)
    kept = (out / "shard-00000.npz").stat().st_mtime_ns
    (out / "shard-00001.npz").unlink()  # as if killed while computing shard 1
    (out / ".shard-00002.npz.k2x9q.tmp.npz").write_bytes(b"half")  # and a stray temporary file
    (out / "shard-00002.npz").unlink()
    result = shards.explain_split(explainer, x[:30], out, shard_size=10, verbose=0)
    assert (result["shards_kept"], result["shards_written"]) == (1, 2)
    assert (out / "shard-00000.npz").stat().st_mtime_ns == kept
    assert not (out / ".shard-00002.npz.k2x9q.tmp.npz").exists()
    # the manifest is as readable as the shards (others' workers read both)
    assert (out / "manifest.json").stat().st_mode & 0o777 == (out / "shard-00000.npz").stat().st_mode & 0o777
    _assert_same(shards.load_split_results(out), reference)
    # another seed (or s, q, N, method, shard size) into the same folder is refused
    with pytest.raises(ValueError, match="seed"):
        shards.explain_split(explainer, x[:30], out, shard_size=10, seed=1, verbose=0)


def test_stored_fields_are_the_explanations_less_the_image_and_its_decodings():
    from siamese_xai.explainers import explanation

    assert set(shards.NOT_STORED) <= set(explanation.FIELDS)  # a renamed field must be renamed here too
    assert shards.STORED == tuple(n for n in explanation.FIELDS if n not in shards.NOT_STORED + explanation.PATH_ONLY)
    assert shards.PATH_STORED == tuple(n for n in explanation.FIELDS
                                       if n not in shards.NOT_STORED + explanation.PERTURBATION_ONLY)
    assert shards.FIELDS == ("index", "label") + shards.STORED


def test_split_results_select_images_like_an_explanation(explainer, tmp_path):
    x, y = data.load_mnist("test")
    shards.explain_split(explainer, x[:6], tmp_path, labels=y[:6], shard_size=4, seed=1, verbose=0)
    got = shards.load_split_results(tmp_path)
    part = got[2:5]
    assert isinstance(part, shards.SplitResults) and len(part) == 3 and part.manifest == got.manifest
    np.testing.assert_array_equal(part.index, [2, 3, 4])
    np.testing.assert_array_equal(got[-1].mask, got.mask[5:])
    np.testing.assert_array_equal(got[got.label == y[0]].index, np.flatnonzero(y[:6] == y[0]))


def test_the_decoded_path_stores_its_own_fields(explainer, tmp_path):
    x, _ = data.load_mnist("test")
    contrast = explainer.replace(estimator="template_contrast")
    shards.explain_split(contrast, x[:6], tmp_path, shard_size=6, verbose=0)
    got = shards.load_split_results(tmp_path)
    e = contrast.explain(x[:6])
    assert got.sigma is None and got.indices is None
    assert got.fields == shards.PATH_FIELDS
    np.testing.assert_array_equal(got.moved_indices, e.moved_indices)
    np.testing.assert_allclose(got.path_length, e.path_length, rtol=1e-6)
    np.testing.assert_array_equal(got[1:3].moved_indices, e.moved_indices[1:3])
    assert json.loads((tmp_path / "manifest.json").read_text())["explain_config"] == contrast.config.to_dict()


def test_split_errors(explainer, tmp_path):
    x, _ = data.load_mnist("test")
    with pytest.raises(ValueError, match="shard_size=0"):
        shards.explain_split(explainer, x[:4], tmp_path / "a", shard_size=0, verbose=0)
    bad = np.array(x[:4])
    bad[2, 5, 5, 0] = np.nan
    with pytest.raises(ValueError, match="`images` must be finite"):
        shards.explain_split(explainer, bad, tmp_path / "b", verbose=0)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    with pytest.raises(FileNotFoundError, match="no manifest.json"):
        shards.load_split_results(tmp_path)


@pytest.mark.slow
def test_explain_split_killed_and_restarted_equals_an_uninterrupted_run(tiny_run, tmp_path, kill_when_exists):
    run_dir, _ = tiny_run
    out = tmp_path / "killed"
    limit, shard_size, n = 480, 40, 1000
    cmd = [sys.executable, "-m", "siamese_xai.cli", "explain-split", "--run", str(run_dir), "--split", "test",
           "--limit", str(limit), "--shard-size", str(shard_size), "--n", str(n), "--out", str(out), "--quiet"]
    env = kill_when_exists(cmd, out / "shard-00000.npz", poll=0.05)
    written = sorted(p.name for p in out.glob("shard-*.npz"))
    assert 1 <= len(written) < limit // shard_size, written  # killed mid-run

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"{len(written)} kept from an earlier run" in rerun.stdout
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"] + [shards.shard_name(i) for i in range(limit // shard_size)]

    x, y = data.load_mnist("test")
    explainer = SiameseExplainer.from_run(run_dir, ExplainConfig(n_perturbations=n))
    shards.explain_split(explainer, x[:limit], tmp_path / "whole", labels=y[:limit], shard_size=shard_size, verbose=0,
                         source={"dataset": "mnist", "split": "test", "limit": limit})
    assert json.loads((out / "manifest.json").read_text()) == json.loads((tmp_path / "whole" / "manifest.json").read_text())
    for i in range(limit // shard_size):
        _assert_same(dict(np.load(out / shards.shard_name(i))), dict(np.load(tmp_path / "whole" / shards.shard_name(i))))


def test_manifest_records_what_was_computed_and_refuses_any_difference(explainer, tmp_path):
    x, y = data.load_mnist("test")
    out = tmp_path / "out"
    source = {"dataset": "mnist", "split": "test"}
    shards.explain_split(explainer, x[:20], out, labels=y[:20], shard_size=10, batch_size=5, verbose=0, source=source)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["run_id"] == explainer.run_id and len(manifest["run_id"]) == 16
    assert manifest["source"] == source and manifest["batch_size"] == 5
    assert manifest["explain_config"]["n_perturbations"] == explainer.config.n_perturbations
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}

    other_run = SiameseExplainer(explainer.embed, explainer.decoder, explainer.prototypes + 0.01, explainer.config,
                                 run_id="0123456789abcdef")
    smaller = _other_image_shape_explainer(explainer.run_id)
    renamed = SiameseExplainer(explainer.embed, explainer.decoder, explainer.prototypes, explainer.config,
                               run_id=explainer.run_id, class_names=[f"digit {k}" for k in range(10)])
    one_pixel = np.array(x[:20])
    one_pixel[7, 14, 14, 0] = 1.0 - one_pixel[7, 14, 14, 0]
    one_label = np.array(y[:20])
    one_label[7] = (one_label[7] + 1) % 10
    base = dict(images=x[:20], labels=y[:20], shard_size=10, batch_size=5, source=source)
    # One rerun per manifest key, each with the keys it must be refused for (num_shards follows
    # from num_images and shard_size; explain_config is tried field by field below).
    attempts = [
        ({"run_id"}, other_run, {}),
        ({"source"}, explainer, dict(source={"dataset": "mnist", "split": "train"})),
        ({"images_sha256"}, explainer, dict(images=one_pixel)),
        ({"images_sha256"}, explainer, dict(labels=one_label)),  # the labels alone
        ({"images_sha256"}, explainer, dict(labels=None)),
        ({"images_sha256", "num_images"}, explainer, dict(images=x[:19], labels=y[:19])),
        ({"images_sha256", "num_images", "num_shards"}, explainer, dict(images=x[:21], labels=y[:21])),
        # the smaller explainer has 3 classes, so its class names differ too
        ({"images_sha256", "image_shape", "class_names"}, smaller, dict(images=x[:20, ::2, ::2])),
        ({"class_names"}, renamed, {}),
        ({"shard_size"}, explainer, dict(shard_size=11)),
        ({"shard_size", "num_shards"}, explainer, dict(shard_size=20)),
        ({"batch_size"}, explainer, dict(batch_size=4)),
        ({"seed"}, explainer, dict(seed=1)),
    ]
    other_values = {"n_perturbations": 64, "s": 4, "q": 7, "sigma_scale": 0.2, "direction": "positive",
                    "estimator": "linear"}
    assert set(other_values) <= set(manifest["explain_config"])
    for field, value in other_values.items():
        assert manifest["explain_config"][field] != value
        attempts.append(({"explain_config"}, explainer.replace(**{field: value}), {}))
    for keys, ex, changes in attempts:
        kw = dict(base, **changes)
        with pytest.raises(ValueError, match=r"holds results computed with other settings \(") as info:
            shards.explain_split(ex, kw.pop("images"), out, verbose=0, **kw)
        assert _refused_keys(str(info.value)) == keys, changes
        assert "\n" not in str(info.value)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before  # nothing touched
    # the stored field list is checked too (a folder written by a version that stored other fields)
    text = (out / "manifest.json").read_text()
    (out / "manifest.json").write_text(text.replace('"mask"', '"mask_old"'))
    with pytest.raises(ValueError, match="other settings") as info:
        shards.explain_split(explainer, x[:20], out, labels=y[:20], shard_size=10, batch_size=5, verbose=0, source=source)
    assert _refused_keys(str(info.value)) == {"fields"}
    (out / "manifest.json").write_text(text)
    # the same call again is accepted and keeps every shard
    again = shards.explain_split(explainer, x[:20], out, labels=y[:20], shard_size=10, batch_size=5, verbose=0, source=source)
    assert (again["shards_kept"], again["shards_written"]) == (2, 0)

    # force starts over: the new folder holds only the new run's results
    result = shards.explain_split(other_run, x[:20], out, labels=y[:20], shard_size=10, batch_size=5, verbose=0,
                                  source=source, force=True)
    assert result["shards_written"] == 2 and result["shards_kept"] == 0
    assert json.loads((out / "manifest.json").read_text())["run_id"] == "0123456789abcdef"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # the old folder is gone, nothing half-replaced


def test_progress_shows_images_rate_and_time_left_only_when_asked_or_on_a_terminal(explainer, tmp_path, capsys,
                                                                                    monkeypatch):
    monkeypatch.setattr("sys.stdout.isatty", lambda: False)
    assert shards.progress_bar(10, "auto") is None and shards.progress_bar(10, 0) is None
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    assert shards.progress_bar(10, "auto") is not None

    x, _ = data.load_mnist("test")
    capsys.readouterr()
    shards.explain_split(explainer, x[:12], tmp_path / "a", shard_size=6, batch_size=4, verbose=1)
    shown = capsys.readouterr().out
    assert "12/12" in shown and "image" in shown  # Keras's Progbar: images done, the rate per image
    shards.explain_split(explainer, x[:12], tmp_path / "b", shard_size=6, batch_size=4, verbose=0)
    assert capsys.readouterr().out == ""


def test_the_probe_stores_the_fields_its_result_class_keeps(tiny_run, tmp_path):
    from siamese_xai.explainers.probe import ProbeExplainer
    from siamese_xai.explainers.probe_explanation import ProbeExplanation

    probe = ProbeExplainer.from_run(tiny_run[0]).replace(max_regions=10)
    x, y = data.load_mnist("test")
    shards.explain_split(probe, x[:6], tmp_path, labels=y[:6], shard_size=4, batch_size=3, verbose=0)
    got = shards.load_split_results(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["explain_config"] == {"estimator": "probe", **dataclasses.asdict(probe.config)}
    assert shards.config_from_dict(manifest["explain_config"]) == probe.config
    kept = tuple(n for n in ProbeExplanation.FIELDS if n in ProbeExplanation.SHARD_FIELDS)
    assert got.fields == ("index", "label") + kept == tuple(manifest["fields"])
    assert got.estimator == "probe" and got.result_class is ProbeExplanation
    assert got.sigma is None and got.mean_signed_change is None  # the decoder estimators' fields
    batches = [probe.explain(x[a:b]) for a, b in ((0, 3), (3, 4), (4, 6))]  # shard 0's two batches, shard 1's one
    for name in kept:
        np.testing.assert_array_equal(getattr(got, name), np.concatenate([getattr(e, name) for e in batches]), name)
    np.testing.assert_array_equal(got[2:4].flips, got.flips[2:4])


@pytest.mark.slow
def test_explain_split_of_the_probe_killed_and_restarted_equals_an_uninterrupted_run(tiny_run, tmp_path,
                                                                                    kill_when_exists):
    from siamese_xai.config import ProbeConfig
    from siamese_xai.explainers.probe import ProbeExplainer

    run_dir, _ = tiny_run
    out = tmp_path / "killed"
    limit, shard_size = 200, 10
    cmd = [sys.executable, "-m", "siamese_xai.cli", "explain-split", "--run", str(run_dir), "--split", "test",
           "--limit", str(limit), "--shard-size", str(shard_size), "--estimator", "probe", "--max-regions", "10",
           "--out", str(out), "--quiet"]
    env = kill_when_exists(cmd, out / "shard-00000.npz", poll=0.05)
    written = sorted(p.name for p in out.glob("shard-*.npz"))
    assert 1 <= len(written) < limit // shard_size, written  # killed mid-run

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"{len(written)} kept from an earlier run" in rerun.stdout
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"] + [shards.shard_name(i) for i in range(limit // shard_size)]

    x, y = data.load_mnist("test")
    probe = ProbeExplainer.from_run(run_dir, ProbeConfig(max_regions=10))
    shards.explain_split(probe, x[:limit], tmp_path / "whole", labels=y[:limit], shard_size=shard_size, verbose=0,
                         source={"dataset": "mnist", "split": "test", "limit": limit})
    assert json.loads((out / "manifest.json").read_text()) == json.loads((tmp_path / "whole" / "manifest.json").read_text())
    for i in range(limit // shard_size):
        a, b = dict(np.load(out / shards.shard_name(i))), dict(np.load(tmp_path / "whole" / shards.shard_name(i)))
        assert sorted(a) == sorted(b) and "flips" in a and "set_size" in a
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=f"{i}:{k}")


def _pair_list(tmp_path, rows, header=True):
    """MNIST test digits 0..5 as PNG files beside `pairs.csv`, whose rows are `rows` (cells as written)."""
    from PIL import Image

    x, _ = data.load_mnist("test")
    for i in range(6):
        Image.fromarray(np.round(x[i, ..., 0] * 255).astype(np.uint8)).save(tmp_path / f"d{i}.png")
    lines = (["first,second"] if header else []) + [",".join(r) for r in rows]
    (tmp_path / "pairs.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "pairs.csv", x[:6]


def test_a_list_of_pairs_is_explained_in_resumable_shards_through_the_command_line(tiny_run, tmp_path, capsys):
    """explain-split --pairs CSV: each row asked Pair(second) about its first image, in shards, resumed like a split."""
    from siamese_xai import cli
    from siamese_xai.config import ProbeConfig
    from siamese_xai.explainers.probe import ProbeExplainer
    from siamese_xai.explainers.questions import Pair, Verify

    csv, x = _pair_list(tmp_path, [("d0.png", "d1.png"), ("d2.png", str(tmp_path / "d3.png")), ("d4.png", "d5.png")])
    out = tmp_path / "out"
    argv = ["explain-split", "--run", str(tiny_run[0]), "--pairs", str(csv), "--out", str(out), "--shard-size", "2",
            "--batch-size", "2", "--n", "16", "--q", "10", "--s", "3", "--quiet"]
    assert cli.main(argv) == 0
    assert "3 pairs in 2 shards" in capsys.readouterr().out
    results = shards.load_split_results(out)
    assert results.manifest["question"] == "pair" and results.manifest["source"]["pairs"] == str(csv)
    config = ExplainConfig(n_perturbations=16, q=10, s=3)
    explainer = SiameseExplainer.from_run(tiny_run[0], config)
    local = shards.explain_split(explainer, np.stack([x[0::2], x[1::2]], axis=1), tmp_path / "lib", shard_size=2,
                                 batch_size=2, verbose=0, pairs=True, source=results.manifest["source"])
    assert local["images_sha256"] == results.manifest["images_sha256"]
    pair_fields = shards.folder_fields(config, pairs=True)
    _assert_same(results, shards.load_split_results(tmp_path / "lib"), pair_fields)
    # the first shard's batch, rows 1 and 2: each first image toward its second, each second toward its first
    first, second = x[0:4:2], x[1:4:2]
    e = explainer.explain(np.concatenate([first, second]), Pair(np.concatenate([second, first])))
    np.testing.assert_array_equal(results.mask[:2, 0], e.mask[:2])
    np.testing.assert_array_equal(results.mask[:2, 1], e.mask[2:])
    assert results.mask.shape == (3, 2, 28, 28, 1) and results.explained_class.tolist() == [[-1, -1]] * 3
    h = explainer.embed(x, training=False).numpy().astype(np.float64)
    np.testing.assert_allclose(results.pair_distance, np.linalg.norm(h[0::2] - h[1::2], axis=1), rtol=1e-6)
    assert results.manifest["question"] == "pair" and results.manifest["threshold"] is None
    # the probe over pairs loads no training images (a pair question paints the other image), unless asked to
    for given, held in (([], 0), (["--examples-per-class", "2"], 2)):
        probe_out = tmp_path / f"probe{held}"
        assert cli.main(["explain-split", "--run", str(tiny_run[0]), "--pairs", str(csv), "--out", str(probe_out),
                         "--estimator", "probe", "--max-regions", "4", "--limit", "1", "--quiet", *given]) == 0
        assert shards.load_split_results(probe_out).manifest["explain_config"]["examples_per_class"] == held
    # with a threshold: the probe is asked Verify (its found sets flip the verdict); mc, which answers no Verify,
    # Pair, and the folder records the threshold of the verdict either way
    tau = float(np.sort(results.pair_distance)[:2].mean())  # between two pairs: f's batches move d by ~1e-7
    for estimator, asked, flags in (("probe", "verify", ["--max-regions", "4"]), ("mc", "pair", ["--n", "16"])):
        folder = tmp_path / f"verify-{estimator}"
        assert cli.main(["explain-split", "--run", str(tiny_run[0]), "--pairs", str(csv), "--out", str(folder),
                         "--estimator", estimator, *flags, "--threshold", str(tau), "--quiet"]) == 0
        verified = shards.load_split_results(folder)
        assert (verified.manifest["question"], verified.manifest["threshold"]) == (asked, tau)
        np.testing.assert_allclose(verified.pair_distance, results.pair_distance, rtol=1e-6)
    probe = ProbeExplainer.from_run(tiny_run[0], ProbeConfig(max_regions=4))
    e = probe.explain(np.concatenate([x[0::2], x[1::2]]), Verify(np.concatenate([x[1::2], x[0::2]]), tau))
    np.testing.assert_array_equal(shards.load_split_results(tmp_path / "verify-probe").flips, e.flips.reshape(2, 3).T)
    with pytest.raises(SystemExit):
        cli.main(["explain-split", "--run", str(tiny_run[0]), "--pairs", str(csv), "--out", str(tmp_path / "x"),
                  "--threshold", "0"])
    assert "--threshold" in capsys.readouterr().err
    assert cli.main(["explain-split", "--run", str(tiny_run[0]), "--out", str(tmp_path / "x"), "--threshold", "1",
                     "--limit", "2"]) == 2
    assert "--threshold is the verdict of a list of pairs: it needs --pairs" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    # killed after the first shard: run again, it keeps it and writes the other
    (out / "shard-00001.npz").unlink()
    assert cli.main(argv) == 0
    assert "(1 kept from an earlier run, 1 written)" in capsys.readouterr().out
    _assert_same(results, shards.load_split_results(out), pair_fields)
    # its page (tests/test_report.py): every pair's distance, no verdict without a threshold, no found set to paint
    assert cli.main(["report", str(out)]) == 0
    text = (out / "report.html").read_text()
    assert "Explanations of 3 pairs" in text and "no same / different verdict" in text
    data = json.loads(text.split('<script type="application/json" id="data">', 1)[1].split("</script>")[0])
    d = [round(float(v), 5) for v in results.pair_distance]
    assert [item[:3] + item[4:5] for item in data["items"]] == [[0, "d0.png", "d1.png", d[0]],
                                                                [1, "d2.png", "d3.png", d[1]],  # inside the list's folder
                                                                [2, "d4.png", "d5.png", d[2]]]
    assert all(item[7] == [None, None] for item in data["items"])
    assert data["tile"] == [3 * 28 + 2, 2 * 28 + 1]  # per image: itself | its mask | its signed change; two rows
    # with a threshold, each pair's verdict
    assert cli.main(["report", str(tmp_path / "verify-mc")]) == 0
    text = (tmp_path / "verify-mc" / "report.html").read_text()
    data = json.loads(text.split('<script type="application/json" id="data">', 1)[1].split("</script>")[0])
    assert [item[5].split(":")[0] for item in data["items"]] == ["same" if v <= tau else "different"
                                                                 for v in results.pair_distance]
    assert sorted(item[5].split(":")[0] for item in data["items"]) == ["different", "different", "same"]


@pytest.mark.parametrize("rows, header, match", [
    ([("d0.png", "d1.png"), ("d2.png", "d3.png", "d4.png")], True, r"row 3: expected 2 image paths, received 3 cells"),
    ([("d0.png", "d1.png"), ("d2.png", "gone.png")], False, r"row 2: Image file '.*gone.png' does not exist"),
    ([("d0.png",)], False, r"row 1: expected 2 image paths, received 1 cells"),
])
def test_a_bad_pair_list_is_refused_naming_its_row(tiny_run, tmp_path, capsys, rows, header, match):
    import re

    from siamese_xai import cli

    csv, _ = _pair_list(tmp_path, rows, header)
    out = tmp_path / "out"
    assert cli.main(["explain-split", "--run", str(tiny_run[0]), "--pairs", str(csv), "--out", str(out),
                     "--n", "16", "--q", "10", "--s", "3", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(match, err) and str(csv) in err
    assert not list(out.iterdir())  # nothing written
    assert cli.main(["explain-split", "--run", str(tiny_run[0]), "--pairs", str(csv), "--out", str(out),
                     "--data-dir", str(tmp_path)]) == 2
    assert "--data-dir name a data set; --pairs lists the images itself" in capsys.readouterr().err
