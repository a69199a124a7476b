import json

import keras
import numpy as np
import pytest

from siamese_xai import data, training
from siamese_xai.config import AutoencoderConfig, DecoderConfig, SNNConfig, TrainConfig


def test_tiny_run_writes_the_run_folder(tiny_run):
    run_dir, metrics = tiny_run
    for name in ("snn.keras", "encoder.keras", "decoder.keras", "prototypes.npy", "config.json", "metrics.json"):
        assert (run_dir / name).is_file(), name
    protos = np.load(run_dir / "prototypes.npy")
    assert protos.shape == (10, 20)
    on_disk = json.loads((run_dir / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    for key in ("prototype_accuracy", "recon_sse_autoencoder", "recon_sse_decoder", "alignment_sse"):
        assert np.isfinite(on_disk[key]), key
    assert set(on_disk["seconds"]) == {"snn", "autoencoder", "decoder"}
    assert on_disk["num_test_images"] == 10000
    # even one tiny epoch learns something: far above the 10% of chance
    assert on_disk["prototype_accuracy"] > 0.5
    assert TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text())) == TrainConfig.tiny()
    # TensorBoard logs were written
    assert any((run_dir / "logs" / "snn").iterdir())
    assert not list(run_dir.glob(".*tmp*")), "no temporary files left behind"


def test_saved_models_reload_and_agree(tiny_run):
    run_dir, metrics = tiny_run
    snn = keras.models.load_model(run_dir / "snn.keras", compile=False)
    dec = keras.models.load_model(run_dir / "decoder.keras", compile=False)
    x, y = data.load_mnist("test")
    h = snn(x[:200]).numpy()
    assert h.shape == (200, 20)
    assert dec(h).shape == (200, 28, 28, 1)


def test_rerun_skips_finished_stages(tiny_run, capsys):
    run_dir, metrics = tiny_run
    before = (run_dir / "snn.keras").stat().st_mtime_ns
    again = training.train_run(TrainConfig.tiny(), run_dir, verbose=1)
    assert (run_dir / "snn.keras").stat().st_mtime_ns == before
    assert "skipping" in capsys.readouterr().out
    assert again["prototype_accuracy"] == metrics["prototype_accuracy"]


def test_rerun_with_another_config_is_refused(tiny_run):
    run_dir, _ = tiny_run
    with pytest.raises(ValueError, match="another config.*--force"):
        training.train_run(TrainConfig.tiny(seed=7), run_dir, verbose=0)


def _small_config(**kw):
    return TrainConfig.tiny(
        train_limit=256,
        snn=SNNConfig(epochs=2, batch_size=32),
        autoencoder=AutoencoderConfig(epochs=1, batch_size=32),
        decoder=DecoderConfig(epochs=1, batch_size=32),
        checkpoint_every=3,
        **kw,
    )


def _mnist_subset(n=256):
    x, y = data.load_mnist("train")
    return x[:n], y[:n]


def test_same_seed_same_weights_other_seed_other_weights():
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    x, y = _mnist_subset()
    cfg = _small_config()
    a = training.train_siamese(x, y, cfg, verbose=0).get_weights()
    b = training.train_siamese(x, y, cfg, verbose=0).get_weights()
    c = training.train_siamese(x, y, cfg.replace(seed=1), verbose=0).get_weights()
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not all(np.array_equal(u, v) for u, v in zip(a, c))


def test_interrupted_training_resumes_to_the_same_weights(tmp_path, monkeypatch):
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    x, y = _mnist_subset()
    cfg = _small_config()  # 8 steps per epoch, 2 epochs, a checkpoint every 3 steps
    reference = training.train_siamese(x, y, cfg, run_dir=tmp_path / "ref", verbose=0).get_weights()

    real_update = keras.utils.Progbar.update
    calls = {"n": 0}

    def crash_at_step_11(self, current, values=None, finalize=None):
        calls["n"] += 1
        if calls["n"] == 11:  # mid second epoch, two steps after the checkpoint at step 9
            raise KeyboardInterrupt
        return real_update(self, current, values, finalize)

    monkeypatch.setattr(keras.utils.Progbar, "update", crash_at_step_11)
    with pytest.raises(KeyboardInterrupt):
        training.train_siamese(x, y, cfg, run_dir=tmp_path / "run", verbose=1)
    monkeypatch.setattr(keras.utils.Progbar, "update", real_update)
    assert (tmp_path / "run" / "checkpoints" / "snn").is_dir()

    resumed = training.train_siamese(x, y, cfg, run_dir=tmp_path / "run", verbose=1)
    for u, v in zip(reference, resumed.get_weights()):
        np.testing.assert_array_equal(u, v)


