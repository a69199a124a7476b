"""The pair benchmark with known answers: why two images are the same identity, or why they differ.

Commands (from the project root; TFDS_DATA_DIR must point at MNIST):

    python -m benchmarks.evaluation.pairs                      # full (`make pairs`)
    python -m benchmarks.evaluation.pairs --tiny --out DIR     # a handful of pairs (the test)
    python -m benchmarks.evaluation.pairs --from-results       # verdicts, targets, PAIRS.md again from the stored values

Writes `benchmarks/evaluation/pairs.json` (settings, the networks and their accuracy,
per data set and method the mean and 95% interval of every score, the
verdicts of `pair_verdicts`, the targets and whether each is met, the wall time),
`benchmarks/evaluation/pairs_per_pair.npz` (every per-pair value, key
`dataset/metric/method`, so every test can be rerun) and
`benchmarks/evaluation/PAIRS.md` (`benchmarks.evaluation.pairs_report`, from the JSON alone).

Data sets:

- `pairs`: `benchmarks.evaluation.pair_data` (identities of glyphs at known places
  over clutter, distractors shared by every identity). f, the autoencoder and
  the decoder are trained by the package's own `siamese_xai.training.stages.train_run`
  (what `siamese-xai train --data-dir` runs) on a generated class folder
  (32 identities, `n_train` images), into `runs/pair-set`;
- `mnist`: pairs of MNIST test images (mates: the same digit; non-mates:
  different digits), with a network trained by `train_run` on MNIST
  (`runs/pair-mnist`, 6,000 images and short epochs; `runs/paper` is used instead where it exists). MNIST
  has no known region: its scores are the removal ones.

The question. Each pair (x1, x2) is explained twice, x1 against x2 and x2
against x1 (a map for each image). A mate pair asks "why the same", a
non-mate pair "why different". The verification threshold tau is the equal
error rate's, calibrated (`siamese_xai.explainers.questions.equal_error_threshold`) on
separate labelled pairs drawn the same way with another seed. The probe is
asked `Verify(other, tau)`; the pairs scored are those whose verdict at tau
is the one asked about (mates accepted, non-mates rejected); the count of the
others is in the JSON. Every other method's map is oriented to the question:
a map of what brings the two together (occlusion's rise of the distance,
KernelSHAP and IG of -d, distance-explainer) is used as is for "why the
same" and negated for "why different"; SBSM's map (similarity only, values
in [0, 1]) and the paper's pair mode (|change|, unsigned) are used as shipped
for both.

Methods (all in one run):

- `probe`: `ProbeExplainer.from_run(run).explain(x, Verify(other, tau))`,
  its `ranking`; the design (proposals: the other image to bring a rejected
  pair together, a blur in-fill to part an accepted one; cells, 40 regions,
  the smoothing) was fixed on MNIST training images before this set existed
  (`benchmarks/studies/probe_design.py`); the pair questions' lift of what x
  has to the found set's cells (`ProbeConfig.lift`) was chosen later on
  development pairs this benchmark never scores (`benchmarks.evaluation.pairs_dev`);
- `paper_pair`: the paper's pair mode, `SiameseExplainer.explain(x,
  Pair(other))` with its defaults (N = 5000 decoded perturbations), map =
  `mean_abs_change`;
- `occlusion`, `kernelshap`, `integrated_gradients`: `siamese_xai.evaluation.baselines`
  on the squared pair distance ||f(x) - f(other)||^2 (6x6 zero patch stride 2;
  49 superpixels, 300 coalitions; 32 steps from the blank image);
- `distance_explainer`, `sbsm`: the pip packages through their own APIs, in
  their own environment (`benchmarks/evaluation/pair_peers.py`; created on first use at
  `--peers-env`, default `.venv-peers`): they pull in PyTorch and are not
  installed beside TensorFlow;
- `random`: a uniformly random order (the floor).

Scores per explained image (a pair's value is the mean of its two images):

- `rank_accuracy`: share of the top-|R| pixels inside R (R: the swapped
  slot's 5x5 box for a non-mate pair; the identity's three slot boxes for a
  mate pair); `relevance_mass`: share of the map's positive mass inside R
  (`siamese_xai.evaluation.metrics.region_scores`); `distractor_share`: share of the
  top-|R| pixels on the distractors;
- `deletion_zero`, `deletion_blur`: area under the oriented pair distance
  (d for "why different", -d for "why the same"; d = ||f(x) - f(other)||)
  as the map's pixels are removed (0, or x blurred), the existing
  `siamese_xai.evaluation.faithfulness.removal_curves`; `road_morf`, `road_lerf`:
  ROAD (`road_curves`) of the same; lower is better but for `road_lerf`;
- `n_calls`: images through f per explained image (the other image's
  embedding included); the probe's `flips` (its verification
  counterfactual changes the verdict, checked by f) and `set_size`.

Verdict rules: the class benchmark's rule (docs/evaluation.md, "Verdict rule"),
by its code, with the pair scores' margins declared in docs/pairs.md
(`benchmarks.evaluation.pair_verdicts`): the probe against every other method on
every score, paired t-tests at both edges of the margin, Holm over a kind
(region; removal), verdicts better / worse / equivalent / not worse / not
better / not shown. It replaced a Wilcoxon test against zero, declared before
the first run, which read a difference not shown as no obstacle. The targets,
declared before the first run:

1. on `pairs`, the probe beats distance-explainer, SBSM and occlusion on the
   region scores (better on rank accuracy, shown not worse on the others;
   first declared as "rank accuracy better than");
2. its mean f calls are at most a fifth of each of those three's;
3. at most 0.05 of its top-|R| pixels lie on the shared distractors (mean);
4. its verification counterfactuals flip the verdict on at least 90% of the
   pairs it is asked about (all pairs, both data sets).

A missed target is reported with its numbers; the targets are not changed.
`--from-results` recomputes the verdicts and targets from pairs_per_pair.npz
and the settings in pairs.json, measuring nothing, and writes both files' page.
Time: see `seconds` in pairs.json (full mode: 80 mate + 80 non-mate pairs on
`pairs`, 40 + 40 on MNIST; the first run also trains both networks).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pickle
import subprocess
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from benchmarks.evaluation import pair_data, pair_peers, pair_verdicts  # noqa: E402
from siamese_xai.evaluation import baselines as bl  # noqa: E402
from siamese_xai.evaluation import faithfulness as fa  # noqa: E402
from siamese_xai import files
from siamese_xai.evaluation import metrics
from siamese_xai.explainers import questions  # noqa: E402
from siamese_xai.machine import machine_description  # noqa: E402
from siamese_xai.explainers.prototypes import embed_in_batches  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MODES = {
    "tiny": dict(n_mates=2, n_nonmates=2, n_calib=64, n_train=640, epochs=1, min_steps=0, mnist_pairs=(2, 2),
                 mnist_train=1000, mnist_epochs=(1, 1, 1), shap_nsamples=40, de_masks=50, ig_steps=4,
                 n_perturbations=100),
    # 80 + 80 pairs and a short MNIST training keep a run near 25 minutes on 2 shared cores
    "full": dict(n_mates=80, n_nonmates=80, n_calib=400, n_train=4800, epochs=None, min_steps=400,
                 mnist_pairs=(40, 40), mnist_train=6000, mnist_epochs=(4, 2, 2), shap_nsamples=300, de_masks=1000,
                 ig_steps=32, n_perturbations=5000),
}
PEERS = ("distance_explainer", "sbsm")
METHOD_ORDER = ("probe", "paper_pair", "distance_explainer", "sbsm", "occlusion", "kernelshap",
                "integrated_gradients", "random")
SCORES = pair_verdicts.SCORES
SBSM_OPTIONS = {"window_size": (6, 6), "stride": (2, 2)}  # its defaults (50x50, stride 20) are for photo-sized images


# -- the networks --------------------------------------------------------------


def train_pair_run(run_dir: Path, settings: dict, log=print) -> dict:
    """Trains f, the autoencoder and the decoder on the pair set's identities (or reuses the run)."""
    from siamese_xai.training import stages as training
    from siamese_xai.config import TrainConfig

    run_dir = Path(run_dir)
    folder = run_dir.parent / f"{run_dir.name}-images"
    if not (run_dir / "metrics.json").exists():
        x, y = pair_data.make_identity_images(settings["n_train"], seed=100)
        pair_data.write_folder(folder, x, y)
        config = _config(TrainConfig, settings)
        log(f"training {run_dir} on {settings['n_train']} images of {pair_data.IDENTITIES} identities")
        training.train_run(config, run_dir, data_dir=str(folder), verbose=0, min_steps=settings["min_steps"])
    return json.loads((run_dir / "metrics.json").read_text())


