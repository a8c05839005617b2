"""The GAN losses against hand-computed values."""

import math

import numpy as np
import pytest
import tensorflow as tf

from dcgan_tf.losses import discriminator_loss, discriminator_probability, generator_loss, gradient_penalty, interpolate


def bce(logit, target):
    p = 1 / (1 + math.exp(-logit))
    return -(target * math.log(p) + (1 - target) * math.log(1 - p))


def test_gan_losses_match_hand_computation():
    real = tf.constant([[2.0], [-1.0]])
    fake = tf.constant([[0.5], [-3.0]])
    d_loss, d_real, d_fake = discriminator_loss(real, fake, loss="gan")
    want_real = (bce(2.0, 1) + bce(-1.0, 1)) / 2
    want_fake = (bce(0.5, 0) + bce(-3.0, 0)) / 2
    assert float(d_real) == pytest.approx(want_real, rel=1e-5)
    assert float(d_fake) == pytest.approx(want_fake, rel=1e-5)
    assert float(d_loss) == pytest.approx(want_real + want_fake, rel=1e-5)
    assert float(generator_loss(fake, "gan")) == pytest.approx((bce(0.5, 1) + bce(-3.0, 1)) / 2, rel=1e-5)


def test_label_smoothing_targets_reach_the_loss():
    real = tf.constant([[3.0], [3.0]])
    fake = tf.zeros((2, 1))
    _, hard, _ = discriminator_loss(real, fake, None, "gan")
    _, smooth, _ = discriminator_loss(real, fake, tf.constant([[0.9], [0.9]]), "gan")
    assert float(smooth) == pytest.approx(bce(3.0, 0.9), rel=1e-5)
    assert float(smooth) > float(hard)


def test_lsgan_losses_match_hand_computation():
    real = tf.constant([[2.0], [0.0]])
    fake = tf.constant([[1.0], [-1.0]])
    d_loss, d_real, d_fake = discriminator_loss(real, fake, loss="lsgan")
    assert float(d_real) == pytest.approx(0.5 * ((2 - 1) ** 2 + (0 - 1) ** 2) / 2)
    assert float(d_fake) == pytest.approx(0.5 * (1 + 1) / 2)
    assert float(d_loss) == pytest.approx(float(d_real) + float(d_fake))
    assert float(generator_loss(fake, "lsgan")) == pytest.approx(0.5 * (0 + 4) / 2)


def test_probability_and_unknown_loss():
    np.testing.assert_allclose(discriminator_probability(tf.constant([0.0]), "gan"), [0.5])
    np.testing.assert_allclose(discriminator_probability(tf.constant([0.3]), "lsgan"), [0.3])
    with pytest.raises(ValueError):
        generator_loss(tf.zeros((1, 1)), "wgan")


def test_minimax_generator_loss_is_the_saturating_objective():
    fake = tf.constant([[0.5], [-3.0]])
    want = (math.log(1 - 1 / (1 + math.exp(-0.5))) + math.log(1 - 1 / (1 + math.exp(3.0)))) / 2
    assert float(generator_loss(fake, "minimax")) == pytest.approx(want, rel=1e-5)
    d_gan = discriminator_loss(tf.constant([[1.0]]), fake[:1], loss="gan")
    d_minimax = discriminator_loss(tf.constant([[1.0]]), fake[:1], loss="minimax")
    assert [float(x) for x in d_gan] == pytest.approx([float(x) for x in d_minimax])
    np.testing.assert_allclose(discriminator_probability(tf.constant([0.0]), "minimax"), [0.5])


def test_hinge_losses_match_hand_computation():
    real = tf.constant([[2.0], [0.5], [-1.0]])
    fake = tf.constant([[-2.0], [0.0], [1.5]])
    d_loss, d_real, d_fake = discriminator_loss(real, fake, loss="hinge")
    assert float(d_real) == pytest.approx((0 + 0.5 + 2.0) / 3)  # relu(1 - D(x))
    assert float(d_fake) == pytest.approx((0 + 1.0 + 2.5) / 3)  # relu(1 + D(G(z)))
    assert float(d_loss) == pytest.approx(float(d_real) + float(d_fake))
    assert float(generator_loss(fake, "hinge")) == pytest.approx(-(-2.0 + 0.0 + 1.5) / 3)
    _, smoothed, _ = discriminator_loss(real, fake, tf.fill((3, 1), 0.9), "hinge")
    assert float(smoothed) == pytest.approx((0 + 0.4 + 1.9) / 3)


