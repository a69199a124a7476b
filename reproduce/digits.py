"""The method on a second real data set: scikit-learn's 8x8 digits (1,797 images, shipped with the package).

Command (`make digits`):

    .venv/bin/python -m reproduce.digits --work runs/digits --out figures

Run time: about 2 minutes on a 2-core CPU (102 s measured). The digits go through the same path
a user's data does: they are written as an image folder (`WORK/images/<digit>/
NNNN.png`, values 0..16 scaled to round(v * 255 / 16)), `siamese_xai.training.stages.
train_run` trains on it with a seeded, stratified 80/20 split (Table 1's
pattern generalised to 8x8, D = 20), and the explainer explains the test split.
Writes `WORK/run/` (the run folder), `OUT/digits.png` (the quadruples of four
test digits) and `OUT/digits.json`: the run's accuracy and reconstruction
error, and the deletion / insertion AUCs (with 95% intervals) of d(x) =
||f(x) - c_k||^2 on the test images for the method (`mc`, `linear`) and the
baselines (random, occlusion 2x2, gradient, Integrated Gradients).
"""

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]

# The digits are 64 pixels: q = 10 marks about 16% of the image, as q = 100 does of MNIST's 784 (13%).
Q = 10
STEPS = 16  # deletion / insertion points: 4 pixels per step


def write_image_folder(folder: Path) -> None:
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for i, (image, label) in enumerate(zip(digits.images, digits.target)):
        path = folder / str(label) / f"{i:04d}.png"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.round(image * 255 / 16).astype(np.uint8), "L").save(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="runs/digits", help="where the image folder and the run go")
    parser.add_argument("--out", default="figures", help="where digits.png and digits.json go")
    parser.add_argument("--force", action="store_true", help="retrain")
    args = parser.parse_args()

    from siamese_xai.evaluation import baselines
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from siamese_xai import files, plotting
    from siamese_xai.evaluation import faithfulness, metrics
    from siamese_xai.training import stages as training
    from siamese_xai.config import AutoencoderConfig, DecoderConfig, SNNConfig, TrainConfig
    from siamese_xai.data.datasets import load_dataset
    from siamese_xai.config import ExplainConfig
    from siamese_xai.explainers.questions import runner_up
    from siamese_xai.explainers.siamese import SiameseExplainer

    t0 = time.perf_counter()
    work = Path(args.work)
    write_image_folder(work / "images")
    # 1,437 training images are 12 batches: more epochs than MNIST's for a similar number of steps.
    config = TrainConfig.paper(snn=SNNConfig(epochs=30), autoencoder=AutoencoderConfig(epochs=60),
                               decoder=DecoderConfig(epochs=60), checkpoint_every=100)
    run_metrics = training.train_run(config, work / "run", data_dir=work / "images", force=args.force, verbose=0)

    x, y, names = load_dataset(work / "images", split="test", seed=config.seed)
    explainer = SiameseExplainer.from_run(work / "run", ExplainConfig(q=Q))
    e = explainer.explain(x, seed=0)
    classes = e.predicted_class
    scalar = metrics.DistanceScalar(explainer.embed, explainer.prototypes)
    contrasts = runner_up(scalar.all_distances(x), classes)
    maps = {
        "mc": e.mean_abs_change[..., 0],
        "linear": explainer.replace(estimator="linear").explain(x, seed=0).mean_abs_change[..., 0],
        "random": baselines.random_maps(x, classes, seed=0),
        "occlusion": baselines.occlusion_maps(scalar, x, classes, patch=2, stride=1),
        "gradient": baselines.gradient_maps(scalar, x, classes),
        "integrated_gradients": baselines.integrated_gradients_maps(scalar, x, classes),
    }
    scores = {}
    for name, m in maps.items():
        curves = faithfulness.removal_curves(scalar, x, classes, contrasts, m, faithfulness.fill_images(x, "zero"),
                                             steps=STEPS)
        # the areas under d = ||f(x) - c_k||^2 as pixels go to 0 (deletion) or come back into a blank image (insertion)
        scores[name] = {"deletion_auc": metrics.mean_ci(curves["deletion_distance_auc"]),
                        "insertion_auc": metrics.mean_ci(curves["insertion_distance_auc"])}

    shown = [int(np.flatnonzero(y == k)[0]) for k in (0, 3, 5, 8)]
    fig, axes = plt.subplots(len(shown), 4, figsize=(6.4, 1.7 * len(shown)))
    for row, i in enumerate(shown):
        plotting.plot_explanation(e, axes[row], index=i)
    fig.tight_layout()
    plotting.save_figure(fig, Path(args.out) / "digits.png")

    record = {
        "data": run_metrics["data"],
        "prototype_accuracy": run_metrics["prototype_accuracy"],
        "train_prototype_accuracy": run_metrics["train_prototype_accuracy"],
        "recon_sse_decoder": run_metrics["recon_sse_decoder"],
        "recon_sse_class_mean_image": run_metrics["recon_sse_class_mean_image"],
        "explained_test_images": len(x),
        "accuracy_on_explained": float(np.mean(classes == y)),
        "s": explainer.config.s, "q": Q, "N": explainer.config.n_perturbations, "deletion_steps": STEPS,
        "auc": scores,
        "figure_test_indices": shown,
        "class_names": list(names),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    files.write_json(Path(args.out) / "digits.json", record)
    print(f"digits: accuracy {record['prototype_accuracy']:.3f}, g(f(x)) SSE {record['recon_sse_decoder']:.2f}; "
          + ", ".join(f"{k} deletion {v['deletion_auc']['mean']:.3f}" for k, v in scores.items()))


if __name__ == "__main__":
    main()
