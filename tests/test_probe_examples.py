"""The probe's class proposals from real images (`examples`, `with_support`), few-shot classes, and the rank swap,
on the hand-built toy of tests/test_probe.py (f reads A and B; every number below by hand)."""

import numpy as np
import pytest

from siamese_xai.config import ProbeConfig
from siamese_xai.explainers import questions
from siamese_xai.explainers.probe import ProbeExplainer
from siamese_xai.explainers.questions import Rank, RatherThan, Verify, WhyClass
from test_probe import A, B, C, PROTOTYPES, ToyEmbed, region, toy_image


def blind_decoder(z):
    """A decoder that cannot draw: 0.25 everywhere, whatever the code (a blur of every class)."""
    return np.full((len(z), 8, 8, 1), 0.25, np.float32)


def probe(examples=None, **config):
    f = ToyEmbed()
    return f, ProbeExplainer(f, blind_decoder, PROTOTYPES, ProbeConfig(cell=2, smooth=0, **config), examples=examples)


def test_a_real_image_of_l_flips_where_the_decoders_blur_cannot():
    """x: h = (4, 2), class 0 (d^2 = 4 to c_0, 20 to c_1). g's image (0.25 everywhere) painted everywhere gives
    h = (1, 1), as far from c_0 as from c_1: never classed 1. The nearest example of class 1 flips with A alone."""
    _, blind = probe()
    e = blind.explain(toy_image())
    assert e.flips.tolist() == [False]
    np.testing.assert_allclose(e.proposal[0], 0.25)
    # two images of class 1: B inked (d^2 to x: 4 + 1 + 4 = 9) and B half-inked with C's ink (4, the nearest)
    nearest = region(B, 0.5) + region(C)
    examples = (np.stack([region(A), region(B), nearest]), np.array([0, 1, 1]))
    _, p = probe(examples)
    e = p.explain(toy_image())
    np.testing.assert_array_equal(e.proposal[0], nearest)
    # it differs from x on A only (one cell); painting A (0 there): h = (0, 2), d^2 = 20 to c_0, 4 to c_1: classed 1
    assert e.flips.tolist() == [True] and e.set_size.tolist() == [1]
    np.testing.assert_array_equal(e.mask[0], region(A).astype(bool))
    np.testing.assert_allclose(e.final_margin, [4 - 20], rtol=1e-6)
    assert e.n_calls.tolist() == [1 + 1 + 1]  # x, the one candidate, P_1
    # the same with the question asked outright, and with "example" named; "prototype" paints g's image again
    asked = p.replace(proposal="example").explain(toy_image(), RatherThan(0, 1))
    np.testing.assert_array_equal(asked.proposal, e.proposal)
    np.testing.assert_allclose(p.replace(proposal="prototype").explain(toy_image()).proposal[0], 0.25)


def test_the_example_painted_is_one_f_classes_as_l():
    """An example labelled l that f classes otherwise is passed over, however near x; where f classes no
    example as l, the one f puts nearest to c_l is painted."""
    # x itself labelled 1 (classed 0); B half-inked with C (h = (0, 2), classed 1, d^2 = 4 from x in pixels);
    # B inked (h = c_1, classed 1, d^2 = 9 from x): of those classed 1 the nearest to x in pixels
    nearest = region(B, 0.5) + region(C)
    _, p = probe((np.stack([toy_image(), nearest, region(B)]), np.array([1, 1, 1])))
    np.testing.assert_array_equal(p.explain(toy_image()).proposal[0], nearest)
    # neither is classed 1: x (h = (4, 2), d^2 = 20 to c_1) and A + 0.75 B (h = (4, 3), d^2 = 17 to c_1, 9 to c_0)
    closer = region(A) + region(B, 0.75)
    _, p = probe((np.stack([toy_image(), closer]), np.array([1, 1])))
    np.testing.assert_array_equal(p.explain(toy_image()).proposal[0], closer)


