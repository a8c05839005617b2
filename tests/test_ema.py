"""The generator EMA (--g_ema): its arithmetic, and that it is saved, restored and used for every output."""

import numpy as np
import pytest
import tensorflow as tf
from run_factory import make_run, tiny_config

from dcgan_tf.ema import GeneratorEma, ema_decay
from dcgan_tf.errors import FlagError
from dcgan_tf.model import models_from_config
from dcgan_tf.runs import load_run
from dcgan_tf.training import create_training


def tiny_pair(tmp_path):
    cfg = tiny_config(tmp_path, size=8)
    tf.keras.utils.set_random_seed(0)
    G = models_from_config(cfg, 3, 0)[0]
    tf.keras.utils.set_random_seed(1)
    return G, models_from_config(cfg, 3, 0)[0]


def test_decay_warms_up_then_stays_at_the_flag():
    assert float(ema_decay(0.999, 0)) == pytest.approx(0.1)
    assert float(ema_decay(0.999, 10)) == pytest.approx(11 / 20)
    assert float(ema_decay(0.999, 100000)) == pytest.approx(0.999)
    assert float(ema_decay(0.5, 10)) == pytest.approx(0.5)


def test_ema_starts_as_a_copy_and_averages_every_weight(tmp_path):
    G, average = tiny_pair(tmp_path)
    ema = GeneratorEma(G, average, 0.9)
    for a, s in zip(average.weights, G.weights):
        np.testing.assert_array_equal(a.numpy(), s.numpy())
    expected = [w.numpy().astype(np.float64) for w in G.weights]
    update = tf.function(ema.update)
    rs = np.random.RandomState(0)
    for n in range(25):  # G moves every step; the average follows with the warmed-up decay
        for w in G.weights:
            w.assign(w.numpy() + rs.normal(size=w.shape).astype(np.float32))
        d = min(0.9, (1 + n) / (10 + n))
        expected = [d * e + (1 - d) * w.numpy() for e, w in zip(expected, G.weights)]
        update()
    assert int(ema.updates) == 25
    assert any("moving_mean" in w.path for w in average.weights)  # BN statistics are averaged too
    for a, e in zip(average.weights, expected):
        np.testing.assert_allclose(a.numpy(), e, rtol=1e-4, atol=1e-5)
    assert not np.allclose(average.weights[0].numpy(), G.weights[0].numpy())


def test_ema_refuses_a_different_architecture(tmp_path):
    G, _ = tiny_pair(tmp_path)
    other = models_from_config(tiny_config(tmp_path, size=8, gf_dim=6), 3, 0)[0]
    with pytest.raises(ValueError, match="same architecture"):
        GeneratorEma(G, other, 0.99)


def weights(model):
    return [w.numpy() for w in model.weights]


@pytest.mark.slow
def test_checkpoint_round_trip_includes_the_ema_and_load_run_uses_it(tmp_path):
    cfg, paths, G, _ = make_run(tmp_path, train_steps=3, g_ema=0.9)
    # Training state comes back whole: the raw G, the average and its update count.
    training = create_training(cfg, 3, 0, paths)
    assert training.ema is not None and int(training.ema.updates) == 3
    for a, b in zip(weights(training.G), weights(G)):
        np.testing.assert_array_equal(a, b)
    averaged = weights(training.ema.model)
    assert any(not np.allclose(a, b) for a, b in zip(averaged, weights(G)))
    # Every use of the run (generation, export, evaluation, completion) loads the average.
    run = load_run(paths.checkpoint_dir, cfg)
    for a, b in zip(weights(run.generator), averaged):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(weights(load_run(paths.checkpoint_dir, cfg, use_ema=False).generator), weights(G)):
        np.testing.assert_array_equal(a, b)  # the trained G on request (bench/recipes.py compares both)


@pytest.mark.slow
def test_a_run_without_ema_has_no_average_and_loads_g(tmp_path):
    cfg, paths, G, _ = make_run(tmp_path, train_steps=1)
    assert create_training(cfg, 3, 0, paths).ema is None
    for a, b in zip(weights(load_run(paths.checkpoint_dir, cfg).generator), weights(G)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_switching_ema_on_for_a_saved_run_names_the_flag(tmp_path):
    _, paths, _, _ = make_run(tmp_path, train_steps=1)
    with pytest.raises(FlagError, match="--g_ema"):
        load_run(paths.checkpoint_dir, tiny_config(tmp_path, g_ema=0.99))
