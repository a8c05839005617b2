"""Spectral normalisation (ops.SNConv2D, ops.SNDense): sigma, the forward pass, gradients and the stored u."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_train_step import skip_without_bf16

from dcgan_tf.ops import SNConv2D, SNDense, conv2d, linear


def _make(kind: str, seed: int = 0):
    """A built spectrally normalised layer with a non-zero bias and an input for it."""
    keras.utils.set_random_seed(seed)
    if kind == "conv":
        layer, x = conv2d(8, spectral_norm=True), np.random.randn(2, 9, 9, 3).astype(np.float32)
    else:
        layer, x = linear(6, spectral_norm=True), np.random.randn(4, 20).astype(np.float32)
    layer(x)
    layer.bias.assign(np.random.randn(*layer.bias.shape).astype(np.float32))
    return layer, x


def _matrix(layer) -> np.ndarray:
    kernel = layer.kernel.numpy()
    return kernel.reshape(-1, kernel.shape[-1])  # [K, out]


def _power_iteration(w: np.ndarray, u: np.ndarray):
    """One power-iteration step as in Miyato et al. 2018: (v [1, K], new u [1, out], sigma)."""
    v = u @ w.T
    v /= np.linalg.norm(v)
    u = v @ w
    u /= np.linalg.norm(u)
    return v, u, float((v @ w @ u.T).item())


def _plain(layer, kernel, x):
    """The same layer without spectral normalisation, with `kernel` and the SN layer's bias."""
    plain = (keras.layers.Conv2D if isinstance(layer, SNConv2D) else keras.layers.Dense).from_config(layer.get_config())
    plain(x)
    plain.set_weights([kernel, layer.bias.numpy()])
    return plain


def test_factories_choose_the_spectrally_normalised_layers():
    assert isinstance(conv2d(4, spectral_norm=True), SNConv2D) and isinstance(linear(4, spectral_norm=True), SNDense)
    assert type(conv2d(4)) is keras.layers.Conv2D and type(linear(4)) is keras.layers.Dense


@pytest.mark.parametrize("kind", ["conv", "dense"])
def test_sigma_converges_to_the_largest_singular_value(kind):
    layer, x = _make(kind)
    for _ in range(50):
        layer(x, training=True)
    _, sigma = layer.normalized_kernel()
    want = np.linalg.svd(_matrix(layer), compute_uv=False)[0]
    np.testing.assert_allclose(float(sigma), want, rtol=1e-3)
    assert sigma.dtype == tf.float32


@pytest.mark.parametrize("kind", ["conv", "dense"])
def test_output_is_the_plain_layer_with_kernel_over_sigma(kind):
    layer, x = _make(kind)
    u0 = layer.u.numpy()
    _, u1, sigma = _power_iteration(_matrix(layer), u0)
    out = layer(x, training=True).numpy()
    want = _plain(layer, layer.kernel.numpy() / sigma, x)(x).numpy()
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(layer.u.numpy(), u1, rtol=1e-5, atol=1e-6)  # the training call stored the new u
    assert not np.allclose(out, _plain(layer, layer.kernel.numpy(), x)(x).numpy(), rtol=1e-2)


@pytest.mark.parametrize("kind", ["conv", "dense"])
def test_gradient_flows_through_sigma_but_not_through_u_and_v(kind):
    layer, x = _make(kind)
    w = _matrix(layer)
    v, u1, sigma = _power_iteration(w, layer.u.numpy())
    weights = np.random.RandomState(1).randn(*layer.compute_output_shape(x.shape)).astype(np.float32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x, training=True) * weights)
    grad = tape.gradient(loss, layer.kernel)
    assert grad is not None

    # d loss / d W for loss(W / sigma(W)), sigma = v W u^T with u, v constant: (G - <G, W_sn> v^T u) / sigma.
    plain = _plain(layer, layer.kernel.numpy() / sigma, x)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(plain(x) * weights)
    g = tape.gradient(loss, plain.kernel).numpy().reshape(w.shape)
    want = (g - np.sum(g * w / sigma) * (v.T @ u1)) / sigma
    np.testing.assert_allclose(grad.numpy().reshape(w.shape), want, rtol=1e-3, atol=1e-6)
    assert not np.allclose(grad.numpy().reshape(w.shape), g, rtol=1e-2)  # not the unnormalised gradient


@pytest.mark.parametrize("kind", ["conv", "dense"])
def test_u_changes_only_in_training(kind):
    layer, x = _make(kind)
    u0 = layer.u.numpy()
    layer(x, training=False)
    layer(x)
    np.testing.assert_array_equal(layer.u.numpy(), u0)
    layer(x, training=True)
    assert not np.allclose(layer.u.numpy(), u0)
    assert not layer.u.trainable and len(layer.trainable_weights) == 2


def test_u_is_saved_and_restored_by_checkpoints(tmp_path):
    layer, x = _make("conv")
    for _ in range(3):
        layer(x, training=True)
    path = tf.train.Checkpoint(layer=layer).save(str(tmp_path / "ckpt"))
    fresh, _ = _make("conv", seed=1)
    assert not np.allclose(fresh.u.numpy(), layer.u.numpy())
    tf.train.Checkpoint(layer=fresh).restore(path).assert_consumed()
    np.testing.assert_array_equal(fresh.u.numpy(), layer.u.numpy())
    np.testing.assert_array_equal(fresh(x, training=False), layer(x, training=False))


class _Probe(keras.layers.Layer):
    """Reads an SN layer's (W / sigma, sigma) inside a layer call, where mixed precision autocasts variables."""

    def __init__(self, sn_layer, **kwargs):
        super().__init__(**kwargs)
        self.sn_layer = sn_layer

    def call(self, inputs):
        return self.sn_layer.normalized_kernel()


def test_mixed_precision_keeps_the_power_iteration_in_float32():
    skip_without_bf16()  # e.g. oneDNN capped at AVX2 on a bfloat16 CPU cannot run it
    layer = SNDense(2, dtype="mixed_bfloat16")
    x = np.ones((1, 2), np.float32)
    layer(x)
    top = 1 + 3 * 2 ** -10  # bfloat16 (8 significant bits) would round this singular value to 1
    layer.kernel.assign(np.diag([top, 0.5]).astype(np.float32))
    for _ in range(20):
        out = layer(x, training=True)
    kernel, sigma = _Probe(layer, dtype="mixed_bfloat16")(x)
    assert out.dtype == tf.bfloat16 and kernel.dtype == tf.bfloat16 and sigma.dtype == tf.float32
    assert layer.kernel.dtype == "float32" and layer.u.dtype == "float32"
    np.testing.assert_allclose(float(sigma), top, rtol=1e-6)
