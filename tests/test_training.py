import json

import keras
import numpy as np
import pytest

from siamese_xai.data import mnist as data
from siamese_xai.explainers import prototypes
from siamese_xai.training import loop
from siamese_xai.explainers.prototypes import embed_in_batches
from siamese_xai.training import stages as training
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
    # each stage trained once, from scratch, every step of its one epoch (2000 images in batches of 64)
    sessions = loop.read_sessions(run_dir)
    assert [s["stage"] for s in sessions] == ["snn", "autoencoder", "decoder"]
    for s in sessions:
        assert (s["restored_from"], s["restored_global_step"], s["steps_run"], s["steps_total"]) == (None, 0, 32, 32), s
    assert not list(run_dir.glob(".*tmp*")), "no temporary files left behind"


def test_saved_models_reload_and_agree(tiny_run):
    """The saved files give back the trained models: the metrics computed before saving, recomputed from the files."""
    run_dir, metrics = tiny_run
    snn = keras.models.load_model(run_dir / "snn.keras", compile=False)
    dec = keras.models.load_model(run_dir / "decoder.keras", compile=False)
    x, y = data.load_mnist("test")
    h = embed_in_batches(snn, x, 1000)
    assert h.shape == (10000, 20)
    protos = np.load(run_dir / "prototypes.npy")
    assert prototypes.prototype_accuracy(h, y, protos) == metrics["prototype_accuracy"]
    recon = embed_in_batches(dec, h, 1000)
    assert recon.shape == (10000, 28, 28, 1)
    sse = float(np.mean(np.sum((x - recon).reshape(len(x), -1) ** 2, axis=1)))
    assert sse == pytest.approx(metrics["recon_sse_decoder"], rel=1e-6)


@pytest.mark.slow
def test_rerun_skips_finished_stages(tiny_run, tmp_path, capsys):
    import shutil

    run_dir = shutil.copytree(tiny_run[0], tmp_path / "run")  # the session's folder stays as trained
    metrics = tiny_run[1]
    before = (run_dir / "snn.keras").stat().st_mtime_ns
    again = training.train_run(TrainConfig.tiny(), run_dir, verbose=1)
    assert (run_dir / "snn.keras").stat().st_mtime_ns == before
    assert capsys.readouterr().out.count("exists, skipping") == 3
    assert again["prototype_accuracy"] == metrics["prototype_accuracy"]
    assert len(loop.read_sessions(run_dir)) == 3  # no stage trained again


def test_rerun_with_another_config_is_refused(tiny_run, tmp_path):
    import shutil

    run_dir = shutil.copytree(tiny_run[0], tmp_path / "run")
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


def test_same_seed_same_weights_other_seed_other_weights(op_determinism):
    x, y = _mnist_subset()
    cfg = _small_config()
    a = training.train_siamese(x, y, cfg, verbose=0).get_weights()
    b = training.train_siamese(x, y, cfg, verbose=0).get_weights()
    c = training.train_siamese(x, y, cfg.replace(seed=1), verbose=0).get_weights()
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not all(np.array_equal(u, v) for u, v in zip(a, c))


def test_interrupted_training_resumes_mid_epoch_to_the_same_weights(tmp_path, op_determinism):
    x, y = _mnist_subset()
    cfg = _small_config()  # 8 steps per epoch, 2 epochs, checkpoints after steps 3, 6 and 8 of each epoch
    reference = training.train_siamese(x, y, cfg, run_dir=tmp_path / "ref", verbose=0).get_weights()

    def crash_after_step_13(step, values):
        if step == 13:  # mid second epoch, two steps after the checkpoint at global step 11
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        training.train_siamese(x, y, cfg, run_dir=tmp_path / "run", verbose=0, on_step=crash_after_step_13)
    assert loop.read_sessions(tmp_path / "run") == []  # the interrupted call recorded nothing

    steps = []
    resumed = training.train_siamese(x, y, cfg, run_dir=tmp_path / "run", verbose=0, on_step=lambda s, v: steps.append(s))
    assert steps == [12, 13, 14, 15, 16]  # only what follows the checkpoint: resumed, not retrained
    [session] = loop.read_sessions(tmp_path / "run")
    assert session == dict(session, restored_from="ckpt-11", restored_epoch=1, restored_step_in_epoch=3,
                           restored_global_step=11, steps_run=5, global_step=16, steps_total=16)
    for u, v in zip(reference, resumed.get_weights()):
        np.testing.assert_array_equal(u, v)


