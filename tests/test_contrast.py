"""The contrast of decoded class templates (`TemplateContrastConfig`): why class k rather than class l.

With a linear decoder g(z) = z W + b every quantity is known by hand: along
the path h + t (c_l - h) the change is t (c_l - h) W, so the midpoint rule's
mean signed change is exactly (1/2) (c_l - h) W.
"""

import json
import warnings

import keras
import numpy as np
import pytest

from siamese_xai import cli, runs
from siamese_xai.explainers.contrast import path_points
from siamese_xai.config import TemplateContrastConfig, explain_config_from_dict
from siamese_xai.config import ExplainConfig
from siamese_xai.explainers.siamese import SiameseExplainer
from siamese_xai.explainers.explanation import FIELDS, Explanation
from siamese_xai.training.models import build_decoder, build_siamese_subnetwork

D = 8
SHAPE = (28, 28, 1)
P = 28 * 28
N = 96


class Embed:
    """A NumPy black box h = x @ R (float64, then rounded: batch-independent)."""

    def __init__(self, seed=0):
        self.proj = np.random.default_rng(seed).normal(0, 0.2, (P, D))

    def __call__(self, x):
        return (np.asarray(x, np.float64).reshape(len(x), -1) @ self.proj).astype(np.float32)


def linear_decoder(kernel):
    inputs = keras.Input((D,))
    y = keras.layers.Dense(P, name="dense")(inputs)
    model = keras.Model(inputs, keras.layers.Reshape(SHAPE)(y))
    model.get_layer("dense").set_weights([kernel.astype(np.float32), np.full(P, 0.5, np.float32)])
    return model


def images(n, seed=0):
    return np.random.default_rng(seed).random((n,) + SHAPE).astype(np.float32)


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(5)
    kernel = rng.normal(0, 1, (D, P))
    emb = Embed()
    protos = rng.normal(0, 1, (4, D)).astype(np.float32)
    cfg = TemplateContrastConfig(n_path_points=N, s=3, q=40)
    return emb, kernel, protos, SiameseExplainer(emb, linear_decoder(kernel), protos, cfg, chunk_size=64)


@pytest.fixture(scope="module")
def table1():
    """A nonlinear (Table 1) decoder with visible changes, and its contrast explainer."""
    keras.utils.set_random_seed(3)
    dec = build_decoder(D)
    for w in dec.weights:
        w.assign(w * 2.0)
    emb = Embed()
    h = emb(images(30, seed=1))
    protos = np.stack([h[i::3].mean(0) for i in range(3)]).astype(np.float32) * 3.0
    return emb, dec, protos, SiameseExplainer(emb, dec, protos, TemplateContrastConfig(n_path_points=N, s=3, q=50))


def hand(emb, kernel, protos, x, k=None, l=None, c_l=None, q=40, s=3):
    """What the contrast explanation must be, computed by hand for the linear decoder."""
    h = emb(x[None])[0].astype(np.float64)
    dists = np.linalg.norm(protos - h, axis=1)
    k = int(np.argmin(dists)) if k is None else k
    if c_l is None:
        if l is None:
            order = [j for j in np.argsort(dists, kind="stable") if j != k]
            l = int(order[0])
        c_l = protos[l]
    delta = c_l - h
    change = 0.5 * delta @ kernel  # mean over t_i = (i - 1/2)/N of t_i (c_l - h) W
    evidence = np.maximum(-change, 0) * x.reshape(-1)
    top = np.argsort(-evidence, kind="stable")[:q]
    return dict(k=k, l=l, c=c_l, delta=delta, signed=change, abs=np.abs(change), mask=set(top[evidence[top] > 0]),
                J=np.argsort(-np.abs(delta), kind="stable")[:s], h=h)


def test_path_points_are_the_midpoint_rule():
    t = path_points(4).numpy()
    np.testing.assert_allclose(t, [0.125, 0.375, 0.625, 0.875])
    assert path_points(N).numpy().mean() == pytest.approx(0.5, abs=1e-7)


def test_runner_up_linear_decoder_matches_hand_computation(setup):
    emb, kernel, protos, ex = setup
    x = images(1, seed=4)[0]
    e = ex.explain(x)
    want = hand(emb, kernel, protos, x)
    assert e.explained_class[0] == e.predicted_class[0] == want["k"]
    assert e.contrast_class[0] == want["l"] != want["k"]
    np.testing.assert_allclose(e.reference[0], want["c"], rtol=1e-6)
    assert e.reference_distance[0] == pytest.approx(np.linalg.norm(want["delta"]), rel=1e-5)
    assert e.path_length[0] == pytest.approx(np.linalg.norm(want["delta"]), rel=1e-5)
    np.testing.assert_array_equal(e.moved_indices[0], want["J"])
    assert e.sigma is None and e.indices is None  # the perturbation estimators' fields do not apply
    np.testing.assert_allclose(e.reconstruction[0].reshape(-1), want["h"] @ kernel + 0.5, rtol=1e-4, atol=1e-4)
    scale = np.abs(want["signed"]).max()
    np.testing.assert_allclose(e.mean_signed_change[0].reshape(-1), want["signed"], atol=1e-4 * scale)
    np.testing.assert_allclose(e.mean_abs_change[0].reshape(-1), want["abs"], atol=1e-4 * scale)
    assert set(np.flatnonzero(e.mask[0].reshape(-1))) == want["mask"]
    assert len(want["mask"]) == 40


