"""Explaining one image with `mc` (N = 5000): peak resident memory and seconds at 28, 96 and 224 px.

Commands:

    python -m siamese_xai.startup -m benchmarks.speed.explain_memory run            # make explain-memory
    python -m siamese_xai.startup -m benchmarks.speed.explain_memory one --size 96  # one measurement, JSON on stdout

`run` starts one child process per (size, memory budget) so that each peak
is that explanation's alone, and writes `benchmarks/speed/explain_memory.json`.
Each child builds the networks `siamese-xai train` builds for the size
(`siamese_xai.training.models.build_for_images`: Table 1's networks at 28 px,
the photo tower and decoder from 48 px), randomly initialised (seeded):
the memory and time of `mc` depend on the decoder's shapes, not on its
weights. The prototypes are the mean embeddings of 5 classes of 10 random
images each. The child then explains one random image with
`ExplainConfig(n_perturbations=5000)` twice: `first_seconds` includes the
trace of the graph, `seconds` is the second call (what each further image
costs); `peak_rss_gb` is the child's `ru_maxrss` at the end (the process's
peak, TensorFlow and the networks included), `base_rss_gb` the resident
memory before the first explanation.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).with_name("explain_memory.json")
SIZES = (28, 96, 224)
TARGETS = {"96": {"seconds": 2.0, "peak_rss_gb": 2.0}, "224": {"peak_rss_gb": 4.0}}


def _rss_gb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e9


def measure(size: int, budget_mb: float | None, n: int = 5000, seed: int = 0, block_mb: float | None = None) -> dict:
    """One explanation of one random `size` px image with mc (N = n), in this process (module docstring).

    `block_mb`: the split at the kinks sums its draws in blocks of this many MiB instead of
    `siamese_xai.decoding.kinks.BLOCK_BYTES` (a comparison; the result is the same to float32 precision).
    """
    import numpy as np

    from siamese_xai.config import ExplainConfig
    from siamese_xai.decoding import kinks
    from siamese_xai.explainers.siamese import SiameseExplainer
    from siamese_xai.training import models

    import keras

    if block_mb is not None:
        kinks.BLOCK_BYTES = int(block_mb * 2**20)
    keras.utils.set_random_seed(seed)
    shape = (28, 28, 1) if size == 28 else (size, size, 3)
    tower, _, decoder = (build(20, image_shape=shape) for build in models.build_for_images(shape))
    rng = np.random.default_rng(seed)
    x = rng.random((50, *shape), dtype=np.float32)
    y = np.repeat(np.arange(5), 10)
    options = {} if budget_mb is None else {"memory_budget": int(budget_mb * 2**20)}
    explainer = SiameseExplainer.from_data(tower, decoder, x, y, ExplainConfig(n_perturbations=n), **options)
    image = rng.random(shape, dtype=np.float32)
    base = _rss_gb()
    t0 = time.perf_counter()
    explainer.explain(image, seed=0)
    t1 = time.perf_counter()
    e = explainer.explain(image, seed=1)
    t2 = time.perf_counter()
    return {
        "size": size, "image_shape": list(shape), "n_perturbations": n,
        "memory_budget_mb": budget_mb, "chunk_size": explainer.chunk_size, "kink_block_mb": kinks.BLOCK_BYTES / 2**20,
        "kink_block_rows": None if explainer.decoder_evaluation.kinks is None else
        min(explainer.chunk_size, explainer.decoder_evaluation.kinks.block_rows(1)),
        "decoder_mode": explainer.decoder_evaluation.mode, "decoder_fused": explainer.decoder_fused,
        "first_seconds": round(t1 - t0, 3), "seconds": round(t2 - t1, 3),
        "base_rss_gb": round(base, 3),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9, 3),
        "mask_pixels": int(e.mask.sum()),
    }


def _child(size, budget_mb, timeout=1800, block_mb=None) -> dict:
    cmd = [sys.executable, "-m", "siamese_xai.startup", "-m", "benchmarks.speed.explain_memory", "one", "--size", str(size)]
    if budget_mb is not None:
        cmd += ["--budget-mb", str(budget_mb)]
    if block_mb is not None:
        cmd += ["--block-mb", str(block_mb)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        return {"size": size, "memory_budget_mb": budget_mb, "error": done.stderr.strip().splitlines()[-3:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(sizes, budgets, out=OUT, compare_block_mb=None, rounds: int = 2) -> dict:
    """Measures every size under every budget (None: the explainer's default) and writes `out`.

    With `compare_block_mb`, 96 px under the default budget is measured `rounds` times more, alternating: with the
    kink blocks of that size (`compare`: 1024 MiB sums the chunk's 1000 draws at once, as before
    `siamese_xai.decoding.kinks.BLOCK_BYTES`) and with the default blocks (`default`), one child each.
    """
    result = {"cpus": os.cpu_count(), "load_before": round(os.getloadavg()[0], 2), "targets": TARGETS,
              "networks": "build_for_images, randomly initialised (seed 0)", "measurements": []}
    for size in sizes:
        for budget in budgets:
            m = _child(size, budget)
            print(json.dumps(m), flush=True)
            result["measurements"].append(m)
    if compare_block_mb is not None:
        result["block_comparison"] = {"size": 96, "compare_block_mb": compare_block_mb, "compare": [], "default": []}
        for _ in range(rounds):
            for key, block in (("compare", compare_block_mb), ("default", None)):
                m = _child(96, None, block_mb=block)
                print(json.dumps(m), flush=True)
                result["block_comparison"][key].append(m)
    result["load_after"] = round(os.getloadavg()[0], 2)
    met = {}
    for m in result["measurements"]:
        want = TARGETS.get(str(m["size"]))
        if want and m.get("memory_budget_mb") is None and "error" not in m:
            met[str(m["size"])] = {k: m[k] <= v for k, v in want.items()}
    result["met"] = met
    tmp = Path(out).with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    tmp.replace(out)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(prog="benchmarks.speed.explain_memory", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("one", help="one measurement in this process; JSON on stdout")
    one.add_argument("--size", type=int, required=True)
    one.add_argument("--budget-mb", type=float, default=None)
    one.add_argument("--n", type=int, default=5000)
    one.add_argument("--block-mb", type=float, default=None, help="the kink blocks' size instead of the default")
    many = sub.add_parser("run", help="every size and budget, each in a child process; writes the JSON")
    many.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    many.add_argument("--budgets-mb", type=float, nargs="*", default=[],
                      help="budgets besides the default (always measured)")
    many.add_argument("--out", type=Path, default=OUT)
    many.add_argument("--compare-block-mb", type=float, default=None,
                      help="also measure 96 px with kink blocks of this size, alternating with the default")
    many.add_argument("--compare-rounds", type=int, default=2, help="children per kind of block in the comparison")
    args = parser.parse_args(argv)
    if args.command == "one":
        print(json.dumps(measure(args.size, args.budget_mb, args.n, block_mb=args.block_mb)))
    else:
        run(args.sizes, [None, *args.budgets_mb], args.out, args.compare_block_mb, args.compare_rounds)


if __name__ == "__main__":
    main()
