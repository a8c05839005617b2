"""Tests for dcgan_tf.sampling: the Sampler's batching, --label checks and random grids."""

import numpy as np
import pytest
from PIL import Image
from run_factory import make_run

from dcgan_tf.errors import FlagError
from dcgan_tf.runs import load_run
from dcgan_tf.sampling import Sampler, check_label, sample_batches, save_random_grid


def test_label_is_checked_against_the_model():
    check_label(None, 0)
    check_label(9, 10)
    for label, y_dim in ((0, 0), (10, 10), (-1, 10)):
        with pytest.raises(FlagError) as e:
            check_label(label, y_dim)
        assert e.value.flag == "label"


def test_batching_does_not_change_the_images_and_grids_have_one_column_per_class(tmp_path):
    _, paths, _, _ = make_run(tmp_path, conditional=True, size=8, c_dim=1)
    run = load_run(paths.checkpoint_dir)
    z = np.random.default_rng(0).uniform(-1, 1, (7, run.config.z_dim)).astype(np.float32)
    whole = Sampler.from_run(run, batch_size=7)(z)
    np.testing.assert_allclose(Sampler.from_run(run, batch_size=3)(z), whole, atol=1e-5)
    assert whole.shape == (7, 8, 8, 1)
    sampler = Sampler.from_run(run, batch_size=4)
    starts = [(start, len(images), ids) for start, images, ids in sample_batches(sampler, 6, seed=1)]
    assert starts == [(0, 4, [0, 1, 2, 3]), (4, 2, [4, 5])]  # classes take turns
    path = save_random_grid(sampler, str(tmp_path / "grid.png"), n=20, seed=1)
    with Image.open(path) as grid:
        assert (grid.size, grid.mode) == ((10 * 8, 2 * 8), "L")  # 10 columns (one per class), 2 rows of 8x8