def train_mnist_run(run_dir: Path, settings: dict, log=print) -> dict:
    """An MNIST run for the MNIST pairs: runs/paper where it exists, else one trained on `mnist_train` images
    with `mnist_epochs` (Siamese network, autoencoder, decoder), short so that the benchmark stays short."""
    from siamese_xai.training import stages as training
    from siamese_xai.config import TrainConfig

    run_dir = Path(run_dir)
    if not (run_dir / "metrics.json").exists():
        log(f"training {run_dir} on {settings['mnist_train']} MNIST images")
        import dataclasses

        config = TrainConfig.paper(train_limit=settings["mnist_train"])
        for stage, epochs in zip(("snn", "autoencoder", "decoder"), settings["mnist_epochs"]):
            config = config.replace(**{stage: dataclasses.replace(getattr(config, stage), epochs=epochs)})
        training.train_run(config, run_dir, verbose=0)
    return json.loads((run_dir / "metrics.json").read_text())


def _config(train_config, settings):
    import dataclasses

    config = train_config.paper()
    if settings["epochs"]:
        for stage in ("snn", "autoencoder", "decoder"):
            config = config.replace(**{stage: dataclasses.replace(getattr(config, stage), epochs=settings["epochs"])})
    return config


# -- the pairs -----------------------------------------------------------------


