"""Shapes, initialisation and batch-size freedom of the networks (dcgan, mlp, infogan), D's options, checkpoints."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_train_step import skip_without_bf16

from dcgan_tf.config import TrainConfig
from dcgan_tf.model import (
    ConditionalGenerator,
    Generator,
    InfoGanDiscriminator,
    InfoGanGenerator,
    MlpDiscriminator,
    MlpGenerator,
    apply_discriminator,
    apply_generator,
    create_models,
    models_from_config,
)
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
    images = apply_generator(G, z, np.zeros((2, 0), np.float32), training=False)
    np.testing.assert_allclose(images, G(z, training=False))
    assert apply_discriminator(D, images, np.zeros((2, 0), np.float32), training=False).shape == (2, 1)


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


def _inputs(batch: int, z_dim: int, y_dim: int, seed: int = 0):
    """Uniform z [B, z_dim] and one-hot labels [B, y_dim] ([B, 0] when unconditional)."""
    rng = np.random.RandomState(seed)
    labels = np.eye(max(y_dim, 1), dtype=np.float32)[rng.randint(0, max(y_dim, 1), batch)][:, :y_dim]
    return rng.uniform(-1, 1, (batch, z_dim)).astype(np.float32), labels


def _kernel_shapes(model) -> list[tuple[int, ...]]:
    return [tuple(v.shape) for v in model.weights if v.path.endswith("/kernel")]


@pytest.mark.parametrize("arch,height,width", [("mlp", 28, 28), ("mlp", 9, 13), ("infogan", 28, 28),
                                               ("infogan", 32, 20)])
@pytest.mark.parametrize("c_dim", [1, 3])
@pytest.mark.parametrize("y_dim", [0, 10])
def test_mlp_and_infogan_shapes_range_and_labels(arch, height, width, c_dim, y_dim):
    G, D = create_models(output_height=height, output_width=width, c_dim=c_dim, z_dim=8, y_dim=y_dim, gf_dim=4,
                         df_dim=4, gfc_dim=16, dfc_dim=16, arch=arch)
    assert isinstance(G, {"mlp": MlpGenerator, "infogan": InfoGanGenerator}[arch])
    assert isinstance(D, {"mlp": MlpDiscriminator, "infogan": InfoGanDiscriminator}[arch])
    for batch in (1, 5):
        z, labels = _inputs(batch, 8, y_dim)
        images = apply_generator(G, z, labels, training=False).numpy()
        assert images.shape == (batch, height, width, c_dim) and images.dtype == np.float32
        assert images.min() >= -1 and images.max() <= 1
        logits = apply_discriminator(D, images, labels, training=False)
        assert logits.shape == (batch, 1) and logits.dtype == tf.float32
    if y_dim:  # the labels reach both networks
        other = np.roll(labels, 1, axis=-1)
        assert not np.allclose(G(z, labels, training=False), G(z, other, training=False))
        assert not np.allclose(D(images, labels, training=False), D(images, other, training=False))


@pytest.mark.parametrize("y_dim", [0, 10])
def test_mlp_layers_are_cs231n_at_the_default_widths(y_dim):
    G, D = create_models(output_height=28, output_width=28, c_dim=1, z_dim=96, y_dim=y_dim, arch="mlp")
    assert _kernel_shapes(G) == [(96 + y_dim, 1024), (1024, 1024), (1024, 784)]
    assert _kernel_shapes(D) == [(784 + y_dim, 256), (256, 256), (256, 1)]


@pytest.mark.parametrize("y_dim", [0, 10])
def test_infogan_layers_are_cs231n_at_the_default_widths(y_dim):
    G, D = create_models(output_height=28, output_width=28, c_dim=1, z_dim=96, y_dim=y_dim, arch="infogan")
    # Conv2DTranspose kernels are [kh, kw, out, in].
    assert _kernel_shapes(G) == [(96 + y_dim, 1024), (1024 + y_dim, 7 * 7 * 128), (4, 4, 64, 128), (4, 4, 1, 64)]
    assert _kernel_shapes(D) == [(5, 5, 1 + y_dim, 32), (5, 5, 32, 64), (4 * 4 * 64 + y_dim, 1024), (1024 + y_dim, 1)]
    h = D.pool1(D.conv1(D.pool0(D.conv0(np.zeros((2, 28, 28, 1 + y_dim), np.float32)))))
    assert h.shape == (2, 4, 4, 64)
    assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in G.layers) == 3


@pytest.mark.parametrize("height,width", [(30, 28), (28, 26), (12, 12)])
def test_infogan_rejects_sizes_it_cannot_make(height, width):
    with pytest.raises(ValueError, match="divisible by 4.*at least 16"):
        create_models(output_height=height, output_width=width, c_dim=1, z_dim=8, arch="infogan")


def test_unknown_arch_and_d_norm_are_rejected():
    with pytest.raises(ValueError, match="unknown arch 'resnet'"):
        create_models(output_height=16, output_width=16, c_dim=1, z_dim=8, arch="resnet")
    with pytest.raises(ValueError, match="unknown d_norm 'group'"):
        create_models(output_height=16, output_width=16, c_dim=1, z_dim=8, d_norm="group")


def test_models_from_config_passes_the_options_and_defaults_to_dcgan():
    tiny = dataclasses.replace(TrainConfig(), output_height=16, output_width=16, z_dim=8, gf_dim=2, df_dim=2,
                               gfc_dim=8, dfc_dim=8)
    G, D = models_from_config(dataclasses.replace(tiny, arch="infogan", d_norm="none", spectral_norm=True), 1, 0)
    assert isinstance(G, InfoGanGenerator) and any("sn_u" in v.path for v in D.weights)
    _, D = models_from_config(dataclasses.replace(tiny, d_norm="layer"), 1, 0)
    assert sum(isinstance(layer, keras.layers.LayerNormalization) for layer in D.layers) == 3
    G, D = models_from_config(tiny, 1, 0)  # the default options: dcgan, batch norm, no spectral norm
    assert isinstance(G, Generator) and not any("sn_u" in v.path for v in D.weights)
    assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in D.layers) == 3


@pytest.mark.parametrize("y_dim", [0, 10])
@pytest.mark.parametrize("d_norm", ["batch", "layer", "none"])
def test_d_norm_chooses_the_discriminator_normalisation(d_norm, y_dim):
    G, D = create_models(output_height=16, output_width=16, c_dim=1, z_dim=8, y_dim=y_dim, gf_dim=4, df_dim=4,
                         gfc_dim=16, dfc_dim=16, d_norm=d_norm)
    count = {kind: sum(isinstance(layer, kind) for layer in D.layers)
             for kind in (keras.layers.BatchNormalization, keras.layers.LayerNormalization)}
    n = 2 if y_dim else 3
    assert count == {keras.layers.BatchNormalization: n if d_norm == "batch" else 0,
                     keras.layers.LayerNormalization: n if d_norm == "layer" else 0}
    assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in G.layers) == n + 1  # G keeps BN
    if d_norm == "layer":  # each sample's features, all of them (conv maps [H, W, C] and dense)
        assert D.bn1.axis == [1, 2, 3] and D.bn1.epsilon == 1e-5
        assert D.bn2.axis == ([-1] if y_dim else [1, 2, 3])

    # In training mode, sample 0's logit depends on the other samples only through batch norm.
    rng = np.random.RandomState(0)
    images = rng.uniform(-1, 1, (4, 16, 16, 1)).astype(np.float32)
    others = images.copy()
    others[1:] = rng.uniform(-1, 1, (3, 16, 16, 1))
    labels = np.eye(10, dtype=np.float32)[:4, :y_dim]
    logit = apply_discriminator(D, images, labels, training=True).numpy()[0]
    logit_others = apply_discriminator(D, others, labels, training=True).numpy()[0]
    if d_norm == "batch":
        assert abs(logit - logit_others) > 1e-4
    else:
        np.testing.assert_allclose(logit, logit_others, rtol=1e-5, atol=1e-7)


# Every architecture with every discriminator option it has (mlp and infogan D have no normalisation).
COMBINATIONS = [("dcgan", y_dim, d_norm, sn) for y_dim in (0, 3) for d_norm in ("batch", "layer", "none")
                for sn in (False, True)] + [
    (arch, y_dim, "batch", sn) for arch in ("mlp", "infogan") for y_dim in (0, 3) for sn in (False, True)]


def _tiny_models(arch, y_dim, d_norm, sn, dtype_policy=None):
    return create_models(output_height=16, output_width=16, c_dim=1, z_dim=4, y_dim=y_dim, gf_dim=2, df_dim=4,
                         gfc_dim=8, dfc_dim=8, arch=arch, d_norm=d_norm, spectral_norm=sn, dtype_policy=dtype_policy)


def _outputs(G, D, y_dim, training=False):
    z, labels = _inputs(3, 4, y_dim)
    images = apply_generator(G, z, labels, training=training)
    return images.numpy(), apply_discriminator(D, images, labels, training=training).numpy()


@pytest.mark.parametrize("arch,y_dim,d_norm,sn", COMBINATIONS)
def test_every_combination_round_trips_through_checkpoints(arch, y_dim, d_norm, sn, tmp_path):
    G, D = _tiny_models(arch, y_dim, d_norm, sn)
    us = [v for v in D.weights if "sn_u" in v.path]
    initial_us = [u.numpy() for u in us]
    for _ in range(2):  # move BN statistics and spectral norm's u away from their initial values
        _outputs(G, D, y_dim, training=True)
    assert not any(np.allclose(u.numpy(), initial) for u, initial in zip(us, initial_us))  # D passes training=
    path = tf.train.Checkpoint(generator=G, discriminator=D).save(str(tmp_path / "ckpt"))

    # Every variable is in the checkpoint (a layer kept in a Python list would be missing).
    saved = [name for name, _ in tf.train.list_variables(path) if name.split("/")[0] in ("generator", "discriminator")]
    assert len(saved) == len(G.weights) + len(D.weights)
    assert len(us) == (sum(isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)) for layer in D.layers)
                       if sn else 0)

    G2, D2 = _tiny_models(arch, y_dim, d_norm, sn)
    want = _outputs(G, D, y_dim)
    assert not np.allclose(_outputs(G2, D2, y_dim)[0], want[0])
    tf.train.Checkpoint(generator=G2, discriminator=D2).restore(path).assert_consumed()
    for got, expected in zip(_outputs(G2, D2, y_dim), want):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("arch,y_dim,d_norm,sn", COMBINATIONS)
def test_every_combination_works_under_mixed_precision(arch, y_dim, d_norm, sn):
    skip_without_bf16()  # e.g. oneDNN capped at AVX2 on a bfloat16 CPU cannot run it
    G, D = _tiny_models(arch, y_dim, d_norm, sn, dtype_policy="mixed_bfloat16")
    assert keras.mixed_precision.dtype_policy().name == "float32"  # the global policy is restored
    assert all(v.dtype == "float32" for v in G.weights + D.weights)
    for training in (True, False):
        images, logits = _outputs(G, D, y_dim, training=training)
        assert images.dtype == np.float32 and logits.dtype == np.float32 and logits.shape == (3, 1)
        assert np.isfinite(images).all() and np.isfinite(logits).all()


@pytest.mark.slow
def test_infogan_discriminator_double_backprop_compiles_under_mixed_precision():
    """WGAN-GP differentiates D's input gradient; XLA on CPU has no bfloat16 MaxPoolGradGrad (D pools in float32)."""
    skip_without_bf16()  # e.g. oneDNN capped at AVX2 on a bfloat16 CPU cannot run it
    _, D = _tiny_models("infogan", 0, "batch", True, dtype_policy="mixed_bfloat16")

    @tf.function(jit_compile=True)
    def penalty_gradients(images):
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                inner.watch(images)
                logits = D(images, training=True)
            penalty = tf.reduce_sum(tf.square(tf.cast(inner.gradient(logits, images), tf.float32)))
            d_loss = tf.reduce_mean(logits) + penalty
        return outer.gradient(d_loss, D.trainable_variables)

    grads = penalty_gradients(tf.random.stateless_uniform((2, 16, 16, 1), seed=(0, 1)))
    assert all(g is not None and np.isfinite(g.numpy()).all() for g in grads)
