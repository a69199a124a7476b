"""The whole reproduction with several training seeds: every REPORT.md quantity per seed, with mean, sd, min, max.

Command (`make seeds`):

    .venv/bin/python -m reproduce.seeds --work runs/seeds --out figures

Run time: one full training per seed (6-14 minutes on a quiet 2-core CPU) plus
about 2 minutes of explanations (Figs. 4-9, the convergence check, the claims of
reproduce/claims.py). Writes `WORK/seed-S/` (a run folder per seed, with
`quantities.json` once the seed is finished) and `OUT/seeds.json`: per quantity
the values by seed, mean, sd, min, max and the band that reproduce/report.py
checks a run against (see reproduce/bands.py).

Resumable: a seed whose `quantities.json` exists is skipped; an interrupted
seed resumes inside its training through the run folder's checkpoints (the
stages already saved are loaded, the stage in progress restarts from its last
checkpoint). `seeds.json` is rewritten after every seed; its `seeds_done`
says which seeds it holds, and a band is shown only once 5 seeds are done.

The training seed drives every random choice of training: the initial weights
(`keras.utils.set_random_seed`), the SNN's pair draws and the order of every
epoch (`siamese_xai.data.mnist`); the explanations use perturbation seed 0 on every
run, so the spread across seeds is the spread of training.
"""

import argparse
import dataclasses
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SEEDS = (1, 2, 3, 4, 5)
QUANTITIES_FILE = "quantities.json"


def seed_record(run_dir, data_dir=None, explain_config=None, subset_size=None, reference_n: int = 20000) -> dict:
    """The REPORT.md quantities and claim verdicts of one trained run folder (explains, does not train)."""
    from reproduce import bands
    from reproduce import claims
    from reproduce import paper
    from siamese_xai.data import mnist as data

    t0 = time.perf_counter()
    run = paper.PaperRun(run_dir, data_dir, explain_config)
    figures = [run.explain_figure(spec.name)[1] for spec in paper.PAPER_FIGURES]
    indices = [f["test_index"] for f in figures]
    curve = paper.convergence_curve(run.explainer, run.x[indices], bands.CONVERGENCE_N, reference_n=reference_n)
    convergence = {"iou_mean": {n: float(curve[n].mean()) for n in bands.CONVERGENCE_N}}
    x_train, y_train = data.load_mnist("train", data_dir)
    means = claims.class_mean_images(x_train, y_train, len(run.explainer.prototypes))
    scores = claims.per_image_scores(run.explainer, run.x, run.y, means, subset_size or claims.SUBSET_SIZE,
                                     summary=run.summary)
    claim_record = {"claims": claims.judge(scores)}
    from siamese_xai import files, runs

    metrics = files.read_json(os.path.join(run_dir, runs.METRICS_FILE))
    return {
        "quantities": bands.run_quantities(metrics, figures, convergence, claim_record),
        "claims": claim_record["claims"],
        "figures": {f["figure"]: f["test_index"] for f in figures},
        "explain_config": dataclasses.asdict(run.explainer.config),
        "training_seconds": metrics.get("seconds", {}),
        "explain_seconds": round(time.perf_counter() - t0, 1),
    }


def claims_summary(per_seed: dict) -> dict:
    """Each claim across the seeds: the seeds' verdicts and estimates, pooled by `bands.claims_across_seeds`.

    Args:
        per_seed: `{seed: seed_record(...)}`.

    Returns:
        `{name: {"verdicts", "effects", "pooled", "verdict", "uncontrolled_verdict"}}` (effects: the uncontrolled
        statistic by seed).
    """
    from reproduce import bands
    from reproduce import claims

    record = {"seeds_done": sorted(per_seed), "quantities": bands.summarise({s: r["quantities"] for s, r in per_seed.items()}),
              "claims": {name: {"verdicts": {str(s): r["claims"][name]["verdict"] for s, r in per_seed.items()}}
                         for name in bands.CLAIM_NAMES}}
    across = bands.claims_across_seeds(record, {name: sign for name, *_, sign in claims.CLAIMS})
    uncontrolled = lambda c: c.get("uncontrolled", c)["effect"]
    return {name: {"verdicts": record["claims"][name]["verdicts"],
                   "effects": {str(s): uncontrolled(r["claims"][name]) for s, r in per_seed.items()},
                   **{k: across[name][k] for k in ("pooled", "verdict", "uncontrolled_verdict")}}
            for name in bands.CLAIM_NAMES}