def mnist_pairs(n_mates: int, n_nonmates: int, seed: int) -> dict:
    """Pairs of MNIST test images, mates (same digit) first; `x1`, `x2`, `same` as `pair_data.make_pairs`."""
    from siamese_xai.data.mnist import load_mnist

    x, y = load_mnist("test")
    rng = np.random.default_rng(seed)
    first, second = [], []
    for i in range(n_mates + n_nonmates):
        a = int(rng.integers(len(x)))
        pool = np.flatnonzero((y == y[a]) if i < n_mates else (y != y[a]))
        b = int(rng.choice(pool[pool != a]))
        first.append(a)
        second.append(b)
    return {"x1": x[first].astype(np.float32), "x2": x[second].astype(np.float32),
            "same": np.arange(n_mates + n_nonmates) < n_mates, "index1": np.array(first), "index2": np.array(second)}


def calibrate(embed, pairs: dict) -> dict:
    """The equal error rate's threshold on labelled pairs, and its error rates there."""
    d = questions.distance(embed_in_batches(embed, pairs["x1"]), embed_in_batches(embed, pairs["x2"]))
    tau = questions.equal_error_threshold(d, pairs["same"])
    far, frr = questions.rates(d, pairs["same"], tau)
    return {"threshold": tau, "false_accept_rate": far, "false_reject_rate": frr, "pairs": int(len(d)),
            "mates": int(pairs["same"].sum())}


# -- the methods ---------------------------------------------------------------


