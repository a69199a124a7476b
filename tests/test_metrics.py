import math

import numpy as np
import pytest

from linear_toy import P, linear_toy

from siamese_xai.evaluation import faithfulness as fa
from siamese_xai.evaluation import metrics
from siamese_xai.explainers.questions import runner_up



@pytest.fixture
def toy():
    """The linear toy, with the true importance of each pixel (x_p times its weight in f)."""
    xs, f, protos, support = linear_toy()
    true_maps = np.zeros((4, P), np.float32)
    true_maps[:, support] = xs.reshape(4, -1)[:, support] * f.w[support].sum(1)
    return xs, f, protos, true_maps.reshape(4, 28, 28)


def test_distance_scalar_matches_hand_computation(toy):
    xs, f, protos, _ = toy
    scalar = metrics.DistanceScalar(f, protos)
    d, near = scalar(xs, np.zeros(4, int))
    h = f(xs).astype(np.float64)
    np.testing.assert_allclose(d, ((h - protos[0]) ** 2).sum(1), rtol=1e-6)
    np.testing.assert_array_equal(near, np.arange(4))
    d3, _ = scalar(xs, np.full(4, 3))
    np.testing.assert_allclose(d3, ((h - protos[3]) ** 2).sum(1), rtol=1e-6)
    np.testing.assert_array_equal(scalar.classify(xs), np.arange(4))
    assert scalar.calls == 3 * len(xs)
    with pytest.raises(ValueError, match="classes"):
        scalar(xs, np.zeros(3, int))
    with pytest.raises(ValueError, match=r"xs.shape=\(4, 28, 28\)"):
        scalar(xs[..., 0], np.zeros(4, int))


def _zero_removal(scalar, xs, classes, maps, **kw):
    """`removal_curves` with pixels set to 0, contrasted with each image's runner-up."""
    contrasts = runner_up(scalar.all_distances(xs), classes)
    return fa.removal_curves(scalar, xs, classes, contrasts, maps, fa.fill_images(xs, "zero"), **kw), contrasts


def test_distance_curves_of_true_ordering_beat_random(toy):
    xs, f, protos, true_maps = toy
    scalar = metrics.DistanceScalar(f, protos)
    classes = np.arange(4)
    true, _ = _zero_removal(scalar, xs, classes, true_maps, steps=28)
    rand, _ = _zero_removal(scalar, xs, classes, np.random.default_rng(0).random((4, 28, 28)), steps=28)
    assert true["fraction"][0] == 0 and true["fraction"][-1] == 1 and len(true["fraction"]) == 29
    # deleting the pixels d depends on drives d up at once; inserting them first brings it down at once
    assert np.all(true["deletion_distance_auc"] > rand["deletion_distance_auc"])
    assert np.all(true["insertion_distance_auc"] < rand["insertion_distance_auc"])
    # both curves end where the other starts: the blank image and x itself
    np.testing.assert_allclose(true["deletion_distance"][:, -1], true["insertion_distance"][:, 0], rtol=1e-6)
    np.testing.assert_allclose(true["deletion_distance"][:, 0], true["insertion_distance"][:, -1], rtol=1e-6)
    # x itself is its own class; the AUC is the trapezoid area under the curve
    assert np.all(true["deletion_same_class"][:, 0] == 1.0)
    np.testing.assert_allclose(true["deletion_distance_auc"],
                               np.trapezoid(true["deletion_distance"], true["fraction"], axis=1))
    # every curve point is one image through f, in one call per curve
    calls = f.calls
    fa.removal_curves(scalar, xs, classes, classes, true_maps, fa.fill_images(xs, "zero"), steps=7)
    assert f.calls - calls == 2


