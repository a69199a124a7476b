"""How much the decoder matters: g(f(x)) error and the explanations' faithfulness over beta, D and decoder size.

Commands (from the repository root; TFDS_DATA_DIR must point at MNIST):

    .venv/bin/python -m benchmarks.studies.decoder_study --work /tmp/decoder_study          # full
    .venv/bin/python -m benchmarks.studies.decoder_study --quick --work DIR --out DIR        # seconds-long budgets (the test)

Run time: the committed JSON records, per unit, the seconds its training
(`training_seconds`, on the 2-core machine shared with four other jobs: its
D = 10 Siamese stage took 460 s there, the paper run's 163 s on the quiet
machine) and its evaluation took (`evaluation_seconds`, re-run later on a
quieter machine), their sum (`study_seconds_total`) and the last run's wall
time. The first full run took 40 minutes there. The quick mode: 1-4 minutes.

Configurations: beta in {1, 10, 100} x D in {10, 20} with Table 1's decoder,
plus one decoder larger than Table 1 (`siamese_xai.training.models.LARGE_DECODER`:
twice the channels, a four times wider Dense1; not the paper's) at D = 20,
beta = 10. Each is trained with the library's stage functions
(`siamese_xai.training.stages`) on three data sets, under one reduced schedule that
is the same for every configuration (`MODES`, recorded in the JSON):

- MNIST: the Siamese network f is the paper's stage with its own settings
  (all 60,000 images, 4 epochs); for D = 20 it is the paper run's
  (`--paper-run`, reused when its config is that schedule), for D = 10 it is
  trained. The autoencoder and the decoder fine-tuning use the first 15,000
  images and 4 epochs each (the paper run: 60,000 images, 8 epochs each), so
  the paper run's own decoder is a separate row, "paper run (full schedule)";
- the constant-square set (`synthetic.make_synthetic`, the negative control)
  and the varying set (`synthetic.make_varying_synthetic`): 5,000
  images each, f, autoencoder and decoder at 2, 8, 8 epochs (as
  the varying run of `benchmarks/evaluation/evaluate.py`).

Measured per configuration: g(f(x)) SSE per MNIST test image, and
||g(f(x)) - g(c_k)||^2 (how far the decoded image is from its class's decoded
prototype: 0 for a pure class template); on the first `n_mnist` MNIST test
images, the deletion and insertion AUCs of d(x) = ||f(x) - c_k||^2
(`siamese_xai.evaluation.metrics`, larger deletion AUC = more faithful) and the deletion
AUC of the margin m(x) = ||f(x) - c_l||^2 - ||f(x) - c_k||^2 (l the
runner-up; smaller = more faithful) for the paper's method (`mc`, map
Delta_p) and the contrastive variant (map max(-S_p, 0) x_p), beside the
model-free input-intensity and random orderings of the same f; on both
synthetic sets, the share of each map's top-16 pixels inside the square that
decides the class. Every number is a mean with its 95% interval, and each
configuration is compared with beta = 10 and Table 1's decoder at the same D
("above", "below", "overlap": intervals disjoint or not).

Resumable: every trained model, stage time and evaluation is kept in
`--work` (one folder per data set, Siamese network and configuration, with a
stamp of its settings) and reused by a rerun with the same settings. Writes,
atomically, `--out`/decoder_study.json, `--out`/decoder_study.md (one table,
generated from the JSON) and `--figures`/decoder_study.png.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[2]

import numpy as np  # noqa: E402

from siamese_xai.evaluation import baselines as bl  # noqa: E402
from siamese_xai.machine import machine_description  # noqa: E402
from siamese_xai import files, runs
from siamese_xai.evaluation import faithfulness as fa
from siamese_xai.evaluation import metrics
from siamese_xai.training import models
from siamese_xai.training import stages as training  # noqa: E402
from siamese_xai.config import AutoencoderConfig, DecoderConfig, SNNConfig, TrainConfig  # noqa: E402
from siamese_xai.data.mnist import load_mnist  # noqa: E402
from siamese_xai.config import ExplainConfig
from siamese_xai.explainers.siamese import SiameseExplainer  # noqa: E402
from siamese_xai.explainers.prototypes import embed_in_batches, prototypes_from_embeddings  # noqa: E402
from siamese_xai.explainers.questions import runner_up, squared_distances  # noqa: E402
from siamese_xai.evaluation.synthetic import make_synthetic, make_varying_synthetic  # noqa: E402

DECODERS = {"table1": {}, "large": dict(models.LARGE_DECODER)}
CONFIGS = tuple((d, beta, "table1") for d in (10, 20) for beta in (1, 10, 100)) + ((20, 10, "large"),)
REFERENCE = (10, "table1")  # each configuration is compared with beta = 10, Table 1, at its own D
DELETION_STEPS = 28  # points of each deletion and insertion curve after the first (one per 28 pixels of 784)
DATASETS = ("mnist", "square", "varying")

MODES = {
    "full": dict(snn=dict(epochs=4, pairs_per_epoch=None), snn_train=None, ae_train=15000, ae_epochs=4, dec_epochs=4,
                 synth_train=5000, synth_epochs=(2, 8, 8), synth_pairs=10000,
                 recon_test=10000, n_mnist=100, n_gt=60, n_perturbations=5000),
    "quick": dict(snn=dict(epochs=1, pairs_per_epoch=256), snn_train=256, ae_train=256, ae_epochs=1, dec_epochs=1,
                  synth_train=256, synth_epochs=(1, 1, 1), synth_pairs=256,
                  recon_test=200, n_mnist=3, n_gt=3, n_perturbations=32),
}


# ---------------------------------------------------------------------------
# pure pieces


def per_image_sse(x, recon) -> np.ndarray:
    """`(n,)` sum of squared differences of each image pair: `x`, `recon` `(n, H, W, C)`."""
    x, recon = np.asarray(x, np.float64), np.asarray(recon, np.float64)
    if x.shape != recon.shape:
        raise ValueError(f"`recon` must have the shape of `x`, {x.shape}. Received: recon.shape={recon.shape}")
    return ((x - recon) ** 2).reshape(len(x), -1).sum(1)


def relation(a: dict, b: dict) -> str:
    """How interval a compares with interval b: "above", "below" or "overlap".

    Args:
        a, b: `{"mean", "ci95"}` (a mean and its 95% half-width, `metrics.mean_ci`).

    Returns:
        "above" when a's interval lies wholly above b's, "below" when wholly
        below, else "overlap" (touching intervals overlap).
    """
    if a["mean"] - a["ci95"] > b["mean"] + b["ci95"]:
        return "above"
    if a["mean"] + a["ci95"] < b["mean"] - b["ci95"]:
        return "below"
    return "overlap"


def nearest_two(h, prototypes):
    """`(k, l)`: `(n,)` nearest prototype of each embedding `h` `(n, D)` and its runner-up (`questions.runner_up`)."""
    d = squared_distances(h, prototypes)
    k = np.argmin(d, axis=1).astype(np.int64)  # ties: lower index first
    return k, runner_up(d, k)


# ---------------------------------------------------------------------------
# training (resumable: a folder per unit, its settings stamped, each stage's model file kept)


def _as_json(obj):
    """`obj` as it reads back from a JSON file (tuples become lists), so a stamp compares equal to its saved copy."""
    return json.loads(json.dumps(obj))


def open_unit(folder: Path, stamp: dict) -> dict:
    """Opens a unit folder for `stamp`: models trained under other settings are removed. Returns its info."""
    stamp = _as_json(stamp)
    folder.mkdir(parents=True, exist_ok=True)
    info_path = folder / "info.json"
    info = files.read_json(info_path) if info_path.exists() else {}
    if info.get("stamp") != stamp:
        for p in list(folder.glob("*.keras")) + list(folder.glob("*.npy")) + list(folder.glob("eval*.json")):
            p.unlink()
        info = {"stamp": stamp, "seconds": {}}
        files.write_json(info_path, info)
    return info


def _stage(folder, info, name, file, train):
    """Loads `folder/file`, or trains it with `train()` and records its time in `info.json`."""
    path = folder / file
    if path.exists():
        return runs.load_model(folder, file)
    t0 = time.perf_counter()
    model = train()
    info["seconds"][name] = round(time.perf_counter() - t0, 1)
    files.save_model(model, path)
    files.write_json(folder / "info.json", info)
    return model


def _train_config(mode, dataset, dim, beta=10.0):
    m = MODES[mode]
    if dataset == "mnist":
        return TrainConfig(embedding_dim=dim, snn=SNNConfig(**m["snn"]),
                           autoencoder=AutoencoderConfig(beta=float(beta), epochs=m["ae_epochs"]),
                           decoder=DecoderConfig(epochs=m["dec_epochs"]))
    e_snn, e_ae, e_dec = m["synth_epochs"]
    return TrainConfig(embedding_dim=dim, snn=SNNConfig(epochs=e_snn, pairs_per_epoch=m["synth_pairs"]),
                       autoencoder=AutoencoderConfig(beta=float(beta), epochs=e_ae), decoder=DecoderConfig(epochs=e_dec))


def siamese_unit(work, mode, dataset, dim, x, y, paper_run=None):
    """f and its prototypes for one data set and D: `(snn, prototypes, info)`.

    For MNIST at the paper's D, the paper run's f is reused when its
    config.json has this schedule's Siamese stage (it then also gives the
    stage's recorded time).
    """
    config = _train_config(mode, dataset, dim)
    stamp = {"snn": config.to_dict()["snn"], "embedding_dim": dim, "seed": config.seed, "train_images": len(x)}
    folder = Path(work) / dataset / f"snn-D{dim}"
    info = open_unit(folder, stamp)
    source = Path(paper_run) if paper_run else None
    if (source is not None and not (folder / runs.SNN_FILE).exists() and (source / runs.CONFIG_FILE).is_file()):
        paper = files.read_json(source / runs.CONFIG_FILE)
        if (paper["snn"], paper["embedding_dim"], paper["seed"], paper["train_limit"]) == (
                stamp["snn"], dim, config.seed, None) and len(x) == 60000:
            shutil.copyfile(source / runs.SNN_FILE, folder / runs.SNN_FILE)
            info["seconds"]["snn"] = files.read_json(source / runs.METRICS_FILE)["seconds"]["snn"]
            info["reused_from"] = str(source)
            files.write_json(folder / "info.json", info)
    if config.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    snn = _stage(folder, info, "snn", runs.SNN_FILE, lambda: training.train_siamese(x, y, config, verbose=0))
    path = folder / runs.PROTOTYPES_FILE
    if not path.exists():
        files.write_npy(path, prototypes_from_embeddings(embed_in_batches(snn, x, 1000), y, 10))
    return snn, np.load(path), info


def decoder_unit(work, mode, dataset, dim, beta, decoder, snn, x):
    """The autoencoder and the fine-tuned decoder of one configuration: `(decoder g, info)`."""
    config = _train_config(mode, dataset, dim, beta)
    stamp = {"config": config.to_dict(), "decoder": decoder, "decoder_options": DECODERS[decoder],
             "train_images": len(x)}
    folder = Path(work) / dataset / f"D{dim}-beta{beta:g}-{decoder}"
    info = open_unit(folder, stamp)
    h = embed_in_batches(snn, x, 1000)
    joint = _stage(folder, info, "autoencoder", runs.DECODER_JOINT_FILE, lambda: training.train_autoencoder(
        x, h, config, verbose=0, decoder_options=DECODERS[decoder])[1])
    tuned = _stage(folder, info, "decoder", runs.DECODER_FILE,
                   lambda: training.finetune_decoder(joint, x, h, config, verbose=0))
    return tuned, info


# ---------------------------------------------------------------------------
# evaluation


def _contrast_map(e):
    """`(B, H, W)` the contrastive mask's ranking, max(-S_p, 0) x_p (the explanation's `ranking`)."""
    return e.ranking[..., 0]


def _cached(folder: Path, stamp: dict, compute):
    """`compute()`, or its result kept in `folder/eval.json` for the same `stamp`."""
    path = folder / "eval.json"
    stamp = _as_json(stamp)
    if path.exists():
        kept = files.read_json(path)
        if kept.get("stamp") == stamp:
            return kept["result"]
    t0 = time.perf_counter()
    result = compute()
    result["seconds"] = round(time.perf_counter() - t0, 1)
    files.write_json(path, {"stamp": stamp, "result": result})
    return result


def _faithfulness(scalar, xs, k, l, maps) -> dict:
    """Deletion and insertion AUCs of d (pixels set to 0), and the deletion AUC of the margin to the runner-up l of x."""
    d = fa.removal_curves(scalar, xs, k, l, maps, fa.fill_images(xs, "zero"), steps=DELETION_STEPS)
    return {"deletion_auc_d": metrics.mean_ci(d["deletion_distance_auc"]),
            "insertion_auc_d": metrics.mean_ci(d["insertion_distance_auc"]),
            "deletion_auc_margin": metrics.mean_ci(d["deletion_auc"])}


def mnist_references(snn, protos, xs) -> dict:
    """The model-free orderings of the same f (input intensity, random): `{name: faithfulness}`."""
    k, l = nearest_two(embed_in_batches(snn, xs, 1000), protos)
    scalar = metrics.DistanceScalar(snn, protos)
    return {"input_intensity": _faithfulness(scalar, xs, k, l, xs[..., 0]),
            "random": _faithfulness(scalar, xs, k, l, bl.random_maps(xs, k, seed=0))}


def mnist_scores(snn, decoder, protos, x_recon, xs, n_perturbations) -> dict:
    """g(f(x)) error on `x_recon` and the two methods' faithfulness on `xs` (MNIST test images)."""
    h = embed_in_batches(snn, x_recon, 1000)
    rec = embed_in_batches(decoder, h, 1000)
    k, _ = nearest_two(h, protos)
    templates = embed_in_batches(decoder, protos.astype(np.float32), 1000)
    out = {"recon_sse": metrics.mean_ci(per_image_sse(x_recon, rec)),
           "template_sse": metrics.mean_ci(per_image_sse(templates[k], rec))}
    k, l = nearest_two(embed_in_batches(snn, xs, 1000), protos)
    scalar = metrics.DistanceScalar(snn, protos)
    explainer = SiameseExplainer(snn, decoder, protos, ExplainConfig(n_perturbations=n_perturbations))
    e_mc = explainer.explain(xs, target_class=k.tolist(), seed=0)
    e_con = explainer.replace(estimator="template_contrast").explain(xs, target_class=k.tolist(),
                                                                     contrast_class=l.tolist(), seed=0)
    out["mc"] = _faithfulness(scalar, xs, k, l, e_mc.mean_abs_change[..., 0])
    out["contrast"] = _faithfulness(scalar, xs, k, l, _contrast_map(e_con))
    return out


