"""Layer factories: output sizes of the stride-2 (transposed) convolutions and the DCGAN initialisation."""

import numpy as np
import pytest

from dcgan_tf.ops import batch_norm, conv2d, conv_out_size_same, deconv2d, linear


@pytest.mark.parametrize("size,want", [(64, 32), (28, 14), (7, 4), (1, 1)])
def test_conv_halves_rounding_up(size, want):
    assert conv_out_size_same(size) == want
    assert conv2d(2)(np.zeros((1, size, size, 3), np.float32)).shape == (1, want, want, 2)


@pytest.mark.parametrize("src,dst", [((4, 4), (7, 7)), ((4, 4), (8, 8)), ((2, 3), (4, 5))])
def test_deconv_reaches_odd_and_even_sizes(src, dst):
    out = deconv2d(3, src, dst)(np.zeros((2, *src, 4), np.float32))
    assert out.shape == (2, *dst, 3)


def test_deconv_rejects_impossible_sizes():
    with pytest.raises(ValueError, match="cannot go from"):
        deconv2d(3, (4, 4), (10, 10))


def test_linear_and_batch_norm_settings():
    layer = linear(50)
    layer.build((None, 400))
    w = layer.kernel.numpy()
    assert abs(w.std() - 0.02) < 0.003 and np.all(layer.bias.numpy() == 0)
    bn = batch_norm()
    assert (bn.momentum, bn.epsilon, bn.scale) == (0.9, 1e-5, True)
