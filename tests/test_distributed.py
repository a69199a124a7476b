"""tf.distribute training: MirroredStrategy on two logical CPUs and a two-worker cluster on 127.0.0.1.

Each check runs `tests/dist_worker.py` in fresh processes, since the logical
devices and `TF_CONFIG` must be set before TensorFlow initialises.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

WORKER = Path(__file__).with_name("dist_worker.py")
TIMEOUT_S = 180


def _env(**extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **extra)
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def test_strategy_by_name():
    import tensorflow as tf

    from siamese_xai import training

    assert training.make_strategy(None) is tf.distribute.get_strategy()
    assert training.make_strategy("default") is tf.distribute.get_strategy()
    mirrored = training.make_strategy("mirrored")
    assert isinstance(mirrored, tf.distribute.MirroredStrategy) and training.make_strategy(mirrored) is mirrored
    assert training.is_chief(mirrored)
    with pytest.raises(ValueError, match="strategy='tpu-pod'"):
        training.make_strategy("tpu-pod")


def test_mirrored_on_two_logical_cpus_matches_the_default_strategy(tmp_path):
    out = tmp_path / "losses.json"
    proc = subprocess.run([sys.executable, str(WORKER), "mirrored", str(out)], env=_env(),
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["replicas"] == 2
    for stage in ("snn", "autoencoder"):
        default, mirrored = np.array(result["default"][stage]), np.array(result["mirrored"][stage])
        assert len(default) == len(mirrored) == 8  # 245 examples: 7 batches of 32 and one of 21
        # Same global batch, seed and data: only the order of float32 sums
        # differs (per-replica partial sums), measured ~1e-7 relative.
        np.testing.assert_allclose(mirrored, default, rtol=1e-5)
        assert default[-1] < default[0]  # and it is learning, not a constant
    assert result["max_weight_diff"] < 1e-4


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.slow  # 35-55 s on 2 cores: two workers and a single-process reference, three TensorFlow starts
def test_two_workers_end_with_identical_weights(tmp_path):
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = []
    try:
        for index in range(2):
            tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
            out = tmp_path / f"w{index}"
            out.mkdir()
            procs.append(subprocess.Popen(
                [sys.executable, str(WORKER), "multiworker", str(out)], env=_env(TF_CONFIG=json.dumps(tf_config)),
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            ))
        logs = [p.communicate(timeout=TIMEOUT_S)[0] for p in procs]
    finally:
        for p in procs:  # a hung collective must not outlive the test
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-3000:]
    w0 = np.load(tmp_path / "w0" / "weights-0.npz")
    w1 = np.load(tmp_path / "w1" / "weights-1.npz")
    assert len(w0.files) == len(w1.files) > 0
    for key in w0.files:
        np.testing.assert_array_equal(w0[key], w1[key])
    # Only the chief (worker 0) writes the run folder; worker 1 keeps its
    # checkpoints in its own sub-folder.
    assert (tmp_path / "w0" / "run" / "checkpoints" / "snn").is_dir()
    assert (tmp_path / "w1" / "run" / "workers" / "worker-1" / "checkpoints" / "autoencoder").is_dir()
    assert not (tmp_path / "w1" / "run" / "checkpoints").exists()
    infos = [json.loads((tmp_path / f"w{i}" / f"info-{i}.json").read_text()) for i in range(2)]
    # the global batch of 32 is split between the workers, not repeated
    assert [info["local_batch"] for info in infos] == [16, 16]
    assert infos[0]["losses"] == infos[1]["losses"]

    # and the cluster trains what one process trains with the same global batch
    sys.path.insert(0, str(WORKER.parent))
    try:
        import dist_worker
    finally:
        sys.path.pop(0)
    x, y = dist_worker._data(256)
    losses, weights = dist_worker._train(x, y, dist_worker._config(256), None)
    for stage in ("snn", "autoencoder"):
        np.testing.assert_allclose(infos[0]["losses"][stage], losses[stage], rtol=1e-5)
    for a, key in zip(weights, w0.files):
        np.testing.assert_allclose(w0[key], a, atol=1e-4)