def synthetic_scores(snn, decoder, protos, test, n_perturbations) -> dict:
    """The two methods' ground-truth share on a synthetic test set `(x, y, regions)` (correctly classified)."""
    xs, ys, regions = test
    explainer = SiameseExplainer(snn, decoder, protos, ExplainConfig(n_perturbations=n_perturbations))
    out = {"recon_sse": metrics.mean_ci(per_image_sse(xs, embed_in_batches(decoder, embed_in_batches(snn, xs, 1000))))}
    e_mc = explainer.explain(xs, target_class=ys.tolist(), seed=0)
    e_con = explainer.replace(estimator="template_contrast").explain(xs, target_class=ys.tolist(), seed=0)
    for name, maps in (("mc", e_mc.mean_abs_change[..., 0]), ("contrast", _contrast_map(e_con))):
        gt = metrics.region_scores(maps, regions)
        out[name] = {"gt_share": metrics.mean_ci(gt["rank_accuracy"]), "pointing": metrics.mean_ci(gt["pointing"])}
    return out


def _correct(snn, protos, x, y, regions, n):
    """The first `n` images f classifies correctly, and the test accuracy."""
    k, _ = nearest_two(embed_in_batches(snn, x, 1000), protos)
    keep = np.flatnonzero(k == y)[:n]
    return (x[keep], y[keep], regions[keep]), float((k == y).mean())


