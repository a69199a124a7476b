"""One line naming the machine a result was measured on, for the JSON files the scripts write."""

from __future__ import annotations

import os
import platform


def machine_description() -> str:
    """One line naming the machine: CPU, cores, OS, Python and TensorFlow versions."""
    import tensorflow as tf

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            names = [line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")]
        if names:
            cpu = names[0]
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, TensorFlow {tf.__version__}"
    )
