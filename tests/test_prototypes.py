import numpy as np
import pytest

from siamese_xai.explainers import prototypes


def test_prototypes_are_class_means():
    h = np.array([[0.0, 0.0], [2.0, 2.0], [10.0, 0.0], [4.0, 4.0]])
    y = np.array([0, 0, 1, 0])
    protos = prototypes.prototypes_from_embeddings(h, y)
    np.testing.assert_allclose(protos, [[2.0, 2.0], [10.0, 0.0]])
    assert protos.dtype == np.float32


def test_compute_prototypes_calls_the_black_box_in_batches():
    calls = []

    def embed(batch):
        calls.append(len(batch))
        return batch.reshape(len(batch), -1)[:, :2] * 2.0

    x = np.arange(20, dtype=np.float32).reshape(5, 2, 2)
    y = np.array([0, 1, 0, 1, 1])
    protos = prototypes.compute_prototypes(embed, x, y, batch_size=2)
    assert calls == [2, 2, 1]
    np.testing.assert_allclose(protos[0], (x[0].ravel()[:2] + x[2].ravel()[:2]))


def test_nearest_prototype_and_distances():
    protos = np.array([[0.0, 0.0], [3.0, 4.0]])
    h = np.array([[0.5, 0.0], [3.0, 3.0]])
    classes, dist = prototypes.nearest_prototype(h, protos)
    assert classes.tolist() == [0, 1]
    np.testing.assert_allclose(dist, [[0.5, np.sqrt(2.5**2 + 16)], [np.sqrt(18), 1.0]], rtol=1e-6)
    assert prototypes.prototype_accuracy(h, [0, 0], protos) == 0.5


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="h.shape=\\(2, 3\\)"):
        prototypes.nearest_prototype(np.zeros((2, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="classes \\[1\\] missing"):
        prototypes.prototypes_from_embeddings(np.zeros((2, 2)), [0, 2])


def test_between_class_distance_leaves_out_the_diagonal():
    # 1-D means 0, 1, 3: pair distances 1, 9, 4 (each counted twice) -> 14 / 3;
    # with the three zero self-distances the mean would be 28 / 9.
    assert prototypes.between_class_sq_distance([[0.0], [1.0], [3.0]]) == pytest.approx(14 / 3)
    assert prototypes.between_class_sq_distance([[0.0, 0.0], [3.0, 4.0]]) == pytest.approx(25.0)
    with pytest.raises(ValueError, match="`means` must be"):
        prototypes.between_class_sq_distance([[1.0, 2.0]])