def _compare(configs):
    """Each configuration's `vs_reference`: its metrics against beta = 10, Table 1 at the same D."""
    paths = [("mnist", "recon_sse"), ("mnist", "template_sse")] + [
        ("mnist", m, q) for m in ("mc", "contrast") for q in ("deletion_auc_d", "insertion_auc_d", "deletion_auc_margin")
    ] + [(s, m, "gt_share") for s in ("square", "varying") for m in ("mc", "contrast")]

    def get(rec, path):
        for p in path:
            rec = rec[p]
        return rec

    for rec in configs:
        ref = next(r for r in configs if (r["embedding_dim"], r["beta"], r["decoder"]) == (rec["embedding_dim"], *REFERENCE))
        rec["vs_reference"] = {"reference": ref["name"], **{
            "/".join(p): relation(get(rec, p), get(ref, p)) for p in paths}}


# ---------------------------------------------------------------------------
# the table and the figure (from the JSON alone)

_MARK = {"above": " ↑", "below": " ↓", "overlap": ""}
_COLUMNS = (  # header, data set, method (None: the configuration's own), metric
    ("g(f(x)) SSE", "mnist", None, "recon_sse"),
    ("‖g(f(x)) − g(c_k)‖²", "mnist", None, "template_sse"),
    ("mc: deletion AUC of d ↑", "mnist", "mc", "deletion_auc_d"),
    ("contrast: deletion AUC of d ↑", "mnist", "contrast", "deletion_auc_d"),
    ("mc: deletion AUC of margin ↓", "mnist", "mc", "deletion_auc_margin"),
    ("contrast: deletion AUC of margin ↓", "mnist", "contrast", "deletion_auc_margin"),
    ("mc: GT share, square", "square", "mc", "gt_share"),
    ("contrast: GT share, square", "square", "contrast", "gt_share"),
    ("mc: GT share, varying", "varying", "mc", "gt_share"),
    ("contrast: GT share, varying", "varying", "contrast", "gt_share"),
)


