"""The verdict rule's statistics against hand-computed values, and the README's verdicts against results.json."""

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from benchmarks.evaluation import registry, verdicts
from siamese_xai.evaluation import metrics

ROOT = Path(__file__).resolve().parents[1]


def test_edge_test_by_hand():
    # d = (1, 2, 3): mean 2, sd 1, se 1 / sqrt(3); with 2 degrees of freedom the two-sided p of t is
    # 1 - |t| / sqrt(t^2 + 2)
    p, side = verdicts.edge_test([1.0, 2.0, 3.0], 0.0)  # t = 2 sqrt(3)
    assert side == 1 and math.isclose(p, 1 - math.sqrt(12 / 14), rel_tol=1e-9)
    p, side = verdicts.edge_test([1.0, 2.0, 3.0], 3.0)  # t = -sqrt(3)
    assert side == -1 and math.isclose(p, 1 - math.sqrt(3 / 5), rel_tol=1e-9)
    # no spread: certain unless the values sit on the edge; one value: nothing shown
    assert verdicts.edge_test([0.5, 0.5], 0.1) == (0.0, 1)
    assert verdicts.edge_test([0.1, 0.1], 0.1) == (1.0, 0)
    assert verdicts.edge_test([0.7], 0.1) == (1.0, 1)
    with pytest.raises(ValueError, match="`d` must be a non-empty finite array"):
        verdicts.edge_test([np.nan, 1.0], 0.0)


def test_tost_on_a_tiny_array_by_hand():
    d = [1.0, 2.0, 3.0]
    # margin 5: at -5, t = 7 sqrt(3), p = 1 - sqrt(147 / 149) = 0.0067; at +5, t = -3 sqrt(3), p = 1 - sqrt(27 / 29)
    # = 0.0351: both below 0.05, so the mean lies within (-5, 5): equivalent (the two one-sided tests)
    (p_lo, s_lo), (p_up, s_up) = verdicts.edge_test(d, -5.0), verdicts.edge_test(d, 5.0)
    assert math.isclose(p_lo, 1 - math.sqrt(147 / 149), rel_tol=1e-9) and s_lo == 1
    assert math.isclose(p_up, 1 - math.sqrt(27 / 29), rel_tol=1e-9) and s_up == -1
    assert verdicts.verdict_from_edges(s_lo if p_lo < 0.05 else 0, s_up if p_up < 0.05 else 0) == "equivalent"
    # margin 3: at -3, p = 1 - sqrt(75 / 77) = 0.0131 (shown above -3); at +3, p = 0.2254 (nothing): not worse
    (p_lo, s_lo), (p_up, s_up) = verdicts.edge_test(d, -3.0), verdicts.edge_test(d, 3.0)
    assert math.isclose(p_lo, 1 - math.sqrt(75 / 77), rel_tol=1e-9) and p_up > 0.05
    assert verdicts.verdict_from_edges(s_lo if p_lo < 0.05 else 0, s_up if p_up < 0.05 else 0) == "not worse"


def test_verdict_from_the_two_edges():
    expect = {(1, 1): "better", (-1, -1): "worse", (1, -1): "equivalent", (1, 0): "not worse",
              (0, -1): "not better", (0, 0): "not shown", (0, 1): "better", (-1, 0): "worse"}
    for (lower, upper), word in expect.items():
        assert verdicts.verdict_from_edges(lower, upper) == word, (lower, upper)


def test_holm_by_hand_and_over_both_edges():
    # sorted 0.01, 0.03, 0.04: 3 x 0.01 = 0.03, 2 x 0.03 = 0.06, 1 x 0.04 = 0.04 -> running max 0.06
    np.testing.assert_allclose(metrics.holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    # one comparison on the ground-truth numbers: both edges of each enter the family, in order
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0, 1, 20), rng.uniform(0, 1, 20)
    per = {"shapes": {"probe": {n: a for n in ("rank_accuracy", "roc_auc")},
                      "random": {n: b for n in ("rank_accuracy", "roc_auc")}}}
    margin = {"shapes": {"rank_accuracy": 0.05, "roc_auc": 0.05}}
    rows = verdicts.comparisons(per, "ground truth", margin)
    raw = [p for r in rows for p in (r["p_lower"], r["p_upper"])]
    np.testing.assert_allclose([p for r in rows for p in (r["p_lower_holm"], r["p_upper_holm"])], metrics.holm(raw))


