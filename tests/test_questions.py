"""The question model (siamese_xai.explainers.questions) by hand, and the probe answering every kind on a hand-built toy."""

import math

import numpy as np
import pytest

from siamese_xai.explainers import questions
from siamese_xai.config import ProbeConfig
from siamese_xai.explainers.probe import ProbeExplainer
from siamese_xai.explainers.probe_explanation import ProbeExplanation
from siamese_xai.explainers.questions import Pair, Rank, RatherThan, Verify, WhyClass
from test_probe import A, B, PROTOTYPES, ToyEmbed, region, toy_decoder, toy_image

PROTOS3 = np.array([[4.0, 0.0], [0.0, 4.0], [0.0, 8.0]])
H = np.array([[4.0, 2.0]])  # d^2 to PROTOS3: 4, 20, 52


def test_class_margins_by_hand():
    d = questions.resolve(WhyClass(), H, PROTOS3)
    assert d.explained_class.tolist() == [0] and d.contrast_class.tolist() == [1]
    np.testing.assert_allclose(d.margin, [20 - 4])
    np.testing.assert_allclose(d.target, PROTOS3[[1]])
    c = questions.resolve(RatherThan(contrast=2), H, PROTOS3)
    np.testing.assert_allclose(c.margin, [52 - 4])
    k2 = questions.resolve(WhyClass(target=2), H, PROTOS3)  # "why 2?" of an image classed 0: the margin is negative
    np.testing.assert_allclose(k2.margin, [4 - 52])
    assert k2.flipped(H, [0]).tolist() == [True]
    # changed inputs: h' = (0, 5) is classed 1: "why 0" flips, and so does "0 rather than 1"; not "0 rather than 2"
    h2 = np.array([[0.0, 5.0]])
    assert d.flipped(h2, [0]).tolist() == [True] and c.flipped(h2, [0]).tolist() == [False]
    np.testing.assert_allclose(d.margin_of(h2, [0]), [1 - 41])
    np.testing.assert_allclose(c.margin_of(h2, [0]), [9 - 41])


def test_pair_verify_and_rank_margins_by_hand():
    other = {"other": np.array([[0.0, 4.0]])}
    p = questions.resolve(Pair(other=None), H, PROTOS3, other)
    np.testing.assert_allclose(p.margin, [math.sqrt(20)])
    assert not p.has_decision and p.flipped(H, [0]).tolist() == [False]
    accept = questions.resolve(Verify(None, threshold=5.0), H, PROTOS3, other)
    assert accept.accepted.tolist() == [True] and accept.toward.tolist() == [False]
    np.testing.assert_allclose(accept.margin, [5 - math.sqrt(20)])
    reject = questions.resolve(Verify(None, threshold=4.0), H, PROTOS3, other)
    assert reject.accepted.tolist() == [False] and reject.toward.tolist() == [True]
    np.testing.assert_allclose(reject.margin, [math.sqrt(20) - 4])
    near = np.array([[0.0, 3.0]])  # d = 1 from f(x2)
    assert accept.flipped(near, [0]).tolist() == [False] and reject.flipped(near, [0]).tolist() == [True]
    np.testing.assert_allclose(reject.margin_of(near, [0]), [1 - 4])
    r = questions.resolve(Rank(None, None), H, PROTOS3, {"above": np.array([[4.0, 0.0]]), "below": other["other"]})
    np.testing.assert_allclose(r.margin, [math.sqrt(20) - 2])
    np.testing.assert_allclose(r.target, other["other"])
    assert r.flipped(near, [0]).tolist() == [True]  # d(below) = 1 < d(above) = 5


def test_bad_questions():
    with pytest.raises(ValueError, match="`threshold` must be a finite number > 0"):
        Verify(np.zeros((8, 8, 1)), threshold=0)
    with pytest.raises(TypeError, match="`question` must be one of WhyClass"):
        questions.check_question("class")
    with pytest.raises(ValueError, match="`contrast_class` must differ from the explained class"):
        questions.resolve(RatherThan(target=0, contrast=0), H, PROTOS3)
    with pytest.raises(ValueError, match=r"`target_class` must be None or an integer in \[0, 3\)"):
        questions.resolve(WhyClass(target=3), H, PROTOS3)


