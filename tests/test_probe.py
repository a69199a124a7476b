"""ProbeExplainer on a hand-built toy where the margin, the right regions and the flip are known by hand."""

import math

import numpy as np
import pytest

from siamese_xai.config import ProbeConfig
from siamese_xai.explainers.probe import ProbeExplainer
from siamese_xai.explainers.regions import grid_cells, ranking_of, smoothed

H = W = 8
A = (slice(1, 3), slice(1, 3))  # f reads it (coordinate 0)
B = (slice(5, 7), slice(5, 7))  # f reads it (coordinate 1)
C = (slice(1, 3), slice(5, 7))  # ink that f ignores


def region(where, value=1.0):
    m = np.zeros((H, W, 1), np.float32)
    m[where] = value
    return m


class ToyEmbed:
    """h = (sum of x over A, sum of x over B); counts the images it is asked about."""

    def __init__(self):
        self.images = 0
        self.calls = 0

    def __call__(self, x):
        x = np.asarray(x, np.float64)
        self.images += len(x)
        self.calls += 1
        return np.stack([x[:, 1:3, 1:3, 0].sum((1, 2)), x[:, 5:7, 5:7, 0].sum((1, 2))], 1).astype(np.float32)


def toy_decoder(z):
    """g(z) = z_0 / 4 on A + z_1 / 4 on B: g(c_0) inks A, g(c_1) inks B."""
    z = np.asarray(z, np.float64)
    return (z[:, 0, None, None, None] / 4 * region(A) + z[:, 1, None, None, None] / 4 * region(B)).astype(np.float32)


PROTOTYPES = np.array([[4.0, 0.0], [0.0, 4.0]], np.float32)


def toy_image():
    """A inked, B half-inked, C inked: h = (4, 2), class 0, margin 20 - 4."""
    return region(A) + region(B, 0.5) + region(C)


def test_hand_computed_regions_margin_and_flip():
    f = ToyEmbed()
    probe = ProbeExplainer(f, toy_decoder, PROTOTYPES, ProbeConfig(cell=2, smooth=0))
    e = probe.explain(toy_image())
    m0 = 16.0  # ||(4,2)-(0,4)||^2 - ||(4,2)-(4,0)||^2 = 20 - 4
    assert e.explained_class.tolist() == [0] and e.contrast_class.tolist() == [1]
    np.testing.assert_allclose(e.margin, [m0], rtol=1e-6)
    np.testing.assert_allclose(e.distances, [[2.0, math.sqrt(20)]], rtol=1e-6)  # Euclidean, like Explanation
    # candidates by |p - x| per cell: A (4), C (4, later cell id), B (2); the grid is centred on
    # u's centroid (2.3, 3.9) -> origin offset 1, so A, B and C are one cell each
    assert e.regions[0][A].tolist() == [[0, 0], [0, 0]]
    assert (e.regions[0][C] == 1).all() and (e.regions[0][B] == 2).all()
    assert (e.regions[0][e.regions[0] >= 0].size) == 12
    # painting A with g(c_1) (0 there): h = (0, 2), margin 4 - 20 = -m0; painting B: h = (4, 4), margin 0;
    # C: no change
    np.testing.assert_allclose(e.region_drop[0, :3], [2 * m0, 0.0, m0], rtol=1e-6)
    assert np.isnan(e.region_drop[0, 3:]).all()
    # drop_map: each cell's drop spread by |p - x| (A: 1 per pixel of 4; B: 0.5 per pixel of 2)
    np.testing.assert_allclose(e.drop_map[0][A], 2 * m0 / 4, rtol=1e-6)
    np.testing.assert_allclose(e.drop_map[0][B], m0 / 4, rtol=1e-6)
    assert (e.drop_map[0][C] == 0).all() and e.drop_map[0].sum() == pytest.approx(3 * m0, rel=1e-6)
    # ranking: A's ink (x = 1 > p = 0, x has it) is lifted by 1 + max drop_map = 1 + m0 / 2; B (x = 0.5 < p = 1:
    # what x lacks of class 1) keeps its value
    np.testing.assert_allclose(e.ranking[0][A], 2 * m0 / 4 + 1 + m0 / 2, rtol=1e-6)
    np.testing.assert_allclose(e.ranking[0][B], m0 / 4, rtol=1e-6)
    assert (e.ranking[0][C] == 0).all()
    # the smallest flipping set is A alone, found after P_3 (flips) and the prefix P_1 (flips)
    assert e.flips.tolist() == [True] and e.set_size.tolist() == [1]
    np.testing.assert_array_equal(e.mask[0], region(A).astype(bool))
    np.testing.assert_allclose(e.final_margin, [-m0], rtol=1e-6)
    np.testing.assert_array_equal(e.counterfactual[0], np.where(region(A) > 0, 0.0, toy_image()))
    # f calls: x, 3 single regions, P_3, P_1
    assert e.n_calls.tolist() == [6] and f.images == 6


