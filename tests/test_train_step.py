"""One compiled train step: what it updates, and that smoothing and instance noise reach the loss."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from run_factory import tiny_config

from dcgan_tf.config import TrainConfig
from dcgan_tf.ema import create_ema
from dcgan_tf.latent import class_labels
from dcgan_tf.model import models_from_config
from dcgan_tf.train import create_optimizers, decayed_learning_rate, make_train_step


def build(cfg, c_dim=3, seed=0):
    tf.keras.utils.set_random_seed(seed)
    G, D = models_from_config(cfg, c_dim, cfg.y_dim)
    g_opt, d_opt = create_optimizers(cfg)
    rng = tf.random.Generator.from_seed(seed)
    return G, D, g_opt, d_opt, make_train_step(G, D, g_opt, d_opt, rng, cfg)


def batch(cfg, c_dim=3, seed=0):
    """The real data of one step: --d_steps batches of --batch_size."""
    n = cfg.images_per_step
    x = np.random.RandomState(seed).uniform(-1, 1, (n, cfg.output_height, cfg.output_width, c_dim))
    return tf.constant(x.astype(np.float32)), tf.constant(class_labels(n, cfg.y_dim))


@pytest.mark.parametrize("conditional,g_steps", [(False, 2), (True, 3), (False, 1)])
def test_one_step_updates_d_once_and_g_g_steps_times(tmp_path, conditional, g_steps):
    cfg = tiny_config(tmp_path, conditional=conditional, g_steps=g_steps, size=28 if conditional else 16)
    c_dim = 1 if conditional else 3
    G, D, g_opt, d_opt, step = build(cfg, c_dim)
    g_before = [v.numpy().copy() for v in G.trainable_variables]
    d_before = [v.numpy().copy() for v in D.trainable_variables]
    out = step(*batch(cfg, c_dim))
    assert int(d_opt.iterations) == 1 and int(g_opt.iterations) == g_steps
    assert any(not np.allclose(a, b.numpy()) for a, b in zip(g_before, G.trainable_variables))
    assert any(not np.allclose(a, b.numpy()) for a, b in zip(d_before, D.trainable_variables))
    for k in ("d_loss", "d_loss_real", "d_loss_fake", "g_loss", "d_real", "d_fake"):
        assert np.isfinite(float(out[k])), k
    assert float(out["d_loss"]) == pytest.approx(float(out["d_loss_real"]) + float(out["d_loss_fake"]), rel=1e-5)
    assert out["z"].shape == (cfg.batch_size, cfg.z_dim) and out["d"].shape == (cfg.batch_size, 1)


def real_loss_bounds(D, images, smoothing):
    logits = D(images, training=True).numpy().astype(np.float64)
    softplus = np.logaddexp(0, logits)
    hard = np.mean(softplus - logits)  # target 1
    soft = np.mean(softplus - smoothing * logits)  # target L
    return min(hard, soft), max(hard, soft), hard


def test_label_smoothing_reaches_the_loss(tmp_path):
    cfg = tiny_config(tmp_path, label_smoothing=0.7)
    G, D, _, _, step = build(cfg)
    images, labels = batch(cfg)
    low, high, hard = real_loss_bounds(D, images, 0.7)
    got = float(step(images, labels)["d_loss_real"])
    assert low - 1e-5 <= got <= high + 1e-5
    assert abs(got - hard) > 1e-4


def test_instance_noise_reaches_the_loss(tmp_path):
    plain = tiny_config(tmp_path)
    noisy = dataclasses.replace(plain, instance_noise=1.0)
    images, labels = batch(plain)
    got_plain = float(build(plain)[-1](images, labels)["d_loss_real"])
    got_noisy = float(build(noisy)[-1](images, labels)["d_loss_real"])
    got_plain_again = float(build(plain)[-1](images, labels)["d_loss_real"])
    assert got_plain == pytest.approx(got_plain_again, rel=1e-6)  # same seed, same result
    assert abs(got_noisy - got_plain) > 1e-4


@pytest.mark.parametrize("loss", ["lsgan", "minimax", "hinge", "wgan-gp"])
def test_other_losses_train_with_finite_values(tmp_path, loss):
    cfg = tiny_config(tmp_path, loss=loss)
    out = build(cfg)[-1](*batch(cfg))
    assert np.isfinite(float(out["g_loss"])) and np.isfinite(float(out["d_loss"]))


def test_step_decay():
    cfg = TrainConfig(lr_decay_every=10, lr_decay=0.9)
    assert decayed_learning_rate(1.0, cfg, 9) == 1.0
    assert decayed_learning_rate(1.0, cfg, 10) == pytest.approx(0.9)
    assert decayed_learning_rate(1.0, cfg, 25) == pytest.approx(0.81)
    assert decayed_learning_rate(1.0, TrainConfig(), 100) == 1.0


@pytest.mark.parametrize("policy,scaling", [("mixed_bfloat16", False), ("mixed_float16", True)])
def test_mixed_precision_step_keeps_float32_variables_and_outputs(tmp_path, policy, scaling):
    cfg = tiny_config(tmp_path)
    G, D = models_from_config(cfg, 3, 0, dtype_policy=policy)
    g_opt, d_opt = create_optimizers(cfg, loss_scaling=scaling)
    step = make_train_step(G, D, g_opt, d_opt, tf.random.Generator.from_seed(0), cfg)
    before = G.trainable_variables[0].numpy().copy()
    # float16 loss scaling skips updates whose scaled gradients overflow and lowers the scale: allow a few steps
    for _ in range(20 if scaling else 1):
        out = step(*batch(cfg))
        if not np.allclose(before, G.trainable_variables[0].numpy()):
            break
    assert np.isfinite(float(out["g_loss"])) and np.isfinite(float(out["d_loss"]))
    assert G.deconv1.compute_dtype == policy.split("_")[1]
    assert all(v.dtype == "float32" for v in G.weights + D.weights)
    assert G(np.zeros((2, cfg.z_dim), np.float32)).dtype == "float32"
    assert not np.allclose(before, G.trainable_variables[0].numpy())


def test_skip_batch_policy_skips_a_nan_update_and_counts_it(tmp_path):
    cfg = tiny_config(tmp_path, nan_policy="skip_batch")
    G, D = models_from_config(cfg, 3, 0)
    g_opt, d_opt = create_optimizers(cfg)
    counter = tf.Variable(0, dtype=tf.int64)
    step = make_train_step(G, D, g_opt, d_opt, tf.random.Generator.from_seed(0), cfg, nan_skipped=counter)
    images, labels = batch(cfg)
    step(images, labels)
    d_before = [v.numpy().copy() for v in D.trainable_variables]
    poisoned = tf.tensor_scatter_nd_update(images, [[0, 0, 0, 0]], [float("nan")])
    out = step(poisoned, labels)
    assert int(out["nan_skipped"]) == 1 and int(counter) == 1 and not bool(out["finite"])
    for a, b in zip(d_before, D.trainable_variables):
        np.testing.assert_array_equal(a, b.numpy())  # D's update was skipped
    assert all(np.isfinite(v.numpy()).all() for v in G.weights + D.weights)
    assert bool(step(images, labels)["finite"]) and int(counter) == 1


def test_stop_policy_flags_a_non_finite_weight(tmp_path):
    cfg = tiny_config(tmp_path)
    G, D, _, _, step = build(cfg)
    images, labels = batch(cfg)
    assert bool(step(images, labels)["finite"])
    G.project.bias.assign(np.full(G.project.bias.shape, np.inf, np.float32))
    assert not bool(step(images, labels)["finite"])


@pytest.mark.parametrize("conditional", [False, True])
def test_wgan_gp_step_runs_d_steps_critic_updates_with_the_penalty(tmp_path, conditional):
    cfg = tiny_config(tmp_path, loss="wgan-gp", d_steps=3, g_steps=1, conditional=conditional,
                      size=28 if conditional else 16)
    c_dim = 1 if conditional else 3
    G, D, g_opt, d_opt, step = build(cfg, c_dim)
    assert not any("moving_variance" in v.path for v in D.weights)  # layer norm, no batch norm, in the critic
    out = step(*batch(cfg, c_dim))
    assert int(d_opt.iterations) == 3 and int(g_opt.iterations) == 1
    gp = float(out["gradient_penalty"])
    assert np.isfinite(gp) and gp >= 0
    assert float(out["d_loss"]) == pytest.approx(float(out["d_loss_real"]) + float(out["d_loss_fake"]) + 10 * gp,
                                                 rel=1e-4, abs=1e-5)


def test_gp_weight_reaches_the_critic_loss(tmp_path):
    outs = {}
    for weight in (0.0, 10.0):
        cfg = tiny_config(tmp_path, loss="wgan-gp", gp_weight=weight, g_steps=1)
        outs[weight] = build(cfg)[-1](*batch(cfg))
    gp = float(outs[10.0]["gradient_penalty"])
    assert gp > 1e-3  # a freshly initialised critic is far from 1-Lipschitz
    assert float(outs[0.0]["gradient_penalty"]) == pytest.approx(gp, rel=1e-5)  # same seed, same x_hat
    assert float(outs[10.0]["d_loss"]) - float(outs[0.0]["d_loss"]) == pytest.approx(10 * gp, rel=1e-4)


def test_each_critic_step_uses_its_own_real_batch(tmp_path):
    cfg = tiny_config(tmp_path, d_steps=2, g_steps=1)
    first, _ = batch(cfg, seed=1)
    other, labels = batch(cfg, seed=2)
    same_twice = tf.concat([first[:4], first[:4]], 0)
    two_batches = tf.concat([first[:4], other[:4]], 0)
    results = []
    for images in (same_twice, two_batches, same_twice):
        G, D, _, _, step = build(cfg)
        step(images, labels)
        results.append([v.numpy() for v in D.trainable_variables])
    for a, b in zip(results[0], results[2]):
        np.testing.assert_array_equal(a, b)  # deterministic for the same data
    assert any(not np.allclose(a, b) for a, b in zip(results[0], results[1]))  # the second half was used


def test_the_step_updates_the_generator_ema(tmp_path):
    cfg = tiny_config(tmp_path, g_ema=0.5)
    G, D = models_from_config(cfg, 3, 0)
    g_opt, d_opt = create_optimizers(cfg)
    ema = create_ema(cfg, G, 3, 0)
    start = [w.numpy() for w in G.weights]
    step = make_train_step(G, D, g_opt, d_opt, tf.random.Generator.from_seed(0), cfg, ema=ema)
    step(*batch(cfg))
    assert int(ema.updates) == 1
    for a, s0, s1 in zip(ema.model.weights, start, G.weights):  # first update: d = 0.1
        np.testing.assert_allclose(a.numpy(), 0.1 * s0 + 0.9 * s1.numpy(), rtol=1e-5, atol=1e-6)


def test_wgan_gp_under_bfloat16_stays_finite(tmp_path):
    cfg = tiny_config(tmp_path, loss="wgan-gp", d_steps=2)
    G, D = models_from_config(cfg, 3, 0, dtype_policy="mixed_bfloat16")
    g_opt, d_opt = create_optimizers(cfg)
    step = make_train_step(G, D, g_opt, d_opt, tf.random.Generator.from_seed(0), cfg)
    out = step(*batch(cfg))
    assert all(np.isfinite(float(out[k])) for k in ("d_loss", "g_loss", "gradient_penalty"))