def run_seeds(seeds, work, out, train_config, data_dir=None, explain_config=None, subset_size=None,
              reference_n: int = 20000, verbose: int = 1, collect_only: bool = False) -> dict:
    """Trains (or resumes) and measures every seed, then writes OUT/seeds.json; returns its record.

    Args:
        seeds: the training seeds.
        work: the folder of the run folders `seed-S`.
        out: where seeds.json goes.
        train_config: a `TrainConfig`; each seed trains `train_config.replace(seed=S)`.
        data_dir: MNIST's location.
        explain_config: the explainer's config (None: the paper's).
        subset_size: the claims' test subset (None: claims.SUBSET_SIZE).
        reference_n: N of the convergence check's reference.
        collect_only: summarise the finished seeds and train none (`seeds_done` says which).
    """
    from reproduce import bands
    from siamese_xai import files
    from siamese_xai.training import stages as training

    per_seed, summary = {}, None
    for seed in seeds:
        run_dir = os.path.join(work, f"seed-{seed}")
        path = os.path.join(run_dir, QUANTITIES_FILE)
        if os.path.exists(path):
            if verbose:
                print(f"seed {seed}: {path} exists, skipping")
        elif collect_only:
            continue
        else:
            if verbose:
                print(f"seed {seed}: training {run_dir}", flush=True)
            training.train_run(train_config.replace(seed=int(seed)), run_dir, data_dir=data_dir, verbose=verbose)
            record = seed_record(run_dir, data_dir, explain_config, subset_size, reference_n)
            files.write_json(path, record)
        per_seed[int(seed)] = files.read_json(path)
        summary = {
            "seeds_planned": [int(s) for s in seeds],
            "seeds_done": sorted(per_seed),
            "train_config": {k: v for k, v in train_config.to_dict().items() if k != "seed"},
            "explain_config": per_seed[int(seed)]["explain_config"],
            "quantities": bands.summarise({s: r["quantities"] for s, r in per_seed.items()}),
            "claims": claims_summary(per_seed),
            "figures": {str(s): r["figures"] for s, r in per_seed.items()},
        }
        files.write_json(os.path.join(out, "seeds.json"), summary)
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS), help="training seeds (default 1-5)")
    parser.add_argument("--work", default="runs/seeds", help="the folder of the per-seed run folders")
    parser.add_argument("--out", default="figures", help="where seeds.json goes")
    parser.add_argument("--data-dir", help="MNIST's location (default: $TFDS_DATA_DIR)")
    parser.add_argument("--tiny", action="store_true", help="TrainConfig.tiny() and small explanations (tests)")
    parser.add_argument("--collect", action="store_true", help="only summarise the seeds already finished; train none")
    args = parser.parse_args()
    from siamese_xai.config import TrainConfig
    from siamese_xai.config import ExplainConfig

    if args.tiny:
        run_seeds(args.seeds, args.work, args.out, TrainConfig.tiny(), args.data_dir, ExplainConfig.tiny(),
                  subset_size=100, reference_n=256, verbose=0, collect_only=args.collect)
    else:
        run_seeds(args.seeds, args.work, args.out, TrainConfig.paper(), args.data_dir, collect_only=args.collect)
    print(f"seeds -> {args.out}/seeds.json")


if __name__ == "__main__":
    main()