def test_ranking_puts_what_x_has_first():
    """A pixel where x > p in a positive region outranks every other pixel; has_first=False ranks by drop_map."""
    x = region(A) * 0.5 + region(B, 0.25)  # h = (2, 1): class 0, p = g(c_1) inks B fully, blanks A
    e = ProbeExplainer(ToyEmbed(), toy_decoder, PROTOTYPES, ProbeConfig(cell=2, smooth=0)).explain(x)
    # m(x) = 13 - 5 = 8; painting A: h = (0, 1), m = 9 - 17, drop 16 over 4 pixels; painting B: h = (2, 4),
    # m = 4 - 20, drop 24 over 4 pixels: B's pixels (what x lacks) carry more of the drop than A's (what x has)
    np.testing.assert_allclose(e.drop_map[0][A], 4.0, rtol=1e-6)
    np.testing.assert_allclose(e.drop_map[0][B], 6.0, rtol=1e-6)
    assert e.ranking[0][A].min() > e.ranking[0][B].max()
    plain = ProbeExplainer(ToyEmbed(), toy_decoder, PROTOTYPES, ProbeConfig(cell=2, has_first=False, smooth=0)).explain(x)
    np.testing.assert_array_equal(plain.ranking, plain.drop_map)


def test_only_eligible_pixels_are_lifted():
    """x > p on both pixels, both drops positive: lifted by 1 + max |drop| = 3 both, or only the eligible one."""
    xs, p = np.ones((1, 1, 2, 1)), np.zeros((1, 1, 2, 1))
    drops = np.array([1.0, 2.0]).reshape(1, 1, 2, 1)
    np.testing.assert_allclose(ranking_of(xs, p, drops)[0, 0, :, 0], [4.0, 5.0])
    eligible = np.array([True, False]).reshape(1, 1, 2, 1)
    np.testing.assert_allclose(ranking_of(xs, p, drops, eligible)[0, 0, :, 0], [4.0, 2.0])


def test_no_flip_is_reported_not_assumed():
    """When even all candidates painted leave k nearest, flips is False and the mask holds every candidate."""
    f = ToyEmbed()
    # a third class whose template g(c_2) is B at 2, clipped to 1 when painted: h = (0, 4) is c_1's
    protos = np.array([[4.0, 0.0], [0.0, 4.0], [0.0, 8.0]], np.float32)
    probe = ProbeExplainer(f, toy_decoder, protos, ProbeConfig(cell=2))
    e = probe.explain(toy_image(), contrast_class=1)
    e2 = probe.explain(toy_image(), contrast_class=2)
    assert e.flips.tolist() == [True]
    assert e2.flips.tolist() == [False] and e2.set_size.tolist() == [3]
    assert e2.mask[0].sum() == 12
    assert e2.n_calls.tolist() == [1 + 3 + 1]


def test_x_already_classed_l():
    """Asking why 1 rather than 0 of an image f classes 0: the empty set flips (x is already l)."""
    probe = ProbeExplainer(ToyEmbed(), toy_decoder, PROTOTYPES, ProbeConfig(cell=2))
    e = probe.explain(toy_image(), target_class=1, contrast_class=0)
    assert e.flips.tolist() == [True] and e.set_size.tolist() == [0] and not e.mask.any()
    np.testing.assert_allclose(e.final_margin, e.margin)


