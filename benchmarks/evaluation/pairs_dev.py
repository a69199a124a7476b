"""The pair probe on a development set of the pair benchmark's kind: where its top pixels fall, and why.

Command (from the project root):

    python -m benchmarks.evaluation.pairs_dev   # about a minute; trains runs/pair-set first where missing (~20 min)

Writes `benchmarks/evaluation/pairs_dev.json`. The pair benchmark's design
choices for the probe's pair question are made here, never on the pairs
`benchmarks.evaluation.pairs` scores.

The set: `pair_data.make_pairs(n, n, seed=DEV_SEED)`, the same identities
(layouts of seed 0, what f in `runs/pair-set` was trained on) with other
identity draws, clutter and intensities than the benchmark's pairs (seed 1)
and its calibration pairs (seed 2); tau is the equal error rate's on
`make_pairs(m, m, seed=DEV_CALIBRATION_SEED)`. As in the benchmark, each
pair is explained twice (each image against the other) with
`Verify(other, tau)`, and the pairs whose verdict at tau is the one asked
about are scored.

Per variant (`VARIANTS`: `ProbeConfig` changes; `lift_positive` is the
design before `ProbeConfig.lift`, `mean_infill` parts an accepted pair with
the examples' mean instead of a blur) and kind of pair (mates, non-mates,
all): the benchmark's region scores (`pairs.region_values`, keys
`score/ranking` for each ranking of `rankings_of`, all from the same f
calls), the
flip rate, f calls and set size, and the diagnosis of the top-|R| pixels
that fall on the distractors:

- `distractor_top_lifted`: the share of the top-|R| pixels on the
  distractors that `ranking_of` lifted (pixels of a positive cell, of the
  found set under `lift="found"`, where x exceeds the proposal), i.e. that
  rank above every unlifted pixel whatever their cell's drop;
- `lifted_pixels`: lifted pixels per image (|R| = 25 for a non-mate,
  75 for a mate);
- `drop_distractor`, `drop_evidence`, `drop_other`: the mean measured drop
  of the candidate cells that overlap the distractors, the evidence (and no
  distractor), and neither, each divided by the image's margin before
  painting;
- `distractor_cells_positive`: the share of the distractor cells whose drop
  is positive; `distractor_cells_found`: the share in the found set;
- `distractor_cell_rank`: the mean rank (0 = largest drop) of the best
  distractor cell among an image's candidates.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from benchmarks.evaluation import pair_data, pairs  # noqa: E402
from siamese_xai import files  # noqa: E402
from siamese_xai.machine import machine_description  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DEV_SEED = 11
DEV_CALIBRATION_SEED = 12
SETTINGS = {"n_mates": 60, "n_nonmates": 60, "n_calib": 200}
# name -> ProbeConfig changes; "default" is the probe as shipped
VARIANTS = {
    "default": {},
    "lift_positive": {"lift": "positive"},
    "mean_infill": {"infill": "mean"},
}


def dev_pairs(settings: dict = SETTINGS) -> tuple[dict, dict]:
    """`(pairs, calibration pairs)` of the development set (`pair_data.make_pairs` dicts)."""
    half = settings["n_calib"] // 2
    return (pair_data.make_pairs(settings["n_mates"], settings["n_nonmates"], seed=DEV_SEED),
            pair_data.make_pairs(half, half, seed=DEV_CALIBRATION_SEED))


def cell_diagnosis(e, i: int, region, distractors) -> dict:
    """The candidate cells of explained image `i` of a `ProbeExplanation` against the known regions.

    Args:
        e: the explanation; i: the image's row.
        region, distractors: `(H, W)` bool, the evidence and the distractors.

    Returns:
        A dict of floats (NaN where a group has no cell): the mean normalised
        drop of distractor, evidence and other cells, the share of distractor
        cells with a positive drop and in the found set, the best distractor
        cell's rank among the candidates.
    """
    regions, n = e.regions[i], int(e.regions[i].max()) + 1
    drops = e.region_drop[i, :n].astype(np.float64) / max(abs(float(e.margin[i])), 1e-12)
    on_d = np.array([(distractors & (regions == r)).any() for r in range(n)], bool)
    on_r = np.array([(region & (regions == r)).any() for r in range(n)], bool) & ~on_d
    order = np.argsort(-e.region_drop[i, :n], kind="stable")
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    found = np.isin(np.arange(n), order[: int(e.set_size[i])])

    def mean(v, m):
        return float(v[m].mean()) if m.any() else float("nan")

    return {"drop_distractor": mean(drops, on_d), "drop_evidence": mean(drops, on_r),
            "drop_other": mean(drops, ~on_d & ~on_r), "distractor_cells_positive": mean(drops > 0, on_d),
            "distractor_cells_found": mean(found, on_d),
            "distractor_cell_rank": float(rank[on_d].min()) if on_d.any() else float("nan")}


def diagnose(e, regions, distractors) -> dict:
    """name -> `(B,)` the per-image diagnosis of a batch's explanation (see the module docstring)."""
    from siamese_xai.explainers.regions import smoothed

    rank_map = e.ranking[..., 0]
    smooth = smoothed(e.drop_map, e.config.smooth_for(e.input.shape[1:]))[..., 0]
    lifted = rank_map - smooth > 0.5  # a lift adds at least 1 (`ranking_of`)
    out = {"distractor_top_lifted": [], "lifted_pixels": []}
    cells = []
    from siamese_xai.evaluation import metrics

    for i in range(len(rank_map)):
        top = metrics.top_q_mask(rank_map[i][None], int(regions[i].sum()))[0]
        on = top & distractors[i]
        out["distractor_top_lifted"].append(float((on & lifted[i]).sum() / on.sum()) if on.any() else float("nan"))
        out["lifted_pixels"].append(float(lifted[i].sum()))
        cells.append(cell_diagnosis(e, i, regions[i], distractors[i]))
    out.update({k: [c[k] for c in cells] for k in cells[0]})
    return {k: np.asarray(v, np.float64) for k, v in out.items()}


