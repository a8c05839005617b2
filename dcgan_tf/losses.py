"""GAN losses as pure functions of discriminator logits, returning scalars.

`gan`: sigmoid cross-entropy with logits; D gets real + fake, G the non-saturating loss.
`minimax`: the same D loss; G minimises the original saturating objective E[log(1 - D(G(z)))].
`lsgan`: least squares (Mao et al.): D 0.5 E[(D(x) - t)^2] + 0.5 E[D(G(z))^2]; G 0.5 E[(D(G(z)) - 1)^2].
`hinge`: D E[relu(t - D(x))] + E[relu(1 + D(G(z)))] (t = 1, or the smoothed target); G -E[D(G(z))].
`wgan-gp` (Gulrajani et al.): D -E[D(x)] + E[D(G(z))], plus gp_weight x `gradient_penalty`, which the train step
adds because it needs D's gradient at interpolated images; G -E[D(G(z))].
"""

from __future__ import annotations

import tensorflow as tf


def _bce(logits, targets):
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits))


def discriminator_loss(real_logits, fake_logits, real_targets=None, loss: str = "gan"):
    """D's loss.

    Args:
      real_logits: [B, 1] logits of D on real images.
      fake_logits: [B, 1] logits of D on generated images.
      real_targets: [B, 1] targets for real images (one-sided label smoothing); None means ones.
      loss: one of config.LOSSES. For "wgan-gp" this is the critic loss without the gradient penalty.

    Returns:
      (d_loss, d_loss_real, d_loss_fake), with d_loss = d_loss_real + d_loss_fake.
    """
    real_logits = tf.cast(real_logits, tf.float32)
    fake_logits = tf.cast(fake_logits, tf.float32)
    if real_targets is None:
        real_targets = tf.ones_like(real_logits)
    if loss in ("gan", "minimax"):
        d_loss_real = _bce(real_logits, real_targets)
        d_loss_fake = _bce(fake_logits, tf.zeros_like(fake_logits))
    elif loss == "hinge":
        d_loss_real = tf.reduce_mean(tf.nn.relu(real_targets - real_logits))
        d_loss_fake = tf.reduce_mean(tf.nn.relu(1.0 + fake_logits))
    elif loss == "lsgan":
        d_loss_real = 0.5 * tf.reduce_mean(tf.square(real_logits - real_targets))
        d_loss_fake = 0.5 * tf.reduce_mean(tf.square(fake_logits))
    elif loss == "wgan-gp":  # a critic: real_targets do not apply
        d_loss_real = -tf.reduce_mean(real_logits)
        d_loss_fake = tf.reduce_mean(fake_logits)
    else:
        raise ValueError(f"unknown loss {loss!r}")
    return d_loss_real + d_loss_fake, d_loss_real, d_loss_fake


def generator_loss(fake_logits, loss: str = "gan"):
    """G's loss on D's logits for generated images (see the module docstring). Returns a scalar."""
    fake_logits = tf.cast(fake_logits, tf.float32)
    if loss == "gan":
        return _bce(fake_logits, tf.ones_like(fake_logits))
    if loss == "minimax":  # E[log(1 - sigmoid(l))] = -E[softplus(l)]
        return -_bce(fake_logits, tf.zeros_like(fake_logits))
    if loss in ("hinge", "wgan-gp"):
        return -tf.reduce_mean(fake_logits)
    if loss == "lsgan":
        return 0.5 * tf.reduce_mean(tf.square(fake_logits - 1.0))
    raise ValueError(f"unknown loss {loss!r}")


def discriminator_probability(logits, loss: str = "gan"):
    """D's belief that an input is real, for monitoring: sigmoid for BCE losses, the raw score otherwise."""
    logits = tf.cast(logits, tf.float32)
    return tf.sigmoid(logits) if loss in ("gan", "minimax") else logits


def gradient_penalty(gradients):
    """WGAN-GP's penalty E[(||g||_2 - 1)^2] over the batch, given D's input gradients g [B, ...] per sample."""
    g = tf.cast(gradients, tf.float32)
    norms = tf.sqrt(tf.reduce_sum(tf.square(g), axis=tf.range(1, tf.rank(g))) + 1e-12)
    return tf.reduce_mean(tf.square(norms - 1.0))


def interpolate(real_images, fake_images, weights):
    """Points on the lines between real and generated images, x_hat = w x + (1 - w) G(z), one w [B] per sample."""
    w = tf.reshape(tf.cast(weights, real_images.dtype), [-1] + [1] * (len(real_images.shape) - 1))
    return w * real_images + (1.0 - w) * tf.cast(fake_images, real_images.dtype)