def test_autoencoder_and_decoder_learn_with_d10(tmp_path):
    cfg = TrainConfig.tiny(embedding_dim=10, train_limit=1000)
    metrics = training.train_run(cfg, tmp_path / "d10", verbose=0)
    assert np.load(tmp_path / "d10" / "prototypes.npy").shape == (10, 10)
    dec = keras.models.load_model(tmp_path / "d10" / "decoder.keras", compile=False)
    assert dec.input_shape == (None, 10)
    # fine-tuning on f(x) lowers the error of g(f(x)) on the test set
    assert metrics["recon_sse_decoder"] < metrics["recon_sse_decoder_before_finetune"]


def test_joint_training_aligns_codes_with_the_embedding():
    x, _ = _mnist_subset(512)
    # a learnable stand-in for f: a fixed random projection of the pixels
    proj = np.random.default_rng(0).normal(size=(784, 20)).astype(np.float32) / 10.0
    h = x.reshape(len(x), -1) @ proj

    def alignment(alpha, beta):
        cfg = TrainConfig.tiny(autoencoder=AutoencoderConfig(epochs=6, batch_size=32, alpha=alpha, beta=beta, learning_rate=1e-2))
        enc, _ = training.train_autoencoder(x, h, cfg, verbose=0)
        return float(np.mean(np.sum((training.predict(enc, x) - h) ** 2, 1)))

    with_beta, without_beta = alignment(1.0, 10.0), alignment(1.0, 0.0)
    spread = float(np.mean(np.sum((h - h.mean(0)) ** 2, 1)))
    assert with_beta < 0.75 * spread, (with_beta, without_beta, spread)
    assert with_beta < 0.75 * without_beta, (with_beta, without_beta, spread)


def test_embeddings_of_wrong_length_are_rejected():
    x, _ = _mnist_subset(32)
    with pytest.raises(ValueError, match=r"h.shape=\(32, 10\)"):
        training.train_autoencoder(x, np.zeros((32, 10), np.float32), TrainConfig.tiny(), verbose=0)


def test_config_validation_names_the_argument():
    with pytest.raises(ValueError, match="epochs=0"):
        SNNConfig(epochs=0)
    with pytest.raises(ValueError, match="beta=-1"):
        AutoencoderConfig(beta=-1)
    with pytest.raises(ValueError, match="embedding_dim=0"):
        TrainConfig(embedding_dim=0)
    cfg = TrainConfig.paper()
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert cfg.embedding_dim == 20


def test_predict_takes_any_black_box():
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    calls = []

    def f(batch):
        calls.append(len(batch))
        return batch * 2

    np.testing.assert_array_equal(training.predict(f, x, batch_size=4), x * 2)
    assert calls == [4, 2]