@pytest.mark.slow
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
        return float(np.mean(np.sum((embed_in_batches(enc, x, 1000) - h) ** 2, 1)))

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


def test_embedding_in_batches_takes_any_black_box():
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    calls = []

    def f(batch):
        calls.append(len(batch))
        return batch * 2

    np.testing.assert_array_equal(embed_in_batches(f, x, batch_size=4), x * 2)
    assert calls == [4, 2]


# 512 images in batches of 64: 8 steps per epoch and 2 epochs (16 steps) per stage, a
# checkpoint after steps 3 and 6 of each epoch and at its end (global steps 3, 6, 8, 11, 14, 16).
_KILL_TAIL = ["--tiny", "--train-limit", "512", "--epochs", "2", "--checkpoint-every", "3", "--seed", "5", "--quiet"]
_STEPS_PER_STAGE = 16
# (stage, global step after which the process is killed, the checkpoint the rerun must
# resume from: (epoch, step_in_epoch, global step)), worked out by hand from the rule above.
_KILL_POINTS = [
    ("snn", 13, (1, 3, 11)),  # second epoch: two trained steps are lost
    ("autoencoder", 5, (0, 3, 3)),  # first epoch
    ("decoder", 16, (1, 6, 14)),  # the stage's last step, before its final checkpoint
]
_MODEL_FILES = {"snn": "snn.keras", "autoencoder": "encoder.keras", "decoder": "decoder.keras"}


def _steps_logged(path, stage):
    """The global steps of `stage` that a process trained, from the stop hook's step log."""
    if not path.exists():
        return []
    return [int(step) for name, step in (line.split() for line in path.read_text().splitlines()) if name == stage]


@pytest.mark.slow
def test_train_killed_in_each_stage_resumes_from_its_checkpoint(tmp_path, stop_and_kill):
    """SIGKILL a real `siamese-xai train` mid-epoch in each stage in turn; each rerun resumes mid-epoch.

    One run folder goes through four processes: the first is killed in the
    Siamese stage, the second resumes it and is killed in the autoencoder
    stage, the third in the decoder stage, the fourth finishes. Each resumed
    stage must restore its last checkpoint (step_in_epoch > 0), train only the
    steps after it (counted by the stop hook, and recorded by `fit` in
    logs/sessions.jsonl) and end with the weights of an uninterrupted run.
    """
    import signal
    import subprocess
    import sys

    from conftest import hook_env

    from siamese_xai import cli

    run = tmp_path / "killed"
    cmd = [sys.executable, "-m", "siamese_xai.cli", "train", "--out", str(run)] + _KILL_TAIL
    env = hook_env(TF_CPP_MIN_LOG_LEVEL="3")
    step_logs = [tmp_path / f"steps-{i}.log" for i in range(len(_KILL_POINTS) + 1)]
    for i, (stage, step, _) in enumerate(_KILL_POINTS):
        status = stop_and_kill(cmd, dict(env, SIAMESE_XAI_STOP_AT=f"{stage}:{step}", SIAMESE_XAI_STEP_LOG=str(step_logs[i])),
                               tmp_path / f"process-{i}.log")
        assert status == -signal.SIGKILL
        assert _steps_logged(step_logs[i], stage)[-1] == step  # it was killed where it was meant to be
        assert not (run / _MODEL_FILES[stage]).exists()  # inside the stage
    last = subprocess.run(cmd, env=dict(env, SIAMESE_XAI_STEP_LOG=str(step_logs[-1])), capture_output=True, text=True, timeout=300)
    assert last.returncode == 0, last.stderr[-3000:]

    sessions = {s["stage"]: s for s in loop.read_sessions(run)}
    assert len(loop.read_sessions(run)) == 3  # killed calls record nothing; each stage finished once
    for i, (stage, step, (epoch, step_in_epoch, global_step)) in enumerate(_KILL_POINTS):
        # what the process after the kill trained of this stage: only the steps after the checkpoint
        assert _steps_logged(step_logs[i + 1], stage) == list(range(global_step + 1, _STEPS_PER_STAGE + 1)), stage
        assert sessions[stage] == dict(
            sessions[stage], restored_from=f"ckpt-{global_step}", restored_epoch=epoch,
            restored_step_in_epoch=step_in_epoch, restored_global_step=global_step,
            steps_run=_STEPS_PER_STAGE - global_step, global_step=_STEPS_PER_STAGE, steps_total=_STEPS_PER_STAGE,
        ), stage

    whole = tmp_path / "whole"
    assert cli.main(["train", "--out", str(whole)] + _KILL_TAIL) == 0
    scratch = loop.read_sessions(whole)
    assert [s["stage"] for s in scratch] == ["snn", "autoencoder", "decoder"]
    for s in scratch:  # from scratch: nothing restored, every step trained
        assert (s["restored_from"], s["restored_global_step"], s["steps_run"]) == (None, 0, _STEPS_PER_STAGE), s
    for name in ("snn.keras", "encoder.keras", "decoder_joint.keras", "decoder.keras"):
        a = keras.models.load_model(run / name, compile=False).get_weights()
        b = keras.models.load_model(whole / name, compile=False).get_weights()
        assert len(a) == len(b) > 0
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v, err_msg=name)
    np.testing.assert_array_equal(np.load(run / "prototypes.npy"), np.load(whole / "prototypes.npy"))