def test_wgan_losses_match_hand_computation():
    real = tf.constant([[2.0], [-1.0]])
    fake = tf.constant([[0.5], [-3.0]])
    d_loss, d_real, d_fake = discriminator_loss(real, fake, loss="wgan-gp")
    assert float(d_real) == pytest.approx(-0.5)  # -mean(2, -1)
    assert float(d_fake) == pytest.approx(-1.25)  # mean(0.5, -3)
    assert float(d_loss) == pytest.approx(-1.75)
    assert float(generator_loss(fake, "wgan-gp")) == pytest.approx(1.25)
    assert float(discriminator_probability(real, "wgan-gp")[0, 0]) == pytest.approx(2.0)  # raw critic score


def test_gradient_penalty_of_hand_made_gradients():
    g = np.zeros((2, 2, 2, 1), np.float32)
    g[0, 0, 0, 0], g[0, 1, 1, 0] = 3.0, 4.0  # norm 5 -> (5 - 1)^2 = 16
    g[1, 0, 1, 0] = 1.0  # norm 1 -> 0
    assert float(gradient_penalty(tf.constant(g))) == pytest.approx(8.0, rel=1e-5)


@pytest.mark.parametrize("scale", [3.0, 1.0, 0.25])
def test_gradient_penalty_on_a_critic_with_a_known_gradient(scale):
    """D(x) = <w, x> has gradient w at every x, so the penalty is (||w|| - 1)^2 wherever x_hat falls."""
    rs = np.random.RandomState(0)
    w = rs.normal(size=(4, 4, 3)).astype(np.float32)
    w *= scale / np.linalg.norm(w)
    real = tf.constant(rs.uniform(-1, 1, (5, 4, 4, 3)).astype(np.float32))
    fake = tf.constant(rs.uniform(-1, 1, (5, 4, 4, 3)).astype(np.float32))
    x_hat = interpolate(real, fake, tf.constant(rs.uniform(0, 1, 5).astype(np.float32)))
    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        logits = tf.reduce_sum(x_hat * w, axis=[1, 2, 3])[:, None]
    assert float(gradient_penalty(tape.gradient(logits, x_hat))) == pytest.approx((scale - 1) ** 2, rel=1e-4,
                                                                                   abs=1e-6)


def test_gradient_penalty_on_a_quadratic_critic_and_its_second_derivative():
    """D(x) = ||x||^2 / 2 has gradient x: the penalty is mean((||x|| - 1)^2), and its gradient w.r.t. a scale
    of D flows through the inner gradient (what WGAN-GP's D update needs)."""
    x = tf.constant([[3.0, 4.0], [0.6, 0.8]])  # norms 5 and 1
    a = tf.Variable(1.0)
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            inner.watch(x)
            logits = a * tf.reduce_sum(tf.square(x), axis=1, keepdims=True) / 2
        gp = gradient_penalty(inner.gradient(logits, x))
    assert float(gp) == pytest.approx(8.0, rel=1e-5)
    # d/da mean((a ||x|| - 1)^2) at a = 1: mean(2 (||x|| - 1) ||x||) = (2 * 4 * 5 + 0) / 2 = 20
    assert float(outer.gradient(gp, a)) == pytest.approx(20.0, rel=1e-4)


def test_interpolation_weights_pick_real_fake_and_between():
    real, fake = tf.ones((3, 2, 2, 1)), -tf.ones((3, 2, 2, 1))
    x_hat = interpolate(real, fake, tf.constant([1.0, 0.0, 0.25])).numpy()
    np.testing.assert_allclose(x_hat[0], 1.0)
    np.testing.assert_allclose(x_hat[1], -1.0)
    np.testing.assert_allclose(x_hat[2], -0.5)