class PeerProcess:
    """The peers' worker (`benchmarks/evaluation/pair_peers.py`) in its own environment; f runs here and counts images."""

    def __init__(self, python, embed, log_path):
        env = dict(os.environ, TQDM_DISABLE="1", PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
        self._log = open(log_path, "ab")
        self._proc = subprocess.Popen([str(python), "-m", "benchmarks.evaluation.pair_peers"], cwd=ROOT, env=env,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log)
        self.embed = embed

    def run(self, job: dict):
        """`(map (H, W), images through f)` of one job."""
        pickle.dump(("job", job), self._proc.stdin, protocol=4)
        self._proc.stdin.flush()
        calls = 0
        while True:
            kind, payload = pickle.load(self._proc.stdout)
            if kind == "embed":
                h = embed_in_batches(self.embed, payload)
                calls += len(payload)
                pickle.dump(("h", h), self._proc.stdin, protocol=4)
                self._proc.stdin.flush()
            elif kind == "result":
                return payload, calls
            else:
                raise RuntimeError(f"the peer failed on {job['method']}:\n{payload}")

    def close(self):
        try:
            pickle.dump(("stop", None), self._proc.stdin)
            self._proc.stdin.close()
        except OSError:
            pass
        self._proc.wait(timeout=60)
        self._log.close()


def method_functions(run_dir, tau, settings, peers=None) -> dict:
    """name -> fn(x (B, H, W, 1), other (B, H, W, 1), same (B,) bool, seed) -> (maps (B, H, W), extras)."""
    from siamese_xai.config import ExplainConfig
    from siamese_xai.explainers.siamese import SiameseExplainer
    from siamese_xai.explainers.probe import ProbeExplainer

    probe = ProbeExplainer.from_run(run_dir)
    paper = SiameseExplainer.from_run(run_dir, ExplainConfig(n_perturbations=settings["n_perturbations"]))
    embed = paper.embed

    def oriented(maps, same):
        return np.where(np.asarray(same)[:, None, None], maps, -maps).astype(np.float32)

    def probe_fn(x, other, same, seed):
        e = probe.explain(x, questions.Verify(other, tau))
        return e.ranking[..., 0], {"n_calls": np.asarray(e.n_calls, np.float64), "flips": e.flips.astype(np.float64),
                                   "set_size": np.asarray(e.set_size, np.float64)}

    def paper_fn(x, other, same, seed):
        e = paper.explain(x, questions.Pair(other), seed=seed)
        return e.mean_abs_change[..., 0], {"n_calls": np.full(len(x), 2.0)}

    def distance_scalar(other):
        # the baselines explain ||f(x) - c_k||^2: here c_k is each image's partner, k its row
        return metrics.DistanceScalar(embed, embed_in_batches(embed, other)), np.arange(len(other))

    def with_calls(fn):
        def run(x, other, same, seed):
            scalar, rows = distance_scalar(other)
            maps = fn(scalar, x, rows, seed)
            return oriented(maps, same), {"n_calls": np.full(len(x), scalar.calls / len(x) + 1.0)}
        return run

    fns = {
        "probe": probe_fn,
        "paper_pair": paper_fn,
        "occlusion": with_calls(lambda sc, x, k, s: bl.occlusion_maps(sc, x, k)),
        "kernelshap": with_calls(lambda sc, x, k, s: bl.kernelshap_maps(sc, x, k, s, nsamples=settings["shap_nsamples"])),
        "integrated_gradients": with_calls(lambda sc, x, k, s: bl.integrated_gradients_maps(
            sc, x, k, steps=settings["ig_steps"])),
        "random": lambda x, other, same, seed: (bl.random_maps(x, None, seed), {"n_calls": np.zeros(len(x))}),
    }
    if peers is not None:
        def de_fn(x, other, same, seed):
            h_other = embed_in_batches(embed, other)
            out, calls = [], []
            for i in range(len(x)):
                m, c = peers.run({"method": "distance_explainer", "image": x[i], "reference": h_other[i],
                                  "seed": seed, "options": {"n_masks": settings["de_masks"]}})
                out.append(m)
                calls.append(c + 1)
            return oriented(np.stack(out), same), {"n_calls": np.array(calls, np.float64)}

        def sbsm_fn(x, other, same, seed):
            out, calls = [], []
            for i in range(len(x)):
                m, c = peers.run({"method": "sbsm", "image": x[i], "query": other[i], "options": SBSM_OPTIONS})
                out.append(m)
                calls.append(c)
            return np.stack(out), {"n_calls": np.array(calls, np.float64)}

        fns["distance_explainer"], fns["sbsm"] = de_fn, sbsm_fn
    return {name: fns[name] for name in METHOD_ORDER if name in fns}


# -- the scores ----------------------------------------------------------------


class PairMargin:
    """The oriented pair distance s * ||f(x) - f(partner)|| in the shape the removal curves read.

    `removal_curves` and `road_curves` score `all_distances(xs)[:, l] -
    all_distances(xs)[:, k]` of the perturbed images, T per explained image
    in order; with k = 0 and l = 1 the columns (0, s d) make the margin s d.
    """

    def __init__(self, embed, partners, signs):
        self.embed, self.partners, self.signs = embed, np.asarray(partners, np.float64), np.asarray(signs, np.float64)

    def all_distances(self, xs):
        h = embed_in_batches(self.embed, np.asarray(xs, np.float32))
        owner = np.arange(len(h)) // (len(h) // len(self.partners))
        d = questions.distance(h, self.partners[owner])
        return np.stack([np.zeros_like(d), self.signs[owner] * d], 1)


def removal_scores(embed, x, other, same, maps, seed=0, chunk=50) -> dict:
    """score -> `(n,)` for the removal scores of `SCORES`, the oriented distance (-d for mates, d otherwise)."""
    out = {k: [] for k, (_, kind) in SCORES.items() if kind == "removal"}
    for s0 in range(0, len(x), chunk):
        sl = slice(s0, s0 + chunk)
        b = len(x[sl])
        scalar = PairMargin(embed, embed_in_batches(embed, other[sl]), np.where(same[sl], -1.0, 1.0))
        zeros, ones = np.zeros(b, np.int64), np.ones(b, np.int64)
        for fill in ("zero", "blur"):
            cur = fa.removal_curves(scalar, x[sl], zeros, ones, maps[sl], fa.fill_images(x[sl], fill), seed=seed)
            out[f"deletion_{fill}"].append(cur["deletion_auc"])
        road = fa.road_curves(scalar, x[sl], zeros, ones, maps[sl], seed=seed)
        out["road_morf"].append(road["morf_auc"])
        out["road_lerf"].append(road["lerf_auc"])
    return {k: np.concatenate(v) for k, v in out.items()}


def region_values(maps, regions, distractors) -> dict:
    """score -> `(n,)`: rank accuracy, relevance mass, and the share of the top-|R| pixels on the distractors."""
    r = metrics.region_scores(maps, regions)
    share = np.empty(len(maps))
    for i in range(len(maps)):
        top = metrics.top_q_mask(maps[i][None], int(regions[i].sum()))[0]
        share[i] = (top & distractors[i]).sum() / regions[i].sum()
    return {"rank_accuracy": r["rank_accuracy"], "relevance_mass": r["mass"], "distractor_share": share}


def evaluate_dataset(name, run_dir, pairs, tau, settings, peers, log=print) -> tuple[dict, dict]:
    """Every method on one set of pairs: `(record, per_pair)` (per_pair: method -> score -> `(n_scored,)`)."""
    from siamese_xai import runs

    embed = runs.load_run(run_dir).embed
    n = len(pairs["same"])
    d = questions.distance(embed_in_batches(embed, pairs["x1"]), embed_in_batches(embed, pairs["x2"]))
    correct = np.where(pairs["same"], d <= tau, d > tau)
    x = np.concatenate([pairs["x1"], pairs["x2"]])
    other = np.concatenate([pairs["x2"], pairs["x1"]])
    same = np.concatenate([pairs["same"], pairs["same"]])
    has_region = "region1" in pairs
    record = {"pairs": n, "mates": int(pairs["same"].sum()), "threshold": tau,
              "verdict_correct": {"mates": int(correct[pairs["same"]].sum()),
                                  "non_mates": int(correct[~pairs["same"]].sum())},
              "scored_pairs": int(correct.sum()), "methods": {}}
    per_pair = {}
    fns = method_functions(run_dir, tau, settings, peers)
    for method, fn in fns.items():
        t0 = time.perf_counter()
        maps, extras = [], {}
        for s0 in range(0, 2 * n, 50):
            m, e = fn(x[s0: s0 + 50], other[s0: s0 + 50], same[s0: s0 + 50], 0)
            maps.append(np.asarray(m, np.float32))
            for k, v in e.items():
                extras.setdefault(k, []).append(np.asarray(v, np.float64))
        maps = np.concatenate(maps)
        extras = {k: np.concatenate(v) for k, v in extras.items()}
        seconds = time.perf_counter() - t0
        values = removal_scores(embed, x, other, same, maps)
        if has_region:
            regions = np.concatenate([pairs["region1"], pairs["region2"]])
            distractors = np.concatenate([pairs["distractors"], pairs["distractors"]])
            values.update(region_values(maps, regions, distractors))
        # a pair's value: the mean of its two images'
        by_pair = {k: (v[:n] + v[n:]) / 2 for k, v in values.items()}
        per_pair[method] = {k: v[correct] for k, v in by_pair.items()}
        rec = {"seconds_per_image": seconds / (2 * n),
               "n_calls": float(extras["n_calls"].mean()),
               "scores": {k: metrics.mean_ci(v) if v.size else None for k, v in per_pair[method].items()},
               "by_kind": {kind: {k: float(v[correct & (pairs["same"] == want)].mean())
                                  if (correct & (pairs["same"] == want)).any() else None
                                  for k, v in by_pair.items()}
                           for kind, want in (("mates", True), ("non_mates", False))}}
        if "flips" in extras:
            flips = (extras["flips"][:n] + extras["flips"][n:]) / 2
            rec["flip_rate"] = float(extras["flips"].mean())
            rec["flip_rate_by_kind"] = {"mates": float(flips[pairs["same"]].mean()) if pairs["same"].any() else None,
                                        "non_mates": float(flips[~pairs["same"]].mean())
                                        if (~pairs["same"]).any() else None}
            rec["set_size"] = float(extras["set_size"].mean())
            per_pair[method]["flips_all"] = extras["flips"]
        per_pair[method]["n_calls"] = ((extras["n_calls"][:n] + extras["n_calls"][n:]) / 2)[correct]
        record["methods"][method] = rec
        log(f"  {name}/{method}: {seconds:.0f} s, f calls {rec['n_calls']:.0f}"
            + (f", rank accuracy {rec['scores']['rank_accuracy']['mean']:.3f}"
               if has_region and rec["scores"]["rank_accuracy"] else ""))
    return record, per_pair


# -- main ----------------------------------------------------------------------


def rewrite_verdicts(out: Path) -> dict:
    """pairs.json in `out` with its verdicts and targets recomputed from `out/pairs_per_pair.npz`; returns it."""
    results = json.loads((Path(out) / "pairs.json").read_text())
    with np.load(Path(out) / "pairs_per_pair.npz") as npz:
        per_pair = pair_verdicts.load_per_pair(npz, METHOD_ORDER)
    results = pair_verdicts.recompute(results, per_pair)
    files.write_json(Path(out) / "pairs.json", results)
    return results


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tiny", action="store_true", help="a handful of pairs and tiny networks (the test)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "evaluation", help="folder for pairs.json, the npz and PAIRS.md")
    p.add_argument("--runs", type=Path, default=ROOT / "runs", help="folder of the trained networks")
    p.add_argument("--peers-env", type=Path, default=ROOT / ".venv-peers",
                   help="the peers' virtual environment (created if missing)")
    p.add_argument("--no-peers", action="store_true", help="leave distance-explainer and SBSM out")
    p.add_argument("--no-mnist", action="store_true", help="the pair set only")
    p.add_argument("--from-results", action="store_true",
                   help="recompute the verdicts and targets from pairs_per_pair.npz and pairs.json, and PAIRS.md")
    return p.parse_args(argv)