def batch():
    rng = np.random.default_rng(0)
    xs = [toy_image()]
    for _ in range(5):
        x = rng.uniform(0, 1, (H, W, 1)).astype(np.float32) * (rng.uniform(size=(H, W, 1)) < 0.4)
        xs.append(x)
    return np.stack(xs)


def test_batch_size_and_batch_independence():
    xs = batch()
    f = ToyEmbed()
    together = ProbeExplainer(f, toy_decoder, PROTOTYPES, ProbeConfig(cell=2)).explain(xs)
    calls_together = f.calls
    f1 = ToyEmbed()
    one_by_one = ProbeExplainer(f1, toy_decoder, PROTOTYPES, ProbeConfig(cell=2), batch_size=1)
    alone = [one_by_one.explain(x) for x in xs]
    for name in ("ranking", "drop_map", "mask", "flips", "set_size", "final_margin", "counterfactual", "n_calls", "region_drop"):
        a = getattr(together, name)
        b = np.concatenate([getattr(e, name) for e in alone])
        np.testing.assert_array_equal(a, b, err_msg=name)
    # batching: f is asked in a few batched calls (x, singles, P_n, one per bisection round), not per image
    assert f.images == f1.images == int(together.n_calls.sum())
    assert calls_together <= 3 + math.ceil(math.log2(max(together.regions.max() + 1, 2)))
    assert f1.calls == f1.images


def test_cost_within_budget_and_counted():
    cfg = ProbeConfig()
    assert cfg.max_calls() == 48 and cfg.max_calls() <= 302 / 5
    f = ToyEmbed()
    e = ProbeExplainer(f, toy_decoder, PROTOTYPES, ProbeConfig(cell=1, max_regions=5)).explain(batch())
    assert (e.n_calls <= ProbeConfig(max_regions=5).max_calls()).all()
    assert f.images == e.n_calls.sum()
    assert (e.regions.max(axis=(1, 2)) < 5).all()


def test_grid_follows_the_change_not_the_frame():
    """Moving the content by one pixel moves the grid with it (no fixed grid is privileged)."""
    w = np.zeros((12, 12))
    w[3:6, 4:7] = 1.0
    ids = grid_cells(w, 3)
    shifted = grid_cells(np.roll(w, (1, 1), (0, 1)), 3)
    assert (ids[3:6, 4:7] == ids[4, 5]).all()  # the block is one cell, centred on its centroid
    assert (shifted[4:7, 5:8] == shifted[5, 6]).all()


def test_any_image_shape_and_channels():
    rng = np.random.default_rng(1)
    hh, ww, cc, d = 10, 13, 3, 4
    wmat = rng.normal(size=(hh * ww * cc, d))

    def f(x):
        return (np.asarray(x, np.float64).reshape(len(x), -1) @ wmat).astype(np.float32)

    tmat = rng.uniform(0, 1, (d, hh * ww * cc)) / d

    def g(z):
        return np.clip(np.asarray(z, np.float64) @ tmat, 0, 1).reshape(-1, hh, ww, cc).astype(np.float32)

    xs = rng.uniform(0, 1, (3, hh, ww, cc)).astype(np.float32)
    protos = f(rng.uniform(0, 1, (3, hh, ww, cc)))
    e = ProbeExplainer(f, g, protos).explain(xs)
    assert e.ranking.shape == e.mask.shape == e.counterfactual.shape == (3, hh, ww, cc)
    assert e.cell == 2 and e.regions.shape == (3, hh, ww)
    h = f(e.counterfactual)
    d = np.linalg.norm(h[:, None] - protos[None], axis=-1)
    np.testing.assert_array_equal(d.argmin(1) == e.contrast_class, e.flips)  # f's own verdict


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"cell": 0}, "`cell` must be a positive integer"),
        ({"max_regions": 0}, "`max_regions` must be a positive integer"),
        ({"proposal": "paint"}, "`proposal` must be one of"),
        ({"candidates": "all"}, "`candidates` must be one of"),
        ({"spread": "max"}, "`spread` must be one of"),
        ({"infill": "zero"}, "`infill` must be one of"),
        ({"has_first": 1}, "`has_first` must be True or False"),
        ({"smooth": -1.0}, "`smooth` must be None or a finite number >= 0"),
        ({"smooth": float("nan")}, "`smooth` must be None or a finite number >= 0"),
    ],
)
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ProbeConfig(**kwargs)


