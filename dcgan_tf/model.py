"""The DCGAN generator and discriminator (carpedm20's architecture) and its conditional MNIST variant.

Only Keras layers and models live here: no optimisers, no I/O. Every model takes `training=` explicitly.
Generators never bake in a batch size. Outputs (images, logits) are float32 even under mixed precision.
"""

from __future__ import annotations

import keras
from keras import ops

from dcgan_tf.ops import batch_norm, conv2d, deconv2d, layer_sizes, linear, lrelu


def concat_labels(x, y):
    """Concatenates one-hot labels y [B, Y] to x: [B, D] -> [B, D + Y]; [B, H, W, C] -> [B, H, W, C + Y]."""
    y = ops.cast(y, x.dtype)
    if len(x.shape) == 2:
        return ops.concatenate([x, y], axis=-1)
    h, w = x.shape[1], x.shape[2]
    y_map = ops.broadcast_to(y[:, None, None, :], (ops.shape(x)[0], h, w, y.shape[-1]))
    return ops.concatenate([x, y_map], axis=-1)


class Generator(keras.Model):
    """z [B, z_dim] -> images [B, H, W, c_dim] in [-1, 1] (tanh)."""

    def __init__(self, output_height: int, output_width: int, c_dim: int, gf_dim: int = 64, **kwargs):
        super().__init__(**kwargs)
        self.output_height, self.output_width, self.c_dim = output_height, output_width, c_dim
        sizes = layer_sizes(output_height, output_width, 4)  # s, s2, s4, s8, s16
        self.s16 = sizes[4]
        self.project = linear(gf_dim * 8 * self.s16[0] * self.s16[1], name="g_h0_lin")
        self.bn0 = batch_norm("g_bn0")
        # One attribute per layer: tf.train.Checkpoint does not see Keras 3 layers held in Python lists.
        self.deconv1 = deconv2d(gf_dim * 4, sizes[4], sizes[3], name="g_h1")
        self.deconv2 = deconv2d(gf_dim * 2, sizes[3], sizes[2], name="g_h2")
        self.deconv3 = deconv2d(gf_dim, sizes[2], sizes[1], name="g_h3")
        self.deconv4 = deconv2d(c_dim, sizes[1], sizes[0], name="g_h4")
        self.bn1, self.bn2, self.bn3 = (batch_norm(f"g_bn{i}") for i in (1, 2, 3))
        self.gf_dim = gf_dim

    def call(self, z, training=False):
        h = self.project(z)
        h = ops.reshape(h, (-1, self.s16[0], self.s16[1], self.gf_dim * 8))  # [B, s16, s16, gf*8]
        h = ops.relu(self.bn0(h, training=training))
        for deconv, bn in ((self.deconv1, self.bn1), (self.deconv2, self.bn2), (self.deconv3, self.bn3)):
            h = ops.relu(bn(deconv(h), training=training))
        return ops.cast(ops.tanh(self.deconv4(h)), "float32")


class Discriminator(keras.Model):
    """images [B, H, W, c_dim] -> logits [B, 1]."""

    def __init__(self, df_dim: int = 64, **kwargs):
        super().__init__(**kwargs)
        self.conv0, self.conv1, self.conv2, self.conv3 = (
            conv2d(df_dim * m, name=f"d_h{i}_conv") for i, m in enumerate((1, 2, 4, 8)))
        self.bn1, self.bn2, self.bn3 = (batch_norm(f"d_bn{i}") for i in (1, 2, 3))
        self.flatten = keras.layers.Flatten()
        self.logit = linear(1, name="d_h4_lin", dtype="float32")

    def call(self, images, training=False):
        h = lrelu(self.conv0(images))
        for conv, bn in ((self.conv1, self.bn1), (self.conv2, self.bn2), (self.conv3, self.bn3)):
            h = lrelu(bn(conv(h), training=training))
        return self.logit(self.flatten(h))


class ConditionalGenerator(keras.Model):
    """(z [B, z_dim], y [B, y_dim]) -> images [B, H, W, c_dim]; carpedm20's MNIST generator with tanh."""

    def __init__(self, output_height: int, output_width: int, c_dim: int, y_dim: int = 10, gf_dim: int = 64,
                 gfc_dim: int = 1024, **kwargs):
        super().__init__(**kwargs)
        self.output_height, self.output_width, self.c_dim, self.y_dim = output_height, output_width, c_dim, y_dim
        sizes = layer_sizes(output_height, output_width, 2)  # s, s2, s4
        self.s4 = sizes[2]
        self.gf_dim = gf_dim
        self.fc0 = linear(gfc_dim, name="g_h0_lin")
        self.fc1 = linear(gf_dim * 2 * self.s4[0] * self.s4[1], name="g_h1_lin")
        self.deconv2 = deconv2d(gf_dim * 2, sizes[2], sizes[1], name="g_h2")
        self.deconv3 = deconv2d(c_dim, sizes[1], sizes[0], name="g_h3")
        self.bn0, self.bn1, self.bn2 = (batch_norm(f"g_bn{i}") for i in range(3))

    def call(self, z, y, training=False):
        h = ops.relu(self.bn0(self.fc0(concat_labels(z, y)), training=training))
        h = ops.relu(self.bn1(self.fc1(concat_labels(h, y)), training=training))
        h = ops.reshape(h, (-1, self.s4[0], self.s4[1], self.gf_dim * 2))  # [B, s4, s4, gf*2]
        h = ops.relu(self.bn2(self.deconv2(concat_labels(h, y)), training=training))
        return ops.cast(ops.tanh(self.deconv3(concat_labels(h, y))), "float32")


