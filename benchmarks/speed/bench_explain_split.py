"""Times `siamese-xai explain-split` (siamese_xai.scale.shards.explain_split) on the MNIST test set.

    .venv/bin/python -m benchmarks.speed.bench_explain_split [--run runs/paper] [--mc-images 1000] [--methods mc,linear]

Explains the first `--mc-images` test images with `estimator="mc"` (N = 5000,
the exact change; the 10,000-image time is extrapolated from them when fewer
are run, and the JSON says so) and all 10,000 with `estimator="linear"`, with the
paper's defaults (s = 5, q = 100), shards of 500 images, batches of 32, into
a temporary folder. The load average before and after each method is
recorded, since the 2-core machine is often shared. Writes
`benchmarks/speed/explain_split.json`. Under a minute per 1000 `mc` images on the
2-core machine, even when it is shared (the exact change as sources split at
the ReLU kinks; carried through every layer it took about 2 minutes quiet).
"""

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/paper")
    parser.add_argument("--mc-images", type=int, default=1000)
    parser.add_argument("--methods", default="mc,linear", help="comma-separated, from mc and linear")
    parser.add_argument("--out", default=str(Path(__file__).with_name("explain_split.json")))
    args = parser.parse_args()

    import tensorflow as tf

    from siamese_xai import ExplainConfig, SiameseExplainer, files, load_mnist
    from siamese_xai.scale.shards import explain_split

    x, y = load_mnist("test")
    results = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, TensorFlow {tf.__version__}"}
    counts = {"mc": min(args.mc_images, len(x)), "linear": len(x)}
    for method in args.methods.split(","):
        count = counts[method]
        explainer = SiameseExplainer.from_run(args.run, ExplainConfig(estimator=method))
        with tempfile.TemporaryDirectory() as warm:
            explain_split(explainer, x[:64], warm, verbose=0)  # warm-up: tracing
        load_before = os.getloadavg()
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            explain_split(explainer, x[:count], out, labels=y[:count], shard_size=500, batch_size=32, verbose=0)
            seconds = time.perf_counter() - t0
        results[method] = {
            "images_timed": count,
            "seconds": round(seconds, 1),
            "ms_per_image": round(1000 * seconds / count, 2),
            "seconds_for_10000": round(seconds * 10000 / count, 1),
            "scaled": count != 10000,
            "n_perturbations": explainer.config.n_perturbations,
            "decoder_exact": explainer.decoder_exact,
            "load_average_before": [round(v, 2) for v in load_before],
            "load_average_after": [round(v, 2) for v in os.getloadavg()],
        }
        print(method, results[method], flush=True)
    files.write_json(args.out, results)


if __name__ == "__main__":
    main()