def test_thresholds_by_hand():
    d = [0.1, 0.3, 0.2, 0.4]
    same = np.array([True, True, False, False])
    # candidates 0.05, 0.15, 0.25, 0.35, 0.6: at 0.25 one non-mate is accepted (FAR 1/2) and one mate rejected (FRR 1/2)
    assert questions.equal_error_threshold(d, same) == pytest.approx(0.25)
    assert questions.rates(d, same, 0.25) == (0.5, 0.5)
    assert questions.threshold_at_false_accept_rate(d, same, 0.0) == pytest.approx(0.15)
    assert questions.threshold_at_false_accept_rate(d, same, 0.5) == pytest.approx(0.35)
    assert questions.equal_error_threshold([0.1, 0.2, 0.3, 0.4], same[[0, 1, 2, 3]]) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="`same` must hold both mate"):
        questions.equal_error_threshold(d, np.ones(4, bool))
    with pytest.raises(ValueError, match="`same` must be a bool array"):
        questions.equal_error_threshold(d, [1, 0, 1, 0])


def probe(**config):
    f = ToyEmbed()
    return f, ProbeExplainer(f, toy_decoder, PROTOTYPES, ProbeConfig(cell=2, smooth=0, **config))


def test_rejected_pair_is_flipped_by_painting_the_other_image():
    """x: h = (4, 2); x2 = B inked: h2 = (0, 4), d = sqrt(20) > tau = 1: rejected; painting A and B accepts."""
    f, p = probe()
    x2 = region(B)
    e = p.explain(toy_image(), Verify(x2, threshold=1.0))
    m0 = math.sqrt(20) - 1
    np.testing.assert_allclose(e.margin, [m0], rtol=1e-6)
    assert e.explained_class.tolist() == [-1] and e.question == {"kind": "verify", "threshold": 1.0}
    np.testing.assert_array_equal(e.proposal[0], x2)  # "auto" on a rejected pair: the other image
    # cells by |x2 - x|: A (4), C (4), B (2); painting A: h = (0, 2), d = 2; C: nothing; B: h = (4, 4), d = 4
    np.testing.assert_allclose(e.region_drop[0, :3], [m0 - 1, 0.0, m0 - 3], rtol=1e-6)
    # P_3 = x2 itself (d = 0, accepted); P_1 = A (d = 2, rejected); P_2 = A + B (d = 0, accepted)
    assert e.flips.tolist() == [True] and e.set_size.tolist() == [2]
    np.testing.assert_array_equal(e.mask[0], (region(A) + region(B)).astype(bool))
    np.testing.assert_allclose(e.final_margin, [-1.0], rtol=1e-6)  # d - tau of the counterfactual
    assert e.n_calls.tolist() == [1 + 1 + 3 + 1 + 2] and f.images == 8


def test_accepted_pair_is_flipped_by_removing_what_the_two_share():
    """x and x2 = x without C: d = 0 <= tau, accepted; the blur in-fill removes A's evidence and rejects."""
    f, p = probe()
    x2 = region(A) + region(B, 0.5)
    e = p.explain(toy_image(), Verify(x2, threshold=0.5))
    assert e.margin.tolist() == [0.5]
    from siamese_xai.explainers.regions import smoothed

    np.testing.assert_allclose(e.proposal, smoothed(toy_image()[None], 2.0), rtol=1e-6)  # "auto": blur
    assert e.flips.tolist() == [True]
    assert e.final_margin[0] < 0
    # what flips it is A's ink, the coordinate f reads most: the found set holds A
    assert e.mask[0][A].all()


