"""The evaluation harness's baselines and synthetic set: siamese_xai/evaluation/baselines.py (evaluate.py: test_evaluate.py)."""


import numpy as np
import pytest


from siamese_xai.evaluation import baselines as bl  # noqa: E402

from linear_toy import P, linear_toy  # noqa: E402

from siamese_xai.evaluation import metrics, synthetic  # noqa: E402



@pytest.fixture
def toy():
    return linear_toy()


def test_occlusion_and_gradient_free_baselines_find_the_support(toy):
    xs, f, protos, support = toy
    scalar = metrics.DistanceScalar(f, protos)
    classes = np.arange(4)
    occ = bl.occlusion_maps(scalar, xs, classes, patch=2, stride=1)
    inside = np.zeros(P, bool)
    inside[support] = True
    # pixels outside the support get only the rise of the patches that reach into it
    assert occ.shape == (4, 28, 28)
    assert np.all(occ.reshape(4, -1)[:, inside].mean(1) > occ.reshape(4, -1)[:, ~inside].mean(1))
    rise = bl.rise_distance_maps(scalar, xs, classes, seed=0, n_masks=400)
    assert rise.shape == (4, 28, 28) and np.isfinite(rise).all()
    # masks that keep the support keep x at its prototype: they are the selected low-d ones
    assert np.all(rise.reshape(4, -1)[:, inside].mean(1) > rise.reshape(4, -1)[:, ~inside].mean(1))


def test_make_synthetic_is_seeded_and_the_square_decides_the_class():
    digits = np.random.default_rng(0).random((20, 28, 28, 1)).astype(np.float32) * 0.5
    x, y, regions = synthetic.make_synthetic(digits, 50, seed=3)
    x2, y2, r2 = synthetic.make_synthetic(digits, 50, seed=3)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert x.shape == (50, 28, 28, 1) and regions.shape == (50, 28, 28)
    assert np.all(regions.reshape(50, -1).sum(1) == synthetic.SQUARE**2)
    assert np.all(x[..., 0][regions] == 1.0)
    for k in range(10):
        r, c = synthetic.SQUARE_POSITIONS[k]
        assert np.all(regions[y == k, r, c])
    assert sorted(np.bincount(y).tolist()) == [5] * 10
    with pytest.raises(ValueError, match="num_classes"):
        synthetic.make_synthetic(digits, 5, num_classes=11)


def test_model_free_orderings_by_hand():
    xs = np.zeros((2, 28, 28, 1), np.float32)
    xs[0, :, 14:] = 1.0  # a vertical step edge between columns 13 and 14
    xs[1, 5, 5] = 0.5
    np.testing.assert_array_equal(bl.intensity_maps(xs), xs[..., 0])
    edge = bl.edge_maps(xs)
    assert edge.shape == (2, 28, 28)
    # Sobel across a unit step: [-1, 0, 1] x [1, 2, 1] sums to 4 on both columns beside it, 0 away from it
    np.testing.assert_allclose(edge[0, 10:18, 13], 4.0)
    np.testing.assert_allclose(edge[0, 10:18, 14], 4.0)
    assert np.all(edge[0, :, :12] == 0) and np.all(edge[0, :, 16:] == 0)
    # a single dot: its 4-neighbours see 2 * 0.5 along one axis, the dot itself none
    assert edge[1, 5, 5] == 0 and edge[1, 5, 6] == pytest.approx(1.0) and edge[1, 4, 5] == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"xs.shape=\(2, 28, 28\)"):
        bl.edge_maps(xs[..., 0])


def test_oracle_scalar_and_the_kernelshap_grid_ceiling():
    regions = np.zeros((2, 28, 28), bool)
    regions[0, 0:4, 6:10] = True  # straddles the 4-pixel grid (columns 4-7 and 8-11)
    regions[1, 0:4, 12:16] = True  # on the grid
    xs = np.zeros((2, 28, 28, 1), np.float32)
    xs[..., 0][regions] = 1.0
    xs[:, 10:20, 10:20] = 0.3  # a "digit" elsewhere
    oracle = bl.OracleScalar(regions)
    d, _ = oracle(xs, [0, 1])
    np.testing.assert_allclose(d, [-16.0, -16.0])  # minus the ink in each image's own square
    d, _ = oracle(xs[:1], [1])
    np.testing.assert_allclose(d, [0.0])  # image 0 has no ink in image 1's square
    maps = bl.kernelshap_maps(oracle, xs, np.arange(2), seed=0, nsamples=200)
    share = metrics.region_scores(maps, regions)["rank_accuracy"]
    # the straddling square spreads over two superpixels of 16 pixels each: at most half of the top 16 hit it
    np.testing.assert_allclose(share, [0.5, 1.0])
    with pytest.raises(ValueError, match="regions"):
        bl.OracleScalar(regions[0])


def test_white_box_baselines_of_the_margin_by_hand():
    """On h = W x, m = d(x, c_l) - d(x, c_k) = 2 h.(c_k - c_l) + |c_l|^2 - |c_k|^2: grad m = 2 W (c_k - c_l), constant."""
    import keras

    rng = np.random.default_rng(0)
    w = rng.normal(size=(16, 2)).astype(np.float32)
    embed = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(2, use_bias=False)])
    embed.layers[-1].set_weights([w])
    protos = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0]], np.float32)
    scalar = metrics.DistanceScalar(embed, protos)
    xs = rng.uniform(0, 1, (2, 4, 4, 1)).astype(np.float32)
    k, l = np.array([1, 2]), np.array([2, 0])
    grad_m = 2 * (w @ (protos[k] - protos[l]).T).T.reshape(2, 4, 4)  # (B, H, W)
    np.testing.assert_allclose(bl.gradient_maps(scalar, xs, k, contrasts=l), np.abs(grad_m), rtol=1e-5)
    ig = bl.integrated_gradients_maps(scalar, xs, k, steps=4, contrasts=l)
    # positive where a pixel raises the margin (keeps x at k rather than l); exact for a linear f
    np.testing.assert_allclose(ig, xs[..., 0] * grad_m, rtol=1e-5, atol=1e-6)
    d = scalar.all_distances(np.concatenate([xs, np.zeros_like(xs)]))
    m = d[np.arange(4), np.tile(l, 2)] - d[np.arange(4), np.tile(k, 2)]
    np.testing.assert_allclose(ig.sum(axis=(1, 2)), m[:2] - m[2:], rtol=1e-4)  # completeness
    # without contrasts: the gradient of d(x, c_k) alone, 2 W (h - c_k)
    h = xs.reshape(2, -1) @ w
    np.testing.assert_allclose(bl.gradient_maps(scalar, xs, k), np.abs(2 * (h - protos[k]) @ w.T).reshape(2, 4, 4),
                               rtol=1e-4, atol=1e-6)
