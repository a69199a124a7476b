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

def squared_distances(h, prototypes) -> np.ndarray:
    """`(n, D)`, `(K, D)` -> `(n, K)` float64 ||h_i - c_j||^2."""
    diff = np.asarray(h, np.float64)[:, None, :] - np.asarray(prototypes, np.float64)[None]
    return (diff * diff).sum(-1)


def runner_up(distances, classes) -> np.ndarray:
    """The nearest prototype other than the explained class: the l of "why k rather than l".

    Args:
        distances: `(B, C)` distances (or squared distances) to every prototype (C >= 2).
        classes: `(B,)` the explained class k of each row.

    Returns:
        `(B,)` int64 argmin_{j != k} distances[b, j] (ties: lower index first).

    The package's one runner-up rule (the questions, the metrics, the gallery,
    the benchmarks and the reproduction call it); the template-contrast graph
    computes the same in TensorFlow (`siamese_xai.explainers.contrast.runner_up_tensor`,
    checked against this one in tests/test_metrics.py).
    """
    d = np.array(distances, np.float64)
    classes = np.asarray(classes, np.int64)
    if d.ndim != 2 or d.shape[1] < 2 or classes.shape != (len(d),):
        raise ValueError(f"`distances` must be (B, C >= 2) and `classes` (B,). Received: distances.shape={d.shape}, "
                         f"classes.shape={classes.shape}")
    d[np.arange(len(d)), classes] = np.inf
    return np.argmin(d, axis=1).astype(np.int64)


def distance(a, b) -> np.ndarray:
    """`(n, D)`, `(n, D)` -> `(n,)` float64 Euclidean distances."""
    diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    return np.sqrt((diff * diff).sum(-1))


def _classes(value, batch, num_classes, name):
    from siamese_xai import _checks

    return _checks.check_targets(value, batch, num_classes, name)


class Question:
    """The base of every question: one decision of f, as a margin over embeddings.

    A question is one class (a new kind is one subclass and its place in
    `QUESTIONS`): it names the images it carries (`images`), turns the
    inputs' embeddings into a `Decision` (`resolve`), measures the margin and
    the flip of changed inputs (`margin`, `flipped`) and says what a change
    should paint by default (`proposal`).
    """

    kind = ""
    has_decision = True  # False: a quantity with no side to flip to (a distance)
    draws_prototypes = False  # True: the default proposal is the decoder's image of a prototype
    paints_from = None  # the role of the image whose content the "other" proposal paints (None: no such image)

    def images(self) -> dict:
        """The images the question carries, by role (`other`, `above`, `below`); {} for the class questions."""
        return {}

    def describe(self) -> dict:
        """The question as JSON-ready data (its images are not copied: the result holds their embeddings)."""
        return {"kind": self.kind}

    def resolve(self, h, prototypes, others) -> dict:
        """The per-input arrays of its `Decision`: `explained_class`, `contrast_class`, `target`, `toward`, `accepted`."""
        raise NotImplementedError

    def margin(self, decision, h, owner) -> np.ndarray:
        """`(n,)` float64 margins of changed inputs: `(n, D)` embeddings, `(n,)` the input each belongs to."""
        raise NotImplementedError

    def flipped(self, decision, h, owner) -> np.ndarray:
        """`(n,)` bool: f's decision on changed inputs is no longer the one explained (default: margin < 0)."""
        return self.margin(decision, h, owner) < 0

    def proposal(self, decision) -> np.ndarray:
        """`(B,)` the default proposal per input: the other image to move toward it, a blur in-fill to move away."""
        return np.where(decision.toward, "other", "blur").astype(object)


def _pairs_common(b):
    return {"explained_class": np.full(b, -1, np.int64), "contrast_class": np.full(b, -1, np.int64),
            "accepted": np.zeros(b, bool)}


