"""What each speed change of the reproduction buys, measured as ratios in one run.

Command (from the project root, after `make reproduce` has trained runs/paper):

    .venv/bin/python -m benchmarks.speed.bench_reproduce --run runs/paper

Run time: about 3 minutes on a quiet 2-core CPU. Writes
`benchmarks/speed/reproduce_speed.json` (atomically) with, per change:

- `jit_compile`: the median time per train step of each stage (snn,
  autoencoder, decoder) with and without XLA (`Stage.jit_compile`), at the
  paper's batch size, the two variants one after the other in this process
  (`--rounds` interleaves them more often, for a machine shared with other work); and whether one epoch of each stage
  from the same seed ends with the same weights both ways (max |difference|).
- `one_process_figures`: the wall time one figure script spends before its
  figure (a Python process importing TensorFlow and loading the run, MNIST and
  the selection summary, measured in a subprocess); reproduce/figures.py pays
  it once instead of nine times.
- `retracing`: the tf.function retracing warnings printed while three
  explainers are built and explain one image each (the figure scripts printed
  "5 out of the last 5 calls to _relu_delta triggered tf.function retracing").
- `readme_example`: the wall time of the README's own-network example as
  written (2,000 images, one epoch per stage), and its train steps against
  those of the paper's schedule on 60,000 images (the former example).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[2]

import keras  # noqa: E402
import numpy as np  # noqa: E402

from siamese_xai import files
from siamese_xai.data import mnist as data
from siamese_xai.training import loop
from siamese_xai.explainers.prototypes import embed_in_batches  # noqa: E402
from siamese_xai.training import stages as training  # noqa: E402
from siamese_xai.config import TrainConfig  # noqa: E402


def train_step_times(x, y, steps: int, rounds: int = 1) -> dict:
    """Median seconds per train step of each stage with and without XLA, interleaved; and the weights' agreement."""
    n = steps * 128
    x, y = x[:n], y[:n]
    config = TrainConfig(train_limit=n)
    times, weights = {}, {}

    def fit_with(jit):
        def fit(stage, *args, **kwargs):
            stamps = []
            loop.fit(dataclasses.replace(stage, jit_compile=jit, epochs=1), None, None, 10**9, 0,
                     lambda step, values: stamps.append(time.perf_counter()))
            # the first steps trace (and with XLA compile); the rest are the steady state
            times.setdefault(stage.name, {}).setdefault(jit, []).append(float(np.median(np.diff(stamps[4:]))))
            weights.setdefault(stage.name, {})[jit] = [v.numpy().copy() for v in stage.variables]
        return fit

    for _ in range(rounds):
        for jit in (False, True):
            training.fit = fit_with(jit)
            snn = training.train_siamese(x, y, config, verbose=0)
            h = embed_in_batches(snn, x, 1000)
            _, decoder = training.train_autoencoder(x, h, config, verbose=0)
            training.finetune_decoder(decoder, x, h, config, verbose=0)
    training.fit = loop.fit
    out = {}
    for name, by_jit in times.items():
        off, on = float(np.median(by_jit[False])), float(np.median(by_jit[True]))
        diff = max(float(np.abs(a - b).max()) for a, b in zip(weights[name][False], weights[name][True]))
        out[name] = {"ms_per_step_without_xla": round(1e3 * off, 2), "ms_per_step_with_xla": round(1e3 * on, 2),
                     "ratio_with_to_without": round(on / off, 3), "max_abs_weight_difference_after_one_epoch": diff}
    return {"steps_per_stage": steps, "batch_size": 128, "rounds": rounds, "stages": out}


def figure_process_overhead(run_dir) -> dict:
    """Seconds a fresh process needs to import TensorFlow and load `paper.PaperRun` (each figure script's start)."""
    code = f"from reproduce import paper; paper.PaperRun({str(Path(run_dir).resolve())!r})"
    t = time.perf_counter()
    # run from the project root, where `python -c` finds the reproduce package
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    seconds = time.perf_counter() - t
    scripts = 9  # fig4-fig9, fig9_contrast, sq_grid, convergence
    return {"seconds_per_process": round(seconds, 1), "scripts": scripts,
            "seconds_saved_by_one_process": round((scripts - 1) * seconds, 1)}


def retracing_warnings(run_dir) -> dict:
    """Counts TensorFlow's retracing warnings while three explainers of the run are built and used."""
    import tensorflow as tf

    from siamese_xai.explainers.siamese import SiameseExplainer

    messages = []

    class Collect(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    handler = Collect()
    tf.get_logger().addHandler(handler)
    try:
        x, _ = data.load_mnist("test")
        t = time.perf_counter()
        for i in range(3):
            SiameseExplainer.from_run(run_dir).explain(x[i])
        seconds = time.perf_counter() - t
    finally:
        tf.get_logger().removeHandler(handler)
    return {"warnings": sum("retracing" in m for m in messages), "seconds_three_explainers": round(seconds, 1)}


def readme_example(run_dir, x, y) -> dict:
    """The README's own-network example as written, timed; and its train steps against the former example's."""
    from siamese_xai import fit_explainer

    f = keras.models.load_model(Path(run_dir) / "snn.keras", compile=False)
    quick = TrainConfig.tiny(embedding_dim=f.output_shape[-1])
    t = time.perf_counter()
    fit_explainer(f, x[:2000], y[:2000], quick, verbose=0)
    seconds = time.perf_counter() - t
    paper = TrainConfig.paper()
    steps = lambda n, c: sum(-(-n // s.batch_size) * s.epochs for s in (c.autoencoder, c.decoder))
    return {"seconds": round(seconds, 1), "train_steps": steps(2000, quick),
            "train_steps_former_example": steps(len(x), paper),
            "step_ratio_former_to_now": round(steps(len(x), paper) / steps(2000, quick), 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/paper", help="a trained run folder")
    parser.add_argument("--steps", type=int, default=24, help="train steps per stage and variant")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of (without XLA, with XLA)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "speed" / "reproduce_speed.json"))
    args = parser.parse_args()
    x, y = data.load_mnist("train")
    t0 = time.perf_counter()
    record = {
        "jit_compile": train_step_times(x, y, args.steps, args.rounds),
        "one_process_figures": figure_process_overhead(args.run),
        "retracing": retracing_warnings(args.run),
        "readme_example": readme_example(args.run, x, y),
        "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
        "seconds": round(time.perf_counter() - t0, 1),
    }
    files.write_json(args.out, record)
    print(record)


if __name__ == "__main__":
    main()