@pytest.mark.slow  # about 50 s on 2 cores: three tiny training runs, two of them in fresh processes
def test_train_killed_mid_epoch_and_rerun_ends_with_the_same_weights(tmp_path, kill_when_exists):
    """A real kill (SIGKILL to the CLI process), not an exception: resume from the last checkpoint."""
    import subprocess
    import sys

    from siamese_xai import cli

    # 512 images in batches of 64: 8 steps per epoch, 2 epochs per stage, a checkpoint every 3 steps
    tail = ["--tiny", "--train-limit", "512", "--epochs", "2", "--checkpoint-every", "3", "--seed", "5"]
    run = tmp_path / "killed"
    cmd = [sys.executable, "-m", "siamese_xai.cli", "train", "--out", str(run)] + tail
    env = kill_when_exists(cmd, run / "checkpoints" / "snn" / "checkpoint")
    assert not (run / "snn.keras").exists()  # killed inside the first stage
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "resumed at step" in rerun.stdout or "epoch 2/2" in rerun.stdout.split("[snn]")[1]

    assert cli.main(["train", "--out", str(tmp_path / "whole"), "--quiet"] + tail) == 0
    for name in ("snn.keras", "encoder.keras", "decoder.keras"):
        a = keras.models.load_model(run / name, compile=False).get_weights()
        b = keras.models.load_model(tmp_path / "whole" / name, compile=False).get_weights()
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v, err_msg=name)


# fit_explainer: the explainer for a network trained elsewhere, in one call


def _black_box(dim, seed=3):
    """A fixed random Keras embedding: f is a black box to the explainer, trained or not."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(dim)], name="black_box"
    )


def test_fit_explainer_trains_a_decoder_for_a_black_box_embedding():
    from siamese_xai.explain import ExplainConfig
    from siamese_xai.fitting import fit_explainer
    from siamese_xai.models import build_decoder

    x, y = _mnist_subset(2000)
    f = _black_box(12)
    cfg = TrainConfig.tiny(embedding_dim=12)
    explainer = fit_explainer(f, x, y, cfg, explain_config=ExplainConfig.tiny(), verbose=0)
    # the prototypes are the class means of f(x)
    h = f(x).numpy().astype(np.float64)
    means = np.stack([h[y == k].mean(0) for k in range(10)])
    np.testing.assert_allclose(explainer.prototypes, means, rtol=1e-5, atol=1e-6)
    # the decoder learned to invert f on images it never saw: far better than untrained
    x_test, _ = data.load_mnist("test")
    x_test = x_test[:500]
    h_test = f(x_test)
    sse = lambda dec: float(np.mean(np.sum((dec(h_test).numpy() - x_test).reshape(len(x_test), -1) ** 2, 1)))
    untrained = build_decoder(12)
    assert sse(explainer.decoder) < 0.5 * sse(untrained), (sse(explainer.decoder), sse(untrained))
    # and it explains: q pixels per image, the config it was given
    e = explainer.explain(x_test[:3], seed=0)
    assert e.mask.shape == (3, 28, 28, 1) and e.config == ExplainConfig.tiny()
    assert e.mask.reshape(3, -1).sum(1).tolist() == [e.config.q] * 3


def test_fit_explainer_reads_d_from_the_embedding_and_writes_a_run_folder(tmp_path):
    from siamese_xai import runs
    from siamese_xai.explain import SiameseExplainer
    from siamese_xai.fitting import fit_explainer

    x, y = _mnist_subset(256)
    f = _black_box(7)
    # config=None: the paper's stage settings for D = 7 (8 epochs of 2 steps each here)
    explainer = fit_explainer(f, x, y, run_dir=tmp_path / "own", verbose=0)
    assert explainer.embedding_dim == 7 and explainer.decoder.input_shape == (None, 7)
    loaded = SiameseExplainer.from_run(tmp_path / "own")
    np.testing.assert_array_equal(loaded.prototypes, explainer.prototypes)
    assert (tmp_path / "own" / runs.ENCODER_FILE).is_file()
    assert any((tmp_path / "own" / runs.CHECKPOINTS_DIR / "decoder").iterdir())


def test_fit_explainer_refuses_a_config_of_another_length_before_training():
    from siamese_xai.fitting import fit_explainer

    x, y = _mnist_subset(64)
    with pytest.raises(ValueError, match=r"config.embedding_dim.*7.*Received: config.embedding_dim=20"):
        fit_explainer(_black_box(7), x, y, TrainConfig.tiny(), verbose=0)
    with pytest.raises(ValueError, match=r"y.shape=\(63,\)"):
        fit_explainer(_black_box(7), x, y[:63], TrainConfig.tiny(embedding_dim=7), verbose=0)
