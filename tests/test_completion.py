"""Tests of dcgan_tf.completion: loss weighting, the update rules, projection, per-image independence, class search.

A toy linear generator (G(z) = tanh(Wz)) makes convergence checkable; a tiny saved DCGAN from make_run checks
the plumbing with batch norm, padding and conditional labels.
"""

import importlib.util
import pathlib
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from run_factory import make_run

from dcgan_tf.class_choice import weighted_known_pixels_prior
from dcgan_tf.completion import (
    Completer,
    adam_update,
    complete,
    context_weights,
    contextual_loss,
    momentum_update,
    perceptual_loss,
)
from dcgan_tf.losses import generator_loss
from dcgan_tf.masks import block_mean, make_mask, upsample_blocks
from dcgan_tf.metrics import psnr
from dcgan_tf.runs import load_run

SIZE, Z_DIM = 8, 8


class LinearGenerator(keras.Model):
    """z [B, z_dim] -> tanh(W z) as [B, H, W, C] images: smooth and well-conditioned."""

    def __init__(self, size=SIZE, c_dim=3, z_dim=Z_DIM):
        super().__init__()
        self.output_height = self.output_width = size
        self.c_dim = c_dim
        init = keras.initializers.RandomNormal(stddev=1 / np.sqrt(z_dim), seed=0)
        self.dense = keras.layers.Dense(size * size * c_dim, kernel_initializer=init)

    def call(self, z, training=False):
        return tf.tanh(tf.reshape(self.dense(z), (-1, self.output_height, self.output_width, self.c_dim)))


class LinearDiscriminator(keras.Model):
    def __init__(self):
        super().__init__()
        self.flatten = keras.layers.Flatten()
        self.dense = keras.layers.Dense(1, kernel_initializer=keras.initializers.RandomNormal(stddev=0.01, seed=1))

    def call(self, images, training=False):
        return self.dense(self.flatten(images))


@pytest.fixture(scope="module")
def toy():
    G, D = LinearGenerator(), LinearDiscriminator()
    D(G(tf.zeros((1, Z_DIM))))
    z_true = np.random.RandomState(0).uniform(-0.8, 0.8, (3, Z_DIM)).astype(np.float32)
    masks = np.stack([make_mask("center", SIZE, SIZE, rng=None)] * 3)
    return G, D, G(z_true).numpy(), masks, z_true


@pytest.fixture(scope="module")
def dcgan(tmp_path_factory):
    _, paths, _, _ = make_run(tmp_path_factory.mktemp("run"), size=SIZE)
    return load_run(paths.checkpoint_dir)


@pytest.fixture(scope="module")
def conditional_dcgan(tmp_path_factory):
    _, paths, _, _ = make_run(tmp_path_factory.mktemp("crun"), conditional=True, size=SIZE, c_dim=1)
    return load_run(paths.checkpoint_dir)


def random_images(n, c_dim=3, seed=0):
    return np.random.RandomState(seed).uniform(-1, 1, (n, SIZE, SIZE, c_dim)).astype(np.float32)


def random_masks(n, seed=0):
    return np.stack([make_mask("random", SIZE, SIZE, rng=np.random.default_rng(seed + i), random_fraction=0.5)
                     for i in range(n)])


# Loss terms ---------------------------------------------------------------------------------------------

def test_weights_match_hand_computed_example():
    mask = np.ones((1, 4, 4, 1), np.float32)
    mask[0, 1, 1:3] = 0  # two missing pixels; window 3; outside the image counts as known
    expected = np.array([[1, 2, 2, 1],
                         [1, 0, 0, 1],
                         [1, 2, 2, 1],
                         [0, 0, 0, 0]]) / 9
    np.testing.assert_allclose(context_weights(mask, window=3)[0, ..., 0], expected, atol=1e-7)
    np.testing.assert_array_equal(context_weights(mask, weighted=False), mask)
    full = np.ones((1, 4, 4, 1), np.float32)  # nothing missing: plain weights instead of all zeros
    np.testing.assert_array_equal(context_weights(full, window=3), full)


