"""Layer factories with the DCGAN initialisation: N(0, 0.02) weights, zero biases, BN momentum 0.9, eps 1e-5.

These mirror carpedm20's `ops.py` (conv2d, deconv2d, linear, batch_norm, lrelu) as Keras 3 layers, plus the
discriminator's options: its normalisation (`normalization`: batch, layer or none) and spectral normalisation
(`SNConv2D`, `SNDense`; Miyato et al. 2018). Batch norm trains with TensorFlow's fused kernel (`FusedBatchNorm`).
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import ops

KERNEL_SIZE = 5
STRIDE = 2
D_NORMS = ("batch", "layer", "none")  # the discriminator's normalisations (`normalization`)


def _init():
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02)


class _SpectralNorm:
    """Mixin for Conv2D / Dense: the layer applies W / sigma(W), sigma by one power iteration per training call.

    The matrix is the kernel reshaped to [-1, out]; `u` [1, out] is the persistent power-iteration vector
    (non-trainable, N(0, 1) initialised, saved by checkpoints), updated only when training=True. u and v are
    constants for the gradient, W / sigma is not. Unlike keras.layers.SpectralNormalization, the kernel variable
    keeps the unnormalised W (the optimiser updates W, as in the paper).
    """

    def add_weight(self, *args, **kwargs):
        if kwargs.get("name") == "kernel":
            kwargs["autocast"] = False  # read W in float32 for the power iteration, even under mixed precision
        return super().add_weight(*args, **kwargs)

    def build(self, input_shape):
        super().build(input_shape)
        self.u = self.add_weight(name="sn_u", shape=(1, self.kernel.shape[-1]), dtype="float32",
                                 initializer=keras.initializers.RandomNormal(mean=0.0, stddev=1.0),
                                 trainable=False, autocast=False)

    def normalized_kernel(self, training=False):
        """(W / sigma in the compute dtype, sigma in float32); stores the new u when training."""
        kernel = ops.cast(self.kernel, "float32")
        w = ops.reshape(kernel, (-1, kernel.shape[-1]))  # [K, out]
        v = ops.stop_gradient(_l2_normalize(ops.matmul(ops.convert_to_tensor(self.u), ops.transpose(w))))  # [1, K]
        u = ops.stop_gradient(_l2_normalize(ops.matmul(v, w)))  # [1, out]
        sigma = ops.sum(ops.matmul(v, w) * u)
        if training:
            self.u.assign(u)
        return ops.cast(kernel / sigma, self.compute_dtype), sigma


def _l2_normalize(x, epsilon: float = 1e-12):
    return x * ops.rsqrt(ops.sum(ops.square(x)) + epsilon)


class SNConv2D(_SpectralNorm, keras.layers.Conv2D):
    """A spectrally normalised Conv2D (see _SpectralNorm)."""

    def call(self, inputs, training=False):
        kernel, _ = self.normalized_kernel(training)
        outputs = self.convolution_op(inputs, kernel)
        return self.activation(outputs + self.bias if self.use_bias else outputs)


class SNDense(_SpectralNorm, keras.layers.Dense):
    """A spectrally normalised Dense (see _SpectralNorm)."""

    def call(self, inputs, training=False):
        kernel, _ = self.normalized_kernel(training)
        outputs = ops.matmul(inputs, kernel)
        return self.activation(outputs + self.bias if self.use_bias else outputs)


def conv2d(filters: int, name: str | None = None, kernel_size: int = KERNEL_SIZE, strides: int = STRIDE,
           padding: str = "same", spectral_norm: bool = False) -> keras.layers.Conv2D:
    """5x5 stride-2 convolution by default; 'same' padding halves the size, rounding up."""
    layer = SNConv2D if spectral_norm else keras.layers.Conv2D
    return layer(filters, kernel_size, strides=strides, padding=padding,
                 kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02), bias_initializer="zeros",
                 name=name)


def deconv2d(filters: int, in_size: tuple[int, int], out_size: tuple[int, int], name: str | None = None,
             kernel_size: int = KERNEL_SIZE) -> keras.layers.Conv2DTranspose:
    """Stride-2 transposed convolution from `in_size` to `out_size`.

    Odd kernels (5x5 by default) reach out = 2 * in or 2 * in - 1; even kernels only out = 2 * in.
    """
    if kernel_size % 2:
        padding = tuple(o - (2 * i - 1) for i, o in zip(in_size, out_size))
        ok = all(p in (0, 1) for p in padding)
    else:  # Keras' output_padding cannot express 2 * in for even kernels; its default 'same' output is 2 * in
        padding, ok = None, all(o == 2 * i for i, o in zip(in_size, out_size))
    if not ok:
        raise ValueError(f"deconv2d cannot go from {in_size} to {out_size} with stride 2 and kernel {kernel_size}")
    return keras.layers.Conv2DTranspose(filters, kernel_size, strides=STRIDE, padding="same",
                                        output_padding=padding, kernel_initializer=_init(),
                                        bias_initializer="zeros", name=name)


def linear(units: int, name: str | None = None, dtype=None, spectral_norm: bool = False) -> keras.layers.Dense:
    """Fully connected layer with N(0, 0.02) weights and no activation."""
    layer = SNDense if spectral_norm else keras.layers.Dense
    return layer(units, kernel_initializer=_init(), bias_initializer="zeros", name=name, dtype=dtype)


class FusedBatchNorm(keras.layers.BatchNormalization):
    """keras.layers.BatchNormalization whose training pass is one fused TensorFlow op (FusedBatchNormV3).

    Keras 3 normalises with separate mean / variance / scale ops, each a pass over the activations, and upcasts
    bfloat16 to float32 first; the fused op (oneDNN on CPU, cuDNN on GPU) does it in one pass and has a fused
    gradient. Same variables, same arithmetic: batch mean and biased variance normalise the batch, and the
    moving averages are updated exactly as Keras does. [B, C] inputs are viewed as [B, 1, 1, C]. Inference,
    synchronized (multi-replica) statistics, masks and renorm use the Keras path unchanged.
    """

    def call(self, inputs, training=None, mask=None):
        rank = len(inputs.shape)
        fused = (training is True and self.trainable and mask is None and not self.synchronized and not self.renorm
                 and self.scale and self.center and rank in (2, 4) and self.axis in (-1, rank - 1))
        if not fused:
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        x = inputs if rank == 4 else tf.reshape(inputs, (-1, 1, 1, channels))
        if x.dtype not in (tf.float32, tf.bfloat16, tf.float16):
            x = tf.cast(x, tf.float32)
        y, mean, variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
            x=x, scale=tf.cast(self.gamma, tf.float32), offset=tf.cast(self.beta, tf.float32),
            mean=tf.constant([], tf.float32), variance=tf.constant([], tf.float32), epsilon=self.epsilon,
            exponential_avg_factor=1.0, data_format="NHWC", is_training=True)
        # The op returns the Bessel-corrected variance n / (n - 1) * var; Keras averages the biased one.
        n = tf.cast(tf.size(x, out_type=tf.int64) // channels, tf.float32)
        variance = variance * tf.maximum(n - 1.0, 0.0) / n
        momentum = self.momentum
        self.moving_mean.assign(self.moving_mean * momentum + mean * (1.0 - momentum))
        self.moving_variance.assign(self.moving_variance * momentum + variance * (1.0 - momentum))
        if rank == 2:
            y = tf.reshape(y, tf.shape(inputs))
        return tf.cast(y, self.compute_dtype)


def batch_norm(name: str | None = None) -> keras.layers.BatchNormalization:
    """Batch norm as TF1's `batch_norm(decay=0.9, epsilon=1e-5, scale=True)`, trained with the fused op."""
    return FusedBatchNorm(momentum=0.9, epsilon=1e-5, scale=True, name=name)


def normalization(kind: str, name: str | None = None, axis=-1) -> keras.layers.Layer:
    """A discriminator's normalisation layer: "batch" (batch_norm), "layer" or "none" (identity).

    Args:
      kind: one of D_NORMS. "layer" normalises all of a sample's features, so D's output for a sample does not
        depend on the rest of the batch (which WGAN-GP's per-sample gradient penalty needs).
      axis: the features "layer" normalises: (1, 2, 3) for conv maps [B, H, W, C], -1 for dense [B, D].
    """
    if kind == "batch":
        return batch_norm(name)
    if kind == "layer":
        return keras.layers.LayerNormalization(axis=axis, epsilon=1e-5, name=name)
    if kind == "none":
        return keras.layers.Identity(name=name)
    raise ValueError(f"unknown d_norm {kind!r}: choose one of {', '.join(D_NORMS)}")


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
