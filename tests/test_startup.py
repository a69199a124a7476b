"""The command line starts quietly: no TensorFlow start-up lines unless --verbose."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from siamese_xai import startup

ROOT = Path(__file__).resolve().parents[1]
# absl's C++ log format: severity letter, MMDD, time, thread id, file:line]
CPP_LOG_LINE = re.compile(r"^[IWEF]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\]", re.MULTILINE)


def _clean_env():
    """What a plain shell gives: no TF_CPP_MIN_LOG_LEVEL or other TensorFlow settings."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
           "PYTHONPATH": str(ROOT)}
    if "TFDS_DATA_DIR" in os.environ:
        env["TFDS_DATA_DIR"] = os.environ["TFDS_DATA_DIR"]
    return env


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "siamese_xai.cli", *map(str, args)], env=_clean_env(),
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def cli_imports_lazily():
    """The command line's import loads no TensorFlow (`siamese_xai/__init__.py` is lazy), so main() can hide it."""
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, siamese_xai.cli; sys.exit(int('tensorflow' in sys.modules))"],
        env=_clean_env(), capture_output=True, timeout=300,
    )
    assert probe.returncode == 0, "`import siamese_xai.cli` imports TensorFlow before main() can silence it"


def test_silenced_stderr_fd_hides_c_level_writes(capfd):
    with startup.silenced_stderr_fd():
        os.write(2, b"from C\n")
        print("from Python", file=sys.__stderr__)  # sys.stderr, outside pytest
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"


def test_silenced_stderr_fd_replays_what_it_hid_on_failure(capfd):
    with pytest.raises(ImportError):
        with startup.silenced_stderr_fd():
            os.write(2, b"why the import failed\n")
            raise ImportError("no tensorflow")
    assert capfd.readouterr().err == "why the import failed\n"


def test_quiet_start_sets_the_log_level_unless_verbose(monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    startup.quiet_start(verbose=True)
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    startup.quiet_start()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"


def test_quiet_start_keeps_absl_warnings_out(caplog):
    from absl import logging as absl_logging

    before = absl_logging.get_verbosity()
    try:
        startup.quiet_start(verbose=True)
        assert absl_logging.get_verbosity() == before
        startup.quiet_start()
        absl_logging.warning("routine tensorflow-datasets chatter")
        absl_logging.error("a real error")
    finally:
        absl_logging.set_verbosity(before)
    assert "chatter" not in caplog.text and "a real error" in caplog.text


def test_an_error_is_exactly_one_line_in_a_clean_environment(tmp_path, cli_imports_lazily):
    missing = tmp_path / "no-such-folder"
    result = _cli("explain", "--run", missing, "mnist:test:0", "--out", tmp_path / "o")
    assert result.returncode == 2
    assert result.stderr == (
        f"siamese-xai: error: `path` must be a run folder. Received: path={str(missing)!r} (not a folder)\n"
    )
    assert result.stdout == ""


def test_verbose_shows_tensorflow_start_up_and_the_traceback(tmp_path, cli_imports_lazily):
    result = _cli("--verbose", "explain", "--run", tmp_path / "no-such-folder", "mnist:test:0",
                  "--out", tmp_path / "o")
    assert result.returncode == 2
    assert CPP_LOG_LINE.search(result.stderr), result.stderr
    assert "Traceback" in result.stderr
    assert result.stderr.endswith("(not a folder)\n")


def test_a_normal_command_prints_only_its_result(tiny_run, tmp_path, cli_imports_lazily):
    run_dir, _ = tiny_run
    result = _cli("explain", "--run", run_dir, "mnist:test:0", "--n", "100", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mnist-test-0: SNN class"), result.stdout


def test_quiet_start_keeps_tensorflow_python_warnings_out():
    import logging

    import tensorflow as tf

    logger = tf.get_logger()
    before = logger.level
    try:
        logger.setLevel(logging.WARNING)
        startup.quiet_start(verbose=True)
        assert logger.level == logging.WARNING
        startup.quiet_start()
        assert not logger.isEnabledFor(logging.WARNING) and logger.isEnabledFor(logging.ERROR)
    finally:
        logger.setLevel(before)


def test_scripts_start_quietly_through_the_runner():
    # benchmarks/speed/bench_speed.py imports TensorFlow at the top, so even --help passes through its start-up
    proc = subprocess.run([sys.executable, "-m", "siamese_xai.startup", str(ROOT / "benchmarks" / "speed" / "bench_speed.py"),
                           "--help"], env=_clean_env(), capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("usage: bench_speed.py")
    assert not CPP_LOG_LINE.search(proc.stderr) and "absl::InitializeLog" not in proc.stderr, proc.stderr


def test_the_runner_refuses_a_missing_script(capsys):
    with pytest.raises(ValueError, match="no such file"):
        startup.run_quietly(["reproduce/no_such_script.py"])
    with pytest.raises(ValueError, match="argv"):
        startup.run_quietly([])


def test_the_makefile_runs_every_script_through_the_runner():
    recipes = [line.strip() for line in (ROOT / "Makefile").read_text().splitlines() if line.startswith("\t")]
    scripts = [line for line in recipes if "reproduce" in line or "benchmarks" in line or "$<" in line]
    assert scripts and all(line.startswith("$(RUN_PY) ") for line in scripts), scripts
    # reproduce and benchmarks are packages: their scripts run as modules, from the project root
    assert all(line.startswith(("$(RUN_PY) -m reproduce.", "$(RUN_PY) -m benchmarks.", "$(RUN_PY) -m tools.")) for line in scripts), scripts
    assert "RUN_PY := $(PY) -m siamese_xai.startup" in (ROOT / "Makefile").read_text()