def test_power_by_hand():
    # delta sqrt(n) / sd = 0.1 * 10 / 0.5 = 2; z_0.975 = 1.959964: Phi(0.040036) = 0.515968
    assert math.isclose(verdicts.power(0.1, 0.5, 100, 1), 0.515968, abs_tol=1e-6)
    # a family of 10: z_{1 - 0.0025} = 2.807034, Phi(-0.807034) = 0.209824
    assert math.isclose(verdicts.power(0.1, 0.5, 100, 10), 0.209824, abs_tol=1e-6)
    assert verdicts.power(0.1, 0.0, 5, 10) == 1.0
    with pytest.raises(ValueError, match="must be positive"):
        verdicts.power(0.0, 0.5, 100, 1)


def test_kendalls_w_and_discordance_by_hand():
    assert verdicts.kendalls_w([[1, 2, 3], [1, 2, 3]]) == 1.0
    assert verdicts.kendalls_w([[1, 2, 3], [3, 2, 1]]) == 0.0
    # rank sums 4, 6, 8 (mean 6): S = 8; W = 12 * 8 / (3^2 * (27 - 3)) = 4 / 9
    ranks = [[1, 2, 3], [1, 3, 2], [2, 1, 3]]
    assert math.isclose(verdicts.kendalls_w(ranks), 4 / 9)
    # a tie in the first row: sums 2, 4.5, 5.5 (mean 4), S = 6.5, T = 2^3 - 2 = 6: W = 78 / (4 * 24 - 2 * 6)
    assert math.isclose(verdicts.kendalls_w([[1, 2.5, 2.5], [1, 2, 3]]), 78 / 84)
    # rows 1-2 differ on (b, c), rows 1-3 on (a, b), rows 2-3 on (a, b) and (b, c): 4 of 3 x 3
    assert math.isclose(verdicts.discordant_share(ranks), 4 / 9)
    with pytest.raises(ValueError, match=r"`ranks` must be \(m >= 2, n >= 2\)"):
        verdicts.kendalls_w([[1, 2, 3]])


def test_rank_aggregate_by_hand():
    # road_morf: lower is better (a 1, b 2, c 3); road_lerf: higher is better (b 1, a 2, c 3)
    agg = verdicts.rank_aggregate({"road_morf": {"a": 0.1, "b": 0.2, "c": 0.3},
                                   "road_lerf": {"a": 0.5, "b": 0.9, "c": 0.1}})
    assert agg["mean_rank"] == {"a": 1.5, "b": 1.5, "c": 3.0}
    assert agg["ranks"]["road_lerf"] == {"a": 2.0, "b": 1.0, "c": 3.0}
    # rank sums 3, 3, 6 (mean 4): S = 6, W = 72 / 96; one of the three method pairs is ordered oppositely
    assert math.isclose(agg["kendalls_w"], 0.75) and math.isclose(agg["discordant_share"], 1 / 3)


def test_margins_are_a_fraction_of_each_numbers_span():
    curves = {"mnist": {"mc": {"morf": [2.0, 1.0], "lerf": [2.0, 1.5]}}}
    m = verdicts.margins("faithfulness", ["mnist"], curves)["mnist"]
    assert math.isclose(m["road_morf"], 0.05 * 0.9 * 2.0) and math.isclose(m["deletion_zero_support"], 0.05 * 2.0)
    assert len(m) == len([x for x in registry.METRICS if x.kind == "faithfulness"])
    assert verdicts.margins("ground truth", ["shapes"])["shapes"] == {n: 0.05 for n in
                                                                       ("rank_accuracy", "relevance_mass", "roc_auc")}
    assert math.isclose(verdicts.margins("ground truth", ["shapes"], scale=2.0)["shapes"]["roc_auc"], 0.1)
    with pytest.raises(ValueError, match="`curves` must hold 'mnist'"):
        verdicts.margins("faithfulness", ["mnist"], {})


