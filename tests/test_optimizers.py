"""FusedAdam: Keras' Adam update, one fused op per variable, same slots."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from dcgan_tf.optimizers import FusedAdam


def _variables(seed):
    rng = np.random.default_rng(seed)
    return [keras.Variable(rng.normal(size=(6, 4)).astype("float32"), name="kernel"),
            keras.Variable(rng.normal(size=(4,)).astype("float32"), name="bias")]


def _gradients(steps):
    rng = np.random.default_rng(1)
    return [[tf.constant(rng.normal(size=shape).astype("float32")) for shape in ((6, 4), (4,))]
            for _ in range(steps)]


def _train(opt, variables, gradients, compiled):
    def apply(grads):
        opt.apply_gradients(zip(grads, variables))

    apply = tf.function(apply) if compiled else apply
    for grads in gradients:
        apply(grads)


@pytest.mark.parametrize("compiled", [False, True])
def test_fused_adam_matches_keras_adam(compiled):
    gradients = _gradients(6)
    fused_vars, plain_vars = _variables(0), _variables(0)
    fused = FusedAdam(0.01, beta_1=0.5)
    plain = keras.optimizers.Adam(0.01, beta_1=0.5)
    _train(fused, fused_vars, gradients, compiled)
    _train(plain, plain_vars, gradients, compiled)
    assert int(fused.iterations.numpy()) == int(plain.iterations.numpy()) == 6
    for a, b, start in zip(fused_vars, plain_vars, _variables(0)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
        assert np.abs(a.numpy() - start.numpy()).min() > 1e-4  # every weight moved
    for a, b in zip(fused.variables, plain.variables):  # iterations, then the moments
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-7)


def _final(make_optimizer, gradients, strategy=None):
    """The variables after applying `gradients` with make_optimizer() (inside `strategy`, when given)."""
    if strategy is None:
        variables = _variables(0)
        _train(make_optimizer(), variables, gradients, compiled=True)
    else:
        with strategy.scope():
            variables = _variables(0)
            opt = make_optimizer()
        for grads in gradients:
            strategy.run(lambda g: opt.apply_gradients(zip(g, variables)), args=(grads,))
    return [v.numpy() for v in variables]


def test_fused_adam_under_loss_scaling_and_under_a_strategy_matches_keras():
    gradients = _gradients(3)
    scaled = [_final(lambda: keras.optimizers.LossScaleOptimizer(FusedAdam(0.01)), gradients),
              _final(lambda: keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(0.01)), gradients)]
    one_device = tf.distribute.OneDeviceStrategy("/cpu:0")  # FusedAdam takes Keras' path under a strategy
    distributed = [_final(lambda: FusedAdam(0.01), gradients, one_device),
                   _final(lambda: keras.optimizers.Adam(0.01), gradients)]
    for first, second in (scaled, distributed):
        for a, b in zip(first, second):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_fused_adam_runs_one_op_per_variable_and_keeps_keras_slots(tmp_path):
    variables = _variables(0)
    opt = FusedAdam(0.01)
    opt.build(variables)
    graph = tf.function(lambda g: opt.apply_gradients(zip(g, variables))).get_concrete_function(
        [tf.TensorSpec((6, 4)), tf.TensorSpec((4,))]).graph
    types = [op.type for op in graph.get_operations()]
    assert types.count("ResourceApplyAdam") == 2 and "Sqrt" not in types
    # A checkpoint of Keras' Adam restores into FusedAdam: the same slot variables.
    plain_vars = _variables(0)
    plain = keras.optimizers.Adam(0.01)
    _train(plain, plain_vars, _gradients(2), compiled=False)
    path = tf.train.Checkpoint(opt=plain, v=plain_vars).save(str(tmp_path / "ckpt"))
    fresh_vars = _variables(5)
    fused = FusedAdam(0.01)
    fused.build(fresh_vars)
    tf.train.Checkpoint(opt=fused, v=fresh_vars).restore(path).assert_consumed()
    for a, b in zip(fused.variables, plain.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
