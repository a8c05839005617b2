"""Loading a trained run: FLAGS.json facts, weights, and the errors for missing or mismatched runs."""

import dataclasses

import numpy as np
import pytest
from run_factory import make_run

from dcgan_tf.errors import DcganError, FlagError
from dcgan_tf.runs import load_run, read_run_flags


@pytest.mark.slow
def test_load_run_reports_the_saved_settings(tmp_path):
    cfg, paths, G, _ = make_run(tmp_path, conditional=True, size=28, c_dim=1, train_steps=2)
    run = load_run(paths.checkpoint_dir)
    assert (run.c_dim, run.y_dim, run.step) == (1, 10, 2)
    assert run.config.z_dim == cfg.z_dim and run.checkpoint_path.endswith("ckpt-2")
    z, y = np.zeros((2, cfg.z_dim), np.float32), np.eye(10, dtype=np.float32)[:2]
    np.testing.assert_array_equal(run.generator(z, y).numpy(), G(z, y).numpy())


def test_mismatched_flag_and_missing_run(tmp_path):
    cfg, paths, _, _ = make_run(tmp_path)
    with pytest.raises(FlagError, match="--z_dist"):
        load_run(paths.checkpoint_dir, dataclasses.replace(cfg, z_dist="normal01"))
    with pytest.raises(DcganError, match="no trained checkpoint"):
        read_run_flags(str(tmp_path / "empty"))