def test_contrast_class_and_target_class(setup):
    emb, kernel, protos, ex = setup
    x = images(1, seed=4)[0]
    own = hand(emb, kernel, protos, x)["k"]
    for l in [j for j in range(4) if j != own]:
        e = ex.explain(x, contrast_class=l)
        want = hand(emb, kernel, protos, x, l=l)
        assert e.contrast_class[0] == l and e.explained_class[0] == own
        np.testing.assert_allclose(e.mean_signed_change[0].reshape(-1), want["signed"],
                                   atol=1e-4 * np.abs(want["signed"]).max())
    # "why class 0 rather than class 3?" whatever the SNN says; the runner-up excludes the explained class.
    k = (own + 1) % 4
    e = ex.explain(x, target_class=k)
    want = hand(emb, kernel, protos, x, k=k)
    assert e.explained_class[0] == k and e.contrast_class[0] == want["l"] != k
    assert set(np.flatnonzero(e.mask[0].reshape(-1))) == want["mask"]


def test_reference_image_is_the_contrast(setup):
    emb, kernel, protos, ex = setup
    x, other = images(2, seed=12)
    e = ex.explain(x, reference=other)
    want = hand(emb, kernel, protos, x, c_l=emb(other[None])[0].astype(np.float64))
    assert e.contrast_class[0] == -1 and e.explained_class[0] == want["k"]
    np.testing.assert_allclose(e.mean_signed_change[0].reshape(-1), want["signed"],
                               atol=1e-4 * np.abs(want["signed"]).max())
    assert set(np.flatnonzero(e.mask[0].reshape(-1))) == want["mask"]


def test_mask_is_evidence_x_has_darkening_pixels_only(table1):
    _, _, _, ex = table1
    xs = images(4, seed=2)
    xs[:, :14] = 0.0  # x has no ink in the top half: no pixel there can be evidence that x has
    e = ex.explain(xs)
    assert e.mask.any()
    assert not e.mask[:, :14].any()
    assert (e.mean_signed_change[e.mask] < 0).all()
    assert (e.mask.sum(axis=(1, 2, 3)) <= 50).all()


def test_batch_chunking_and_seed_do_not_matter(table1):
    emb, dec, protos, ex = table1
    xs = images(5, seed=2)
    batch = ex.explain(xs, seed=0)
    other = SiameseExplainer(emb, dec, protos, ex.config, chunk_size=7).explain(xs, seed=3)
    tiled = SiameseExplainer(emb, dec, protos, ex.config, chunk_size=500).explain(xs, seed=0)
    for b in range(5):
        one = ex.explain(xs[b], seed=0)
        for e in (one, other[b], tiled[b]):
            scale = float(np.abs(one.mean_abs_change).max())
            np.testing.assert_allclose(e.mean_signed_change, batch[b].mean_signed_change, atol=1e-5 * scale)
            np.testing.assert_allclose(e.mean_abs_change, batch[b].mean_abs_change, atol=1e-5 * scale)
            np.testing.assert_array_equal(e.mask, batch[b].mask)
            np.testing.assert_array_equal(e.contrast_class, batch[b].contrast_class)


def test_nonlinear_decoder_path_mean_converges(table1):
    emb, dec, protos, ex = table1
    x = images(1, seed=9)[0]
    coarse = ex.explain(x).mean_signed_change[0]
    fine = ex.replace(n_perturbations=2048).explain(x).mean_signed_change[0]
    # The endpoint change g(c_l) - g(h) is not the path mean, for a nonlinear g: the test can see the difference.
    e = ex.explain(x)
    endpoint = (dec(e.reference).numpy() - dec(e.embedding).numpy())[0]
    scale = np.abs(fine).max()
    assert np.abs(coarse - fine).max() < 1e-3 * scale
    assert np.abs(endpoint - fine).max() > 0.05 * scale


def test_zero_length_path_warns_and_gives_an_empty_mask(setup):
    _, _, _, ex = setup
    x = images(1, seed=4)[0]
    with pytest.warns(RuntimeWarning, match="path has length 0"):
        e = ex.explain(x, reference=x)
    assert e.path_length[0] == 0 and not e.mask.any() and not e.mean_abs_change.any()