def _cell(stat, digits):
    return f"{stat['mean']:.{digits}f} ± {stat['ci95']:.{digits}f}"


def _digits(metric):
    return 1 if metric.endswith("sse") else 3


def _paper_note(results):
    pr = results["paper_run"]
    if not pr:
        return "No paper run was given."
    c = pr["config"]
    same = "the same f and prototypes" if pr["same_snn_and_prototypes"] else "another f"
    return (f"The paper run (last row; {pr['path']}) trained its autoencoder and decoder on "
            f"{c['train_limit'] or 'all 60,000'} images for {c['autoencoder']['epochs']} and {c['decoder']['epochs']} "
            f"epochs, so its row is not directly comparable with the study's; `D20-beta10-table1` has {same} and a "
            "decoder re-trained under the study's schedule.")


def _shown_command(command: str) -> str:
    """The recorded command with absolute folders outside the repository shown as placeholders (they name one machine)."""
    words = command.split()
    for i, word in enumerate(words):
        if word.startswith("/") and not Path(word).is_relative_to(ROOT):
            words[i] = f"<{words[i - 1].lstrip('-')} folder>" if i and words[i - 1].startswith("--") else "<folder>"
    return " ".join(words)


def render_markdown(results: dict) -> str:
    """The study's one table (Markdown), every number from `results` (the JSON)."""
    s = results["schedule"]
    lines = [
        "# How much the decoder matters",
        "",
        f"Generated by `{_shown_command(results['command'])}` ({results['mode']} mode, {results['date_utc']} UTC, "
        f"{results['wall_seconds']:.0f} s wall time; {results['machine']}). Every number is a mean ± its 95% interval.",
        "",
        f"**Schedule, the same for every configuration:** MNIST: f trained for {s['snn']['epochs']} epochs on "
        f"{s['snn_train'] or 'all 60,000'} images (" + "; ".join(f"{k}: {v}" for k, v in results["mnist_snn"].items())
        + f"), the autoencoder and the decoder fine-tuning on the first {s['ae_train']} images for {s['ae_epochs']} "
        f"and {s['dec_epochs']} epochs. " + _paper_note(results) + " Synthetic sets: "
        f"{s['synth_train']} images, epochs (f, autoencoder, decoder) = "
        f"{tuple(s['synth_epochs'])}, {s['synth_pairs']} pairs per epoch. MNIST measures: g(f(x)) on the first "
        f"{s['recon_test']} test images, faithfulness on the first {s['n_mnist']} (N = {s['n_perturbations']}); "
        f"ground truth on {s['n_gt']} correctly classified synthetic test images per set.",
        "",
        "`large` is **not the paper's decoder** (Table 1 doubled: channels "
        f"{tuple(models.LARGE_DECODER['channels'])}, Dense1 {models.LARGE_DECODER['dense_units']} units). "
        "↑ / ↓: the interval lies wholly above / below that of beta = 10 with Table 1's decoder at the same D "
        "(arrows in the headers: which direction is more faithful).",
        "",
        "| configuration | " + " | ".join(c[0] for c in _COLUMNS) + " |",
        "|" + "---|" * (len(_COLUMNS) + 1),
    ]
    for rec in results["configurations"]:
        cells = []
        for _, ds, method, metric in _COLUMNS:
            stat = rec[ds][metric] if method is None else rec[ds][method][metric]
            key = "/".join(p for p in (ds, method, metric) if p)
            cells.append(_cell(stat, _digits(metric)) + _MARK[rec["vs_reference"].get(key, "overlap")])
        label = rec["name"] + ("" if rec["paper_decoder"] else " (not the paper's)")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for dim, refs in results["mnist_model_free"].items():
        for name in ("input_intensity", "random"):
            rec, cells = refs[name], ["—"] * len(_COLUMNS)
            for i, (_, ds, method, metric) in enumerate(_COLUMNS):
                if ds == "mnist" and method == "mc":  # one ordering: shown under both methods' columns
                    cells[i] = cells[i + 1] = _cell(rec[metric], 3)
            lines.append(f"| {name} ordering, f of {dim} (no decoder) | " + " | ".join(cells) + " |")
    cm = results["mnist_class_mean_image_sse"]
    lines.append("| class-mean image (of the true class) | " + _cell(cm, 1) + " |" + " — |" * (len(_COLUMNS) - 1))
    if results["paper_run"]:
        pr = results["paper_run"]["mnist"]
        cells = [_cell(pr[metric] if method is None else pr[method][metric], _digits(metric)) if ds == "mnist" else "—"
                 for _, ds, method, metric in _COLUMNS]
        lines.append("| paper run (full schedule), D20-beta10-table1 | " + " | ".join(cells) + " |")
    acc = ", ".join(f"{k} {v:.3f}" for k, v in results["synthetic_test_accuracy"].items())
    secs = results["training_seconds_by_stage"]
    lines += ["", f"Synthetic test accuracy of f: {acc}. Training time summed over the study's units (s): "
              + ", ".join(f"{k} {secs[k]}" for k in ("snn", "autoencoder", "decoder")) + f"; evaluation {sum(results['evaluation_seconds'].values()):.1f} s; "
              f"training and evaluation together {results['study_seconds_total']} s (the sum over resumed runs; the "
              f"last run's wall time, {results['wall_seconds']:.0f} s, counts only what it did not reuse).", ""]
    return "\n".join(lines)


