"""Shared fixtures. Tests read the real MNIST copy beside the project (../shared)."""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_SHARED = Path(__file__).resolve().parents[1].parent / "shared"
if "TFDS_DATA_DIR" not in os.environ and (_SHARED / "tensorflow_datasets" / "mnist").is_dir():
    os.environ["TFDS_DATA_DIR"] = str(_SHARED / "tensorflow_datasets")

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

# "ci" (the default): the same examples on every run and machine, and no example database written
# (.hypothesis/); HYPOTHESIS_PROFILE=dev explores new random examples and keeps the failing ones.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

RAW_MNIST_DIR = _SHARED / "datasets" / "mnist"


@pytest.fixture(scope="session")
def raw_mnist_dir():
    if not RAW_MNIST_DIR.is_dir():
        pytest.fail(f"the raw MNIST files are expected in {RAW_MNIST_DIR}")
    return RAW_MNIST_DIR


@pytest.fixture
def op_determinism():
    """TensorFlow's deterministic ops for one test, switched off again after it (the switch is process-wide)."""
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config  # the only place TF can switch it off again

    was_on = tf_config.is_op_determinism_enabled()
    tf.config.experimental.enable_op_determinism()
    yield
    if not was_on:
        tf_config.disable_op_determinism()


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A run folder trained with the tiny config on real MNIST (seconds)."""
    from siamese_xai.training import stages as training
    from siamese_xai.config import TrainConfig

    run_dir = tmp_path_factory.mktemp("tiny_run")
    metrics = training.train_run(TrainConfig.tiny(), run_dir, verbose=0)
    return run_dir, metrics


# A deadline for a file to appear, not a bound on any result: a TensorFlow process that loads a run
# took 183 s to start on a 2-core machine under load (benchmarks/speed/reproduce_speed.json), so 120 s failed there.
def _kill_when_exists(cmd, ready, timeout: float = 600.0, poll: float = 0.02):
    """Starts `cmd`, waits until the file `ready` exists, then SIGKILLs the process.

    Returns the process's environment (what a rerun of the same command uses).
    """
    import signal
    import subprocess
    import sys
    import time

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + timeout
        while not Path(ready).exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, f"{ready} did not appear in {timeout:.0f} s"
            time.sleep(poll)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return env


@pytest.fixture
def kill_when_exists():
    """`kill_when_exists(cmd, ready_path)`: run a command and SIGKILL it once a file appears."""
    return _kill_when_exists


STOP_HOOK_DIR = Path(__file__).resolve().parent / "stop_hook"


def hook_env(env=None, **extra):
    """`env` (default: os.environ) with `STOP_HOOK_DIR` first on PYTHONPATH, plus `extra`."""
    env = dict(os.environ if env is None else env, **extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(STOP_HOOK_DIR), env.get("PYTHONPATH")]))
    return env


def wait_until_stopped(proc, timeout: float, log_path=None, poll: float = 0.05):
    """Waits until `proc` stops itself (SIGSTOP, see `stop_hook/sitecustomize.py`); fails the test if it ends or times out."""
    import time

    def tail():
        return Path(log_path).read_text()[-3000:] if log_path and Path(log_path).exists() else ""

    deadline = time.monotonic() + timeout
    while True:
        # WUNTRACED reports a stopped child without reaping it
        pid, status = os.waitpid(proc.pid, os.WNOHANG | os.WUNTRACED)
        if pid and os.WIFSTOPPED(status):
            return
        if pid:  # it ended without stopping: the stop point was never reached
            proc.returncode = os.waitstatus_to_exitcode(status)
            pytest.fail(f"{proc.args} exited ({proc.returncode}) before its stop point:\n{tail()}")
        if time.monotonic() > deadline:
            pytest.fail(f"{proc.args} did not reach its stop point in {timeout:.0f} s:\n{tail()}")
        time.sleep(poll)


def _stop_and_kill(cmd, env, log_path, timeout: float = 240.0):
    """Runs `cmd` until it stops itself at its stop point, then SIGKILLs it there.

    Args:
        cmd: the command.
        env: its environment, from `hook_env(SIAMESE_XAI_STOP_AT=...)`.
        log_path: where its stdout and stderr go.
        timeout: seconds to wait for it to stop; then it is killed and the test fails.

    Returns:
        The process's exit status (-9: killed by SIGKILL).
    """
    import signal
    import subprocess

    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_stopped(proc, timeout, log_path)
        proc.send_signal(signal.SIGKILL)
        return proc.wait(timeout=30)
    finally:
        if proc.returncode is None:
            proc.kill()
            proc.wait(timeout=30)


@pytest.fixture
def stop_and_kill():
    """`stop_and_kill(cmd, env, log_path)`: run a command to its stop point and SIGKILL it there."""
    return _stop_and_kill
