"""The generators and discriminators, chosen by `arch`:

- "dcgan": carpedm20's DCGAN (`Generator`, `Discriminator`) and its conditional MNIST variant
  (`ConditionalGenerator`, `ConditionalDiscriminator`) when y_dim > 0.
- "mlp": cs231n's vanilla GAN (`MlpGenerator`, `MlpDiscriminator`): two hidden Dense layers each, any image size.
- "infogan": cs231n's InfoGAN-style MNIST DCGAN (`InfoGanGenerator`, `InfoGanDiscriminator`): two Dense layers
  and two 4x4 transposed convolutions in G; two 5x5 'valid' convolutions with max pooling and two Dense in D.
  Sizes divisible by 4 and at least 16.

mlp and infogan models are conditional when called with one-hot labels y. The discriminator options are its
normalisation (`d_norm`: batch, layer, none; dcgan only, as the others have none) and spectral normalisation of
every Conv2D/Dense (`spectral_norm`, see ops.SNConv2D).

Only Keras layers and models live here: no optimisers, no I/O. Every model takes `training=` explicitly.
Generators never bake in a batch size. Outputs (images, logits) are float32 even under mixed precision.
Every layer is its own attribute: tf.train.Checkpoint does not see Keras 3 layers held in Python lists.
"""

from __future__ import annotations

import keras
from keras import ops

from dcgan_tf.config import ARCHS
from dcgan_tf.ops import D_NORMS, batch_norm, conv2d, deconv2d, layer_sizes, linear, lrelu, normalization

CONV_AXES = (1, 2, 3)  # all of a [B, H, W, C] sample's features, for d_norm "layer"
CS231N_SLOPE = 0.01  # the cs231n models' leaky ReLU slope


