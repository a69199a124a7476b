"""The randomisation check's rule: relative similarity, its interval over images and seeds, the verdict words.

Declared before the numbers it judges (docs/evaluation.md, "Model-parameter
randomisation"), all pure functions of per-image arrays:

- r = (s - floor) / (1 - floor) per image and seed: s the similarity of the
  random-f map to the trained-f map of the same image (with the method's seed
  fixed, the same f gives the same map: the ceiling is 1), the floor the mean
  similarity of the image's trained-f map to the other images' trained-f maps;
- per seed, the mean of r over images with its 95% Student-t interval; pooled,
  the mean over images and seeds with the 95% interval of the two-way crossed
  random-effects variance (`pooled_interval`);
- the words: **changes** when the pooled interval's upper end is below
  THRESHOLD on every measure of VERDICT_KEYS; **does not change** when its lower
  end is above THRESHOLD on every one (the equivalence region r > THRESHOLD
  holds the interval); **not shown** otherwise, or where the map is a template
  (mean 1 - floor under TEMPLATE_GAP on a measure: no room for r).
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import tensorflow as tf
from scipy import stats
from scipy.stats import rankdata

from siamese_xai.evaluation import metrics

Q = 100  # top-q masks: the explainer's own default mask size
THRESHOLD = 0.5  # r: the random-f map keeps half of what sets its image's map apart from other images' maps
TEMPLATE_GAP = 0.05  # mean 1 - floor below this on a measure: the map barely depends on the image
VERDICT_KEYS = ("ssim", "spearman")  # both must agree for "changes" or "does not change"
CHANGES, SAME, NOT_SHOWN = "changes", "does not change", "not shown"
_EPS = 1e-9


# ---------------------------------------------------------------------------
# similarity of two maps (pure functions)


def rank_correlation(a, b) -> np.ndarray:
    """Spearman rank correlation of each pair of maps (ties get their average rank).

    A constant map has no ranking: its correlation with a non-constant map is
    0 (it shares none of that map's ordering) and with another constant map 1.

    Args:
        a, b: `(B, H, W)` maps.

    Returns:
        `(B,)` float64 in [-1, 1].
    """
    a, b = _pair(a, b)
    ra = rankdata(a, axis=1)
    rb = rankdata(b, axis=1)
    ra -= ra.mean(1, keepdims=True)
    rb -= rb.mean(1, keepdims=True)
    va, vb = (ra * ra).sum(1), (rb * rb).sum(1)
    den = np.sqrt(va * vb)
    rho = np.where(den > 0, (ra * rb).sum(1) / np.where(den > 0, den, 1.0), 0.0)
    return np.where((va == 0) & (vb == 0), 1.0, rho)


def top_q_masks(maps, q: int = Q) -> np.ndarray:
    """`(B, H, W)` bool: each map's q largest values (`metrics.top_q_mask`); ties broken by a permutation seeded by the map itself.

    Seeding the tie-break by the map's content means that identical maps give
    identical masks, while pixels tied at one value in two *different* maps
    (e.g. the zeros that fill the mask of a map marking fewer than q pixels)
    coincide only by chance, not because both masks fill them in raster order,
    which the package's default tie-break (the lower flat index) would make
    them do and so inflate the IoU of unrelated maps.
    """
    maps = np.asarray(maps, np.float64)
    flat = maps.reshape(len(maps), -1)
    tie = np.stack([np.random.default_rng(zlib.crc32(np.ascontiguousarray(row).tobytes())).permutation(row.size)
                    for row in flat]) if len(flat) else np.zeros(flat.shape, np.int64)
    return metrics.top_q_mask(maps, q, tie_order=tie)


def map_ssim(a, b) -> np.ndarray:
    """`(B,)` SSIM (`tf.image.ssim`, its 11x11 Gaussian window) of each pair of maps, each min-max scaled to [0, 1].

    A constant map scales to 0 everywhere. The maps must be at least 11x11.
    """
    shape = np.shape(a) + (1,)
    a, b = _pair(a, b)

    def scale(m):
        lo, hi = m.min(1, keepdims=True), m.max(1, keepdims=True)
        return np.where(hi > lo, (m - lo) / np.where(hi > lo, hi - lo, 1.0), 0.0).reshape(shape)

    ssim = tf.image.ssim(tf.constant(scale(a), tf.float32), tf.constant(scale(b), tf.float32), max_val=1.0)
    return ssim.numpy().astype(np.float64)


def map_similarity(original, randomised, q: int = Q) -> dict:
    """How similar each randomised-model map stays to the trained model's map of the same image.

    Args:
        original: `(B, H, W)` maps for the trained f.
        randomised: `(B, H, W)` maps of the same images for a randomised f.
        q: the top-q mask size.

    Returns:
        A dict of `(B,)` float64 arrays: `spearman` (signed maps),
        `spearman_abs` (absolute values), `ssim`, and `iou_top_q` (the IoU of
        the two top-q masks).
    """
    original, randomised = np.asarray(original, np.float64), np.asarray(randomised, np.float64)
    _pair(original, randomised)
    mo, mr = top_q_masks(original, q), top_q_masks(randomised, q)
    return {
        "spearman": rank_correlation(original, randomised),
        "spearman_abs": rank_correlation(np.abs(original), np.abs(randomised)),
        "ssim": map_ssim(original, randomised),
        "iou_top_q": np.array([metrics.mask_iou(x, y) for x, y in zip(mo, mr)]),
    }


def _pair(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"The maps must be two (B, H, W) arrays of one shape. Received: {a.shape} and {b.shape}")
    return a.reshape(len(a), -1), b.reshape(len(b), -1)


def floors(maps, q: int = Q) -> dict:
    """Per image, the mean similarity of its map to every other image's map of the same method (the floor).

    Args:
        maps: `(n, H, W)` one method's maps of n >= 2 images.

    Returns:
        measure -> `(n,)` float64 (the measures of `map_similarity`).
    """
    maps = np.asarray(maps, np.float64)
    n = len(maps)
    if maps.ndim != 3 or n < 2:
        raise ValueError(f"`maps` must be (n >= 2, H, W). Received: shape {maps.shape}")
    i, j = np.triu_indices(n, 1)
    sim = map_similarity(maps[i], maps[j], q)
    out = {}
    for key, v in sim.items():
        total = np.bincount(i, v, n) + np.bincount(j, v, n)
        out[key] = total / (n - 1)
    return out


def relative_similarity(similarity, floor) -> np.ndarray:
    """r = (s - floor) / (1 - floor), elementwise; NaN where 1 - floor <= 1e-9 (no room above the floor).

    Args:
        similarity: `(n,)` or `(n, S)` s per image (and seed).
        floor: `(n,)` the floor per image (broadcast over seeds).
    """
    s, f = np.asarray(similarity, np.float64), np.asarray(floor, np.float64)
    if s.ndim == 2:
        f = f[:, None]
    room = 1.0 - f
    return np.where(room > _EPS, (s - f) / np.where(room > _EPS, room, 1.0), np.nan)


def student_interval(values) -> dict:
    """`{"mean", "lo", "hi", "n"}`: the mean of `values` and its 95% Student-t interval (a point for n = 1)."""
    v = np.asarray(values, np.float64).ravel()
    if v.size == 0:
        raise ValueError("`values` must hold at least one value. Received: an empty array")
    mean = float(v.mean())
    half = float(stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else 0.0
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "n": int(v.size)}


def pooled_interval(values) -> dict:
    """The mean of an images x seeds table and its 95% interval under crossed random image and seed effects.

    y_ij = mu + a_i + b_j + e_ij. Var(mean) = s_a^2 / n + s_b^2 / S + s_e^2 / (n S),
    estimated from the two-way ANOVA mean squares, s_a^2 = (MS_image - MS_res) / S,
    s_b^2 = (MS_seed - MS_res) / n, s_e^2 = MS_res, each component below 0 set to 0;
    the interval uses Student's t with Satterthwaite's degrees of freedom for that
    combination of mean squares. One seed: the Student-t interval over images.

    Args:
        values: `(n, S)` float, n >= 2 images, S >= 1 seeds, no NaN.

    Returns:
        `{"mean", "lo", "hi", "df", "n_images", "n_seeds"}`.
    """
    y = np.asarray(values, np.float64)
    if y.ndim != 2 or y.shape[0] < 2 or y.shape[1] < 1 or not np.isfinite(y).all():
        raise ValueError(f"`values` must be a finite (n >= 2 images, S >= 1 seeds) table. Received: shape {y.shape}"
                         f"{'' if np.isfinite(y).all() else ' with NaN or inf'}")
    n, s = y.shape
    mean = float(y.mean())
    if s == 1:
        one = student_interval(y[:, 0])
        return {"mean": mean, "lo": one["lo"], "hi": one["hi"], "df": float(n - 1), "n_images": n, "n_seeds": 1}
    rows, cols = y.mean(1), y.mean(0)
    ms = {"image": s * ((rows - mean) ** 2).sum() / (n - 1), "seed": n * ((cols - mean) ** 2).sum() / (s - 1),
          "res": ((y - rows[:, None] - cols[None] + mean) ** 2).sum() / ((n - 1) * (s - 1))}
    dfs = {"image": n - 1, "seed": s - 1, "res": (n - 1) * (s - 1)}
    # n S Var(mean) = c_image MS_image + c_seed MS_seed + c_res MS_res, after clipping the components at 0
    a_pos, b_pos = ms["image"] > ms["res"], ms["seed"] > ms["res"]
    coef = {"image": float(a_pos), "seed": float(b_pos), "res": 1.0 - a_pos - b_pos}
    terms = {k: coef[k] * ms[k] for k in ms}
    total = sum(terms.values())
    if total <= 0:
        return {"mean": mean, "lo": mean, "hi": mean, "df": math.inf, "n_images": n, "n_seeds": s}
    df = total ** 2 / sum(t ** 2 / dfs[k] for k, t in terms.items() if t != 0)
    half = float(stats.t.ppf(0.975, df) * math.sqrt(total / (n * s)))
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "df": float(df), "n_images": n, "n_seeds": s}


def verdict_word(pooled: dict, room: dict, threshold: float = THRESHOLD, gap: float = TEMPLATE_GAP) -> tuple:
    """The rule's word and its reason.

    Args:
        pooled: measure -> `{"lo", "hi", ...}` the pooled interval of mean r (None: no image with room).
        room: measure -> mean 1 - floor.

    Returns:
        `(word, reason)`: word one of "changes", "does not change", "not shown".
    """
    missing = [k for k in VERDICT_KEYS if k not in pooled or k not in room]
    if missing:
        raise ValueError(f"`pooled` and `room` must hold every measure of {VERDICT_KEYS}. Received: missing {missing}")
    template = [k for k in VERDICT_KEYS if room[k] < gap or pooled[k] is None]
    if template:
        return NOT_SHOWN, f"template: mean 1 - floor below {gap} on {', '.join(template)}"
    if all(pooled[k]["hi"] < threshold for k in VERDICT_KEYS):
        return CHANGES, f"upper end below {threshold} on {' and '.join(VERDICT_KEYS)}"
    if all(pooled[k]["lo"] > threshold for k in VERDICT_KEYS):
        return SAME, f"lower end above {threshold} on {' and '.join(VERDICT_KEYS)}"
    return NOT_SHOWN, f"an interval reaches {threshold}, or the measures disagree"


def judge(similarity: dict, floor: dict) -> dict:
    """The rule applied to one method (one budget): per-image r, per-seed and pooled intervals, the word.

    Args:
        similarity: measure -> `(n, S)` s per image and randomisation seed.
        floor: measure -> `(n,)` the floor per image.

    Returns:
        `{"verdict", "reason", "relative": measure -> pooled interval, "per_seed": measure -> [interval per seed],
        "room": measure -> mean 1 - floor, "per_image_relative": measure -> (n, S) list}`; images without
        room (NaN r) are left out of the intervals.
    """
    pooled, per_seed, room, per_image = {}, {}, {}, {}
    for key in VERDICT_KEYS:
        r = relative_similarity(similarity[key], floor[key])
        keep = np.isfinite(r).all(1)
        room[key] = float(np.mean(1.0 - np.asarray(floor[key], np.float64)))
        pooled[key] = pooled_interval(r[keep]) if keep.sum() >= 2 else None
        per_seed[key] = [student_interval(r[keep, j]) for j in range(r.shape[1])] if keep.sum() >= 2 else None
        per_image[key] = np.round(r, 4).tolist()
    word, reason = verdict_word(pooled, room)
    return {"verdict": word, "reason": reason, "relative": pooled, "per_seed": per_seed, "room": room,
            "per_image_relative": per_image}


def check_of_the_check(methods: dict, controls) -> dict:
    """Every model-free ordering (`controls`) must come out "does not change"; `{"passed", "verdicts", "rule"}`."""
    verdicts = {name: methods[name]["verdict"] for name in controls}
    return {"rule": "every model-free ordering's map must come out 'does not change'", "verdicts": verdicts,
            "passed": bool(verdicts) and all(v == SAME for v in verdicts.values())}


# ---------------------------------------------------------------------------
# the results block of docs/evaluation.md, from randomisation.json

DOCS_BEGIN = "<!-- randomisation results: written by python -m benchmarks.evaluation.randomisation from randomisation.json -->"
DOCS_END = "<!-- end of randomisation results -->"


def _cell(interval) -> str:
    return "n/a" if interval is None else f"{interval['mean']:.2f} [{interval['lo']:.2f}, {interval['hi']:.2f}]"


def _seed_cell(per_seed) -> str:
    return "n/a" if per_seed is None else " / ".join(f"{s['mean']:.2f}" for s in per_seed)


def render_markdown(result: dict) -> str:
    """The results block: one row per method, the decoder methods' budget sweep, the check of the check, time, load."""
    seeds, budgets = result["protocol"]["seeds"], result["seeds"][0]["budgets"]
    lines = [f"Measured on run `{result['run_id']}`, {result['n_images']} test images x {len(seeds)} randomisation "
             f"seeds {seeds}, {result['mode']} mode, {result['seconds']:.0f} s on {result['machine']} (load "
             f"{result['load_average_1_5_15_min']}), {result['date']}. r is the relative similarity; "
             "mean [95% interval] pooled over images and seeds, then the per-seed means.", "",
             "| method | question | SSIM r | Spearman r | SSIM r per seed | Spearman r per seed | verdict |",
             "|---|---|---|---|---|---|---|"]
    names = sorted(result["methods"], key=lambda n: n.endswith("_kept"))  # the diagnostics last
    for name in names:
        m = result["methods"][name]
        rel, per = m["relative"], m["per_seed"]
        lines.append(f"| {name} | {m['question']} | {_cell(rel['ssim'])} | {_cell(rel['spearman'])} | "
                     f"{_seed_cell(per['ssim'])} | {_seed_cell(per['spearman'])} | **{m['verdict']}** |")
    lines += ["", "The decoder methods' verdict at each retraining budget of the explainer (the largest decides):", "",
              "| method | " + " | ".join(f"{b['steps']} steps ({b['images']} images, epochs {b['epochs']})"
                                         for b in budgets) + " |",
              "|---|" + "---|" * len(budgets)]
    for name, m in result["methods"].items():
        if "budgets" in m:
            lines.append(f"| {name} | " + " | ".join(f"{b['verdict']} (SSIM r {_cell(b['relative']['ssim'])})"
                                                      for b in m["budgets"]) + " |")
    check = result["check_of_the_check"]
    lines += ["", f"Check of the check ({check['rule']}): **{'passed' if check['passed'] else 'FAILED'}** ("
              + ", ".join(f"{n}: {v}" for n, v in check["verdicts"].items()) + ")."]
    return "\n".join(lines)


def write_docs(result: dict, path) -> None:
    """Replaces the text between DOCS_BEGIN and DOCS_END in `path` by `render_markdown(result)`."""
    from pathlib import Path

    path = Path(path)
    text = path.read_text()
    if text.count(DOCS_BEGIN) != 1 or text.count(DOCS_END) != 1:
        raise ValueError(f"`path` must hold the markers {DOCS_BEGIN!r} and {DOCS_END!r} once each. Received: {path}")
    head, rest = text.split(DOCS_BEGIN)
    _, tail = rest.split(DOCS_END)
    path.write_text(f"{head}{DOCS_BEGIN}\n{render_markdown(result)}\n{DOCS_END}{tail}")
