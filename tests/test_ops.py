"""Layer factories: output sizes of the stride-2 (transposed) convolutions and the DCGAN initialisation."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_train_step import skip_without_bf16

from dcgan_tf import config
from dcgan_tf.ops import (
    D_NORMS,
    FusedBatchNorm,
    batch_norm,
    conv2d,
    conv_out_size_same,
    deconv2d,
    linear,
    normalization,
)


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


def _bn_pair(shape, dtype_policy=None):
    """A FusedBatchNorm and a Keras BatchNormalization with the same (non-trivial) weights and statistics."""
    rng = np.random.default_rng(0)
    fused = FusedBatchNorm(momentum=0.9, epsilon=1e-5, scale=True, name="fused", dtype=dtype_policy)
    plain = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, scale=True, name="plain", dtype=dtype_policy)
    channels = shape[-1]
    weights = [rng.uniform(0.5, 2.0, channels), rng.normal(size=channels), rng.normal(size=channels),
               rng.uniform(0.5, 2.0, channels)]  # gamma, beta, moving mean, moving variance
    for layer in (fused, plain):
        layer.build(shape)
        layer.set_weights([w.astype("float32") for w in weights])
    x = (3.0 + 2.0 * rng.normal(size=shape)).astype("float32")
    return fused, plain, tf.constant(x)


def _train_call(layer, x, upstream):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = tf.reduce_sum(tf.cast(y, tf.float32) * upstream)
    grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
    return y, grads


@pytest.mark.parametrize("shape", [(8, 5, 6, 4), (16, 8)])
def test_fused_batch_norm_matches_keras_in_training(shape):
    fused, plain, x = _bn_pair(shape)
    upstream = tf.constant(np.random.default_rng(1).normal(size=shape).astype("float32"))
    for _ in range(2):  # two updates of the moving statistics
        y_f, g_f = _train_call(fused, x, upstream)
        y_p, g_p = _train_call(plain, x, upstream)
        np.testing.assert_allclose(y_f.numpy(), y_p.numpy(), atol=1e-4)
        for a, b in zip(g_f, g_p):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(fused.moving_mean.numpy(), plain.moving_mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fused.moving_variance.numpy(), plain.moving_variance.numpy(), rtol=1e-5)
    np.testing.assert_allclose(fused(x, training=False).numpy(), plain(x, training=False).numpy(), atol=1e-5)


def test_fused_batch_norm_under_bfloat16_stays_close_to_keras():
    skip_without_bf16()  # e.g. oneDNN capped at AVX2 on a bfloat16 CPU cannot run it
    fused, plain, x = _bn_pair((8, 4, 4, 6), dtype_policy="mixed_bfloat16")
    x = tf.cast(x, tf.bfloat16)
    y_f, y_p = fused(x, training=True), plain(x, training=True)
    assert y_f.dtype == y_p.dtype == tf.bfloat16
    np.testing.assert_allclose(tf.cast(y_f, tf.float32).numpy(), tf.cast(y_p, tf.float32).numpy(), atol=0.05)
    assert fused.moving_mean.dtype == tf.float32
    np.testing.assert_allclose(fused.moving_mean.numpy(), plain.moving_mean.numpy(), rtol=1e-2, atol=1e-2)
    np.testing.assert_allclose(fused.moving_variance.numpy(), plain.moving_variance.numpy(), rtol=1e-2)


def test_batch_norm_trains_with_one_fused_op():
    bn = batch_norm()
    bn.build((2, 4, 4, 3))
    graph = tf.function(lambda x: bn(x, training=True)).get_concrete_function(
        tf.TensorSpec((2, 4, 4, 3), tf.float32)).graph
    types = {op.type for op in graph.get_operations()}
    assert "FusedBatchNormV3" in types and "Mean" not in types


def test_checkpoints_written_with_keras_batch_norm_restore_into_fused(monkeypatch, tmp_path):
    """Runs saved before batch norm was fused (plain Keras layers) resume with every variable in place."""
    from dcgan_tf import model

    def keras_batch_norm(name=None):
        return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, scale=True, name=name)

    z = tf.random.normal((4, 8))
    with monkeypatch.context() as patch:
        patch.setattr(model, "batch_norm", keras_batch_norm)
        old = model.Generator(16, 16, 3, gf_dim=4)
    old(z, training=True)
    for var in old.variables:
        var.assign(tf.random.uniform(var.shape, 0.5, 1.5))
    path = tf.train.Checkpoint(G=old).save(str(tmp_path / "ckpt"))
    new = model.Generator(16, 16, 3, gf_dim=4)
    new(z, training=True)
    assert isinstance(new.bn0, FusedBatchNorm) and not isinstance(old.bn0, FusedBatchNorm)
    tf.train.Checkpoint(G=new).restore(path).assert_consumed()
    for a, b in zip(old.variables, new.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_allclose(new(z, training=False).numpy(), old(z, training=False).numpy(), atol=1e-6)


def test_d_norm_words_are_auto_then_the_normalisations_ops_builds():
    assert config.D_NORMS == ("auto", *D_NORMS)  # config cannot import ops (TensorFlow loads after the flags)
    for kind in D_NORMS:
        assert isinstance(normalization(kind), keras.layers.Layer)
    with pytest.raises(ValueError, match="unknown d_norm 'auto'"):
        normalization("auto")
