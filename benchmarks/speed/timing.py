"""Timing shared by the speed benchmarks: medians of functions timed in interleaved rounds."""

from __future__ import annotations

import time

import numpy as np


def interleaved(fns, repeats, warmup=1):
    """Median ms of each function, timed in rounds (one call of each per round) so that load affects all alike.

    Args:
        fns: `{name: callable}`, each called with no arguments.
        repeats: rounds timed.
        warmup: untimed calls of each function first.

    Returns:
        `{name: median milliseconds}`.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    return {k: 1e3 * float(np.median(v)) for k, v in times.items()}
