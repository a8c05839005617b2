"""One compiled train step: what it updates, and that smoothing and instance noise reach the loss."""

import dataclasses
import functools
import re

import numpy as np
import pytest
import tensorflow as tf
from run_factory import tiny_config

from dcgan_tf.config import TrainConfig
from dcgan_tf.ema import create_ema
from dcgan_tf.latent import class_labels
from dcgan_tf.model import models_from_config
from dcgan_tf.training import create_optimizers, decayed_learning_rate, make_train_step


@functools.cache
def bf16_unsupported() -> str:
    """Why this process cannot run a bfloat16 convolution, or "" when it can.

    TensorFlow sends bfloat16 to oneDNN whenever the CPU has native bf16, even when ONEDNN_MAX_CPU_ISA=AVX2
    (an emulated AVX2-only CPU) forbids oneDNN the instructions: oneDNN then finds no kernel and the op fails.
    """
    try:
        tf.nn.conv2d(tf.ones([1, 4, 4, 2], tf.bfloat16), tf.ones([3, 3, 2, 2], tf.bfloat16), 1, "SAME")
        return ""
    except tf.errors.OpError as e:
        found = re.search(r"could not create a primitive descriptor[^.]*", e.message)
        return "this CPU cannot run a bfloat16 convolution: " + (found[0] if found else e.message[:200])


def skip_without_bf16():
    if bf16_unsupported():
        pytest.skip(bf16_unsupported())


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


@pytest.mark.parametrize("conditional,g_steps", [(False, 2), pytest.param(True, 3, marks=pytest.mark.slow),
                                                  pytest.param(False, 1, marks=pytest.mark.slow)])
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


@pytest.mark.slow
def test_label_smoothing_reaches_the_loss(tmp_path):
    cfg = tiny_config(tmp_path, label_smoothing=0.7)
    G, D, _, _, step = build(cfg)
    images, labels = batch(cfg)
    low, high, hard = real_loss_bounds(D, images, 0.7)
    got = float(step(images, labels)["d_loss_real"])
    assert low - 1e-5 <= got <= high + 1e-5
    assert abs(got - hard) > 1e-4


@pytest.mark.slow
def test_instance_noise_reaches_the_loss(tmp_path):
    plain = tiny_config(tmp_path)
    noisy = dataclasses.replace(plain, instance_noise=1.0)
    images, labels = batch(plain)
    got_plain = float(build(plain)[-1](images, labels)["d_loss_real"])
    got_noisy = float(build(noisy)[-1](images, labels)["d_loss_real"])
    got_plain_again = float(build(plain)[-1](images, labels)["d_loss_real"])
    assert got_plain == pytest.approx(got_plain_again, rel=1e-6)  # same seed, same result
    assert abs(got_noisy - got_plain) > 1e-4


@pytest.mark.slow
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


@pytest.mark.slow
@pytest.mark.parametrize("policy,scaling", [("mixed_bfloat16", False), ("mixed_float16", True)])
def test_mixed_precision_step_keeps_float32_variables_and_outputs(tmp_path, policy, scaling):
    if policy == "mixed_bfloat16":
        skip_without_bf16()
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_stop_policy_flags_a_non_finite_weight(tmp_path):
    cfg = tiny_config(tmp_path)
    G, D, _, _, step = build(cfg)
    images, labels = batch(cfg)
    assert bool(step(images, labels)["finite"])
    G.project.bias.assign(np.full(G.project.bias.shape, np.inf, np.float32))
    assert not bool(step(images, labels)["finite"])


@pytest.mark.slow
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


@pytest.mark.slow
def test_gp_weight_reaches_the_critic_loss(tmp_path):
    outs = {}
    for weight in (0.0, 10.0):
        cfg = tiny_config(tmp_path, loss="wgan-gp", gp_weight=weight, g_steps=1)
        outs[weight] = build(cfg)[-1](*batch(cfg))
    gp = float(outs[10.0]["gradient_penalty"])
    assert gp > 1e-3  # a freshly initialised critic is far from 1-Lipschitz
    assert float(outs[0.0]["gradient_penalty"]) == pytest.approx(gp, rel=1e-5)  # same seed, same x_hat
    assert float(outs[10.0]["d_loss"]) - float(outs[0.0]["d_loss"]) == pytest.approx(10 * gp, rel=1e-4)


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_wgan_gp_under_bfloat16_stays_finite(tmp_path):
    skip_without_bf16()
    cfg = tiny_config(tmp_path, loss="wgan-gp", d_steps=2)
    G, D = models_from_config(cfg, 3, 0, dtype_policy="mixed_bfloat16")
    g_opt, d_opt = create_optimizers(cfg)
    step = make_train_step(G, D, g_opt, d_opt, tf.random.Generator.from_seed(0), cfg)
    out = step(*batch(cfg))
    assert all(np.isfinite(float(out[k])) for k in ("d_loss", "g_loss", "gradient_penalty"))


