"""Test hook: Python imports this at start-up when this folder is on PYTHONPATH.

It lets `tests/test_training.py` SIGKILL a real `python -m siamese_xai.cli train`
process at a known training step instead of racing it (conftest's
`stop_and_kill` sends the SIGKILL). It acts only when one of these is set:

    SIAMESE_XAI_STOP_AT="STAGE:STEP"   after global step STEP of stage STAGE
        (before that step's checkpoint, if it has one), the process stops
        itself with SIGSTOP; the test sees it stopped and kills it.
    SIAMESE_XAI_STEP_LOG=PATH          appends "STAGE STEP" to PATH for every
        step the process trains: a count of the steps run that does not rely
        on the training loop's own bookkeeping.
"""

import os

_STOP_AT = os.environ.get("SIAMESE_XAI_STOP_AT")
_STEP_LOG = os.environ.get("SIAMESE_XAI_STEP_LOG")


def _install():
    import inspect
    import signal

    from siamese_xai.training import stages as training

    real_fit = training.fit
    signature = inspect.signature(real_fit)
    stage_name, _, step = (_STOP_AT or "::").partition(":")
    stop_at = (stage_name, int(step)) if _STOP_AT else None

    def fit(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        name = bound.arguments["stage"].name
        on_step = bound.arguments.get("on_step")

        def hooked(global_step, values):
            if on_step is not None:
                on_step(global_step, values)
            if _STEP_LOG:
                fd = os.open(_STEP_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
                os.write(fd, f"{name} {global_step}\n".encode())
                os.close(fd)
            if (name, global_step) == stop_at:
                os.kill(os.getpid(), signal.SIGSTOP)

        bound.arguments["on_step"] = hooked
        return real_fit(*bound.args, **bound.kwargs)

    training.fit = fit


if _STOP_AT or _STEP_LOG:
    _install()
