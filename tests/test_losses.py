import numpy as np
import pytest
import tensorflow as tf

from siamese_xai.training import losses


def test_contrastive_loss_golden_values():
    h_i = tf.constant([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    h_j = tf.constant([[3.0, 4.0], [1.0, 0.5], [0.3, 0.4], [3.0, 4.0]])
    z = tf.constant([0.0, 0.0, 1.0, 1.0])
    # squared distances: 25, 0.25, 0.25, 25
    # similar: d2; dissimilar: max(0, tau - d2) with tau = 1
    expected = [25.0, 0.25, 0.75, 0.0]
    np.testing.assert_allclose(losses.contrastive_loss(h_i, h_j, z, tau=1.0), expected, rtol=1e-6)


def test_contrastive_loss_threshold():
    h_i = tf.constant([[0.0]])
    h_j = tf.constant([[1.0]])
    np.testing.assert_allclose(losses.contrastive_loss(h_i, h_j, tf.constant([1]), tau=3.0), [2.0])


def test_joint_loss_golden_values():
    x = tf.zeros((2, 2, 2, 1))
    x_rec = tf.reshape(tf.constant([1.0, 0.0, 0.0, 0.0, 0.5, 0.5, 0.5, 0.5]), (2, 2, 2, 1))
    h = tf.constant([[1.0, 1.0], [0.0, 0.0]])
    code = tf.constant([[1.0, 3.0], [1.0, 0.0]])
    # recon sse: 1, 1 ; alignment: 4, 1
    got = losses.joint_autoencoder_loss(x, x_rec, h, code, alpha=2.0, beta=0.5)
    np.testing.assert_allclose(got, [2 * 1 + 0.5 * 4, 2 * 1 + 0.5 * 1])


def test_joint_loss_does_not_train_the_siamese_network():
    h = tf.Variable([[1.0, 2.0]])
    code = tf.Variable([[0.0, 0.0]])
    with tf.GradientTape() as tape:
        loss = losses.joint_autoencoder_loss(tf.zeros((1, 1)), tf.zeros((1, 1)), h, code)
    g_h, g_code = tape.gradient(loss, [h, code])
    assert g_h is None
    np.testing.assert_allclose(g_code, [[-2.0, -4.0]])


def test_reconstruction_sse_per_example():
    x = tf.ones((3, 28, 28, 1))
    np.testing.assert_allclose(losses.reconstruction_sse(x, tf.zeros_like(x)), [784.0] * 3)


def test_l2_regularization():
    w = [tf.constant([[1.0, 2.0]]), tf.constant([3.0])]
    assert float(losses.l2_regularization(w)) == pytest.approx(14.0)
    assert float(losses.l2_regularization([])) == 0.0