class ConditionalDiscriminator(keras.Model):
    """(images [B, H, W, c_dim], y [B, y_dim]) -> logits [B, 1]; carpedm20's MNIST discriminator."""

    def __init__(self, c_dim: int, y_dim: int = 10, df_dim: int = 64, dfc_dim: int = 1024, **kwargs):
        super().__init__(**kwargs)
        self.conv0 = conv2d(c_dim + y_dim, name="d_h0_conv")
        self.conv1 = conv2d(df_dim + y_dim, name="d_h1_conv")
        self.fc2 = linear(dfc_dim, name="d_h2_lin")
        self.logit = linear(1, name="d_h3_lin", dtype="float32")
        self.bn1, self.bn2 = batch_norm("d_bn1"), batch_norm("d_bn2")
        self.flatten = keras.layers.Flatten()

    def call(self, images, y, training=False):
        h = lrelu(self.conv0(concat_labels(images, y)))
        h = lrelu(self.bn1(self.conv1(concat_labels(h, y)), training=training))
        h = lrelu(self.bn2(self.fc2(concat_labels(self.flatten(h), y)), training=training))
        return self.logit(concat_labels(h, y))


def apply_generator(G, z, labels, training: bool = False):
    """G(z) or G(z, y): the one place that knows whether a model is conditional (labels [B, 0] = no)."""
    return G(z, labels, training=training) if labels.shape[-1] else G(z, training=training)


def apply_discriminator(D, images, labels, training: bool = False):
    """D(images) or D(images, y), as apply_generator. Returns logits [B, 1]."""
    return D(images, labels, training=training) if labels.shape[-1] else D(images, training=training)


def create_models(*, output_height: int, output_width: int, c_dim: int, z_dim: int, y_dim: int = 0,
                  gf_dim: int = 64, df_dim: int = 64, gfc_dim: int = 1024, dfc_dim: int = 1024,
                  dtype_policy: str | None = None):
    """Builds (generator, discriminator), conditional when y_dim > 0, with their weights created.

    Args:
      dtype_policy: e.g. "mixed_bfloat16" or "mixed_float16" for mixed precision (variables stay float32,
        outputs are float32); None keeps the global policy.

    Returns:
      (G, D): G(z, [y], training=) -> images; D(images, [y], training=) -> logits.
    """
    if dtype_policy is not None:
        previous = keras.mixed_precision.dtype_policy()
        keras.mixed_precision.set_dtype_policy(dtype_policy)
        try:
            return create_models(output_height=output_height, output_width=output_width, c_dim=c_dim, z_dim=z_dim,
                                 y_dim=y_dim, gf_dim=gf_dim, df_dim=df_dim, gfc_dim=gfc_dim, dfc_dim=dfc_dim)
        finally:
            keras.mixed_precision.set_dtype_policy(previous)
    if y_dim:
        G = ConditionalGenerator(output_height, output_width, c_dim, y_dim, gf_dim, gfc_dim, name="generator")
        D = ConditionalDiscriminator(c_dim, y_dim, df_dim, dfc_dim, name="discriminator")
        y = ops.zeros((1, y_dim))
        D(G(ops.zeros((1, z_dim)), y), y)
    else:
        G = Generator(output_height, output_width, c_dim, gf_dim, name="generator")
        D = Discriminator(df_dim, name="discriminator")
        D(G(ops.zeros((1, z_dim))))
    return G, D


def models_from_config(cfg, c_dim: int, y_dim: int, dtype_policy: str | None = None):
    """create_models with the sizes of a TrainConfig (or anything with the same fields)."""
    return create_models(output_height=cfg.output_height, output_width=cfg.output_width, c_dim=c_dim,
                         z_dim=cfg.z_dim, y_dim=y_dim, gf_dim=cfg.gf_dim, df_dim=cfg.df_dim,
                         gfc_dim=cfg.gfc_dim, dfc_dim=cfg.dfc_dim, dtype_policy=dtype_policy)


def mixed_precision_policy() -> str:
    """float16 (with loss scaling) on a GPU, bfloat16 elsewhere (CPUs with AVX512-BF16/AMX, TPUs)."""
    import tensorflow as tf

    return "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"
