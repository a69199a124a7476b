"""Photo-sized images: training time, peak memory, accuracy and g(f(x)) error at 96x96 and 224x224 RGB.

Commands:

    python -m siamese_xai.startup -m benchmarks.speed.photos make-data DIR --size 96
    python -m siamese_xai.startup -m benchmarks.speed.photos run --work runs/photos --sizes 96 224   # make photos
    python -m siamese_xai.startup -m benchmarks.speed.photos figure   # docs/photos.png from runs/photos/train-96
    python -m siamese_xai.startup -m benchmarks.speed.photos ceiling  # the decoder's ceiling, into photos.json

`make-data` writes a class-folder tree a user would train on
(`siamese-xai train --data-dir DIR --out RUN`): DIR/train/<class>/NNNNN.png
(600 per class) and DIR/test/<class>/NNNNN.png (100 per class) for the five
classes of `siamese_xai.evaluation.synthetic.PHOTO_CLASSES` (an object of one of five
kinds at a random place, size and colour on a coloured, noisy background),
and DIR/masks.npz, each image's object mask (`train`, `test`: the masks in
the order of the sorted file paths, bit-packed by `numpy.packbits` along the
last axis; `train_paths`, `test_paths`). The images are drawn from seeds,
so the tree is the same on every machine: the repository keeps this
generator, not the images.

`run` makes the tree for each size, then, in this process:

- `train`: `siamese-xai train --data-dir DIR --out RUN --force` in a child
  process, as a user runs it (no other flag: the defaults for the size);
- `fit`: a tower trained with plain Keras (`model.fit`, cross-entropy over
  the classes through a Dense head, then the head dropped) and
  `siamese_xai.training.fitting.fit_explainer` on it, as `siamese-xai fit` runs it;

and writes `benchmarks/speed/photos.json`: per size and path, each stage's seconds
and peak resident memory (sampled every 0.1 s), the process's peak, the
nearest-prototype test accuracy, g(f(x))'s squared error against each
class's mean image, the load average before, during (min, mean, max of the
1-minute load sampled with the memory) and after, and whether each
target of docs/photos.md was met. Run time: 11 minutes for 96 px (`--paths
train`) on 2 CPU cores shared with other jobs (load average 8); 224 px takes
several times longer.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path

import numpy as np

PER_CLASS = {"train": 600, "test": 100}
OUT = Path(__file__).with_name("photos.json")
TARGETS = {"accuracy": 0.95, "train_seconds": 300, "peak_rss_gb": 3.0, "decoder_to_class_mean": 0.5}


def make_data(folder, size: int, seed: int = 0, per_class=None) -> Path:
    """Writes the class-folder tree (module docstring); an existing complete tree is kept."""
    from PIL import Image

    from siamese_xai.evaluation import synthetic

    per_class = per_class or PER_CLASS
    folder = Path(folder)
    if (folder / "masks.npz").exists():
        return folder
    names = synthetic.PHOTO_CLASSES
    masks = {}
    for s, (split, n) in enumerate(per_class.items()):
        total = n * len(names)
        labels = synthetic.balanced_labels(np.random.default_rng([seed, s]), total, len(names))
        found = []
        for i, k in enumerate(labels):
            image, mask = synthetic.photo_image(int(k), size, np.random.default_rng([seed, s, i]))
            path = folder / split / names[k] / f"{i:05d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image, "RGB").save(path)
            found.append((str(path.relative_to(folder)), mask))
        found.sort()
        masks[f"{split}_paths"] = np.array([p for p, _ in found])
        masks[split] = np.packbits(np.stack([m for _, m in found]), axis=-1)
    np.savez_compressed(folder / "masks.npz", **masks)
    return folder


class Memory:
    """A process's resident memory (this one's by default), sampled every 0.1 s, and its peak per named stage."""

    def __init__(self, pid="self"):
        self.status = f"/proc/{pid}/status"
        self.stage, self.peaks, self.peak, self.loads = "load", {}, 0, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def rss(self):
        try:
            with open(self.status) as fh:
                return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmRSS:"))
        except (OSError, StopIteration):  # the process has ended
            return 0

    def _sample(self):
        while not self._stop.wait(0.1):
            self.note()

    def note(self):
        rss = self.rss()
        self.loads.append(os.getloadavg()[0])  # the machine's 1-minute load average, other jobs included
        self.peak = max(self.peak, rss)
        self.peaks[self.stage] = max(self.peaks.get(self.stage, 0), rss)

    def during(self, name, fn):
        def wrapped(*args, **kwargs):
            self.note()
            self.stage = name
            try:
                return fn(*args, **kwargs)
            finally:
                self.note()
                self.stage = "evaluate"
        return wrapped

    def stop(self):
        self._stop.set()
        self._thread.join()
        loads = self.loads or [os.getloadavg()[0]]
        return {"peak_rss_gb": round(self.peak / 2**30, 3),
                "peak_rss_gb_by_stage": {k: round(v / 2**30, 3) for k, v in self.peaks.items()},
                "load_during": {"min": round(min(loads), 2), "mean": round(sum(loads) / len(loads), 2),
                                "max": round(max(loads), 2)}}


def _marked(memory):
    """Marks the training stages in `siamese_xai.training.stages` (fit_explainer calls them there)."""
    from siamese_xai.training import stages as training

    originals = {name: getattr(training, name) for name in ("train_autoencoder", "finetune_decoder")}
    for (name, fn), stage in zip(originals.items(), ("autoencoder", "decoder")):
        setattr(training, name, memory.during(stage, fn))
    return lambda: [setattr(training, name, fn) for name, fn in originals.items()]


def bench_train(data_dir, run_dir) -> dict:
    """`siamese-xai train --data-dir DIR --out RUN --force` as a user runs it, in a child process.

    Its stages are told apart by the lines it prints (`[snn] epoch ...`); its
    resident memory is sampled from /proc, and `/usr/bin/time -v` (where
    there is one) gives the kernel's count of the peak.
    """
    import subprocess
    import sys

    from siamese_xai import files
    from siamese_xai.training import stages as training

    command = [sys.executable, "-m", "siamese_xai.cli", "train", "--data-dir", str(data_dir), "--out", str(run_dir),
               "--force"]
    timed = Path("/usr/bin/time").exists()
    t0 = time.perf_counter()
    child = subprocess.Popen((["/usr/bin/time", "-v"] if timed else []) + command, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    pid = child.pid
    if timed:  # sample the command, not /usr/bin/time
        children = Path(f"/proc/{child.pid}/task/{child.pid}/children")
        while child.poll() is None and not children.read_text().split():
            time.sleep(0.01)
        pid = int(children.read_text().split()[0])
    memory = Memory(pid)
    first = None
    for line in child.stdout:
        first = first or line.strip()
        for stage in ("snn", "autoencoder", "decoder"):
            if line.startswith(f"[{stage}] epoch"):
                memory.stage = stage
    err = child.stderr.read()
    code = child.wait()
    seconds = round(time.perf_counter() - t0, 1)
    said, _, report = err.partition("\tCommand being timed:")
    metrics = files.read_json(Path(run_dir) / "metrics.json")
    out = {"command": " ".join(["siamese-xai", *command[3:]]), "exit_code": code, "first_line": first,
           "last_line": said.strip().splitlines()[-1] if said.strip() else None, "seconds_total": seconds,
           "seconds_by_stage": metrics["seconds"], **memory.stop(), **_quality(metrics)}
    for line in report.splitlines():
        if "Maximum resident set size" in line:  # the kernel's count, without the sampling's gaps
            out["peak_rss_gb"] = round(int(line.split(":")[1]) * 1024 / 2**30, 3)
            out["peak_rss_source"] = "/usr/bin/time -v"
    out["problems"] = [sentence for _, sentence in training.diagnose(metrics, len(metrics["data"]["class_names"]))]
    return out


def _quality(metrics):
    keys = ("prototype_accuracy", "recon_sse_decoder", "recon_sse_class_mean_image", "recon_sse_autoencoder",
            "embedding_within_class_sq_spread", "embedding_between_class_sq_distance")
    out = {k: metrics[k] for k in keys}
    out["decoder_to_class_mean"] = round(metrics["recon_sse_decoder"] / metrics["recon_sse_class_mean_image"], 3)
    return out


def keras_tower(x, y, num_classes, epochs: int = 4):
    """A tower trained with plain Keras: the photo tower under a Dense softmax head, `model.fit`, head dropped."""
    import keras

    from siamese_xai.training import models

    keras.utils.set_random_seed(0)
    tower = models.build_photo_tower(20, name="user_tower", image_shape=x.shape[1:])
    model = keras.Sequential([tower, keras.layers.Dense(num_classes)])
    model.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=32, epochs=epochs, verbose=0)
    return tower


def bench_fit(data_dir, run_dir) -> dict:
    from siamese_xai.data import datasets
    from siamese_xai.training import defaults
    from siamese_xai.training import stages as training
    from siamese_xai.config import TrainConfig
    from siamese_xai.training.fitting import fit_explainer

    memory = Memory()
    x, y, names = datasets.load_dataset(data_dir, split="train")
    t0 = time.perf_counter()
    memory.stage = "keras_tower"
    tower = keras_tower(x, y, len(names))
    seconds = {"keras_tower": round(time.perf_counter() - t0, 1)}
    config, _ = defaults.for_images(TrainConfig.paper(), x.shape[1:], len(x))
    restore = _marked(memory)
    try:
        t1 = time.perf_counter()
        explainer = fit_explainer(tower, x, y, config, class_names=names, run_dir=run_dir, verbose=0)
        seconds["fit"] = round(time.perf_counter() - t1, 1)
    finally:
        restore()
    x_test, y_test, _ = datasets.load_dataset(data_dir, split="test")
    metrics = training.evaluate_embedding(tower, explainer.decoder, explainer.prototypes, x_test, y_test)
    out = {"seconds_total": round(time.perf_counter() - t0, 1), "seconds_by_stage": seconds, **memory.stop()}
    out.update({k: metrics[k] for k in metrics})
    out["decoder_to_class_mean"] = round(metrics["recon_sse_decoder"] / metrics["recon_sse_class_mean_image"], 3)
    out["problems"] = [sentence for _, sentence in training.diagnose(metrics, len(names))]
    return out


def knn_sse(x_test, x_train, d2, k: int) -> float:
    """Mean over the test images of the squared error of the mean of their k nearest training images.

    Args:
        x_test: `(n, H, W, C)`; x_train: `(m, H, W, C)`.
        d2: `(n, m)` the distances that say which training images are nearest (ties: lower index first).
    """
    near = np.argsort(d2, axis=1, kind="stable")[:, :k]
    flat = x_train.reshape(len(x_train), -1)
    errors = [np.sum((x_test[i].ravel() - flat[near[i]].mean(0)) ** 2) for i in range(len(x_test))]
    return float(np.mean(errors))


def _sq_distances(a, b):
    a, b = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    return (a * a).sum(1)[:, None] - 2 * a @ b.T + (b * b).sum(1)[None]


def ceiling(run_dir, data_dir, ks=(1, 5, 20)) -> dict:
    """How much of a test image f(x) can tell a decoder: the k-nearest-neighbour ceiling.

    For each test image, the mean of the k training images whose embeddings f are nearest to f(x) (a decoder
    of f(x) that looks the answer up in the training set), against the mean of the k training images nearest
    in pixels (what the same lookup gets when it sees the image itself), the training set's and the test
    set's class-mean image of x's class (the second is `train`'s `recon_sse_class_mean_image`) and g(f(x)).
    Squared error per image summed over pixels and channels, as `train` reports it, on the 500 test images.
    """
    from siamese_xai import runs
    from siamese_xai.data import datasets
    from siamese_xai.explainers import prototypes

    x, y, names = datasets.load_dataset(data_dir, split="train")
    xt, yt, _ = datasets.load_dataset(data_dir, split="test")
    snn, decoder = runs.load_model(run_dir, runs.SNN_FILE), runs.load_model(run_dir, runs.DECODER_FILE)
    h, ht = prototypes.embed_in_batches(snn, x, 256), prototypes.embed_in_batches(snn, xt, 256)
    rec = prototypes.embed_in_batches(decoder, ht, 256)
    sse = lambda a, b: float(np.mean(np.sum((a - b).reshape(len(a), -1) ** 2, axis=1)))  # noqa: E731
    train_means = np.stack([x[y == k].mean(0) for k in range(len(names))])
    test_means = np.stack([xt[yt == k].mean(0) for k in range(len(names))])
    d_f, d_x = _sq_distances(ht, h), _sq_distances(xt, x)
    out = {"test_images": int(len(xt)), "train_images": int(len(x)),
           "decoder": sse(xt, rec), "class_mean_train": sse(xt, train_means[yt]),
           "class_mean_test": sse(xt, test_means[yt]),
           "knn_embedding": {str(k): knn_sse(xt, x, d_f, k) for k in ks},
           "knn_pixels": {str(k): knn_sse(xt, x, d_x, k) for k in ks},
           "nearest_embedding_same_class": float(np.mean(y[np.argmin(d_f, axis=1)] == yt))}
    best = min(out["knn_embedding"].values())
    out["best_knn_embedding_to_class_mean"] = round(best / out["class_mean_test"], 3)
    out["best_knn_pixels_to_class_mean"] = round(min(out["knn_pixels"].values()) / out["class_mean_test"], 3)
    return {k: (round(v, 1) if isinstance(v, float) and v > 10 else v) for k, v in out.items()}


def _met(result):
    return {"accuracy": result["prototype_accuracy"] >= TARGETS["accuracy"],
            "train_seconds": result["seconds_total"] <= TARGETS["train_seconds"],
            "peak_rss_gb": result["peak_rss_gb"] <= TARGETS["peak_rss_gb"],
            "decoder_to_class_mean": result["decoder_to_class_mean"] <= TARGETS["decoder_to_class_mean"]}


def figure(run_dir, data_dir, out, per_class: int = 2):
    """docs/photos.png: test photos x, g(f(x)) (the decoder on the Siamese embedding) and each class's mean image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from siamese_xai import runs
    from siamese_xai.data import datasets
    from siamese_xai.explainers import prototypes

    x, y, names = datasets.load_dataset(data_dir, split="test")
    snn, decoder = runs.load_model(run_dir, runs.SNN_FILE), runs.load_model(run_dir, runs.DECODER_FILE)
    pick = np.concatenate([np.flatnonzero(y == k)[:per_class] for k in range(len(names))])
    rec = prototypes.embed_in_batches(decoder, prototypes.embed_in_batches(snn, x[pick]))
    means = np.stack([x[y == k].mean(0) for k in range(len(names))])[y[pick]]
    sse = lambda a: np.sum((x[pick] - a) ** 2, axis=(1, 2, 3))
    fig, axes = plt.subplots(3, len(pick), figsize=(1.3 * len(pick), 4.3))
    for row, (images, label) in enumerate(((x[pick], "x"), (rec, "g(f(x))"), (means, "class mean"))):
        for i, ax in enumerate(axes[row]):
            ax.imshow(np.clip(images[i], 0, 1))
            ax.set_xticks([]), ax.set_yticks([])
            if row == 0:
                ax.set_title(names[y[pick[i]]], fontsize=8)
            else:
                ax.set_xlabel(f"SSE {sse(images)[i]:.0f}", fontsize=7)
        axes[row, 0].set_ylabel(label, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("make-data", help="write the class-folder tree of one size")
    make.add_argument("folder")
    make.add_argument("--size", type=int, default=96)
    make.add_argument("--seed", type=int, default=0)
    run = sub.add_parser("run", help="make the trees, train and fit, write benchmarks/speed/photos.json")
    run.add_argument("--work", default="runs/photos")
    run.add_argument("--sizes", type=int, nargs="+", default=[96, 224])
    run.add_argument("--paths", nargs="+", default=["train", "fit"], choices=("train", "fit"))
    run.add_argument("--out", default=str(OUT))
    ceil = sub.add_parser("ceiling", help="the k-nearest-neighbour ceiling of a decoder of f(x); into photos.json")
    ceil.add_argument("--run", default="runs/photos/train-96")
    ceil.add_argument("--data-dir", default="runs/photos/data-96")
    ceil.add_argument("--size", type=int, default=96)
    ceil.add_argument("--out", default=str(OUT))
    fig = sub.add_parser("figure", help="draw x, g(f(x)) and the class-mean image of a trained run")
    fig.add_argument("--run", default="runs/photos/train-96")
    fig.add_argument("--data-dir", default="runs/photos/data-96")
    fig.add_argument("--out", default="docs/photos.png")
    args = parser.parse_args(argv)
    if args.command == "figure":
        print(f"figure written to {figure(args.run, args.data_dir, args.out)}")
        return
    if args.command == "ceiling":
        results = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else {}
        results[f"ceiling_{args.size}"] = found = ceiling(args.run, args.data_dir)
        Path(args.out).write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        print(json.dumps(found))
        return
    if args.command == "make-data":
        print(f"photos written to {make_data(args.folder, args.size, args.seed)}")
        return
    work = Path(args.work)
    results = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else {}
    results.update({"targets": TARGETS, "cpus": os.cpu_count()})
    for size in args.sizes:
        data_dir = make_data(work / f"data-{size}", size)
        for path in args.paths:
            load = os.getloadavg()[0]
            bench = bench_train if path == "train" else bench_fit
            result = bench(data_dir, work / f"{path}-{size}")
            result.update(load_before=round(load, 2), load_after=round(os.getloadavg()[0], 2), met=_met(result))
            results[f"{path}_{size}"] = result
            print(f"{path} {size}px: {json.dumps(result)}", flush=True)
            Path(args.out).write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