def concat_labels(x, y):
    """Concatenates one-hot labels y [B, Y] to x: [B, D] -> [B, D + Y]; [B, H, W, C] -> [B, H, W, C + Y].

    y None (an unconditional model) returns x unchanged.
    """
    if y is None:
        return x
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

    def __init__(self, df_dim: int = 64, d_norm: str = "batch", spectral_norm: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.conv0, self.conv1, self.conv2, self.conv3 = (
            conv2d(df_dim * m, name=f"d_h{i}_conv", spectral_norm=spectral_norm) for i, m in enumerate((1, 2, 4, 8)))
        # bn* whatever d_norm is, so batch norm's variables keep their checkpoint paths.
        self.bn1, self.bn2, self.bn3 = (normalization(d_norm, f"d_bn{i}", CONV_AXES) for i in (1, 2, 3))
        self.flatten = keras.layers.Flatten()
        self.logit = linear(1, name="d_h4_lin", dtype="float32", spectral_norm=spectral_norm)

    def call(self, images, training=False):
        h = lrelu(self.conv0(images, training=training))
        for conv, bn in ((self.conv1, self.bn1), (self.conv2, self.bn2), (self.conv3, self.bn3)):
            h = lrelu(bn(conv(h, training=training), training=training))
        return self.logit(self.flatten(h), training=training)


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

    def __init__(self, c_dim: int, y_dim: int = 10, df_dim: int = 64, dfc_dim: int = 1024, d_norm: str = "batch",
                 spectral_norm: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.conv0 = conv2d(c_dim + y_dim, name="d_h0_conv", spectral_norm=spectral_norm)
        self.conv1 = conv2d(df_dim + y_dim, name="d_h1_conv", spectral_norm=spectral_norm)
        self.fc2 = linear(dfc_dim, name="d_h2_lin", spectral_norm=spectral_norm)
        self.logit = linear(1, name="d_h3_lin", dtype="float32", spectral_norm=spectral_norm)
        self.bn1, self.bn2 = normalization(d_norm, "d_bn1", CONV_AXES), normalization(d_norm, "d_bn2", -1)
        self.flatten = keras.layers.Flatten()

    def call(self, images, y, training=False):
        h = lrelu(self.conv0(concat_labels(images, y), training=training))
        h = lrelu(self.bn1(self.conv1(concat_labels(h, y), training=training), training=training))
        h = lrelu(self.bn2(self.fc2(concat_labels(self.flatten(h), y), training=training), training=training))
        return self.logit(concat_labels(h, y), training=training)


class MlpGenerator(keras.Model):
    """(z [B, z_dim][, y [B, y_dim]]) -> images [B, H, W, c_dim]: cs231n's vanilla GAN generator.

    Dense(units) ReLU, Dense(units) ReLU, Dense(H * W * c_dim) tanh; y is concatenated to z.
    """

    def __init__(self, output_height: int, output_width: int, c_dim: int, units: int = 1024, **kwargs):
        super().__init__(**kwargs)
        self.output_height, self.output_width, self.c_dim = output_height, output_width, c_dim
        self.fc0 = linear(units, name="g_h0_lin")
        self.fc1 = linear(units, name="g_h1_lin")
        self.fc2 = linear(output_height * output_width * c_dim, name="g_h2_lin")

    def call(self, z, y=None, training=False):
        h = ops.relu(self.fc0(concat_labels(z, y)))
        h = ops.relu(self.fc1(h))
        images = ops.reshape(ops.tanh(self.fc2(h)), (-1, self.output_height, self.output_width, self.c_dim))
        return ops.cast(images, "float32")  # [B, H, W, c_dim]


class MlpDiscriminator(keras.Model):
    """(images [B, H, W, c_dim][, y [B, y_dim]]) -> logits [B, 1]: cs231n's vanilla GAN discriminator.

    Flatten, Dense(units) LeakyReLU(0.01), Dense(units) LeakyReLU(0.01), Dense(1); y is concatenated to the
    flattened image.
    """

    def __init__(self, units: int = 256, spectral_norm: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.flatten = keras.layers.Flatten()
        self.fc0 = linear(units, name="d_h0_lin", spectral_norm=spectral_norm)
        self.fc1 = linear(units, name="d_h1_lin", spectral_norm=spectral_norm)
        self.logit = linear(1, name="d_h2_lin", dtype="float32", spectral_norm=spectral_norm)

    def call(self, images, y=None, training=False):
        h = lrelu(self.fc0(concat_labels(self.flatten(images), y), training=training), CS231N_SLOPE)
        h = lrelu(self.fc1(h, training=training), CS231N_SLOPE)
        return self.logit(h, training=training)


def check_infogan_size(height: int, width: int) -> None:
    """ValueError unless height and width suit arch "infogan": divisible by 4 and at least 16."""
    if height % 4 or width % 4 or min(height, width) < 16:
        raise ValueError(f"--arch infogan needs --output_height and --output_width divisible by 4 (G upsamples "
                         f"twice by 2) and at least 16 (D's 5x5 'valid' convolutions and 2x2 pools); got "
                         f"{height}x{width}: choose e.g. 28 or 32, or another --arch")


class InfoGanGenerator(keras.Model):
    """(z [B, z_dim][, y [B, y_dim]]) -> images [B, H, W, c_dim]: cs231n's InfoGAN-style MNIST generator.

    Dense(gfc_dim), Dense(H/4 * W/4 * gf_dim * 2), each ReLU then BN; then 4x4 stride-2 transposed convolutions
    to gf_dim (ReLU, BN) and c_dim (tanh). The defaults give cs231n's 1024, 7 * 7 * 128 and 64 at 28x28. y is
    concatenated to the input of both Dense layers.
    """

    def __init__(self, output_height: int, output_width: int, c_dim: int, gf_dim: int = 64, gfc_dim: int = 1024,
                 **kwargs):
        super().__init__(**kwargs)
        check_infogan_size(output_height, output_width)
        self.output_height, self.output_width, self.c_dim, self.gf_dim = output_height, output_width, c_dim, gf_dim
        sizes = layer_sizes(output_height, output_width, 2)  # s, s2, s4
        self.s4 = sizes[2]
        self.fc0 = linear(gfc_dim, name="g_h0_lin")
        self.fc1 = linear(gf_dim * 2 * self.s4[0] * self.s4[1], name="g_h1_lin")
        self.deconv2 = deconv2d(gf_dim, sizes[2], sizes[1], name="g_h2", kernel_size=4)
        self.deconv3 = deconv2d(c_dim, sizes[1], sizes[0], name="g_h3", kernel_size=4)
        self.bn0, self.bn1, self.bn2 = (batch_norm(f"g_bn{i}") for i in range(3))

    def call(self, z, y=None, training=False):
        h = self.bn0(ops.relu(self.fc0(concat_labels(z, y))), training=training)
        h = self.bn1(ops.relu(self.fc1(concat_labels(h, y))), training=training)
        h = ops.reshape(h, (-1, self.s4[0], self.s4[1], self.gf_dim * 2))  # [B, s4, s4, gf*2]
        h = self.bn2(ops.relu(self.deconv2(h)), training=training)
        return ops.cast(ops.tanh(self.deconv3(h)), "float32")


class InfoGanDiscriminator(keras.Model):
    """(images [B, H, W, c_dim][, y [B, y_dim]]) -> logits [B, 1]: cs231n's InfoGAN-style MNIST discriminator.

    5x5 'valid' convolutions to df_dim / 2 and df_dim, each LeakyReLU(0.01) and 2x2 max pooling (28x28 -> 4x4),
    then Dense(dfc_dim) LeakyReLU(0.01) and Dense(1). The defaults give cs231n's 32, 64 and 4 * 4 * 64 = 1024.
    y is concatenated as constant channels to the image and to the inputs of both Dense layers.
    """

    def __init__(self, df_dim: int = 64, dfc_dim: int = 1024, spectral_norm: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.conv0 = conv2d(max(df_dim // 2, 1), name="d_h0_conv", strides=1, padding="valid",
                            spectral_norm=spectral_norm)
        # float32 pooling: XLA on CPU has no bfloat16 MaxPoolGradGrad, which WGAN-GP's double backprop needs.
        self.pool0 = keras.layers.MaxPooling2D(2, strides=2, name="d_h0_pool", dtype="float32")
        self.conv1 = conv2d(df_dim, name="d_h1_conv", strides=1, padding="valid", spectral_norm=spectral_norm)
        self.pool1 = keras.layers.MaxPooling2D(2, strides=2, name="d_h1_pool", dtype="float32")
        self.flatten = keras.layers.Flatten()
        self.fc2 = linear(dfc_dim, name="d_h2_lin", spectral_norm=spectral_norm)
        self.logit = linear(1, name="d_h3_lin", dtype="float32", spectral_norm=spectral_norm)

    def call(self, images, y=None, training=False):
        h = self.pool0(lrelu(self.conv0(concat_labels(images, y), training=training), CS231N_SLOPE))
        h = self.pool1(lrelu(self.conv1(h, training=training), CS231N_SLOPE))  # [B, 4, 4, df] at 28x28
        h = lrelu(self.fc2(concat_labels(self.flatten(h), y), training=training), CS231N_SLOPE)
        return self.logit(concat_labels(h, y), training=training)


def apply_generator(G, z, labels, *, training: bool):
    """G(z) or G(z, y): the one place that knows whether a model is conditional (labels [B, 0] = no)."""
    return G(z, labels, training=training) if labels.shape[-1] else G(z, training=training)


def apply_discriminator(D, images, labels, *, training: bool):
    """D(images) or D(images, y), as apply_generator. Returns logits [B, 1]."""
    return D(images, labels, training=training) if labels.shape[-1] else D(images, training=training)


def create_models(*, output_height: int, output_width: int, c_dim: int, z_dim: int, y_dim: int = 0,
                  gf_dim: int = 64, df_dim: int = 64, gfc_dim: int = 1024, dfc_dim: int = 1024,
                  arch: str = "dcgan", d_norm: str = "batch", spectral_norm: bool = False,
                  dtype_policy: str | None = None):
    """Builds (generator, discriminator), conditional when y_dim > 0, with their weights created.

    Args:
      arch: "dcgan", "mlp" or "infogan" (see the module docstring). mlp uses gfc_dim as G's hidden width and
        dfc_dim / 4 as D's (1024 and 256 by default); infogan uses gf_dim, gfc_dim, df_dim and dfc_dim.
      d_norm: D's normalisation layers, "batch", "layer" or "none"; only dcgan's D has any.
      spectral_norm: spectrally normalise every Conv2D and Dense of D, the logit layer included.
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
                                 y_dim=y_dim, gf_dim=gf_dim, df_dim=df_dim, gfc_dim=gfc_dim, dfc_dim=dfc_dim,
                                 arch=arch, d_norm=d_norm, spectral_norm=spectral_norm)
        finally:
            keras.mixed_precision.set_dtype_policy(previous)
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}: choose one of {', '.join(ARCHS)}")
    if d_norm not in D_NORMS:
        raise ValueError(f"unknown d_norm {d_norm!r}: choose one of {', '.join(D_NORMS)}")
    if arch == "mlp":
        G = MlpGenerator(output_height, output_width, c_dim, gfc_dim, name="generator")
        D = MlpDiscriminator(max(dfc_dim // 4, 1), spectral_norm, name="discriminator")
    elif arch == "infogan":
        G = InfoGanGenerator(output_height, output_width, c_dim, gf_dim, gfc_dim, name="generator")
        D = InfoGanDiscriminator(df_dim, dfc_dim, spectral_norm, name="discriminator")
    elif y_dim:
        G = ConditionalGenerator(output_height, output_width, c_dim, y_dim, gf_dim, gfc_dim, name="generator")
        D = ConditionalDiscriminator(c_dim, y_dim, df_dim, dfc_dim, d_norm, spectral_norm, name="discriminator")
    else:
        G = Generator(output_height, output_width, c_dim, gf_dim, name="generator")
        D = Discriminator(df_dim, d_norm, spectral_norm, name="discriminator")
    labels = ops.zeros((1, y_dim))
    images = apply_generator(G, ops.zeros((1, z_dim)), labels, training=False)  # builds G's weights
    apply_discriminator(D, images, labels, training=False)
    return G, D


def models_from_config(cfg, c_dim: int, y_dim: int, dtype_policy: str | None = None):
    """create_models with the sizes and options of a TrainConfig."""
    return create_models(output_height=cfg.output_height, output_width=cfg.output_width, c_dim=c_dim,
                         z_dim=cfg.z_dim, y_dim=y_dim, gf_dim=cfg.gf_dim, df_dim=cfg.df_dim,
                         gfc_dim=cfg.gfc_dim, dfc_dim=cfg.dfc_dim, arch=cfg.arch, d_norm=cfg.d_norm,
                         spectral_norm=cfg.spectral_norm, dtype_policy=dtype_policy)


def mixed_precision_policy() -> str:
    """float16 (with loss scaling) on a GPU, bfloat16 elsewhere (CPUs with AVX512-BF16/AMX, TPUs)."""
    import tensorflow as tf

    return "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"
