import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from siamese_xai.config import ExplainConfig
from siamese_xai.explainers.siamese import SiameseExplainer
from siamese_xai.scale.export import CONFIG_ASSET, export_explainer
from siamese_xai.training.models import build_decoder, build_siamese_subnetwork

D = 6

# Runs in a fresh interpreter: TensorFlow and NumPy only.
LOAD_AND_RUN = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf

    path, images, seed, out = sys.argv[1:5]
    model = tf.saved_model.load(path)
    result = model.signatures["serving_default"](
        images=tf.constant(np.load(images)), seed=tf.constant(int(seed), tf.int64)
    )
    np.savez(out, **{k: v.numpy() for k, v in result.items()})
    assert not any(m.startswith("siamese_xai") for m in sys.modules), "siamese_xai was imported"
    """
)


@pytest.fixture(scope="module")
def explainer():
    keras.utils.set_random_seed(4)
    snn = build_siamese_subnetwork(D)
    decoder = build_decoder(D)
    rng = np.random.default_rng(0)
    prototypes = snn(rng.random((4, 28, 28, 1)).astype(np.float32)).numpy()
    return SiameseExplainer(snn, decoder, prototypes, ExplainConfig.tiny(s=2, q=30), chunk_size=50, run_id="run-x")


@pytest.fixture(scope="module")
def exported(explainer, tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "explainer"
    export_explainer(explainer, path)
    return path


def test_fresh_process_without_siamese_xai_gives_the_same_result(explainer, exported, tmp_path):
    x = np.random.default_rng(1).random((3, 28, 28, 1)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    subprocess.run(
        [sys.executable, "-c", LOAD_AND_RUN, str(exported), str(tmp_path / "x.npy"), "5", str(tmp_path / "out.npz")],
        check=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    out = np.load(tmp_path / "out.npz")
    e = explainer.explain(x, seed=5)
    # The SavedModel's outputs are the Explanation's fields, under the same names.
    assert set(out.files) == set(e.fields) - {"input", "explained_class"}
    assert out["mask"].dtype == bool and out["mask"].shape == (3, 28, 28, 1)
    np.testing.assert_array_equal(out["predicted_class"], e.predicted_class)
    np.testing.assert_allclose(out["distances"], e.distances, rtol=1e-5)
    np.testing.assert_allclose(out["embedding"], e.embedding, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["reference"], e.reference, rtol=1e-6)
    np.testing.assert_array_equal(out["indices"], e.indices)
    np.testing.assert_allclose(out["sigma"], e.sigma, rtol=1e-5)
    np.testing.assert_allclose(out["reconstruction"], e.reconstruction, atol=1e-6)
    for b in range(3):
        scale = e.mean_abs_change[b].max()
        np.testing.assert_allclose(out["mean_abs_change"][b], e.mean_abs_change[b], rtol=1e-4, atol=1e-4 * scale)
        np.testing.assert_allclose(out["mean_signed_change"][b], e.mean_signed_change[b], atol=1e-4 * scale)
    np.testing.assert_array_equal(out["mask"], e.mask)


def test_export_writes_parameters_and_replaces_atomically(explainer, exported):
    meta = json.loads((exported / CONFIG_ASSET).read_text())
    assert meta["config"]["n_perturbations"] == explainer.config.n_perturbations
    assert meta["image_shape"] == [28, 28, 1] and meta["embedding_dim"] == D
    assert meta["chunk_size"] == 50 and meta["run_id"] == "run-x"
    assert "mask" in meta["outputs"] and "mean_abs_change" in meta["outputs"]
    export_explainer(explainer, exported)  # over an existing export
    assert (exported / "saved_model.pb").is_file()
    leftovers = [p.name for p in exported.parent.iterdir() if p.name != exported.name]
    assert leftovers == []


def test_numpy_embed_cannot_be_exported(explainer, tmp_path):
    proj = np.random.default_rng(0).normal(size=(784, D)).astype(np.float32)

    def numpy_embed(x):
        return np.asarray(x).reshape(len(x), -1) @ proj

    ex = SiameseExplainer(numpy_embed, explainer.decoder, explainer.prototypes, explainer.config)
    with pytest.raises(TypeError, match="`explainer.embed` must be a Keras model or a TensorFlow-traceable callable"):
        export_explainer(ex, tmp_path / "nope")
    assert not (tmp_path / "nope").exists()
    with pytest.raises(TypeError, match="`explainer` must be a SiameseExplainer"):
        export_explainer("not an explainer", tmp_path / "nope")


def test_cli_export_of_a_trained_run(tiny_run, tmp_path, capsys):
    import tensorflow as tf

    from siamese_xai import cli

    run_dir, _ = tiny_run
    out = tmp_path / "savedmodel"
    assert cli.main(["export", "--run", str(run_dir), "--out", str(out), "--n", "64"]) == 0
    assert (out / "saved_model.pb").is_file()
    meta = json.loads((out / "assets.extra" / "explainer.json").read_text())
    assert meta["config"]["n_perturbations"] == 64
    loaded = tf.saved_model.load(str(out))
    x = np.zeros((2, 28, 28, 1), np.float32)
    result = loaded.signatures["serving_default"](images=tf.constant(x), seed=tf.constant(0, tf.int64))
    assert result["mask"].shape == (2, 28, 28, 1)
    assert result["distances"].shape == (2, 10)