def rankings_of(e) -> dict:
    """name -> `(B, H, W, C)` orders of the pixels from one explanation's measurements (no more f calls).

    `shipped`: the explanation's `ranking`; `lift_positive`: the smoothed
    drop map with what x has lifted in every cell of positive drop (the
    design before `ProbeConfig.lift`); `lift_found`: lifted only in the
    found set's cells (`mask`); `smoothed`: the smoothed drop map, nothing
    lifted; `drop_map`: the drop map, neither smoothed nor lifted.
    """
    from siamese_xai.explainers.regions import ranking_of, smoothed

    smooth = smoothed(e.drop_map, e.config.smooth_for(e.input.shape[1:]))
    return {"shipped": e.ranking, "lift_positive": ranking_of(e.input, e.proposal, smooth),
            "lift_found": ranking_of(e.input, e.proposal, smooth, e.mask), "smoothed": smooth, "drop_map": e.drop_map}


def explain_variant(probe, x, other, tau, regions, distractors, batch: int = 40) -> dict:
    """name -> `(2n,)` per explained image: region scores, flips, calls, set size and the diagnosis."""
    from siamese_xai.explainers import questions

    out = {}
    for s0 in range(0, len(x), batch):
        sl = slice(s0, s0 + batch)
        e = probe.explain(x[sl], questions.Verify(other[sl], tau))
        values = {}
        for name, ranking in rankings_of(e).items():
            values.update({f"{k}/{name}": v
                           for k, v in pairs.region_values(ranking[..., 0], regions[sl], distractors[sl]).items()})
        values.update({"flips": e.flips.astype(np.float64), "n_calls": np.asarray(e.n_calls, np.float64),
                       "set_size": np.asarray(e.set_size, np.float64)})
        values.update(diagnose(e, regions[sl], distractors[sl]))
        for k, v in values.items():
            out.setdefault(k, []).append(np.asarray(v, np.float64))
    return {k: np.concatenate(v) for k, v in out.items()}


def summarise(values: dict, same, scored) -> dict:
    """kind -> name -> mean over the scored images of that kind (NaNs, where a value has no meaning, left out)."""
    out = {}
    for kind, want in (("mates", same), ("non_mates", ~same), ("all", np.ones_like(same))):
        rows = want & scored
        out[kind] = {k: (float(np.nanmean(v[rows])) if np.isfinite(v[rows]).any() else None)
                     for k, v in values.items()}
        out[kind]["images"] = int(rows.sum())
    return out


def run(run_dir: Path, variants: dict, settings: dict = SETTINGS, log=print) -> dict:
    """Every variant on the development set; the JSON's content."""
    from siamese_xai import runs
    from siamese_xai.explainers import questions
    from siamese_xai.explainers.prototypes import embed_in_batches
    from siamese_xai.explainers.probe import ProbeExplainer

    data, calib = dev_pairs(settings)
    embed = runs.load_run(run_dir).embed
    calibration = pairs.calibrate(embed, calib)
    tau = calibration["threshold"]
    d = questions.distance(embed_in_batches(embed, data["x1"]), embed_in_batches(embed, data["x2"]))
    correct = np.where(data["same"], d <= tau, d > tau)
    x = np.concatenate([data["x1"], data["x2"]])
    other = np.concatenate([data["x2"], data["x1"]])
    same = np.concatenate([data["same"], data["same"]])
    scored = np.concatenate([correct, correct])
    regions = np.concatenate([data["region1"], data["region2"]])
    distractors = np.concatenate([data["distractors"], data["distractors"]])
    base = ProbeExplainer.from_run(run_dir)
    out = {"settings": {**settings, "seed": DEV_SEED, "calibration_seed": DEV_CALIBRATION_SEED},
           "calibration": calibration, "scored_pairs": int(correct.sum()), "variants": {}}
    for name, changes in variants.items():
        t0 = time.perf_counter()
        values = explain_variant(base.replace(**changes), x, other, tau, regions, distractors)
        out["variants"][name] = {"config": changes, "seconds": time.perf_counter() - t0,
                                 "scores": summarise(values, same, scored)}
        for kind in ("mates", "non_mates", "all"):
            a = out["variants"][name]["scores"][kind]
            if not a["images"]:
                continue
            log(f"{name} {kind}: flips {a['flips']:.3f}, f calls {a['n_calls']:.1f}, set {a['set_size']:.1f}; " + "; ".join(
                f"{r}: rank acc {a['rank_accuracy/' + r]:.3f}, distractors {a['distractor_share/' + r]:.3f}"
                for r in ("shipped", "lift_positive", "lift_found", "smoothed", "drop_map")))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=Path, default=ROOT / "runs", help="folder of the trained networks")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "evaluation" / "pairs_dev.json")
    args = p.parse_args(argv)
    started, load = time.perf_counter(), os.getloadavg()[0]
    run_dir = args.runs / "pair-set"
    metrics = pairs.train_pair_run(run_dir, pairs.MODES["full"])
    out = run(run_dir, VARIANTS)
    out.update({"run": {"dir": str(run_dir.relative_to(ROOT) if run_dir.is_relative_to(ROOT) else run_dir),
                        "prototype_accuracy": metrics.get("prototype_accuracy")},
                "seconds": time.perf_counter() - started, "load_average_at_start": load,
                "machine": machine_description(), "date": datetime.date.today().isoformat()})
    files.write_json(args.out, out)
    print(f"{out['seconds']:.0f} s; wrote {args.out}")


if __name__ == "__main__":
    main()
