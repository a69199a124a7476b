"""The varying ground-truth set (benchmarks/evaluation/synthetic_varying.py): the square decides the class and varies within it."""


import numpy as np
import pytest


from siamese_xai.evaluation.synthetic import CELL, CLASS_CELLS, INTENSITY, make_varying_synthetic


def test_cells_are_grid_aligned_disjoint_and_off_the_digit_box():
    cells = [c for pair in CLASS_CELLS for c in pair]
    assert len(CLASS_CELLS) == 10 and all(len(p) == 2 for p in CLASS_CELLS)
    assert len(set(cells)) == 20
    for r, c in cells:
        assert r % CELL == 0 and c % CELL == 0  # on KernelSHAP's 4-pixel superpixel grid
        assert r in (0, 24) or c in (0, 24)  # the border ring, outside MNIST's 20x20 box
    for (r0, c0), (r1, c1) in CLASS_CELLS:
        assert abs(r0 - r1) + abs(c0 - c1) == CELL  # a class's two cells are neighbours


def test_square_decides_the_class_and_varies_within_it():
    digits = np.random.default_rng(0).random((50, 28, 28, 1)).astype(np.float32) * 0.2
    x, y, regions, which = make_varying_synthetic(digits, 400, seed=3)
    assert x.shape == (400, 28, 28, 1) and x.dtype == np.float32
    assert np.bincount(y, minlength=10).tolist() == [40] * 10
    assert (regions.sum(axis=(1, 2)) == CELL * CELL).all()
    for i in range(400):
        r, c = CLASS_CELLS[y[i]][which[i]]
        assert regions[i, r : r + CELL, c : c + CELL].all()
        square = x[i, ..., 0][regions[i]]
        assert np.ptp(square) == 0 and INTENSITY[0] <= square[0] <= INTENSITY[1]
    for k in range(10):
        assert set(which[y == k].tolist()) == {0, 1}  # both placements occur in every class
        levels = x[y == k, ..., 0][regions[y == k]]
        assert np.ptp(levels) > 0.3  # and the intensity varies
    again = make_varying_synthetic(digits, 400, seed=3)
    np.testing.assert_array_equal(again[0], x)


def test_bad_arguments():
    with pytest.raises(ValueError, match="`digits` must be"):
        make_varying_synthetic(np.zeros((3, 28, 28)), 5)
    with pytest.raises(ValueError, match="`n` must be positive"):
        make_varying_synthetic(np.zeros((3, 28, 28, 1)), 0)


def test_classifier_embedding_is_f_without_its_head_and_separates_the_classes():
    import keras

    from benchmarks.evaluation.synthetic_varying import train_classifier_embedding
    from siamese_xai.training import models
    from siamese_xai.explainers.prototypes import prototype_accuracy, prototypes_from_embeddings

    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 0.2, size=(96, 28, 28, 1)).astype(np.float32)
    y = np.arange(96) % 3
    for k in range(3):  # class k: a bright band of rows at its own height
        x[y == k, 8 * k : 8 * k + 6] += 0.8
    f = train_classifier_embedding(x, y, num_classes=3, epochs=4, seed=1, embedding_dim=6)
    h = np.asarray(f.predict(x, verbose=0))
    assert f.name == "snn" and h.shape == (96, 6)  # the subnetwork itself: image -> embedding, no head
    keras.utils.set_random_seed(1)  # the weights f starts from: every kernel was trained away from them
    start = models.build_siamese_subnetwork(6)
    for before, after in zip(start.weights, f.weights):
        if "kernel" in before.path:
            assert not np.allclose(np.asarray(before), np.asarray(after)), before.path
    assert prototype_accuracy(h, y, prototypes_from_embeddings(h, y, 3)) == 1.0


def test_train_synthetic_run_refuses_an_unknown_objective(tmp_path):
    from benchmarks.evaluation.synthetic_varying import train_synthetic_run

    with pytest.raises(ValueError, match=r"`objective` must be one of \('contrastive', 'classifier'\). "
                                         r"Received: objective='softmax'"):
        train_synthetic_run(tmp_path / "run", np.zeros((4, 28, 28, 1), np.float32), np.arange(4) % 2, objective="softmax")
    assert not (tmp_path / "run").exists()  # nothing written