def test_bad_input():
    probe = ProbeExplainer(ToyEmbed(), toy_decoder, PROTOTYPES)
    with pytest.raises(ValueError, match="`x` must have shape"):
        probe.explain(np.zeros((2, 7, 8, 1), np.float32))
    with pytest.raises(ValueError, match=r"`x` must hold values in \[0, 1\]"):
        probe.explain(np.full((8, 8, 1), 2.0, np.float32))
    with pytest.raises(ValueError, match="`contrast_class` must differ from the explained class"):
        probe.explain(toy_image(), target_class=0, contrast_class=0)
    with pytest.raises(ValueError, match="`contrast_class` must be None or an integer in"):
        probe.explain(toy_image(), contrast_class=5)
    with pytest.raises(TypeError, match="`config` must be a ProbeConfig"):
        ProbeExplainer(ToyEmbed(), toy_decoder, PROTOTYPES, config={"cell": 2})
    with pytest.raises(ValueError, match="at least 2 classes"):
        ProbeExplainer(ToyEmbed(), toy_decoder, PROTOTYPES[:1])
    with pytest.raises(ValueError, match="`batch_size` must be a positive integer"):
        ProbeExplainer(ToyEmbed(), toy_decoder, PROTOTYPES, batch_size=0)


def test_result_is_frozen():
    e = ProbeExplainer(ToyEmbed(), toy_decoder, PROTOTYPES).explain(batch())
    with pytest.raises(ValueError):
        e.ranking[0, 0, 0, 0] = 1.0
    assert len(e[1:3]) == 2 and len(list(e)) == len(e)


def test_plot_probe_draws_four_panels_and_checks_its_input():
    import matplotlib

    matplotlib.use("Agg")
    from siamese_xai import plotting

    e = ProbeExplainer(ToyEmbed(), toy_decoder, PROTOTYPES, ProbeConfig(cell=2), class_names=["zero", "one"]).explain(
        batch())
    axes = plotting.plot_probe(e, index=0)
    # titles are wrapped to their panel's width (plotting's legibility rule): compare the words
    title = lambda ax: " ".join(ax.get_title().split())  # noqa: E731
    assert len(axes) == 4 and title(axes[0]) == "input: zero rather than one?"
    assert title(axes[3]) == "1 regions painted, f: one"
    with pytest.raises(ValueError, match="`index` must be an integer in"):
        plotting.plot_probe(e, index=len(e))
    with pytest.raises(TypeError, match="`explanation` must be a ProbeExplanation"):
        plotting.plot_probe(object())
    matplotlib.pyplot.close("all")


def test_empty_batch_asks_f_nothing():
    f = ToyEmbed()
    e = ProbeExplainer(f, toy_decoder, PROTOTYPES).explain(np.zeros((0, H, W, 1), np.float32))
    assert len(e) == 0 and e.ranking.shape == (0, H, W, 1) and f.images == 0


def test_smoothing_is_a_gaussian_and_feeds_the_ranking():
    """A unit impulse becomes the normalised Gaussian kernel; the default sigma is half the cell side."""
    impulse = np.zeros((1, 21, 21, 1))
    impulse[0, 10, 10, 0] = 1.0
    out = smoothed(impulse, 2.0)[0, ..., 0]
    g = np.exp(-0.5 * (np.arange(-8, 9) / 2.0) ** 2)
    g /= g.sum()
    np.testing.assert_allclose(out[2:19, 2:19], np.outer(g, g), atol=1e-7)
    assert out.sum() == pytest.approx(1.0, abs=1e-6)
    assert ProbeConfig(cell=4).smooth_for((28, 28, 1)) == 2.0 and ProbeConfig().smooth_for((28, 28, 1)) == 2.0
    e = ProbeExplainer(ToyEmbed(), toy_decoder, PROTOTYPES, ProbeConfig(cell=2)).explain(batch())
    expected = ranking_of(e.input, e.proposal, smoothed(e.drop_map, 1.0))
    np.testing.assert_array_equal(e.ranking, expected)