def test_contextual_loss_is_a_per_image_weighted_l1_sum():
    g, y = random_images(2, seed=1), random_images(2, seed=2)
    w = random_masks(2)
    expected = (w * np.abs(g - y)).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(contextual_loss(g, y, w).numpy(), expected, rtol=1e-5)
    pooled = contextual_loss(g, y, np.ones_like(w), pool=4).numpy()  # lowres: 2x2 blocks of 4x4 pixels
    blocks = lambda x: x.reshape(2, 2, 4, 2, 4, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(pooled, np.abs(blocks(g) - blocks(y)).sum(axis=(1, 2, 3)), rtol=1e-5)


@pytest.mark.parametrize("loss", ["gan", "lsgan"])
def test_perceptual_loss_is_generator_loss_per_image(loss):
    logits = tf.constant([[0.3], [-2.0], [1.5]])
    expected = [generator_loss(logits[i:i + 1], loss).numpy() for i in range(3)]
    np.testing.assert_allclose(perceptual_loss(logits, loss).numpy(), expected, rtol=1e-6)


# Update rules -------------------------------------------------------------------------------------------

def test_momentum_update_matches_hand_computed_step():
    z, v, g = tf.constant([0.5, -0.2]), tf.constant([0.1, 0.0]), tf.constant([2.0, -1.0])
    z_new, v_new = momentum_update(z, v, g, lr=0.01, momentum=0.9)
    # v' = 0.9 * 0.1 - 0.01 * 2 = 0.07; z' = 0.5 - 0.9 * 0.1 + 1.9 * 0.07 = 0.543
    # v' = 0 + 0.01 = 0.01;             z' = -0.2 - 0 + 1.9 * 0.01 = -0.181
    np.testing.assert_allclose(v_new.numpy(), [0.07, 0.01], atol=1e-7)
    np.testing.assert_allclose(z_new.numpy(), [0.543, -0.181], atol=1e-7)


def test_adam_matches_hand_computation():
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-8
    z, m, v = tf.constant([1.0]), tf.zeros(1), tf.zeros(1)
    z, m, v = adam_update(z, m, v, 1.0, tf.constant([0.5]), lr, b1, b2, eps)
    # t=1: m = 0.05, v = 0.00025, m_hat = 0.5, v_hat = 0.25: z = 1 - 0.1 * 0.5 / 0.5 = 0.9
    np.testing.assert_allclose([z[0], m[0], v[0]], [0.9, 0.05, 0.00025], rtol=1e-6)
    z, m, v = adam_update(z, m, v, 2.0, tf.constant([-1.0]), lr, b1, b2, eps)
    m2, v2 = 0.9 * 0.05 - 0.1, 0.999 * 0.00025 + 0.001
    z2 = 0.9 - lr * (m2 / (1 - 0.9 ** 2)) / (np.sqrt(v2 / (1 - 0.999 ** 2)) + eps)  # = 0.93661...
    np.testing.assert_allclose([z[0], m[0], v[0]], [z2, m2, v2], rtol=1e-5)


@pytest.mark.parametrize("approach", ["momentum", "adam"])
def test_completer_step_applies_the_rule_to_the_true_gradient(toy, approach):
    G, D, images, masks, _ = toy
    completer = Completer(G, D, batch_size=4, z_dim=Z_DIM, approach=approach, lr=0.01, lam=0.1)
    z0 = completer.initial_z([0, 1, 2], 1)[:, 0]
    result = completer(images, masks, seeds=[0, 1, 2], n_iter=1)
    z = tf.constant(z0)
    weights = context_weights(masks)
    with tf.GradientTape() as tape:
        tape.watch(z)
        fake = G(z, training=False)
        total = contextual_loss(fake, images, weights) + 0.1 * perceptual_loss(D(fake, training=False))
        objective = tf.reduce_sum(total)
    grad = tape.gradient(objective, z)
    if approach == "momentum":
        expected, _ = momentum_update(z, tf.zeros_like(z), grad, 0.01, 0.9)
    else:
        expected, _, _ = adam_update(z, tf.zeros_like(z), tf.zeros_like(z), 1.0, grad, 0.01, 0.9, 0.999, 1e-8)
    np.testing.assert_allclose(result.z, np.clip(expected, -1, 1), atol=1e-6)
    np.testing.assert_allclose(result.losses["total"][:, 0], total.numpy(), rtol=1e-5)


@pytest.mark.parametrize("z_dist,low,high", [("uniform_signed", -1, 1), ("uniform_unsigned", 0, 1),
                                             ("normal01", -2, 2)])
def test_projection_keeps_z_in_range(toy, z_dist, low, high):
    G, D, images, masks, _ = toy
    completer = Completer(G, D, batch_size=4, z_dim=Z_DIM, z_dist=z_dist, lr=50.0)
    result = completer(images, masks, n_iter=5)
    assert result.z.min() >= low and result.z.max() <= high
    assert np.isclose(np.abs(result.z), max(abs(low), high)).any()  # the step really hit the bound


# Optimisation -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("approach,lr", [("adam", 0.05), ("momentum", 0.001)])
def test_optimisation_recovers_the_hole(toy, approach, lr):
    G, D, images, masks, _ = toy
    result = complete(G, D, images, masks, z_dim=Z_DIM, approach=approach, lr=lr, n_iter=150)
    first, last = result.losses["contextual"][:, 0], result.losses["contextual"][:, -1]
    assert (last < 0.1 * first).all()
    assert min(psnr(images[i], result.images[i], 1 - masks[i]) for i in range(3)) > 30


def test_history_rows_and_final_loss_belong_to_the_returned_z(toy):
    G, D, images, masks, _ = toy
    result = complete(G, D, images, masks, z_dim=Z_DIM, approach="adam", lr=0.05, n_iter=7, snapshot_every=3)
    assert result.losses["total"].shape == (3, 8)
    assert result.snapshot_steps == [0, 3, 6, 7] and result.snapshots.shape == (4, 3, SIZE, SIZE, 3)
    np.testing.assert_allclose(result.snapshots[-1], result.generated)
    np.testing.assert_allclose(G(result.z).numpy(), result.generated, atol=1e-6)
    final = contextual_loss(result.generated, images, context_weights(masks)).numpy()
    np.testing.assert_allclose(result.losses["contextual"][:, -1], final, rtol=1e-5)


@pytest.mark.parametrize("blend", ["poisson", "none"])
def test_known_pixels_unchanged_in_output(toy, blend):
    G, D, images, masks, _ = toy
    result = complete(G, D, images, masks, z_dim=Z_DIM, n_iter=3, blend=blend)
    keep = np.broadcast_to(masks > 0, images.shape)
    np.testing.assert_allclose(result.images[keep], images[keep], atol=1e-6)


@pytest.mark.parametrize("blend", ["poisson", "none"])
def test_a_mask_with_no_hole_outputs_the_generated_image_by_default(toy, blend):
    """full / lowres masks know every pixel: keep=None must keep none of them, as complete.py does."""
    G, D, images, masks, _ = toy
    full = np.ones_like(masks)
    mixed = np.concatenate([full[:1], masks[1:]])  # one image without a hole, the others with one
    result = complete(G, D, images, mixed, z_dim=Z_DIM, n_iter=3, blend=blend)
    np.testing.assert_allclose(result.images[0], result.generated[0], atol=1e-5)
    assert np.abs(result.images[0] - images[0]).max() > 0.05  # not the input returned unchanged
    keep = np.broadcast_to(mixed[1:] > 0, images[1:].shape)
    np.testing.assert_allclose(result.images[1:][keep], images[1:][keep], atol=1e-6)


def test_restarts_keep_the_lowest_final_loss(toy):
    G, D, images, masks, _ = toy
    completer = Completer(G, D, batch_size=4, z_dim=Z_DIM, approach="adam", lr=0.05)
    starts = completer.initial_z([0, 1, 2], 3)
    np.testing.assert_array_equal(starts[:, 0], completer.initial_z([0, 1, 2], 1)[:, 0])
    best = completer(images, masks, n_iter=5, num_restarts=3)
    single = completer(images, masks, n_iter=5, num_restarts=1)
    assert (best.final_losses["total"] <= single.final_losses["total"]).all()
    assert set(best.restarts) <= {0, 1, 2}


@pytest.mark.slow
def test_images_in_a_batch_are_independent(dcgan):
    """Same image alone, or with others in a padded last batch of 2: the same loss history and result."""
    G, D = dcgan.generator, dcgan.discriminator
    images, masks = random_images(5), random_masks(5)
    completer = Completer(G, D, batch_size=2, z_dim=Z_DIM, approach="adam", lr=0.1)
    together = completer(images, masks, seeds=[10, 11, 12, 13, 14], n_iter=6)
    assert together.generated.shape == (5, SIZE, SIZE, 3) and together.losses["total"].shape == (5, 7)
    for i in (1, 4):
        alone = completer(images[i:i + 1], masks[i:i + 1], seeds=[10 + i], n_iter=6)
        for name in ("contextual", "perceptual", "total"):
            np.testing.assert_allclose(alone.losses[name][0], together.losses[name][i], rtol=1e-6)
        np.testing.assert_allclose(alone.generated[0], together.generated[i], atol=1e-6)
    assert len({together.losses["total"][i, 0] for i in range(5)}) == 5  # no row is a copy of another
    bigger = Completer(G, D, batch_size=8, z_dim=Z_DIM, approach="adam", lr=0.1)
    np.testing.assert_allclose(bigger(images, masks, seeds=[10, 11, 12, 13, 14], n_iter=6).losses["total"],
                               together.losses["total"], rtol=1e-4)


def test_networks_are_left_untouched(dcgan):
    G, D = dcgan.generator, dcgan.discriminator
    before = [v.numpy().copy() for v in G.variables + D.variables]
    Completer(G, D, batch_size=2, z_dim=Z_DIM, approach="adam", lr=0.1)(random_images(2), random_masks(2), n_iter=3)
    for b, v in zip(before, G.variables + D.variables):
        np.testing.assert_array_equal(b, v.numpy())  # BN statistics included: inference mode


def test_conditional_tries_every_class_or_uses_the_given_one(conditional_dcgan):
    run = conditional_dcgan
    completer = Completer(run.generator, run.discriminator, batch_size=2, z_dim=Z_DIM, y_dim=10)
    images, masks = random_images(3, c_dim=1), random_masks(3)
    given = completer(images, masks, np.array([3, 7, 3]), n_iter=2)
    np.testing.assert_array_equal(given.labels, [3, 7, 3])
    searched = completer(images, masks, None, n_iter=2)
    assert ((searched.labels >= 0) & (searched.labels < 10)).all()
    assert (searched.final_losses["total"] <= given.final_losses["total"] + 1e-6).all()


def _given_class_finals(completer, images, masks, n_iter):
    """[N, 10] final total loss of each class given explicitly."""
    return np.stack([completer(images, masks, np.full(len(images), c), n_iter=n_iter).final_losses["total"]
                     for c in range(10)], 1)


def test_search_all_keeps_the_lowest_final_loss_and_names_the_runner_up(conditional_dcgan):
    run = conditional_dcgan
    completer = Completer(run.generator, run.discriminator, batch_size=2, z_dim=Z_DIM, y_dim=10, approach="adam")
    images, masks = random_images(3, c_dim=1), random_masks(3)
    finals = _given_class_finals(completer, images, masks, 4)
    found = completer(images, masks, None, n_iter=4, class_search="all")
    order = np.argsort(finals, 1)
    np.testing.assert_array_equal(found.labels, order[:, 0])
    np.testing.assert_array_equal(found.runner_up, order[:, 1])
    np.testing.assert_allclose(found.final_losses["total"], finals[np.arange(3), order[:, 0]], rtol=1e-5)
    np.testing.assert_allclose(found.runner_up_losses["total"], finals[np.arange(3), order[:, 1]], rtol=1e-5)


def test_pilot_runs_every_class_briefly_then_the_top_k_in_full(conditional_dcgan):
    run = conditional_dcgan
    completer = Completer(run.generator, run.discriminator, batch_size=2, z_dim=Z_DIM, y_dim=10, approach="adam")
    images, masks = random_images(3, c_dim=1), random_masks(3)
    pilot = _given_class_finals(completer, images, masks, 2)  # the pilot is the first 2 of the same updates
    finals = _given_class_finals(completer, images, masks, 6)
    totals = []
    found = completer(images, masks, None, n_iter=6, class_search="pilot", pilot_iter=2, top_k=3,
                      on_progress=lambda done, total, loss: totals.append((done, total)))
    np.testing.assert_allclose(found.pilot_losses, pilot, rtol=1e-5)
    top3 = np.argsort(pilot, 1)[:, :3]
    for i in range(3):
        ranked = top3[i][np.argsort(finals[i, top3[i]])]  # the candidates by their final loss
        assert (found.labels[i], found.runner_up[i]) == (ranked[0], ranked[1])
    assert found.losses["total"].shape == (3, 7)
    # the cost: two batches, each 10 classes x 2 pilot iterations + 3 classes x 6 iterations
    assert totals[-1] == (2 * (10 * 2 + 3 * 6), 2 * (10 * 2 + 3 * 6))


def test_a_strong_prior_decides_the_class(conditional_dcgan):
    run = conditional_dcgan
    completer = Completer(run.generator, run.discriminator, batch_size=4, z_dim=Z_DIM, y_dim=10)
    images, masks = random_images(3, c_dim=1), random_masks(3)
    prior = np.log(np.full((3, 10), 1e-6))
    prior[[0, 1, 2], [4, 9, 4]] = 0.0
    found = completer(images, masks, None, n_iter=3, pilot_iter=1, top_k=2, class_prior=prior, prior_weight=10.0)
    np.testing.assert_array_equal(found.labels, [4, 9, 4])
    weak = completer(images, masks, None, n_iter=3, pilot_iter=1, top_k=2, class_prior=prior, prior_weight=0.0)
    np.testing.assert_array_equal(weak.labels, completer(images, masks, None, n_iter=3, pilot_iter=1).labels)


def test_classify_scores_each_class_on_its_own_completion(conditional_dcgan):
    run = conditional_dcgan
    completer = Completer(run.generator, run.discriminator, batch_size=4, z_dim=Z_DIM, y_dim=10)
    images, masks = random_images(3, c_dim=1), random_masks(3)
    seen = []

    def classify(x):  # likes class 6 only, and only in images whose known pixels are the inputs'
        seen.append(x)
        logits = np.zeros((len(x), 10))
        logits[:, 6] = 20.0 * np.all(np.abs((x - images) * masks) < 1e-6, axis=(1, 2, 3))
        return logits

    found = completer(images, masks, None, n_iter=3, pilot_iter=1, top_k=1, classify=classify, prior_weight=1.0)
    np.testing.assert_array_equal(found.labels, [6, 6, 6])
    assert len(seen) == 10 and all(x.shape == images.shape for x in seen)  # one call per class in the pilot
    top2 = completer(images, masks, None, n_iter=3, pilot_iter=1, top_k=2, classify=classify, prior_weight=1.0)
    np.testing.assert_array_equal(top2.labels, [6, 6, 6])
    assert len(seen) == 10 + 10 + 2  # and once per full run
    seen.clear()
    completer(images, masks, np.array([1, 2, 3]), n_iter=2, classify=classify, prior_weight=1.0)
    assert not seen  # a given class is not scored


def same_block_means(images, pool, seed=1):
    """Other images with the same pool x pool block means: `images` plus a zero-mean pattern in every block."""
    noise = np.random.RandomState(seed).uniform(-0.5, 0.5, images.shape)
    noise -= upsample_blocks(block_mean(noise, pool), pool, images.shape[1], images.shape[2])
    return (images + noise).astype(np.float32)


def test_lowres_class_choice_sees_only_the_block_means(conditional_dcgan):
    run, pool = conditional_dcgan, 4
    completer = Completer(run.generator, run.discriminator, batch_size=4, z_dim=Z_DIM, y_dim=10, pool=pool)
    images = 0.4 * random_images(3, c_dim=1)
    other = same_block_means(images, pool)
    masks = np.stack([make_mask("lowres", SIZE, SIZE, rng=None)] * 3)  # all ones: nothing says what is known
    weights = np.random.RandomState(2).normal(size=(SIZE * SIZE, 10))
    seen = []

    def classify(x):  # not linear in the pixels, so block means alone do not fix its output
        seen.append(np.array(x))
        return np.square(np.reshape(x, (len(x), -1))) @ weights

    prior = weighted_known_pixels_prior(classify, images, masks, pool)
    np.testing.assert_allclose(weighted_known_pixels_prior(classify, other, masks, pool), prior, atol=1e-6)
    full_resolution = weighted_known_pixels_prior(classify, images, masks)  # what an unpooled completion sees
    assert not np.allclose(weighted_known_pixels_prior(classify, other, masks), full_resolution, atol=1e-3)
    seen.clear()
    found = completer(images, masks, None, n_iter=2, pilot_iter=1, top_k=2, class_prior=prior, classify=classify)
    seen_images = list(seen)
    seen.clear()
    found_other = completer(other, masks, None, n_iter=2, pilot_iter=1, top_k=2, class_prior=prior,
                            classify=classify)
    assert len(seen) == len(seen_images) == 10 + 2  # the consistency term: every class, then the two in full
    for a, b in zip(seen_images, seen):
        np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_array_equal(found.labels, found_other.labels)


def test_one_full_run_takes_the_runner_up_from_the_pilot(conditional_dcgan):
    run = conditional_dcgan
    completer = Completer(run.generator, run.discriminator, batch_size=4, z_dim=Z_DIM, y_dim=10)
    images, masks = random_images(2, c_dim=1), random_masks(2)
    found = completer(images, masks, None, n_iter=3, pilot_iter=2, top_k=1)
    ranked = np.argsort(found.pilot_losses, 1)
    np.testing.assert_array_equal(found.labels, ranked[:, 0])
    np.testing.assert_array_equal(found.runner_up, ranked[:, 1])
    np.testing.assert_allclose(found.runner_up_losses["total"], found.pilot_losses[[0, 1], ranked[:, 1]])
    given = completer(images, masks, np.array([3, 3]), n_iter=3)
    assert (given.runner_up == -1).all() and np.isnan(given.runner_up_losses["total"]).all()
    with pytest.raises(ValueError, match="class_search"):
        completer(images, masks, None, n_iter=3, class_search="best")


# The benchmark's judges ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_the_benchmark_refuses_a_prior_classifier_that_is_one_of_its_judges(tmp_path):
    from dcgan_tf.classifier import build_classifier, save_classifier

    root = pathlib.Path(__file__).resolve().parents[1]
    for name, seed in (("judge", 0), ("other", 1)):
        save_classifier(build_classifier(filters=2, feature_dim=4, seed=seed), str(tmp_path / name))
    shutil.copytree(tmp_path / "judge", tmp_path / "copy")
    proc = subprocess.run([sys.executable, str(root / "bench" / "completion.py"), "--run", str(tmp_path / "none"),
                           "--classifier", str(tmp_path / "judge"), "--prior_classifier", str(tmp_path / "judge")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(
        f"error: the class prior's classifier {tmp_path / 'judge'} is also a judge ({tmp_path / 'judge'})")
    spec = importlib.util.spec_from_file_location("bench_completion", root / "bench" / "completion.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    judges = [str(tmp_path / "other"), str(tmp_path / "judge")]
    assert "is also a judge" in bench.chooser_judges(str(tmp_path / "copy"), judges)  # the same weights elsewhere
    assert bench.chooser_judges(str(tmp_path / "copy"), judges[:1]) is None