# ----------------------------------------------------------------------------------------------------------
# One bfloat16 step against one float32 step, within bounds derived from bfloat16's rounding
#
# u = 2^-8 (3.9e-3): bfloat16 keeps 8 significant bits, so each rounding of an activation or gradient is off by
# at most u relative. From the same weights, data and seed the two steps then differ as follows.
# - Gradients (Adam's first moment m = (1 - beta1) g): rounding adds noise of relative size r. About 20
#   roundings lie in series on G's gradient (G forward, D forward, D backward, G backward: 5 layers each), so
#   20u = 0.08; batch norm's backward pass subtracts the mean of its input gradient, which cancels most of it at
#   initialisation (D scores every fake image alike) and amplifies r (measured: r = 0.21 for G and 0.10 for
#   D with oneDNN's kernels, 0.25 and 0.08 with Eigen's). R_GRAD = 0.5 allows 6x that amplification; a
#   doubled or sign-flipped gradient has r = 1 or 2, a missing one r = 1.
# - The noise is unrelated to the gradient, so it lengthens m: |m_bf16| / |m| = sqrt(1 + r^2) <= 1.12 for
#   r <= 0.5 (measured: 1.01 to 1.015); a gradient off by 2x (a loss counted twice) or halved is outside.
# - Adam's first step moves every weight by lr * g / (|g| + eps'), i.e. by lr in the direction of sign(g)
#   whatever g's rounding: the size of each network's update (the norm of new - old over its weights) matches
#   float32 within 2e-2 (measured: at most 4e-4); a doubled update is 2x, a missing one 0.
# - Its direction flips where the noise outweighs the gradient: for independent Gaussian gradient and noise of
#   relative size r a component flips with probability arctan(r) / pi, at most 15% for r <= 0.5 (measured: 7-8%
#   for G, 1-2% for D); a sign-flipped update flips them all, an unrelated one half.
# - Batch-norm moving statistics average the batch's activations, which passed through at most L = 9 roundings
#   (G's 5 layers and D's first 4 on fake images): each moves by at most L u = 3.5e-2 of the layer's largest
#   update (measured: at most 1.4e-3). The loosest bound here, as bfloat16's rounding of a single value
#   needs; the weight and moment checks above are the ones that see a wrong update of G or D.
U_BF16 = 2.0 ** -8
R_GRAD = 0.5
BOUNDS = {"gradient_noise": R_GRAD, "moment_norm": float(np.sqrt(1 + R_GRAD**2) - 1), "update_size": 2e-2,
          "flipped": float(np.arctan(R_GRAD) / np.pi), "bn_statistics": 9 * U_BF16}
TUNED_TRAINING = {"g_ema": 0.999, "g_steps": 1, "learning_rate_d": 0.0004, "learning_rate_g": 0.0002}


def one_step_values(cfg, policy):
    """({name: value} before, {name: value} after) one train step of `cfg` computed in `policy`: G and D
    weights (BN statistics included), Adam's slots, and the EMA generator's weights as `ema:<G weight>`."""
    tf.keras.utils.set_random_seed(0)
    G, D = models_from_config(cfg, 3, 0, dtype_policy=policy)
    g_opt, d_opt = create_optimizers(cfg)
    g_opt.build(G.trainable_variables)  # Adam's slots exist before the step, to be read
    d_opt.build(D.trainable_variables)
    ema = create_ema(cfg, G, 3, 0)
    step = make_train_step(G, D, g_opt, d_opt, tf.random.Generator.from_seed(0), cfg, ema=ema)
    named = {v.path: v for v in G.weights + D.weights + g_opt.variables + d_opt.variables}
    named.update({f"ema:{g.path}": a for g, a in zip(G.weights, ema.model.weights)})
    before = {n: v.numpy() for n, v in named.items()}
    step(*batch(cfg))
    return before, {n: v.numpy() for n, v in named.items()}