def _series(results, ds, method, metric):
    recs = results["configurations"]
    get = (lambda r: r[ds][metric]) if method is None else (lambda r: r[ds][method][metric])
    return np.array([get(r)["mean"] for r in recs]), np.array([get(r)["ci95"] for r in recs])


def _axis(ax, results):
    recs = results["configurations"]
    labels = [f"D{r['embedding_dim']} β{r['beta']:g}" + ("" if r["paper_decoder"] else "\nlarge*") for r in recs]
    ax.set_xticks(range(len(recs)), labels, fontsize=7)
    for i, r in enumerate(recs):
        if not r["paper_decoder"]:
            ax.axvspan(i - 0.4, i + 0.4, color="0.9", zorder=0)
        if i and r["embedding_dim"] != recs[i - 1]["embedding_dim"]:
            ax.axvline(i - 0.5, color="0.6", lw=0.8)


def plot_reconstruction(results: dict, ax=None):
    """g(f(x)) SSE per configuration, with the class-mean image and the paper run as lines."""
    import matplotlib.pyplot as plt

    ax = ax or plt.gca()
    for metric, label in (("recon_sse", "‖x − g(f(x))‖²"), ("template_sse", "‖g(f(x)) − g(c_k)‖²")):
        mean, ci = _series(results, "mnist", None, metric)
        ax.errorbar(range(len(mean)), mean, ci, fmt="o", capsize=3, label=label)
    ax.axhline(results["mnist_class_mean_image_sse"]["mean"], color="k", ls=":", lw=1, label="‖x − class-mean image‖²")
    if results["paper_run"]:
        ax.axhline(results["paper_run"]["mnist"]["recon_sse"]["mean"], color="C3", ls="--", lw=1,
                   label="paper run (full schedule)")
    _axis(ax, results)
    ax.set_ylabel("SSE per MNIST test image")
    ax.set_title("decoder error", fontsize=9)
    ax.legend(fontsize=6)
    return ax


