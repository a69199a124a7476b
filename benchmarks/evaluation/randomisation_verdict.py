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

import numpy as np
from scipy import stats

THRESHOLD = 0.5  # r: the random-f map keeps half of what sets its image's map apart from other images' maps
TEMPLATE_GAP = 0.05  # mean 1 - floor below this on a measure: the map barely depends on the image
VERDICT_KEYS = ("ssim", "spearman")  # both must agree for "changes" or "does not change"
CHANGES, SAME, NOT_SHOWN = "changes", "does not change", "not shown"
_EPS = 1e-9


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