@dataclass(frozen=True, eq=False)
class RatherThan(Question):
    """Why is x classed k rather than l? Margin ||h - c_l||^2 - ||h - c_k||^2; flipped where c_l is the nearest.

    Attributes:
        target: k: None (each input's nearest prototype), one class, or one per input.
        contrast: l: None (each input's runner-up, the nearest prototype other
            than k), one class, or one per input; never equal to k.
    """

    target: object = None
    contrast: object = None
    kind = "contrast"
    draws_prototypes = True

    def resolve(self, h, prototypes, others):
        if len(prototypes) < 2:
            raise ValueError(f"`prototypes` must hold at least 2 classes for a class question. Received: {len(prototypes)}")
        b = len(h)
        d = squared_distances(h, prototypes)
        targets = _classes(self.target, b, len(prototypes), "target_class")
        k = np.where(targets < 0, d.argmin(1), targets)
        runner = runner_up(d, k)
        l = runner
        if self.kind == "contrast":
            contrasts = _classes(self.contrast, b, len(prototypes), "contrast_class")
            both = (contrasts >= 0) & (contrasts == k)
            if both.any():
                i = int(np.flatnonzero(both)[0])
                raise ValueError("`contrast_class` must differ from the explained class (why k rather than k asks "
                                 f"nothing). Received: both {int(k[i])} for input {i}")
            l = np.where(contrasts < 0, runner, contrasts)
        return {"explained_class": k.astype(np.int64), "contrast_class": l.astype(np.int64),
                "target": np.asarray(prototypes, np.float64)[l], "toward": np.ones(b, bool), "accepted": np.zeros(b, bool)}

    def margin(self, decision, h, owner):
        d = squared_distances(h, decision.prototypes)
        rows = np.arange(len(owner))
        return d[rows, decision.contrast_class[owner]] - d[rows, decision.explained_class[owner]]

    def flipped(self, decision, h, owner):
        return squared_distances(h, decision.prototypes).argmin(1) == decision.contrast_class[owner]

    def proposal(self, decision):
        return np.full(len(decision.margin), "prototype", object)


@dataclass(frozen=True, eq=False)
class WhyClass(RatherThan):
    """Why is x classed k (rather than any other class)? Margin min_{j != k} ||h - c_j||^2 - ||h - c_k||^2.

    Flipped where another class is nearest; a change moves x toward the runner-up (l).

    Attributes:
        target: k: None (each input's nearest prototype), one class, or one per input.
    """

    target: object = None
    contrast: object = field(default=None, init=False, repr=False)
    kind = "class"

    def margin(self, decision, h, owner):
        d = squared_distances(h, decision.prototypes)
        k = decision.explained_class[owner]
        others = np.where(np.arange(d.shape[1])[None] == k[:, None], np.inf, d)
        return others.min(1) - d[np.arange(len(owner)), k]

    def flipped(self, decision, h, owner):
        return squared_distances(h, decision.prototypes).argmin(1) != decision.explained_class[owner]


@dataclass(frozen=True, eq=False)
class Pair(Question):
    """Why does f(x) lie as far as it does from f(other)? The margin is the distance itself.

    Attributes:
        other: the second image: one for every input, or one per input.
    """

    other: object
    kind = "pair"
    has_decision = False
    paints_from = "other"

    def images(self):
        return {"other": self.other}

    def resolve(self, h, prototypes, others):
        return {**_pairs_common(len(h)), "target": others["other"], "toward": np.ones(len(h), bool)}

    def margin(self, decision, h, owner):
        return distance(h, decision.others["other"][owner])

    def flipped(self, decision, h, owner):
        return np.zeros(len(owner), bool)


@dataclass(frozen=True, eq=False)
class Verify(Question):
    """Why does f accept (d <= tau) or reject the pair (x, other) at the threshold tau?

    Margin tau - d where accepted, d - tau where rejected; flipped where the
    verdict changes. A change of an accepted pair moves h away from f(other).

    Attributes:
        other: the second image: one for every input, or one per input.
        threshold: tau > 0 on the Euclidean distance d(f(x), f(other))
            (`equal_error_threshold` calibrates one from labelled pairs).
    """

    other: object
    threshold: float
    kind = "verify"
    paints_from = "other"

    def __post_init__(self):
        t = self.threshold
        if isinstance(t, bool) or not isinstance(t, (int, float, np.floating, np.integer)) or not 0 < t < np.inf:
            raise ValueError(f"`threshold` must be a finite number > 0. Received: threshold={t!r}")

    def images(self):
        return {"other": self.other}

    def describe(self):
        return {"kind": self.kind, "threshold": float(self.threshold)}

    def resolve(self, h, prototypes, others):
        accepted = distance(h, others["other"]) <= float(self.threshold)
        return {**_pairs_common(len(h)), "target": others["other"], "toward": ~accepted, "accepted": accepted}

    def margin(self, decision, h, owner):
        gap = float(self.threshold) - distance(h, decision.others["other"][owner])
        return np.where(decision.accepted[owner], gap, -gap)

    def flipped(self, decision, h, owner):
        d = distance(h, decision.others["other"][owner])
        tau = float(self.threshold)
        return np.where(decision.accepted[owner], d > tau, d <= tau)


