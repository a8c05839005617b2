"""Shapes, initialisation and batch-size freedom of the DCGAN and conditional networks."""

import numpy as np
import pytest

from dcgan_tf.model import ConditionalGenerator, Generator, apply_discriminator, apply_generator, create_models
from dcgan_tf.ops import layer_sizes


@pytest.mark.parametrize("height,width", [(28, 28), (48, 48), (64, 64), (96, 96), (108, 108), (128, 128), (20, 36)])
def test_unconditional_shapes_for_many_sizes(height, width):
    G, D = create_models(output_height=height, output_width=width, c_dim=3, z_dim=8, gf_dim=2, df_dim=2)
    images = G(np.zeros((3, 8), np.float32), training=False)
    assert images.shape == (3, height, width, 3)
    assert D(images, training=False).shape == (3, 1)


@pytest.mark.parametrize("c_dim", [1, 3])
def test_conditional_shapes_and_channels(c_dim):
    G, D = create_models(output_height=28, output_width=28, c_dim=c_dim, z_dim=8, y_dim=10, gf_dim=4, df_dim=4,
                         gfc_dim=16, dfc_dim=16)
    assert isinstance(G, ConditionalGenerator)
    y = np.eye(10, dtype=np.float32)[:5]
    images = G(np.zeros((5, 8), np.float32), y, training=False)
    assert images.shape == (5, 28, 28, c_dim)
    assert D(images, y, training=False).shape == (5, 1)


def test_generator_has_no_fixed_batch_size_and_stays_in_range():
    G, _ = create_models(output_height=16, output_width=16, c_dim=1, z_dim=8, gf_dim=4, df_dim=4)
    assert isinstance(G, Generator)
    for batch in (1, 7, 33):
        z = np.random.RandomState(batch).uniform(-1, 1, (batch, 8)).astype(np.float32)
        images = G(z, training=False).numpy()
        assert images.shape == (batch, 16, 16, 1)
        assert images.min() >= -1 and images.max() <= 1 and images.dtype == np.float32


def test_apply_helpers_dispatch_on_labels():
    G, D = create_models(output_height=8, output_width=8, c_dim=3, z_dim=4, gf_dim=2, df_dim=2)
    z = np.ones((2, 4), np.float32)
    images = apply_generator(G, z, np.zeros((2, 0), np.float32))
    np.testing.assert_allclose(images, G(z, training=False))
    assert apply_discriminator(D, images, np.zeros((2, 0), np.float32)).shape == (2, 1)


def test_layer_sizes_halve_rounding_up():
    assert layer_sizes(28, 28, 4) == [(28, 28), (14, 14), (7, 7), (4, 4), (2, 2)]
    assert layer_sizes(108, 20, 2) == [(108, 20), (54, 10), (27, 5)]


def test_weights_follow_dcgan_initialisation():
    G, D = create_models(output_height=64, output_width=64, c_dim=3, z_dim=100, gf_dim=16, df_dim=16)
    kernel = G.project.kernel.numpy()
    assert abs(kernel.std() - 0.02) < 0.002 and abs(kernel.mean()) < 0.002
    assert np.all(G.project.bias.numpy() == 0)
    assert G.bn1.momentum == 0.9 and G.bn1.epsilon == 1e-5
    # Every BN layer is tracked (Keras 3 does not checkpoint layers kept in Python lists).
    names = {v.path for v in G.weights}
    assert sum("moving_variance" in n for n in names) == 4
