"""Fig. 9's image explained contrastively: why 9 rather than 4, beside the paper's explanation.

Command (after training; part of `make reproduce`):

    .venv/bin/python -m reproduce.fig9_contrast --run runs/paper --out figures

Run time: about 15 seconds on a 2-core CPU (most of it loading MNIST and
selecting the image). Writes figures/fig9_contrast.png: the top row is the
paper's explanation of Fig. 9's image (the 4 the network places in class 9,
chosen by the rule in `reproduce/paper.py`), the bottom row the contrastive
one (`estimator="template_contrast"`, explained class 9, contrast class 4): input,
reconstruction g(h), input with the mask, the mask, the signed change (blue:
darkens, red: brightens, moving toward the reference) and the decoded
reference (g(c_9) for the paper's method, g(c_4) for the contrast). And
figures/fig9_contrast.json: the test index, classes, distances, both masks'
sizes and overlap, the path length, the share of each mask on x's ink and
among the pixels where g(c_9) and g(c_4) differ most.
"""

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/paper", help="the trained run folder")
    parser.add_argument("--out", default="figures", help="where the PNG and JSON go")
    parser.add_argument("--seed", type=int, default=0, help="seed of the paper's perturbations")
    parser.add_argument("--data-dir", help="MNIST's location (default: $TFDS_DATA_DIR)")
    args = parser.parse_args()

    from reproduce import paper

    write(paper.PaperRun(args.run, args.data_dir), args.out, seed=args.seed)


def write(run, out, seed: int = 0) -> dict:
    """Writes OUT/fig9_contrast.png and .json for a loaded `paper.PaperRun`; returns the record."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from reproduce import paper

    from siamese_xai import files, plotting
    from siamese_xai.evaluation.metrics import mask_iou

    t0 = time.perf_counter()
    spec = paper.figure_spec("fig9")
    index, note = paper.select_example(spec, run.y, run.summary)
    x = run.x[index]
    e_mc = run.explainer.explain(x, seed=seed)
    k = int(e_mc.predicted_class[0])
    l = spec.digit if spec.digit != k else None  # why 9 rather than 4 (the true class)
    contrast = run.explainer.replace(estimator="template_contrast")
    e_c = contrast.explain(x, seed=seed, contrast_class=l)
    runner_up = int(contrast.explain(x).contrast_class[0])
    decoded = run.explainer.decoder(np.concatenate([e_mc.reference, e_c.reference])).numpy()

    fig, axes = plt.subplots(2, 6, figsize=(12.0, 4.6))
    for row, (e, ref_img, ref_name) in enumerate(
        ((e_mc, decoded[0], f"g(c_{k})"), (e_c, decoded[1], f"g(c_{int(e_c.contrast_class[0])})"))
    ):
        plotting.plot_explanation(e, axes[row, :4])
        plotting.plot_signed_change(e, axes[row, 4])
        plotting._show(axes[row, 5], np.clip(ref_img[..., 0], 0, 1), f"reference {ref_name}")
    axes[0, 2].set_title(f"paper (mc): why {k}?", fontsize=9)
    axes[1, 2].set_title(f"contrast: why {k} rather than {int(e_c.contrast_class[0])}?", fontsize=9)
    axes[1, 4].set_title("signed change along the path", fontsize=9)
    fig.suptitle(
        f"Fig. 9's image (test #{index}, true {int(run.y[index])}, SNN {k}): top, the paper's explanation; "
        f"bottom, the contrastive one (blue: darkens = evidence for {k}; red: brightens = evidence for "
        f"{int(e_c.contrast_class[0])})",
        fontsize=9,
    )
    fig.tight_layout()
    out = Path(out)
    plotting.save_figure(fig, out / "fig9_contrast.png")

    ink = x[..., 0] > 0.5
    m_mc, m_c = e_mc.mask[0, ..., 0], e_c.mask[0, ..., 0]
    s = e_c.mean_signed_change[0, ..., 0]
    record = {
        "figure": "fig9_contrast",
        "test_index": int(index),
        "selection": note,
        "true_class": int(run.y[index]),
        "predicted_class": k,
        "explained_class": int(e_c.explained_class[0]),
        "contrast_class": int(e_c.contrast_class[0]),
        "runner_up_class": runner_up,
        "distances": e_c.distances[0].round(4).tolist(),
        "path_length": float(e_c.path_length[0]),
        "paper_sigma": float(e_mc.sigma[0]),
        "q": contrast.config.q,
        "n_path_points": contrast.config.n_path_points,
        "mask_pixels": {"mc": int(m_mc.sum()), "contrast": int(m_c.sum())},
        "mask_iou_mc_vs_contrast": mask_iou(m_mc, m_c),
        "share_of_mask_on_ink(x>0.5)": {"mc": float((m_mc & ink).sum() / max(1, m_mc.sum())),
                                        "contrast": float((m_c & ink).sum() / max(1, m_c.sum()))},
        "signed_change": {"min": float(s.min()), "max": float(s.max()),
                          "pixels_darkening": int((s < 0).sum()), "pixels_brightening": int((s > 0).sum())},
        # where g(c_k) and g(c_l) differ most (`paper.class_difference_shares`), for both masks
        "class_difference": {
            name: paper.class_difference_shares(m[..., None], *run.explainer.decoder(
                run.explainer.prototypes[[k, int(e_c.contrast_class[0])]]).numpy())
            for name, m in (("mc", m_mc), ("contrast", m_c))
        },
        "mask_rows_cols": np.argwhere(m_c).tolist(),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    files.write_json(out / "fig9_contrast.json", record)
    print(f"fig9_contrast: test #{index}, why {k} rather than {record['contrast_class']} "
          f"(runner-up {runner_up}) -> {out / 'fig9_contrast.png'}")
    return record


if __name__ == "__main__":
    main()