def _slot_of(name: str) -> str:
    """The name Adam's slots give a weight: generator/g_h1/kernel -> generator_g_h1_kernel."""
    return name.removeprefix("ema:").replace("/", "_")


def bf16_disagreements(before, want, got) -> dict:
    """Each measure of `got` (bfloat16) against `want` (float32) that exceeds its bound in BOUNDS: {measure: value}.

    Biases straight before a batch norm are left out: their gradient is zero in exact arithmetic, so their
    update is the sign of rounding noise.
    """
    dead = set()
    for name in want:
        match = re.fullmatch(r"(generator|discriminator)/([gd])_h(\d+)\w*/bias", name)
        if match and f"{match[1]}/{match[2]}_bn{match[3]}/gamma" in want:
            dead.add(_slot_of(name))
    failed = {}

    def flat(values, names, minus=None):
        return np.concatenate([(values[n] - (minus[n] if minus else 0)).ravel() for n in names])

    for net, prefix in (("G", "generator/"), ("D", "discriminator/"), ("G EMA", "ema:generator/")):
        names = [n for n in want if n.startswith(prefix) and "moving" not in n and _slot_of(n) not in dead]
        step_f32, step_bf16 = flat(want, names, before), flat(got, names, before)
        size = np.linalg.norm(step_bf16) / np.linalg.norm(step_f32)
        moved = step_f32 != 0  # components with a gradient (some kernel taps of tiny maps see only padding)
        flipped = np.mean(np.sign(step_f32[moved]) != np.sign(step_bf16[moved]))
        measures = {"update_size": abs(size - 1), "flipped": flipped}
        if net != "G EMA":
            slots = [n for n in want if n.endswith("_momentum") and n.split("/")[1].startswith(prefix[:-1])
                     and n.split("/")[1][:-len("_momentum")] not in dead]
            m_f32, m_bf16 = flat(want, slots), flat(got, slots)
            measures["gradient_noise"] = np.linalg.norm(m_bf16 - m_f32) / np.linalg.norm(m_f32)
            measures["moment_norm"] = abs(np.linalg.norm(m_bf16) / np.linalg.norm(m_f32) - 1)
        for k, v in measures.items():
            if not v <= BOUNDS[k]:
                failed[f"{net} {k}"] = float(v)
    for gamma in [n for n in want if n.endswith("/gamma") and "_bn" in n]:
        layer = gamma[:-len("/gamma")]
        stats = [f"{layer}/moving_mean", f"{layer}/moving_variance"]
        largest = max(np.abs(want[n] - before[n]).max() for n in stats)
        worst = max(np.abs((got[n] - before[n]) - (want[n] - before[n])).max() for n in stats) / largest
        if not worst <= BOUNDS["bn_statistics"]:
            failed[f"{layer} bn_statistics"] = float(worst)
    return failed


@pytest.mark.slow
def test_a_bfloat16_step_matches_a_float32_step_within_rounding(tmp_path):
    skip_without_bf16()
    # 32 px and batch 8: at 16 px most taps of G's first 5x5 kernels see only padding, and 4 images leave
    # batch norm's statistics too few values
    cfg = tiny_config(tmp_path, size=32, batch_size=8, **TUNED_TRAINING)
    before, want = one_step_values(cfg, None)
    _, got = one_step_values(cfg, "mixed_bfloat16")
    assert bf16_disagreements(before, want, got) == {}
    # The same bounds reject a doubled, missing or sign-flipped update or gradient of either network
    for prefix, net in (("generator/", "G"), ("discriminator/", "D")):
        for how, factor in (("doubled", 2.0), ("missing", 0.0), ("sign-flipped", -1.0)):
            wrong_step = {n: before[n] + factor * (v - before[n]) if n.startswith(prefix) and "moving" not in n
                          else v for n, v in got.items()}
            wrong_grad = {n: factor * v if n.endswith("_momentum") and n.split("/")[1].startswith(prefix[:-1])
                          else v for n, v in got.items()}
            for kind, wrong in (("update", wrong_step), ("gradient", wrong_grad)):
                failed = bf16_disagreements(before, want, wrong)
                assert any(k.startswith(f"{net} ") for k in failed), (how, net, kind, failed)
