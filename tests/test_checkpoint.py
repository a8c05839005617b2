"""A checkpoint round trip restores step, epoch, weights, optimiser slots and the RNG exactly."""

import numpy as np
import pytest
from run_factory import make_run

from dcgan_tf.checkpoint import TrainState, create_checkpoint, restore_latest
from dcgan_tf.errors import DcganError
from dcgan_tf.latent import class_labels
from dcgan_tf.model import models_from_config
from dcgan_tf.runs import load_run
from dcgan_tf.training import create_optimizers


def fresh(cfg, c_dim, y_dim):
    G, D = models_from_config(cfg, c_dim, y_dim)
    g_opt, d_opt = create_optimizers(cfg)
    state = TrainState.create(123, np.zeros((cfg.sample_num, cfg.z_dim), np.float32),
                              class_labels(cfg.sample_num, y_dim))
    ckpt = create_checkpoint(G, D, g_opt, d_opt, state)
    return G, D, g_opt, d_opt, state, ckpt


@pytest.mark.slow
def test_round_trip_restores_everything(tmp_path):
    cfg, paths, G, D = make_run(tmp_path, conditional=True, size=28, c_dim=1, train_steps=3)
    G2, D2, g_opt2, d_opt2, state2, ckpt2 = fresh(cfg, 1, 10)
    assert restore_latest(ckpt2, paths.checkpoint_dir).endswith("ckpt-3")
    assert int(state2.step) == 3
    for a, b in zip(G.weights + D.weights, G2.weights + D2.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert int(g_opt2.iterations) == 3 * cfg.g_steps and int(d_opt2.iterations) == 3
    slots = [v for v in g_opt2.variables if "momentum" in v.path or "velocity" in v.path]
    assert slots and any(np.abs(v.numpy()).max() > 0 for v in slots)  # Adam moments came back
    assert state2.sample_z.numpy().any()  # the fixed sample z of the run, not the fresh zeros


@pytest.mark.slow
def test_load_run_matches_and_rejects_other_models(tmp_path):
    cfg, paths, G, _ = make_run(tmp_path, size=16, train_steps=1)
    run = load_run(paths.checkpoint_dir, cfg)
    z = np.random.RandomState(0).uniform(-1, 1, (3, cfg.z_dim)).astype(np.float32)
    np.testing.assert_array_equal(run.generator(z).numpy(), G(z).numpy())
    assert run.step == 1 and run.c_dim == 3 and run.y_dim == 0
    other = cfg.__class__(**{**cfg.to_dict(), "gf_dim": 8, "train_size": float("inf")})
    *_, ckpt3 = fresh(other, 3, 0)
    with pytest.raises(DcganError, match="does not match this model"):
        restore_latest(ckpt3, paths.checkpoint_dir)


def test_missing_checkpoint_names_the_folder(tmp_path):
    with pytest.raises(DcganError, match="no trained checkpoint in .*nowhere"):
        load_run(str(tmp_path / "nowhere"))