def test_margin_and_distance_curves_follow_their_definitions(toy):
    xs, f, protos, true_maps = toy
    scalar = metrics.DistanceScalar(f, protos)
    classes = np.arange(4)
    cur, contrasts = _zero_removal(scalar, xs, classes, true_maps, steps=28)
    h = f(xs).astype(np.float64)
    d_all = ((h[:, None] - protos[None].astype(np.float64)) ** 2).sum(-1)  # (4, 5) by hand
    np.testing.assert_allclose(cur["deletion_distance"][:, 0], d_all[np.arange(4), classes], atol=1e-5)
    d_all[np.arange(4), classes] = np.inf
    runner = d_all.argmin(1)
    np.testing.assert_array_equal(contrasts, runner)
    # the unperturbed x: m(x) = d(x, c_l) - d(x, c_k), with d(x, c_k) = 0 here (c_b = f(x_b))
    np.testing.assert_allclose(cur["deletion"][:, 0], d_all[np.arange(4), runner], rtol=1e-5)
    np.testing.assert_allclose(cur["insertion"][:, -1], cur["deletion"][:, 0], rtol=1e-6)
    blank = ((protos[runner] ** 2).sum(1) - (protos[classes] ** 2).sum(1)).astype(np.float64)
    np.testing.assert_allclose(cur["deletion"][:, -1], blank, rtol=1e-5)  # f(blank) = 0
    np.testing.assert_allclose(cur["deletion_distance"][:, -1], (protos[classes] ** 2).sum(1), rtol=1e-5)
    np.testing.assert_allclose(cur["deletion_auc"], np.trapezoid(cur["deletion"], cur["fraction"], axis=1))


def test_region_scores_pointing_and_share_by_hand():
    regions = np.zeros((2, 28, 28), bool)
    regions[:, 0:4, 0:4] = True
    maps = np.zeros((2, 28, 28))
    maps[0, 0:4, 0:4] = 1.0  # exactly the region
    maps[1, 10:14, 10:14] = 1.0  # elsewhere
    maps[1, 0, 0] = 0.5  # in the region, but the 17th largest: just outside the top 16
    gt = metrics.region_scores(maps, regions)
    np.testing.assert_allclose(gt["rank_accuracy"], [1.0, 0.0])
    np.testing.assert_allclose(gt["pointing"], [1.0, 0.0])
    maps[1, 0, 0] = 1.0  # ties with the 16 elsewhere, first in raster order: the pointing game's pixel
    np.testing.assert_allclose(metrics.region_scores(maps, regions)["pointing"], [1.0, 1.0])
    with pytest.raises(ValueError, match="regions"):
        metrics.region_scores(maps, regions[:, :10])


def test_stability_and_mean_ci():
    rng = np.random.default_rng(0)
    m = rng.random((3, 28, 28))
    assert np.allclose(metrics.stability(np.stack([m, m, m]), q=50), 1.0)
    other = metrics.stability(np.stack([m, rng.random((3, 28, 28))]), q=50)
    assert np.all(other < 0.3)
    with pytest.raises(ValueError, match="maps_per_seed"):
        metrics.stability(m[None], q=50)
    s = metrics.mean_ci([1.0, 2.0, 3.0])
    assert s["mean"] == 2.0 and s["n"] == 3
    # Student t with 2 degrees of freedom: t_0.975 = 4.302653 (tables), sd = 1
    assert math.isclose(s["ci95"], 4.302653 / math.sqrt(3), rel_tol=1e-6)
    assert metrics.mean_ci([5.0]) == {"mean": 5.0, "ci95": 0.0, "n": 1}
    dropped = metrics.mean_ci([1.0, np.nan, 3.0], drop_nan=True)
    assert dropped["mean"] == 2.0 and dropped["n"] == 2 and dropped["dropped"] == 1
    with pytest.raises(ValueError, match="finite"):
        metrics.mean_ci([1.0, np.nan])
    with pytest.raises(ValueError, match="1 NaN dropped"):
        metrics.mean_ci([np.nan], drop_nan=True)


def test_interval_verdict_by_hand():
    a = {"mean": 1.0, "ci95": 0.1}
    b = {"mean": 0.8, "ci95": 0.05}  # [0.75, 0.85] below [0.9, 1.1]
    assert metrics.interval_verdict(a, b, higher_is_better=True) == "better"
    assert metrics.interval_verdict(b, a, higher_is_better=True) == "worse"
    assert metrics.interval_verdict(a, b, higher_is_better=False) == "worse"
    assert metrics.interval_verdict(b, a, higher_is_better=False) == "better"
    touching = {"mean": 0.8, "ci95": 0.11}  # [0.69, 0.91] reaches into [0.9, 1.1]
    assert metrics.interval_verdict(a, touching, higher_is_better=True) == "overlap"