# fit_explainer: the explainer for a network trained elsewhere, in one call


def _black_box(dim, seed=3):
    """A fixed random Keras embedding: f is a black box to the explainer, trained or not."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(dim)], name="black_box"
    )


def test_fit_explainer_trains_a_decoder_for_a_black_box_embedding():
    from siamese_xai.config import ExplainConfig
    from siamese_xai.training.fitting import fit_explainer
    from siamese_xai.training.models import build_decoder

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
    from siamese_xai.explainers.siamese import SiameseExplainer
    from siamese_xai.training.fitting import fit_explainer

    x, y = _mnist_subset(256)
    f = _black_box(7)
    # config=None: the paper's stage settings for D = 7 (8 epochs of 2 steps each here)
    names = [f"digit {k}" for k in range(10)]
    explainer = fit_explainer(f, x, y, run_dir=tmp_path / "own", class_names=names, verbose=0)
    assert explainer.embedding_dim == 7 and explainer.decoder.input_shape == (None, 7)
    loaded = SiameseExplainer.from_run(tmp_path / "own")
    np.testing.assert_array_equal(loaded.prototypes, explainer.prototypes)
    # the explainer knows the folder's identity and names without reading the folder back
    assert explainer.run_id == loaded.run_id == runs.load_run(tmp_path / "own").run_id
    assert explainer.class_names == loaded.class_names == tuple(names)
    assert (tmp_path / "own" / runs.ENCODER_FILE).is_file()
    assert any((tmp_path / "own" / runs.CHECKPOINTS_DIR / "decoder").iterdir())


def test_fit_explainer_refuses_a_config_of_another_length_before_training():
    from siamese_xai.training.fitting import fit_explainer

    x, y = _mnist_subset(64)
    with pytest.raises(ValueError, match=r"config.embedding_dim.*7.*Received: config.embedding_dim=20"):
        fit_explainer(_black_box(7), x, y, TrainConfig.tiny(), verbose=0)
    with pytest.raises(ValueError, match=r"`class_names` must name each of the 10 classes. Received: 2 names"):
        fit_explainer(_black_box(7), x, y, TrainConfig.tiny(embedding_dim=7), num_classes=10, class_names=["a", "b"],
                      verbose=0)
    with pytest.raises(ValueError, match=r"y.shape=\(63,\)"):
        fit_explainer(_black_box(7), x, y[:63], TrainConfig.tiny(embedding_dim=7), verbose=0)