def plot_faithfulness(results: dict, ax=None):
    """Deletion AUC of d for mc and contrast, with the input-intensity ordering of each f as a segment."""
    import matplotlib.pyplot as plt

    ax = ax or plt.gca()
    recs = results["configurations"]
    for j, method in enumerate(("mc", "contrast")):
        mean, ci = _series(results, "mnist", method, "deletion_auc_d")
        ax.errorbar(np.arange(len(mean)) + 0.12 * (2 * j - 1), mean, ci, fmt="os"[j], capsize=3, label=method)
    for dim, refs in results["mnist_model_free"].items():
        xs = [i for i, r in enumerate(recs) if f"D{r['embedding_dim']}" == dim]
        ax.hlines(refs["input_intensity"]["deletion_auc_d"]["mean"], min(xs) - 0.4, max(xs) + 0.4, color="k", ls=":",
                  lw=1, label="input intensity (no model)" if dim == "D10" else None)
    _axis(ax, results)
    ax.set_ylabel("deletion AUC of d (larger: more faithful)")
    ax.set_title("MNIST faithfulness", fontsize=9)
    ax.legend(fontsize=6)
    return ax


def plot_ground_truth(results: dict, ax=None):
    """Ground-truth share on both synthetic sets for mc and contrast."""
    import matplotlib.pyplot as plt

    ax = ax or plt.gca()
    for j, (ds, method) in enumerate((s, m) for s in ("square", "varying") for m in ("mc", "contrast")):
        mean, ci = _series(results, ds, method, "gt_share")
        ax.errorbar(np.arange(len(mean)) + 0.08 * (j - 1.5), mean, ci, fmt="os^v"[j], capsize=2, label=f"{method}, {ds}")
    _axis(ax, results)
    ax.set_ylim(-0.05, 1.05)
    ax.set_ylabel("share of top-16 pixels in the square")
    ax.set_title("synthetic ground truth", fontsize=9)
    ax.legend(fontsize=6)
    return ax