def main(argv=None):
    from benchmarks.evaluation import pairs_report

    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.from_results:
        rewrite_verdicts(args.out)
        pairs_report.write(args.out)
        return
    mode = "tiny" if args.tiny else "full"
    settings = MODES[mode]
    started = time.perf_counter()
    load = os.getloadavg()[0]
    suffix = "-tiny" if args.tiny else ""
    runs_info = {}
    pair_run = args.runs / f"pair-set{suffix}"
    mnist_run = ROOT / "runs" / "paper"
    if args.tiny or not (mnist_run / "metrics.json").exists():
        mnist_run = args.runs / f"pair-mnist{suffix}"

    def prepare(name):
        """`(run, pairs, calibration pairs)` of a data set, its network trained first where missing."""
        t0 = time.perf_counter()
        run = pair_run if name == "pairs" else mnist_run
        trained = (train_pair_run if name == "pairs" else train_mnist_run)(run, settings)
        runs_info[name] = {"run": str(run.relative_to(ROOT) if run.is_relative_to(ROOT) else run),
                           "metrics": trained, "seconds": time.perf_counter() - t0}
        half = settings["n_calib"] // 2
        if name == "pairs":
            return (run, pair_data.make_pairs(settings["n_mates"], settings["n_nonmates"], seed=1),
                    pair_data.make_pairs(half, half, seed=2))
        return run, mnist_pairs(*settings["mnist_pairs"], seed=1), mnist_pairs(half, half, seed=2)

    names = ["pairs"] + ([] if args.no_mnist else ["mnist"])
    peers = None
    if not args.no_peers:
        python = pair_peers.ensure_environment(args.peers_env)
        args.runs.mkdir(parents=True, exist_ok=True)
        peers_log = args.runs / "pairs_peers.log"
        peers_log.unlink(missing_ok=True)
        peers = PeerProcess(python, None, peers_log)
    results = {"mode": mode, "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()},
               "sbsm_options": {k: list(v) for k, v in SBSM_OPTIONS.items()}, "runs": runs_info, "datasets": {},
               "calibration": {}}
    per_pair_by_set = {}
    from siamese_xai import runs

    try:
        for name in names:  # each set's network is trained (or loaded) only when its turn comes
            run_dir, pairs, calib = prepare(name)
            embed = runs.load_run(run_dir).embed
            results["calibration"][name] = calibrate(embed, calib)
            tau = results["calibration"][name]["threshold"]
            if peers is not None:
                peers.embed = embed  # f of this data set's run
            print(f"{name}: {len(pairs['same'])} pairs, tau = {tau:.4f}")
            results["datasets"][name], per_pair_by_set[name] = evaluate_dataset(name, run_dir, pairs, tau, settings,
                                                                                 peers)
    finally:
        if peers is not None:
            peers.close()
    results = pair_verdicts.recompute(results, per_pair_by_set)
    results["peers"] = ({"environment": "a separate virtual environment (benchmarks/evaluation/pair_peers.py)",
                         "packages": list(pair_peers.PACKAGES)} if peers is not None else None)
    results["seconds"] = time.perf_counter() - started
    results["load_average_at_start"] = load
    results["machine"] = machine_description()
    results["date"] = datetime.date.today().isoformat()
    arrays = {f"{ds}/{score}/{m}": v for ds, by in per_pair_by_set.items() for m, s in by.items()
              for score, v in s.items()}
    np.savez_compressed(args.out / "pairs_per_pair.npz", **arrays)
    files.write_json(args.out / "pairs.json", results)
    pairs_report.write(args.out)
    for t in results["targets"]:
        print(("MET    " if t["met"] else "MISSED " if t["met"] is False else "NOT RUN ") + t["target"])
    print(f"{results['seconds']:.0f} s; wrote {args.out / 'pairs.json'} and PAIRS.md")


if __name__ == "__main__":
    main()