def test_rank_swap_and_pair_map():
    f, p = probe()
    above, below = region(A), region(B)  # d(x, above) = 2, d(x, below) = sqrt(20)
    e = p.explain(toy_image(), Rank(above, below))
    np.testing.assert_allclose(e.margin, [math.sqrt(20) - 2], rtol=1e-6)
    # painting A with `below` (0 there): h = (0, 2), d(above) = sqrt(20), d(below) = 2: swapped at once
    assert e.flips.tolist() == [True] and e.set_size.tolist() == [1]
    np.testing.assert_allclose(e.final_margin, [2 - math.sqrt(20)], rtol=1e-6)
    assert e.n_calls.tolist() == [1 + 2 + 3 + 1 + 1]

    pair = p.explain(toy_image(), Pair(below))
    d0 = math.sqrt(20)
    np.testing.assert_allclose(pair.region_drop[0, :3], [d0 - 2, 0.0, d0 - 4], rtol=1e-6)
    assert pair.flips.tolist() == [False] and np.isnan(pair.final_margin).all()
    assert pair.set_size.tolist() == [2]  # the regions that hold some of the distance: A and B
    assert pair.n_calls.tolist() == [1 + 1 + 3]


def test_class_questions_match_the_default_and_why_k():
    _, p = probe()
    default = p.explain(toy_image())
    asked = p.explain(toy_image(), RatherThan())
    for name in default.fields:
        np.testing.assert_array_equal(getattr(default, name), getattr(asked, name), err_msg=name)
    why = p.explain(toy_image(), WhyClass())  # two classes: "why 0" is "0 rather than 1"
    np.testing.assert_array_equal(why.ranking, default.ranking)
    assert why.question == {"kind": "class"}
    with pytest.raises(ValueError, match="must be None when `question` is given"):
        p.explain(toy_image(), WhyClass(), target_class=0)


def test_every_question_in_a_batch_matches_each_alone():
    _, p = probe()
    xs = np.stack([toy_image(), region(A) * 0.5 + region(B, 0.25), region(B)])
    others = np.stack([region(B), region(A), toy_image()])
    together = p.explain(xs, Verify(others, threshold=1.0))
    for i in range(3):
        alone = p.explain(xs[i], Verify(others[i], threshold=1.0))
        for name in together.fields:
            np.testing.assert_array_equal(getattr(together, name)[i:i + 1], getattr(alone, name), err_msg=name)
    with pytest.raises(ValueError, match=r"`other` must be one image or one per input \(3\)"):
        p.explain(xs, Pair(others[:2]))


def test_probe_result_saves_and_loads_exactly(tmp_path):
    _, p = probe()
    e = p.explain(np.stack([toy_image(), region(B)]), Verify(region(A), threshold=2.0))
    e.save(tmp_path / "e.npz")
    back = ProbeExplanation.load(tmp_path / "e.npz")
    assert back.fields == e.fields and back.question == e.question and back.config == e.config
    for name in e.fields:
        np.testing.assert_array_equal(getattr(back, name), getattr(e, name), err_msg=name)
    assert back.cell == e.cell and len(back[1:]) == 1 and back[np.array([True, False])].flips.shape == (1,)
    d = e.to_dict()
    assert d["question"] == {"kind": "verify", "threshold": 2.0} and d["flips"] == e.flips.tolist()
    with pytest.raises(ValueError, match="written by ProbeExplanation.save"):
        ProbeExplanation.load(tmp_path / "missing.npz")


def test_few_shot_prototypes_from_a_support_set():
    """Classes the toy never 'saw': prototypes from 2 support images each, no retraining."""
    f, p = probe()
    support = np.stack([region(A), region(A, 0.5), region(B), region(B, 0.5)])
    few = p.with_support(support, [0, 0, 1, 1])
    np.testing.assert_allclose(few.prototypes, [[3.0, 0.0], [0.0, 3.0]])
    e = few.explain(toy_image())
    np.testing.assert_allclose(e.margin, [(16 + 1) - (1 + 4)], rtol=1e-6)  # h = (4, 2)
    assert e.flips.tolist() == [True]