def test_auto_paints_g_where_the_contrast_class_has_no_example():
    _, p = probe((region(A)[None], np.array([0])))  # an example of class 0 only; x's contrast class is 1
    np.testing.assert_allclose(p.explain(toy_image()).proposal[0], 0.25)
    with pytest.raises(ValueError, match="`examples` must hold an image of every contrast class.*class 1"):
        p.replace(proposal="example").explain(toy_image())


def test_few_shot_classes_the_explainer_never_had():
    """The explainer holds 2 prototypes; a support set defines 3 classes (2: A and B inked, a class it never had)."""
    _, p = probe()
    support = np.stack([region(A), region(A, 0.5), region(B), region(B, 0.5), region(A) + region(B)])
    few = p.with_support(support, [0, 0, 1, 1, 2], num_classes=3)
    np.testing.assert_allclose(few.prototypes, [[3.0, 0.0], [0.0, 3.0], [4.0, 4.0]])
    assert few.examples[1].tolist() == [0, 0, 1, 1, 2]
    # x = A + 0.5 B: h = (4, 2); d^2 = 5 to c_0, 17 to c_1, 4 to c_2: classed 2 (the new class), runner-up 0
    e = few.explain(region(A) + region(B, 0.5), WhyClass())
    assert e.explained_class.tolist() == [2] and e.contrast_class.tolist() == [0]
    # the nearest support image of class 0 is A (d^2 = 1; 0.5 A: 1 + 1 = 2)
    np.testing.assert_array_equal(e.proposal[0], region(A))
    # painting B with A's image (0 there): h = (4, 0), d^2 = 1 to c_0 and 16 to c_2: classed 0
    assert e.flips.tolist() == [True] and e.set_size.tolist() == [1]
    np.testing.assert_array_equal(e.mask[0], region(B).astype(bool))


def test_pair_questions_keep_their_proposals_with_examples():
    """An explainer with examples paints the other image for a rejected Verify, as without them."""
    examples = (np.stack([region(A), region(B)]), np.array([0, 1]))
    _, p = probe(examples)
    e = p.explain(toy_image(), Verify(region(B), threshold=1.0))
    np.testing.assert_array_equal(e.proposal[0], region(B))
    with pytest.raises(ValueError, match='`proposal` "example" needs a class question.*\'verify\''):
        p.replace(proposal="example").explain(toy_image(), Verify(region(B), threshold=1.0))
    _, bare = probe()
    with pytest.raises(ValueError, match='`proposal` "example" needs .* examples None'):
        bare.replace(proposal="example").explain(toy_image())


def test_an_accepted_pair_is_parted_with_the_examples_mean():
    """infill="mean": an accepted Verify paints the examples' mean (0.5 on A and on B), which keeps what every
    example shares and averages away what tells them apart; a rejected pair still paints the other image."""
    examples = (np.stack([region(A), region(B)]), np.array([0, 1]))
    f, p = probe(examples, infill="mean")
    # x against itself: d = 0 <= tau = 1, accepted, margin tau - d = 1
    e = p.explain(toy_image(), Verify(toy_image(), threshold=1.0))
    assert e.proposal_kind.tolist() == ["mean"]
    np.testing.assert_allclose(e.proposal[0], region(A, 0.5) + region(B, 0.5))
    # candidates by |p - x|: C (4 x 1, index 0), A (4 x 0.5, index 1); B unchanged (0.5 both). Painting A:
    # h = (2, 2), d = 2, margin 1 - 2: drop 2; painting C changes nothing f reads: drop 0
    np.testing.assert_allclose(e.region_drop[0, :2], [0.0, 2.0], rtol=1e-6)
    assert e.flips.tolist() == [True] and e.set_size.tolist() == [1]
    np.testing.assert_array_equal(e.mask[0], region(A).astype(bool))
    assert e.n_calls.tolist() == [1 + 1 + 2 + 1 + 1]  # x, other, 2 candidates, P_2, P_1
    rejected = p.explain(toy_image(), Verify(region(B), threshold=1.0))
    np.testing.assert_array_equal(rejected.proposal[0], region(B))
    # the default in-fill, and "mean" without examples, blur x
    for other in (probe(examples)[1], probe(infill="mean")[1]):
        assert other.explain(toy_image(), Verify(toy_image(), threshold=1.0)).proposal_kind.tolist() == ["blur"]
    with pytest.raises(ValueError, match='`proposal` "mean" needs an explainer with `examples`.*examples None'):
        probe(proposal="mean")[1].explain(toy_image(), Verify(toy_image(), threshold=1.0))