def test_a_difference_not_shown_blocks_beats():
    rng = np.random.default_rng(1)
    n = 20
    base = rng.uniform(0.1, 0.4, n)
    noise = np.where(np.arange(n) % 2, 0.3, -0.3)  # mean 0, spread 0.3: neither edge of 0.05 can be shown
    per = {"shapes": {"probe": {"rank_accuracy": base + 0.5, "relevance_mass": base + noise, "roc_auc": base},
                      "random": {"rank_accuracy": base, "relevance_mass": base, "roc_auc": base}}}
    margin = {"shapes": {"rank_accuracy": 0.05, "relevance_mass": 0.05, "roc_auc": 0.05}}
    v = verdicts.all_verdicts({"ground truth": per}, {"ground truth": margin})["ground truth"]
    cell = v["beats"]["shapes"]["probe"]["random"]
    assert cell["primary"] == "better" and cell["not_shown_on"] == ["relevance_mass"] and not cell["beats"]
    assert {r["metric"]: r["verdict"] for r in v["comparisons"]}["roc_auc"] == "equivalent"  # equal everywhere
    per["shapes"]["probe"]["relevance_mass"] = base + noise / 300  # spread 0.001: equivalent, so it beats
    v = verdicts.all_verdicts({"ground truth": per}, {"ground truth": margin})["ground truth"]
    assert v["beats"]["shapes"]["probe"]["random"]["beats"]
    assert v["sensitivity"]["beats_at_1"] == [["shapes", "probe", "random"]]


# -- the README's Results paragraph ----------------------------------------------------------------------------

_SETS = {"MNIST": "mnist", "the shapes ground-truth set": "shapes"}
_CLAUSE = re.compile(r"`([\w+]+)` (beats|is (better|worse|not worse|not better|equivalent|not shown) on the primary "
                     r"metric (?:than|to|against)) ((?:`[\w+]+`(?:, | and |,? and )?)+)")


def readme_claims(text: str) -> list:
    """`(data set, A, B, verdict)` for every verdict the README's Results paragraph states.

    The paragraph starts with "By the declared rule"; a set is named by "on MNIST" / "On the shapes
    ground-truth set" and holds until the next; a clause is "`A` beats `B`, `C` and `D`" or "`A` is
    <verdict> on the primary metric than / to `B` ...".
    """
    start = text.index("By the declared rule")
    paragraph = " ".join(text[start:text.index("\n\n", start)].split())
    marks = sorted((m.start(), _SETS[m.group(1)]) for m in re.finditer(r"[Oo]n (MNIST|the shapes ground-truth set)",
                                                                       paragraph))
    claims = []
    for m in _CLAUSE.finditer(paragraph):
        ds = [name for pos, name in marks if pos < m.start()][-1]
        verdict = "beats" if m.group(2) == "beats" else m.group(3)
        claims += [(ds, m.group(1), b, verdict) for b in re.findall(r"`([\w+]+)`", m.group(4))]
    return claims


def test_readme_parser_reads_each_clause():
    text = ("By the declared rule (x): on MNIST `probe` beats `mc` and `random`; `probe` is equivalent on the primary "
            "metric to `edge`. On the shapes ground-truth set `mc` is not better on the primary metric than `gradient`, "
            "`occlusion` and `kernelshap`.\n\n")
    assert readme_claims("By the declared rule. On MNIST, against x, `probe` is not shown on the primary metric against "
                         "`mc+smoothed+gated` and `edge`.\n\n") == [("mnist", "probe", "mc+smoothed+gated", "not shown"),
                                                                     ("mnist", "probe", "edge", "not shown")]
    assert readme_claims(text) == [("mnist", "probe", "mc", "beats"), ("mnist", "probe", "random", "beats"),
                                   ("mnist", "probe", "edge", "equivalent"),
                                   ("shapes", "mc", "gradient", "not better"), ("shapes", "mc", "occlusion", "not better"),
                                   ("shapes", "mc", "kernelshap", "not better")]


def test_readme_results_paragraph_states_the_verdicts_of_results_json():
    claims = readme_claims((ROOT / "README.md").read_text())
    results = json.loads((ROOT / "benchmarks" / "evaluation" / "results.json").read_text())
    kind = {"mnist": "faithfulness", "shapes": "ground truth"}
    assert claims, "the README's Results paragraph states no verdict"
    for ds, a, b, verdict in claims:
        cell = results["verdicts"][kind[ds]]["beats"][ds][a][b]
        if verdict == "beats":
            assert cell["beats"], (ds, a, b, cell)
        else:  # the paragraph names the primary verdict of a pair that does not beat
            assert cell["primary"] == verdict and not cell["beats"], (ds, a, b, verdict, cell)
    # every rival of the probe on each set the paragraph names is accounted for, and every pair it beats is said
    for ds in {c[0] for c in claims}:
        said = {b for d, a, b, _ in claims if d == ds and a == "probe"}
        row = results["verdicts"][kind[ds]]["beats"][ds]["probe"]
        assert said == set(row), (ds, set(row) - said)
