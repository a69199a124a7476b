"""The questions an explainer answers: each is a margin over embeddings whose sign is the decision.

A Siamese network f is asked one of a few kinds of question, and each kind is a
margin m over embeddings, positive for the decision f made (d is the
Euclidean distance; the class questions use squared distances to the
prototypes, whose sign is the nearest-prototype decision):

| question | decision | margin m (> 0: the decision holds) |
|---|---|---|
| `WhyClass(k)` | x is classed k | min_{j != k} d(h, c_j)^2 - d(h, c_k)^2 |
| `RatherThan(k, l)` | x is nearer k than l | d(h, c_l)^2 - d(h, c_k)^2 |
| `Pair(x2)` | f(x) lies this far from f(x2) | d(h, f(x2)) |
| `Verify(x2, tau)` | accept (d <= tau) or reject | tau - d(h, f(x2)) if accepted, d - tau if rejected |
| `Rank(a, b)` | a ranks above b for the query x | d(h, f(b)) - d(h, f(a)) |

(h = f(x); k defaults to the nearest prototype, l to the runner-up.) A
question is a small frozen object; `resolve` turns it, the embeddings and
the prototypes into a `Decision`: the margin per input, the classes it
names, the embedding a change would move h toward (`target`) and, for the
pair questions, the other image. An estimator that asks f (the probe) then
measures the margin of changed images through `Decision.margin_of` and
whether the decision flipped through `Decision.flipped`.

Few-shot: every class question takes the prototypes the explainer holds;
`siamese_xai.explainers.prototypes.compute_prototypes` of a support set given at call
time makes them, with no retraining (see `ProbeExplainer.with_support`).

Verification thresholds come from the user or from a labelled set:
`equal_error_threshold` and `threshold_at_false_accept_rate` calibrate tau
from the distances of labelled pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# The name of each kind of question where one string names it (files, the command line).
KINDS = ("class", "contrast", "pair", "verify", "rank")


@dataclass(frozen=True, eq=False)
class WhyClass:
    """Why is x classed k (rather than any other class)?

    Attributes:
        target: k: None (each input's nearest prototype), one class, or one per input.
    """

    target: object = None
    kind = "class"


@dataclass(frozen=True, eq=False)
class RatherThan:
    """Why is x classed k rather than l?

    Attributes:
        target: k: None (each input's nearest prototype), one class, or one per input.
        contrast: l: None (each input's runner-up, the nearest prototype other
            than k), one class, or one per input; never equal to k.
    """

    target: object = None
    contrast: object = None
    kind = "contrast"


@dataclass(frozen=True, eq=False)
class Pair:
    """Why does f(x) lie as far as it does from f(other)? The margin is the distance itself.

    Attributes:
        other: the second image: one for every input, or one per input.
    """

    other: object
    kind = "pair"


@dataclass(frozen=True, eq=False)
class Verify:
    """Why does f accept (d <= tau) or reject the pair (x, other) at the threshold tau?

    Attributes:
        other: the second image: one for every input, or one per input.
        threshold: tau > 0 on the Euclidean distance d(f(x), f(other))
            (`equal_error_threshold` calibrates one from labelled pairs).
    """

    other: object
    threshold: float
    kind = "verify"

    def __post_init__(self):
        t = self.threshold
        if isinstance(t, bool) or not isinstance(t, (int, float, np.floating, np.integer)) or not 0 < t < np.inf:
            raise ValueError(f"`threshold` must be a finite number > 0. Received: threshold={t!r}")


@dataclass(frozen=True, eq=False)
class Rank:
    """Why does `above` rank above `below` in a gallery searched with the query x?

    Attributes:
        above: the item ranked higher (nearer x): one image, or one per input.
        below: the item ranked lower: one image, or one per input.
    """

    above: object
    below: object
    kind = "rank"


QUESTIONS = (WhyClass, RatherThan, Pair, Verify, Rank)


def check_question(question):
    """`question` if it is one of `QUESTIONS`, else a TypeError naming what was received."""
    if not isinstance(question, QUESTIONS):
        names = ", ".join(q.__name__ for q in QUESTIONS)
        raise TypeError(f"`question` must be one of {names}. Received: question={question!r}")
    return question


def images_of(question) -> dict:
    """The images a question carries, by role (`other`, or `above` and `below`); {} for the class questions."""
    if isinstance(question, (Pair, Verify)):
        return {"other": question.other}
    if isinstance(question, Rank):
        return {"above": question.above, "below": question.below}
    return {}


def describe(question) -> dict:
    """The question as JSON-ready data (its images are not copied: the result holds their embeddings)."""
    out = {"kind": question.kind}
    if isinstance(question, Verify):
        out["threshold"] = float(question.threshold)
    return out


def squared_distances(h, prototypes) -> np.ndarray:
    """`(n, D)`, `(K, D)` -> `(n, K)` float64 ||h_i - c_j||^2."""
    diff = np.asarray(h, np.float64)[:, None, :] - np.asarray(prototypes, np.float64)[None]
    return (diff * diff).sum(-1)


def distance(a, b) -> np.ndarray:
    """`(n, D)`, `(n, D)` -> `(n,)` float64 Euclidean distances."""
    diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    return np.sqrt((diff * diff).sum(-1))


@dataclass(frozen=True, eq=False)
class Decision:
    """A question resolved for B inputs: its margins and what a change of x is measured against.

    Attributes:
        kind: the question's kind (`KINDS`).
        margin: `(B,)` float64 m(x), > 0 where the decision holds.
        explained_class: `(B,)` int64 k (-1 for the pair questions).
        contrast_class: `(B,)` int64 l: the class a change would move x to
            (-1 for the pair questions).
        target: `(B, D)` the embedding a change would move h toward: c_l for
            the class questions, f(other) for `Pair` and for a rejected
            `Verify`, f(below) for `Rank`; for an accepted `Verify`, f(other)
            too (the change moves h away from it).
        toward: `(B,)` bool whether a change that flips the decision moves
            h toward `target` (False: away from it, an accepted pair).
        accepted: `(B,)` bool, `Verify` only (else all False): d <= tau.
        has_decision: False for `Pair` (a distance has no side to flip to).
    """

    kind: str
    margin: np.ndarray
    explained_class: np.ndarray
    contrast_class: np.ndarray
    target: np.ndarray
    toward: np.ndarray
    accepted: np.ndarray
    prototypes: np.ndarray = field(repr=False)
    others: dict = field(repr=False)  # role -> (B, D) embeddings of the question's images
    threshold: float | None = None

    @property
    def has_decision(self) -> bool:
        return self.kind != "pair"

    def margin_of(self, h, owner) -> np.ndarray:
        """The margin of changed inputs: `(n, D)` embeddings, `(n,)` the input each belongs to -> `(n,)` float64."""
        owner = np.asarray(owner, np.int64)
        if self.kind in ("class", "contrast"):
            d = squared_distances(h, self.prototypes)
            rows = np.arange(len(owner))
            k = self.explained_class[owner]
            if self.kind == "contrast":
                return d[rows, self.contrast_class[owner]] - d[rows, k]
            others = np.where(np.arange(d.shape[1])[None] == k[:, None], np.inf, d)
            return others.min(1) - d[rows, k]
        if self.kind == "pair":
            return distance(h, self.others["other"][owner])
        if self.kind == "verify":
            gap = self.threshold - distance(h, self.others["other"][owner])
            return np.where(self.accepted[owner], gap, -gap)
        return distance(h, self.others["below"][owner]) - distance(h, self.others["above"][owner])

    def flipped(self, h, owner) -> np.ndarray:
        """Whether f's decision on changed inputs is no longer the one explained: `(n,)` bool.

        "Rather than l" flips where c_l is the nearest prototype (not merely
        nearer than c_k); "why k" where another class is nearest; `Verify`
        where the verdict changes (accepted: d > tau; rejected: d <= tau);
        `Rank` where `below` is strictly nearer than `above`. `Pair` never flips.
        """
        owner = np.asarray(owner, np.int64)
        if self.kind == "contrast":
            return squared_distances(h, self.prototypes).argmin(1) == self.contrast_class[owner]
        if self.kind == "class":
            return squared_distances(h, self.prototypes).argmin(1) != self.explained_class[owner]
        if self.kind == "pair":
            return np.zeros(len(owner), bool)
        if self.kind == "verify":
            d = distance(h, self.others["other"][owner])
            return np.where(self.accepted[owner], d > self.threshold, d <= self.threshold)
        return self.margin_of(h, owner) < 0


def _classes(value, batch, num_classes, name):
    from siamese_xai import _checks

    return _checks.check_targets(value, batch, num_classes, name)


def resolve(question, h, prototypes, others=None) -> Decision:
    """Turns a question into a `Decision` for B inputs.

    Args:
        question: one of `QUESTIONS`.
        h: `(B, D)` the inputs' embeddings f(x).
        prototypes: `(K, D)` class prototypes (at least 2 for the class questions).
        others: role -> `(B, D)` embeddings of the question's images
            (`images_of`), each already repeated to B rows.

    Raises:
        ValueError: a class out of range, k == l, or fewer than 2 prototypes
            for a class question (named in the message).
    """
    check_question(question)
    h = np.asarray(h, np.float64)
    p = np.asarray(prototypes, np.float64)
    b = len(h)
    others = {role: np.asarray(v, np.float64) for role, v in (others or {}).items()}
    none = np.full(b, -1, np.int64)
    no = np.zeros(b, bool)
    common = dict(prototypes=p, others=others, accepted=no)
    if isinstance(question, (WhyClass, RatherThan)):
        if len(p) < 2:
            raise ValueError(f"`prototypes` must hold at least 2 classes for a class question. Received: {len(p)}")
        d = squared_distances(h, p)
        targets = _classes(question.target, b, len(p), "target_class")
        k = np.where(targets < 0, d.argmin(1), targets)
        runner = np.where(np.arange(len(p))[None] == k[:, None], np.inf, d).argmin(1)
        l = runner
        kind = question.kind
        if isinstance(question, RatherThan):
            contrasts = _classes(question.contrast, b, len(p), "contrast_class")
            both = (contrasts >= 0) & (contrasts == k)
            if both.any():
                i = int(np.flatnonzero(both)[0])
                raise ValueError("`contrast_class` must differ from the explained class (why k rather than k asks "
                                 f"nothing). Received: both {int(k[i])} for input {i}")
            l = np.where(contrasts < 0, runner, contrasts)
        decision = Decision(kind, np.zeros(b), k.astype(np.int64), l.astype(np.int64), p[l],
                            np.ones(b, bool), **common)
        return _with_margin(decision, h)
    if isinstance(question, Pair):
        decision = Decision("pair", np.zeros(b), none, none, others["other"], np.ones(b, bool), **common)
        return _with_margin(decision, h)
    if isinstance(question, Verify):
        tau = float(question.threshold)
        accepted = distance(h, others["other"]) <= tau
        decision = Decision("verify", np.zeros(b), none, none, others["other"], ~accepted, prototypes=p,
                            others=others, accepted=accepted, threshold=tau)
        return _with_margin(decision, h)
    decision = Decision("rank", np.zeros(b), none, none, others["below"], np.ones(b, bool), **common)
    return _with_margin(decision, h)


def _with_margin(decision, h):
    object.__setattr__(decision, "margin", decision.margin_of(h, np.arange(len(h))))
    return decision


# -- verification thresholds ----------------------------------------------


def _check_pairs(distances, same):
    d = np.asarray(distances, np.float64).ravel()
    s = np.asarray(same).ravel()
    if s.dtype != bool or len(s) != len(d):
        raise ValueError(f"`same` must be a bool array as long as `distances` ({len(d)}). Received: dtype "
                         f"{s.dtype}, length {len(s)}")
    if not np.isfinite(d).all() or (d < 0).any():
        raise ValueError("`distances` must be finite and >= 0. Received: a NaN, inf or negative value")
    if s.all() or not s.any():
        raise ValueError("`same` must hold both mate (True) and non-mate (False) pairs. Received: "
                         f"{int(s.sum())} mates of {len(s)}")
    return d, s


def rates(distances, same, threshold) -> tuple[float, float]:
    """`(false accept rate, false reject rate)` of accepting d <= threshold on labelled pairs."""
    d, s = _check_pairs(distances, same)
    accept = d <= threshold
    return float(accept[~s].mean()), float((~accept[s]).mean())


def _candidates(d):
    u = np.unique(d)
    mids = (u[:-1] + u[1:]) / 2  # thresholds between observed distances decide each pair unambiguously
    return np.concatenate([[u[0] / 2], mids, [u[-1] * 1.5 + 1e-12]])


def equal_error_threshold(distances, same) -> float:
    """The threshold where the false accept and false reject rates are nearest equal (ties: the smaller).

    Candidates lie halfway between consecutive observed distances (and below
    the least and above the greatest), so no pair sits on the threshold.

    Args:
        distances: `(n,)` d(f(x1), f(x2)) of labelled pairs.
        same: `(n,)` bool, True for mate pairs (the same identity or class).

    Returns:
        tau, a float > 0 (where every distance is 0: raises).
    """
    d, s = _check_pairs(distances, same)
    taus = _candidates(d)
    accept = d[None, :] <= taus[:, None]
    far = accept[:, ~s].mean(1)
    frr = (~accept[:, s]).mean(1)
    best = int(np.argmin(np.abs(far - frr)))
    if taus[best] <= 0:
        raise ValueError("`distances` must not all be 0. Received: all 0")
    return float(taus[best])


def threshold_at_false_accept_rate(distances, same, rate: float) -> float:
    """The largest threshold whose false accept rate on the labelled pairs is at most `rate` (in [0, 1])."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
        raise ValueError(f"`rate` must be a number in [0, 1]. Received: rate={rate!r}")
    d, s = _check_pairs(distances, same)
    taus = _candidates(d)
    far = (d[None, ~s] <= taus[:, None]).mean(1)
    ok = np.flatnonzero((far <= rate) & (taus > 0))
    if not ok.size:
        raise ValueError(f"no threshold > 0 has a false accept rate <= {rate}: a non-mate pair is at distance 0")
    return float(taus[ok[-1]])


def calibrate_threshold(h, y, *, false_accept_rate: float | None = None, pairs: int = 2000, seed: int = 0) -> dict:
    """A verification threshold from labelled embeddings: the equal-error rate's, or one at a false accept rate.

    Draws `pairs` pairs of distinct images (every other one a mate pair, the
    same label, where some class has two images; `seed` fixes the draw) and
    calibrates tau on their distances.

    Args:
        h: `(n, D)` embeddings f(x) of labelled images; y: `(n,)` their labels.
        false_accept_rate: None for the equal-error threshold, else the
            largest tau whose false accept rate is at most this.
        pairs: how many pairs to draw.

    Returns:
        `{"threshold", "rule", "false_accept_rate", "false_reject_rate", "pairs", "mates"}`, JSON-ready.
    """
    h, y = np.asarray(h, np.float64), np.asarray(y)
    if h.ndim != 2 or len(y) != len(h) or len(np.unique(y)) < 2:
        raise ValueError(f"`y` must label every embedding of `h` with at least 2 classes. Received: {len(y)} labels "
                         f"for {len(h)} embeddings, {len(np.unique(y))} classes")
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(y == c) for c in np.unique(y)]
    mates = [idx for idx in by_class if len(idx) >= 2]
    first, second = np.zeros(pairs, np.int64), np.zeros(pairs, np.int64)
    for i in range(pairs):
        if i % 2 == 0 and mates:
            first[i], second[i] = rng.choice(mates[rng.integers(len(mates))], 2, replace=False)
        else:
            ca, cb = rng.choice(len(by_class), 2, replace=False)
            first[i], second[i] = rng.choice(by_class[ca]), rng.choice(by_class[cb])
    d = distance(h[first], h[second])
    same = y[first] == y[second]
    tau = (equal_error_threshold(d, same) if false_accept_rate is None
           else threshold_at_false_accept_rate(d, same, false_accept_rate))
    far, frr = rates(d, same, tau)
    rule = "equal error rate" if false_accept_rate is None else f"false accept rate <= {false_accept_rate}"
    return {"threshold": tau, "rule": rule, "false_accept_rate": far, "false_reject_rate": frr,
            "pairs": int(pairs), "mates": int(same.sum())}
