"""Layer factories with the DCGAN initialisation: N(0, 0.02) weights, zero biases, BN momentum 0.9, eps 1e-5.

These mirror carpedm20's `ops.py` (conv2d, deconv2d, linear, batch_norm, lrelu) as Keras 3 layers.
"""

from __future__ import annotations

import math

import keras

KERNEL_SIZE = 5
STRIDE = 2


def _init():
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02)


def conv2d(filters: int, name: str | None = None) -> keras.layers.Conv2D:
    """5x5 stride-2 convolution; 'same' padding halves the size, rounding up."""
    return keras.layers.Conv2D(filters, KERNEL_SIZE, strides=STRIDE, padding="same",
                               kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
                               bias_initializer="zeros", name=name)


def deconv2d(filters: int, in_size: tuple[int, int], out_size: tuple[int, int],
             name: str | None = None) -> keras.layers.Conv2DTranspose:
    """5x5 stride-2 transposed convolution from `in_size` to `out_size` (out = 2 * in or 2 * in - 1)."""
    padding = tuple(o - (2 * i - 1) for i, o in zip(in_size, out_size))
    if any(p not in (0, 1) for p in padding):
        raise ValueError(f"deconv2d cannot go from {in_size} to {out_size} with stride 2")
    return keras.layers.Conv2DTranspose(filters, KERNEL_SIZE, strides=STRIDE, padding="same",
                                        output_padding=padding, kernel_initializer=_init(),
                                        bias_initializer="zeros", name=name)


def linear(units: int, name: str | None = None, dtype=None) -> keras.layers.Dense:
    """Fully connected layer with N(0, 0.02) weights."""
    return keras.layers.Dense(units, kernel_initializer=_init(), bias_initializer="zeros", name=name,
                              dtype=dtype)


def batch_norm(name: str | None = None) -> keras.layers.BatchNormalization:
    """Batch norm as TF1's `batch_norm(decay=0.9, epsilon=1e-5, scale=True)`."""
    return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, scale=True, name=name)


def lrelu(x, alpha: float = 0.2):
    return keras.ops.leaky_relu(x, negative_slope=alpha)


def conv_out_size_same(size: int, stride: int = STRIDE) -> int:
    """Output size of a 'same' convolution: ceil(size / stride)."""
    return int(math.ceil(float(size) / float(stride)))


def layer_sizes(height: int, width: int, levels: int) -> list[tuple[int, int]]:
    """[(h, w), (h/2, w/2), ...] by ceil-halving, `levels + 1` entries, largest first."""
    sizes = [(height, width)]
    for _ in range(levels):
        h, w = sizes[-1]
        sizes.append((conv_out_size_same(h), conv_out_size_same(w)))
    return sizes