class NudgedReference(Embed):
    """Embeds a batch [x, x'] like a CPU whose kernels round the second half differently: a few ulps off."""

    def __call__(self, x):
        h = super().__call__(x)
        half = len(h) // 2
        h[half:] = np.nextafter(np.nextafter(h[half:], np.inf), np.inf)
        return h


def test_reference_equal_to_h_but_for_the_last_bits_is_a_zero_length_path(setup):
    _, kernel, protos, ex = setup
    nudged = SiameseExplainer(NudgedReference(), linear_decoder(kernel), protos, ex.config, chunk_size=64)
    x = images(1, seed=4)[0]
    with pytest.warns(RuntimeWarning, match="path has length 0"):
        e = nudged.explain(x, reference=x)
    assert e.path_length[0] == 0 and not e.mask.any() and not e.mean_abs_change.any()
    assert not e.mean_signed_change.any()


def test_errors_name_the_argument(setup):
    emb, kernel, protos, ex = setup
    x = images(1, seed=4)[0]
    own = int(ex.explain(x).explained_class[0])
    with pytest.raises(ValueError, match="`contrast_class` must differ from the explained class"):
        ex.explain(x, contrast_class=own)
    with pytest.raises(ValueError, match=r"`contrast_class` must be None or an integer in \[0, 4\)"):
        ex.explain(x, contrast_class=4)
    with pytest.raises(ValueError, match="`contrast_class` must be None when `reference` is given"):
        ex.explain(x, reference=x, contrast_class=1)
    mc = ex.replace(estimator="mc")
    with pytest.raises(ValueError, match=r"`contrast_class` needs the decoded path's estimator \(a TemplateContrastConfig\)"):
        mc.explain(x, contrast_class=1)
    one_class = SiameseExplainer(emb, linear_decoder(kernel), protos[:1], ex.config)
    with pytest.raises(ValueError, match="needs at least 2 classes"):
        one_class.explain(x)


def test_paper_methods_unchanged_and_report_no_contrast(setup):
    emb, kernel, protos, ex = setup
    x = images(3, seed=4)
    e = ex.replace(estimator="mc").explain(x, seed=1)
    np.testing.assert_array_equal(e.contrast_class, [-1, -1, -1])
    assert ExplainConfig().estimator == "mc" and e.path_length is None and e.moved_indices is None
    # The paper's Delta_p for a linear decoder is still sigma-sized, nothing like the contrast's.
    assert e.mean_abs_change.max() < 0.1 * ex.explain(x).mean_abs_change.max()


def test_contrast_class_survives_save_load_and_old_files(setup, tmp_path):
    _, _, _, ex = setup
    e = ex.explain(images(2, seed=4))
    e.save(tmp_path / "e.npz")
    back = Explanation.load(tmp_path / "e.npz")
    np.testing.assert_array_equal(back.contrast_class, e.contrast_class)
    assert back.config == ex.config and "contrast_class" in FIELDS
    # A file written before the field existed reads back with -1.
    with np.load(tmp_path / "e.npz") as data:
        arrays = {k: data[k] for k in data.files if k != "contrast_class"}
    np.savez(tmp_path / "old.npz", **arrays)
    np.testing.assert_array_equal(Explanation.load(tmp_path / "old.npz").contrast_class, [-1, -1])


@pytest.fixture(scope="module")
def keras_run(tmp_path_factory):
    keras.utils.set_random_seed(1)
    snn = build_siamese_subnetwork(D)
    dec = build_decoder(D)
    for w in dec.weights:
        w.assign(w * 2.0)
    x = images(20, seed=3)
    h = snn(x).numpy()
    protos = np.stack([h[i::4].mean(0) for i in range(4)]) + np.eye(4, D) * 0.5
    path = tmp_path_factory.mktemp("run")
    runs.save_run(path, snn, dec, protos.astype(np.float32))
    return path


