"""`explain-split --runner beam` against the one-process run on the MNIST test set: same folder, both times.

    .venv/bin/python -m benchmarks.speed.beam_split --run runs/paper --work runs/beam_split [--limit K]

Runs the command line twice into two folders, `WORK/local` (`--runner local`)
and `WORK/beam` (`--runner beam`: the DirectRunner, multi-processing, one
worker process per core), each timed from the start of the command to its end
(TensorFlow's start-up and, for Beam, the workers' included), with the load
average before and after (the 2-core machine is often shared). Then compares
the two folders file by file: the manifests as JSON, every array of every
shard for equal dtype, shape and bytes. The verdict `same_folder_content` is
true only when every file and array is equal. Writes
`benchmarks/speed/beam_split.json` and, with `--report`, the gallery of the Beam
folder (`WORK/beam/report.html`). The paper's defaults (N = 5000): about 3-4
minutes per run on the 2-core machine when it is quiet.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def _timed(cmd):
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return {"command": " ".join(cmd[2:]), "seconds": round(seconds, 1), "stdout": proc.stdout.strip()[-300:],
            "load_average_before": [round(v, 2) for v in load_before],
            "load_average_after": [round(v, 2) for v in os.getloadavg()]}


def compare_folders(a: Path, b: Path) -> dict:
    """Every file of two explain-split folders: equal names, equal manifests, arrays equal in dtype, shape and bytes."""
    names_a = sorted(p.name for p in a.iterdir() if not p.name.startswith("report"))
    names_b = sorted(p.name for p in b.iterdir() if not p.name.startswith("report"))
    differences, arrays = [], 0
    if names_a != names_b:
        differences.append(f"files differ: {sorted(set(names_a) ^ set(names_b))}")
    for name in sorted(set(names_a) & set(names_b)):
        if name.endswith(".json"):
            if json.loads((a / name).read_text()) != json.loads((b / name).read_text()):
                differences.append(f"{name} differs")
            continue
        with np.load(a / name) as fa, np.load(b / name) as fb:
            if sorted(fa.files) != sorted(fb.files):
                differences.append(f"{name}: fields differ")
                continue
            for k in fa.files:
                x, y = fa[k], fb[k]
                arrays += 1
                if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
                    differences.append(f"{name}:{k} differs")
    return {"files": len(names_a), "arrays_compared": arrays, "differences": differences,
            "same_folder_content": not differences and names_a == names_b}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/paper")
    parser.add_argument("--work", default="runs/beam_split")
    parser.add_argument("--limit", type=int, help="only the first K test images (default: all 10,000)")
    parser.add_argument("--report", action="store_true", help="write the Beam folder's gallery too")
    parser.add_argument("--out", default=str(Path(__file__).with_name("beam_split.json")))
    args = parser.parse_args()

    work = Path(args.work)
    for runner in ("local", "beam"):
        shutil.rmtree(work / runner, ignore_errors=True)  # both timed from an empty folder
    base = [sys.executable, "-m", "siamese_xai.cli", "explain-split", "--run", args.run, "--split", "test", "--quiet"]
    if args.limit:
        base += ["--limit", str(args.limit)]
    runs = {}
    for runner in ("local", "beam"):
        runs[runner] = _timed(base + ["--out", str(work / runner), "--runner", runner])
        print(runner, runs[runner], flush=True)
    comparison = compare_folders(work / "local", work / "beam")
    print(comparison, flush=True)

    from siamese_xai import files

    results = {"cpus": os.cpu_count(), "images": args.limit or 10000, **runs, "comparison": comparison}
    if args.report:
        from siamese_xai.scale import gallery as report

        t0 = time.perf_counter()
        report.write_report(work / "beam")
        results["report_seconds"] = round(time.perf_counter() - t0, 1)
    files.write_json(args.out, results)


if __name__ == "__main__":
    main()