def plot_study(results: dict, path) -> None:
    """The study's one figure (three panels), written atomically to `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    plot_reconstruction(results, axes[0])
    plot_faithfulness(results, axes[1])
    plot_ground_truth(results, axes[2])
    fig.suptitle("How much the decoder matters (* large: not the paper's decoder; same reduced schedule for all)",
                 fontsize=10)
    fig.tight_layout()
    with files.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def config_name(dim, beta, decoder):
    return f"D{dim}-beta{beta:g}-{decoder}"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="seconds-long budgets (the test)")
    p.add_argument("--work", default=str(ROOT / "runs" / "decoder_study"), help="where the trained models are kept")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "studies"), help="folder of decoder_study.json and .md")
    p.add_argument("--figures", default=None, help="folder of decoder_study.png (default: figures/, quick: --out)")
    p.add_argument("--paper-run", default=str(ROOT / "runs" / "paper"),
                   help="the paper run: its f is reused at D = 20 and its decoder is a row ('' for none)")
    p.add_argument("--data-dir", help="MNIST's location (default: $TFDS_DATA_DIR)")
    p.add_argument("--render", action="store_true",
                   help="only rewrite decoder_study.md from the existing decoder_study.json in --out (no training)")
    args = p.parse_args(argv)
    if args.render:
        saved = files.read_json(Path(args.out) / "decoder_study.json")
        with files.atomic_path(Path(args.out) / "decoder_study.md") as tmp:
            tmp.write_text(render_markdown(saved))
        return saved
    mode = "quick" if args.quick else "full"
    m = MODES[mode]
    work, out = Path(args.work), Path(args.out)
    figures = Path(args.figures) if args.figures else (out if args.quick else ROOT / "figures")
    paper_run = Path(args.paper_run) if args.paper_run and Path(args.paper_run).is_dir() else None
    t_start = time.perf_counter()

    x_train, y_train = load_mnist("train", args.data_dir)
    x_test, y_test = load_mnist("test", args.data_dir)
    train = {"mnist": (x_train[: m["snn_train"]], y_train[: m["snn_train"]])}
    ae_x = {"mnist": x_train[: m["ae_train"]]}
    tests = {"square": make_synthetic(x_test, 3 * m["n_gt"], seed=1),
             "varying": make_varying_synthetic(x_test, 3 * m["n_gt"], seed=1)[:3]}
    for name, make in (("square", make_synthetic), ("varying", make_varying_synthetic)):
        xs, ys = make(x_train, m["synth_train"], seed=0)[:2]
        train[name], ae_x[name] = (xs, ys), xs
    x_recon, xs_mnist = x_test[: m["recon_test"]], x_test[: m["n_mnist"]]
    # the interval's rule is part of the stamp: metrics.mean_ci moved from 1.96 sd / sqrt(n) to Student-t
    eval_stamp = {**{k: m[k] for k in ("recon_test", "n_mnist", "n_gt", "n_perturbations")}, "ci95": "student-t"}

    snns, references, training_seconds = {}, {}, {}
    for ds in DATASETS:
        for dim in (10, 20):
            x, y = train[ds]
            snn, protos, info = siamese_unit(work, mode, ds, dim, x, y, paper_run if ds == "mnist" and dim == 20 else None)
            snns[ds, dim], snns[f"{ds}-info", dim] = (snn, protos), info
            training_seconds[f"{ds}/snn-D{dim}"] = info["seconds"]
            if ds == "mnist":
                references[f"D{dim}"] = _cached(work / ds / f"snn-D{dim}", eval_stamp,
                                                lambda: mnist_references(snn, protos, xs_mnist))
    gt_tests, accuracy = {}, {}
    for ds in ("square", "varying"):
        for dim in (10, 20):
            gt_tests[ds, dim], accuracy[f"{ds}/D{dim}"] = _correct(*snns[ds, dim], *tests[ds], m["n_gt"])

    eval_seconds = {f"mnist/snn-D{dim}": references[f"D{dim}"]["seconds"] for dim in (10, 20)}
    configs = []
    for dim, beta, decoder in CONFIGS:
        name = config_name(dim, beta, decoder)
        rec = {"name": name, "embedding_dim": dim, "beta": beta, "decoder": decoder,
               "paper_decoder": decoder == "table1", "decoder_options": DECODERS[decoder]}
        for ds in DATASETS:
            snn, protos = snns[ds, dim]
            g, info = decoder_unit(work, mode, ds, dim, beta, decoder, snn, ae_x[ds])
            training_seconds[f"{ds}/{name}"] = info["seconds"]
            folder = work / ds / name
            if ds == "mnist":
                rec[ds] = _cached(folder, eval_stamp, lambda: mnist_scores(snn, g, protos, x_recon, xs_mnist,
                                                                            m["n_perturbations"]))
            else:
                rec[ds] = _cached(folder, eval_stamp, lambda: synthetic_scores(snn, g, protos, gt_tests[ds, dim],
                                                                                m["n_perturbations"]))
            eval_seconds[f"{ds}/{name}"] = rec[ds]["seconds"]
            print(f"{name} {ds}: done ({time.perf_counter() - t_start:.0f} s)", flush=True)
        configs.append(rec)
    _compare(configs)

    paper = None
    if paper_run is not None and (paper_run / runs.DECODER_FILE).is_file() and mode == "full":
        snn, protos = snns["mnist", 20]
        run = runs.load_run(paper_run)
        same = bool(np.allclose(run.prototypes, protos, atol=1e-5))
        absolute = Path(os.path.abspath(paper_run))
        shown = absolute.relative_to(ROOT) if absolute.is_relative_to(ROOT) else paper_run
        paper = {"name": "paper run (full schedule)", "path": str(shown), "same_snn_and_prototypes": same,
                 "config": files.read_json(paper_run / runs.CONFIG_FILE),
                 "mnist": mnist_scores(snn, run.decoder, protos, x_recon, xs_mnist, m["n_perturbations"])}
    class_means = np.stack([x_train[y_train == c].mean(0) for c in range(10)])
    k_true = y_test[: m["recon_test"]]
    stage_sums = {s: round(sum(v.get(s, 0.0) for v in training_seconds.values()), 1)
                  for s in ("snn", "autoencoder", "decoder")}
    result = {
        "command": "benchmarks/studies/decoder_study.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "mode": mode,
        "machine": machine_description(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "schedule": {k: (list(v) if isinstance(v, tuple) else v) for k, v in m.items()},
        "schedule_note": ("mnist: f with its paper settings on snn_train images (None: all 60,000); the autoencoder "
                          "and the decoder on the first ae_train images for ae_epochs and dec_epochs; synthetic sets: "
                          "synth_train images, synth_epochs = (f, autoencoder, decoder), synth_pairs pairs per epoch"),
        "configurations": configs,
        "mnist_snn": {f"D{dim}": ("the paper run's f, reused" if "reused_from" in snns["mnist-info", dim]
                                  else "trained here") for dim in (10, 20)},
        "reference_config": {"beta": 10, "decoder": REFERENCE[1]},
        "mnist_model_free": references,
        "mnist_class_mean_image_sse": metrics.mean_ci(per_image_sse(x_recon, class_means[k_true])),
        "synthetic_test_accuracy": accuracy,
        "paper_run": paper,
        "training_seconds": training_seconds,
        "training_seconds_by_stage": stage_sums,
        "evaluation_seconds": eval_seconds,
        "study_seconds_total": round(sum(stage_sums.values()) + sum(eval_seconds.values()), 1),
        "wall_seconds": round(time.perf_counter() - t_start, 1),
    }
    files.write_json(out / "decoder_study.json", result)
    saved = files.read_json(out / "decoder_study.json")  # the table and the figure come from the file itself
    with files.atomic_path(out / "decoder_study.md") as tmp:
        tmp.write_text(render_markdown(saved))
    plot_study(saved, figures / "decoder_study.png")
    print(f"wrote {out / 'decoder_study.json'} ({result['wall_seconds']} s)")
    return saved


if __name__ == "__main__":
    main()