def test_runner_up_by_hand():
    distances = np.array([[1.0, 0.5, 3.0], [2.0, 1.0, 0.1], [0.2, 0.2, 0.2]])
    # row 0 explains class 1: of classes 0 and 2 the nearer is 0; row 1 explains 2: of 0 and 1, 1;
    # row 2 explains 0: 1 and 2 tie, the lower index wins
    np.testing.assert_array_equal(runner_up(distances, [1, 2, 0]), [0, 1, 1])
    with pytest.raises(ValueError, match="classes.shape"):
        runner_up(distances, [1])
    with pytest.raises(ValueError, match="C >= 2"):
        runner_up(distances[:, :1], [0, 0, 0])


def test_top_q_mask_by_hand():
    maps = np.array([[[3.0, 1.0], [2.0, 2.0]]])
    # the two largest: 3 and the first 2 in raster order
    np.testing.assert_array_equal(metrics.top_q_mask(maps, 2), [[[True, False], [True, False]]])
    assert metrics.top_q_mask(maps, 4).all()
    with pytest.raises(ValueError, match="q=5"):
        metrics.top_q_mask(maps, 5)


def test_top_q_mask_breaks_ties_by_index_or_by_the_given_order():
    maps = np.zeros((2, 3, 4))
    maps[0, 2, 3] = 1.0  # one value above a tie of eleven zeros
    maps[1] = 5.0  # all tied
    got = metrics.top_q_mask(maps, 3).reshape(2, -1)
    assert np.flatnonzero(got[0]).tolist() == [0, 1, 11] and np.flatnonzero(got[1]).tolist() == [0, 1, 2]
    # any (B, ...) shape: the explainer's (B, H, W, C) masks too
    assert metrics.top_q_mask(maps[..., None], 3).shape == (2, 3, 4, 1)
    reverse = np.tile(np.arange(12)[::-1], (2, 1))
    got = metrics.top_q_mask(maps, 3, tie_order=reverse).reshape(2, -1)
    assert np.flatnonzero(got[0]).tolist() == [9, 10, 11] and np.flatnonzero(got[1]).tolist() == [9, 10, 11]
    with pytest.raises(ValueError, match=r"`tie_order` must have shape \(2, 12\).*Received: tie_order.shape=\(12,\)"):
        metrics.top_q_mask(maps, 3, tie_order=np.arange(12))


def test_the_graph_keeps_the_same_top_q_and_runner_up_on_ties():
    """The TensorFlow versions inside the explainer's graph follow the numpy rules, ties included."""
    import tensorflow as tf

    from siamese_xai.explainers import _graph
    from siamese_xai.explainers import contrast

    rng = np.random.default_rng(0)
    scores = rng.integers(-2, 4, (6, 30)).astype(np.float32)  # many ties, zeros and negatives
    for q in (1, 5, 12, 30):
        got = _graph.top_q_mask(tf.constant(scores), q, tf.constant([6, 5, 6, 1])).numpy()
        want = (metrics.top_q_mask(scores, q) & (scores > 0)).reshape(6, 5, 6, 1)
        np.testing.assert_array_equal(got, want, err_msg=f"q={q}")
    distances = rng.integers(0, 3, (40, 4)).astype(np.float32)  # ties between the runner-up candidates
    explained = rng.integers(0, 4, 40)
    got = contrast.runner_up_tensor(tf.constant(distances), tf.constant(explained, tf.int64)).numpy()
    np.testing.assert_array_equal(got, runner_up(distances, explained))


def test_mask_iou():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    assert metrics.mask_iou(a, b) == 1.0
    a[0, :2] = True
    b[0, 1:3] = True
    assert metrics.mask_iou(a, b) == pytest.approx(1 / 3)
    assert metrics.mask_iou(a, a) == 1.0
    with pytest.raises(ValueError, match=r"b.shape=\(2, 4\)"):
        metrics.mask_iou(a, b[:2])
