"""How the default schedule fits a small image folder: the paper's epochs against a minimum of steps.

Command:

    python -m siamese_xai.startup benchmarks/studies/schedule.py --work runs/schedule

Writes a folder of 3 classes x 300 images, 32x32 RGB (filled circles, squares
and triangles of random colour, size, rotation and place on a noisy tinted
background), trains a run on it for each `--min-steps` value (0 is the
paper's 4 / 8 / 8 epochs: 24 / 48 / 48 steps on its 720 training images) with
`siamese_xai.training.stages.train_run`, and writes `benchmarks/studies/schedule.json`: the
nearest-prototype accuracy on the 180 test images, the reconstruction error,
the epochs and the stage times of each, and the load average. Run time: about
5 minutes on a quiet 2-core CPU (18 minutes at a load average of 20-25).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SHAPES = ("circle", "square", "triangle")
SIZE = 32


def shape_image(kind, rng, size=SIZE):
    """A filled shape of random colour, size, rotation and place on a noisy tinted background, slightly blurred."""
    background = rng.integers(0, 90, 3)
    pixels = np.clip(background + rng.normal(0, 12, (size, size, 3)), 0, 255).astype(np.uint8)
    img = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(img)
    r = rng.uniform(6, 11)
    cx, cy = rng.uniform(r + 1, size - r - 1, 2)
    colour = tuple(int(c) for c in rng.integers(120, 256, 3))
    if kind == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    else:
        sides = 4 if kind == "square" else 3
        angle = rng.uniform(0, 2 * np.pi)
        draw.polygon([(cx + r * np.cos(angle + 2 * np.pi * k / sides), cy + r * np.sin(angle + 2 * np.pi * k / sides))
                      for k in range(sides)], fill=colour)
    return img.filter(ImageFilter.GaussianBlur(0.6))


def write_shapes_folder(root, per_class: int = 300, seed: int = 0) -> Path:
    """Writes `root/<shape>/NNN.png`: `per_class` 32x32 RGB images of each of the three shapes."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for kind in SHAPES:
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            shape_image(kind, rng).save(root / kind / f"{i:03d}.png")
    return root


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="runs/schedule", help="folder for the images and the runs")
    parser.add_argument("--min-steps", type=int, nargs="+", default=[0, 200, 400], help="minimum steps per stage to try")
    parser.add_argument("--out", default="benchmarks/studies/schedule.json")
    args = parser.parse_args()

    from siamese_xai import files
    from siamese_xai.training import stages as training
    from siamese_xai.config import TrainConfig

    work = Path(args.work)
    folder = write_shapes_folder(work / "shapes")
    rows = []
    for min_steps in args.min_steps:
        load_before = os.getloadavg()
        t0 = time.perf_counter()
        metrics = training.train_run(TrainConfig.paper(), work / f"min_steps_{min_steps}", data_dir=folder,
                                     min_steps=min_steps, verbose=0, force=True)
        config = files.read_json(work / f"min_steps_{min_steps}" / "config.json")
        rows.append({
            "min_steps": min_steps,
            "epochs": {s: config[s]["epochs"] for s in ("snn", "autoencoder", "decoder")},
            "prototype_accuracy": metrics["prototype_accuracy"],
            "train_prototype_accuracy": metrics["train_prototype_accuracy"],
            "recon_sse_decoder": metrics["recon_sse_decoder"],
            "stage_seconds": metrics["seconds"],
            "seconds": round(time.perf_counter() - t0, 1),
            "load_average_before": [round(v, 2) for v in load_before],
            "load_average_after": [round(v, 2) for v in os.getloadavg()],
        })
        print(f"min_steps {min_steps}: epochs {rows[-1]['epochs']}, test accuracy {metrics['prototype_accuracy']:.4f}, "
              f"{rows[-1]['seconds']} s (load {rows[-1]['load_average_before'][0]} -> {rows[-1]['load_average_after'][0]})")
    files.write_json(args.out, {"data": {"classes": list(SHAPES), "per_class": 300, "image_shape": [SIZE, SIZE, 3],
                                         "num_train": metrics["data"]["num_train"], "num_test": metrics["data"]["num_test"]},
                                "runs": rows})


if __name__ == "__main__":
    main()
