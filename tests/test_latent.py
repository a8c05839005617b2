"""Latent draws: ranges per distribution, reproducible by seed; labels per class."""

import numpy as np
import pytest
import tensorflow as tf

from dcgan_tf.latent import class_labels, sample_z, z_range


@pytest.mark.parametrize("dist,low,high", [("uniform_signed", -1, 1), ("uniform_unsigned", 0, 1)])
def test_uniform_draws_stay_in_range(dist, low, high):
    z = sample_z(tf.random.Generator.from_seed(0), 2000, 5, dist).numpy()
    assert z.shape == (2000, 5) and z.dtype == np.float32
    assert z.min() >= low and z.max() <= high and z.min() < low + 0.01 and z.max() > high - 0.01
    assert z_range(dist) == (low, high)


def test_normal_draws_and_seeds():
    z = sample_z(tf.random.Generator.from_seed(3), 4000, 4, "normal01").numpy()
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05
    again = sample_z(tf.random.Generator.from_seed(3), 4000, 4, "normal01").numpy()
    np.testing.assert_array_equal(z, again)
    with pytest.raises(ValueError):
        sample_z(tf.random.Generator.from_seed(0), 1, 1, "cauchy")


def test_class_labels():
    y = class_labels(12, 10)
    assert y.shape == (12, 10) and y.sum() == 12 and y[11].argmax() == 1
    assert (class_labels(3, 10, label=7).argmax(1) == 7).all()
    assert class_labels(4, 0).shape == (4, 0)