@dataclass(frozen=True, eq=False)
class Rank(Question):
    """Why does `above` rank above `below` in a gallery searched with the query x?

    Margin d(h, f(below)) - d(h, f(above)); flipped where `below` is strictly nearer.

    Attributes:
        above: the item ranked higher (nearer x): one image, or one per input.
        below: the item ranked lower: one image, or one per input.
    """

    above: object
    below: object
    kind = "rank"
    paints_from = "below"

    def images(self):
        return {"above": self.above, "below": self.below}

    def resolve(self, h, prototypes, others):
        return {**_pairs_common(len(h)), "target": others["below"], "toward": np.ones(len(h), bool)}

    def margin(self, decision, h, owner):
        return distance(h, decision.others["below"][owner]) - distance(h, decision.others["above"][owner])


# Every kind of question, and its name where one string names it (files, the command line).
QUESTIONS = (WhyClass, RatherThan, Pair, Verify, Rank)
KINDS = tuple(q.kind for q in QUESTIONS)


def check_question(question):
    """`question` if it is a `Question`, else a TypeError naming what was received."""
    if not isinstance(question, Question):
        names = ", ".join(q.__name__ for q in QUESTIONS)
        raise TypeError(f"`question` must be one of {names}. Received: question={question!r}")
    return question


def images_of(question) -> dict:
    """The images a question carries, by role (`Question.images`)."""
    return question.images()


def describe(question) -> dict:
    """The question as JSON-ready data (`Question.describe`)."""
    return question.describe()


@dataclass(frozen=True, eq=False)
class Decision:
    """A question resolved for B inputs: its margins and what a change of x is measured against.

    Attributes:
        question: the `Question` asked.
        margin: `(B,)` float64 m(x), > 0 where the decision holds.
        explained_class: `(B,)` int64 k (-1 for the pair questions).
        contrast_class: `(B,)` int64 l: the class a change would move x to
            (-1 for the pair questions).
        target: `(B, D)` the embedding a change would move h toward: c_l for
            the class questions, f(other) for `Pair` and `Verify` (for an
            accepted pair the change moves h away from it), f(below) for `Rank`.
        toward: `(B,)` bool whether a change that flips the decision moves
            h toward `target` (False: away from it, an accepted pair).
        accepted: `(B,)` bool, `Verify` only (else all False): d <= tau.
        prototypes: `(K, D)` float64 the class prototypes.
        others: role -> `(B, D)` float64 embeddings of the question's images.
    """

    question: Question
    margin: np.ndarray
    explained_class: np.ndarray
    contrast_class: np.ndarray
    target: np.ndarray
    toward: np.ndarray
    accepted: np.ndarray
    prototypes: np.ndarray = field(repr=False)
    others: dict = field(repr=False)

    @property
    def kind(self) -> str:
        return self.question.kind

    @property
    def has_decision(self) -> bool:
        return self.question.has_decision

    def margin_of(self, h, owner) -> np.ndarray:
        """The margin of changed inputs: `(n, D)` embeddings, `(n,)` the input each belongs to -> `(n,)` float64."""
        return self.question.margin(self, h, np.asarray(owner, np.int64))

    def flipped(self, h, owner) -> np.ndarray:
        """Whether f's decision on changed inputs is no longer the one explained: `(n,)` bool."""
        return self.question.flipped(self, h, np.asarray(owner, np.int64))


def resolve(question, h, prototypes, others=None) -> Decision:
    """Turns a question into a `Decision` for B inputs.

    Args:
        question: a `Question` (one of `QUESTIONS`).
        h: `(B, D)` the inputs' embeddings f(x).
        prototypes: `(K, D)` class prototypes (at least 2 for the class questions).
        others: role -> `(B, D)` embeddings of the question's images
            (`Question.images`), each already repeated to B rows.

    Raises:
        ValueError: a class out of range, k == l, or fewer than 2 prototypes
            for a class question (named in the message).
    """
    check_question(question)
    h = np.asarray(h, np.float64)
    p = np.asarray(prototypes, np.float64)
    others = {role: np.asarray(v, np.float64) for role, v in (others or {}).items()}
    parts = question.resolve(h, p, others)
    decision = Decision(question, np.zeros(len(h)), prototypes=p, others=others, **parts)
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