def test_cli_method_contrast(keras_run, tmp_path, capsys):
    from PIL import Image

    Image.fromarray((images(1, seed=5)[0, ..., 0] * 255).astype("uint8"), "L").save(tmp_path / "a.png")
    out = tmp_path / "out"
    ex = SiameseExplainer.from_run(keras_run, TemplateContrastConfig(n_path_points=64, q=30))
    from siamese_xai.data.inputs import read_image

    e = ex.explain(read_image(tmp_path / "a.png")[0])
    own, runner = int(e.explained_class[0]), int(e.contrast_class[0])
    l = min({0, 1, 2, 3} - {own, runner})  # not the default, so the flag must get through
    code = cli.main(["explain", "--run", str(keras_run), str(tmp_path / "a.png"), "--out", str(out), "--n", "64",
                     "--q", "30", "--estimator", "template_contrast", "--contrast-class", str(l), "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert f"rather than class {l}" in capsys.readouterr().out
    record = json.loads((out / "a.json").read_text())
    assert record["contrast_class"] == [l] and record["config"] == ex.config.to_dict()
    assert record["config"]["estimator"] == "template_contrast" and record["config"]["n_path_points"] == 64
    assert record["sigma"] is None and record["indices"] is None and len(record["path_length"]) == 1
    assert record["explained_class"] == [own]
    assert (out / "a.png").is_file()
    code = cli.main(["explain", "--run", str(keras_run), str(tmp_path / "a.png"), "--out", str(out),
                     "--contrast-class", "1"])
    assert code == 2 and "--contrast-class needs --estimator template_contrast or probe" in capsys.readouterr().err
    code = cli.main(["explain", "--run", str(keras_run), str(tmp_path / "a.png"), "--out", str(out),
                     "--estimator", "template_contrast", "--sigma-scale", "0.2"])
    assert code == 2 and "--sigma-scale applies to --estimator mc and linear" in capsys.readouterr().err


def test_export_serves_the_contrast_explanation(keras_run, tmp_path):
    import tensorflow as tf

    from siamese_xai.scale.export import export_explainer

    ex = SiameseExplainer.from_run(keras_run, TemplateContrastConfig(n_path_points=64, q=30))
    export_explainer(ex, tmp_path / "sm")
    x = images(3, seed=6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_default"](
            images=tf.constant(x), seed=tf.constant(0, tf.int64))
    e = ex.explain(x)
    np.testing.assert_array_equal(out["contrast_class"].numpy(), e.contrast_class)
    np.testing.assert_array_equal(out["mask"].numpy(), e.mask)
    np.testing.assert_allclose(out["mean_signed_change"].numpy(), e.mean_signed_change, atol=1e-5)
    np.testing.assert_array_equal(out["moved_indices"].numpy(), e.moved_indices)
    assert "sigma" not in out and "indices" not in out


def test_switching_estimators_by_name_and_reading_configs_back():
    cfg = TemplateContrastConfig(n_path_points=64, s=3, q=9)
    # switching estimators by name carries N, s and q
    assert ExplainConfig(n_perturbations=64, s=3, q=9).replace(estimator="template_contrast") == cfg
    assert cfg.replace(estimator="mc") == ExplainConfig(n_perturbations=64, s=3, q=9)
    # every config reads back from its dict
    for c in (cfg, ExplainConfig(estimator="linear", direction="positive")):
        assert explain_config_from_dict(c.to_dict()) == c


def test_ranking_is_the_map_the_mask_holds_the_top_of(setup):
    """e.ranking, for every method: the mask is its q largest positive values (ties: lower flat index first)."""
    emb, kernel, protos, ex = setup
    x = images(3, seed=6)
    for e in (ex.explain(x), ex.replace(estimator="mc").explain(x, seed=1),
              ex.replace(estimator="linear").explain(x, seed=1)):
        r = e.ranking.reshape(len(e), -1).astype(np.float64)
        order = np.argsort(-r, axis=1, kind="stable")[:, : e.config.q]
        expected = np.zeros_like(r, bool)
        np.put_along_axis(expected, order, True, axis=1)
        np.testing.assert_array_equal(e.mask.reshape(len(e), -1), expected & (r > 0), err_msg=e.config.estimator)
    e = ex.explain(x)
    np.testing.assert_array_equal(e.ranking, np.maximum(-e.mean_signed_change, 0) * e.input)


def test_cli_estimator_probe(keras_run, tmp_path, capsys):
    """`explain --estimator probe` writes the probe's figure and JSON; its record is f's verdict on the run."""
    from PIL import Image

    from siamese_xai.data.inputs import read_image
    from siamese_xai.explainers.probe import ProbeExplainer

    Image.fromarray((images(1, seed=5)[0, ..., 0] * 255).astype("uint8"), "L").save(tmp_path / "a.png")
    out = tmp_path / "out"
    code = cli.main(["explain", "--run", str(keras_run), str(tmp_path / "a.png"), "--out", str(out),
                     "--estimator", "probe", "--quiet"])
    assert code == 0, capsys.readouterr().err
    record = json.loads((out / "a.json").read_text())
    e = ProbeExplainer.from_run(keras_run).explain(read_image(tmp_path / "a.png")[0])
    for field in ("explained_class", "contrast_class", "flips", "set_size", "n_calls"):
        assert record[field] == getattr(e, field).tolist(), field  # every field, B = 1, like every estimator's JSON
    assert f"{record['n_calls'][0]} f calls" in capsys.readouterr().out and (out / "a.png").is_file()
    code = cli.main(["explain", "--run", str(keras_run), str(tmp_path / "a.png"), "--out", str(out),
                     "--estimator", "probe", "--pair", str(tmp_path / "a.png"), "--contrast-class", "1"])
    assert code == 2 and "--pair asks about the distance to another image" in capsys.readouterr().err
