"""A quiet TensorFlow start-up for the command line.

On a CPU machine `import tensorflow` (2.21) and the first device query print
six to nine lines to the C-level stderr, none of which the user can act on:

| line | emitted by | silenced by |
|---|---|---|
| `WARNING: All log messages before absl::InitializeLog() is called are written to STDERR` | absl's C++ log, the first time it logs before `absl::InitializeLog()`; once per copy of absl: in `libtensorflow_framework.so.2` and again in `tensorflow/python/profiler/internal/_pywrap_profiler_plugin.so`, which links its own | only by redirecting file descriptor 2 (absl ignores `TF_CPP_MIN_LOG_LEVEL` before `InitializeLog`) |
| `I... port.cc:153] oneDNN custom operations are on ...` | a static initialiser of the same two libraries | fd 2 redirection; `TF_ENABLE_ONEDNN_OPTS=0` would also hide it but changes the numerics (measured: 2,435 of 51,456 encoder/decoder outputs differ, by up to 1.2e-7), so it is not used |
| `I... cudart_stub.cc:31] Could not find cuda drivers ...` | the same two libraries, `dlopen("libcudart.so.12")` at load time | fd 2 redirection only |
| `I... cpu_feature_guard.cc:227] This TensorFlow binary is optimized ...` (two lines) | `tensorflow/python/platform/_pywrap_cpu_feature_guard.so`, imported by `import tensorflow` | `TF_CPP_MIN_LOG_LEVEL >= 1`, or fd 2 redirection |
| `E... cuda_platform.cc:52] failed call to cuInit ...` | the CUDA StreamExecutor platform, on the first device query (e.g. `tf.config.list_physical_devices()`) | `TF_CPP_MIN_LOG_LEVEL >= 3` (which would hide real errors too), or fd 2 redirection during the query |

These C++ lines bypass Python's `sys.stderr`, so `quiet_start` points file
descriptor 2 at a temporary file while TensorFlow is imported and its devices
are listed, then restores it; if the import fails, what was captured is
written back so that the cause is not lost. It also sets
`TF_CPP_MIN_LOG_LEVEL=2` (unless set already) for the rest of the process,
which hides TensorFlow's C++ INFO and WARNING lines but keeps its errors,
and lowers absl's Python logger to errors: tensorflow-datasets warns through
it on routine events (`WARNING:absl:Variant folder .../fashion_mnist/3.0.1
has no dataset_info.json` before its own, clearer, "not found" error).

The reproduction and benchmark scripts start the same way when run through
this module (what the Makefile does):

    python -m siamese_xai.startup -m reproduce.train --out runs/paper
    python -m siamese_xai.startup benchmarks/some_script.py --flag
"""

from __future__ import annotations

import contextlib
import os
import runpy
import sys
import tempfile


def _flush_stderr():
    for stream in (sys.stderr, sys.__stderr__):  # they differ under pytest's capture
        if stream is not None:
            stream.flush()


@contextlib.contextmanager
def silenced_stderr_fd():
    """Sends everything written to file descriptor 2 to a temporary file.

    Catches C and C++ writes as well as Python's `sys.stderr`. On an
    exception the captured bytes are written back to the real stderr before
    the exception propagates.
    """
    _flush_stderr()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            _flush_stderr()
            os.dup2(saved, 2)
            os.close(saved)
            if failed:
                sink.seek(0)
                os.write(2, sink.read())


def quiet_start(verbose: bool = False) -> None:
    """Imports TensorFlow without its start-up chatter (see the module docstring).

    Call it before anything imports TensorFlow (Keras, tensorflow-datasets or
    this package's modules other than `cli`); once TensorFlow is imported the
    load-time lines have been printed and this cannot take them back.

    Args:
        verbose: if true, change nothing, so that every line is shown.
    """
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with silenced_stderr_fd():
        import tensorflow as tf

        tf.config.list_physical_devices()  # the CUDA platform's cuInit error comes here
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.ERROR)
    # TensorFlow's Python warnings (e.g. "5 out of the last 9 calls ... triggered tf.function retracing",
    # which training on a small image folder prints: the last batch of each epoch has another shape)
    # are advice for developers, not results; --verbose shows them.
    tf.get_logger().setLevel("ERROR")


def warning_as_sentence(message, category, filename, lineno, file=None, line=None):
    """A `warnings.showwarning` for the command line: the message as one line, without the raising file's path."""
    text = " ".join(str(message).split())
    print(f"siamese-xai: note: {text}", file=file or sys.stderr)


def run_quietly(argv) -> None:
    """Runs a script (or `-m MODULE`) as `__main__` after a quiet TensorFlow start-up.

    The script sees `sys.argv` as if it had been run directly, and its folder
    is first on `sys.path` (as `python script.py` would put it), so it runs
    unchanged; only TensorFlow's start-up lines are gone. The environment
    variable `SIAMESE_XAI_VERBOSE=1` shows them.

    Args:
        argv: `[SCRIPT, *args]` or `["-m", MODULE, *args]`.

    Raises:
        ValueError: `argv` names no script or module, or the script does not exist.
    """
    argv = list(argv)
    if not argv or argv[0] == "-m" and len(argv) < 2:
        raise ValueError(f"`argv` must be [SCRIPT, ARGS...] or ['-m', MODULE, ARGS...]. Received: argv={argv!r}")
    if argv[0] != "-m" and not os.path.isfile(argv[0]):
        raise ValueError(f"`argv` must start with a script file. Received: {argv[0]!r} (no such file)")
    quiet_start(verbose=bool(os.environ.get("SIAMESE_XAI_VERBOSE")))
    if argv[0] == "-m":
        sys.argv = [argv[1], *argv[2:]]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = argv
        sys.path[0] = os.path.dirname(os.path.abspath(argv[0]))
        runpy.run_path(argv[0], run_name="__main__")


if __name__ == "__main__":
    try:
        run_quietly(sys.argv[1:])
    except ValueError as err:
        print(f"python -m siamese_xai.startup: error: {err}", file=sys.stderr)
        sys.exit(2)