def test_a_pair_question_lifts_only_the_found_sets_ink():
    """Examples' mean: 0.5 on A, 0.3 on B. Painting A (h = (2, 2), d = 2): drop 2, flips alone; painting B
    (h = (4, 1.2), d = 0.8): drop 0.8, x > p there but B is not in the found set, so only A is lifted
    (by 1 + max |drop_map| = 1.5); lift="positive" lifts B too."""
    examples = (np.stack([region(A), region(B, 0.6)]), np.array([0, 1]))
    question = Verify(toy_image(), threshold=1.0)
    e = probe(examples, infill="mean")[1].explain(toy_image(), question)
    np.testing.assert_allclose(e.region_drop[0, :3], [0.0, 2.0, 0.8], rtol=1e-5)  # C, A, B by |p - x|
    assert e.set_size.tolist() == [1] and e.n_calls.tolist() == [1 + 1 + 3 + 1 + 1]
    np.testing.assert_allclose(e.ranking[0][A], 0.5 + 1.5, rtol=1e-5)
    np.testing.assert_allclose(e.ranking[0][B], 0.2, rtol=1e-5)
    positive = probe(examples, infill="mean", lift="positive")[1].explain(toy_image(), question)
    np.testing.assert_allclose(positive.ranking[0][B], 0.2 + 1.5, rtol=1e-5)


@pytest.mark.parametrize("examples, match", [
    (region(A), r"`examples` must be None or a pair \(x, y\)"),
    ((region(A)[None], np.array([0, 1])), r"`examples\[1\]` must be 1 integer classes"),
    ((region(A)[None], np.array([0.0])), r"`examples\[1\]` must be 1 integer classes"),
    ((region(A)[None], np.array([2])), r"`examples\[1\]` must be classes in \[0, 2\)\. Received: 2..2"),
    ((np.zeros((1, 5, 5, 1), np.float32), np.array([0])), r"examples\[0\]"),
])
def test_bad_examples(examples, match):
    with pytest.raises(ValueError, match=match):
        probe(examples)


def test_rank_is_swapped_only_where_below_is_strictly_nearer():
    """Rank(a, b): a tie (d(below) = d(above)) is no swap; a painted query nearer below is."""
    others = {"above": np.array([[4.0, 0.0]]), "below": np.array([[0.0, 4.0]])}
    r = questions.resolve(Rank(None, None), np.array([[4.0, 2.0]]), PROTOTYPES, others)
    assert r.margin[0] > 0
    assert r.flipped(np.array([[2.0, 2.0]]), [0]).tolist() == [False]  # equidistant
    assert r.flipped(np.array([[2.0, 2.5]]), [0]).tolist() == [True]
    assert r.flipped(np.array([[2.5, 2.0]]), [0]).tolist() == [False]


def test_rank_triplets_of_the_flip_benchmark():
    """`below` is the query with one slot's glyph swapped (one 5x5 box differs); `above` is the query's identity."""
    from benchmarks.evaluation import pair_data
    from benchmarks.evaluation.probe_flips import rank_triplets

    t = rank_triplets(4, seed=0)
    assert {k: v.shape for k, v in t.items()} == {k: (4, 28, 28, 1) for k in ("query", "above", "below")}
    for q, a, b in zip(t["query"][..., 0], t["above"][..., 0], t["below"][..., 0]):
        differ = q != b
        rows, cols = np.nonzero(differ)
        assert differ.any() and np.ptp(rows) < pair_data.GLYPH and np.ptp(cols) < pair_data.GLYPH
        assert not np.array_equal(q, a)  # other clutter
    assert rank_triplets(4, seed=0)["below"].tobytes() == t["below"].tobytes()
