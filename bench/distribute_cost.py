"""What `--strategy mirrored` costs on 2 logical CPU devices against one device, and what its all-reduces cost.

The same train step (the default DCGAN recipe, synthetic input) is timed without a strategy and under
MirroredStrategy over two logical devices of this CPU (as the tests use them: both share the same cores, so
this measures overhead, not a speed-up). Then the all-reduces of one step are timed on their own under the same
strategy: the gradients of one D and `g_steps` G updates (one all-reduce of every gradient per update), and
the synchronised batch norm's statistics (three small all-reduces per batch-norm layer per training forward
pass, as many again for their gradients). Plain script; prints a table.

  python bench/distribute_cost.py [--size 32] [--batch_size 64] [--steps 20]
"""

from __future__ import annotations

import argparse
import time

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]  # before anything initialises the devices
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from dcgan_tf import distribute  # noqa: E402
from dcgan_tf.config import TrainConfig  # noqa: E402
from dcgan_tf.model import models_from_config  # noqa: E402
from dcgan_tf.training import create_optimizers, make_train_step  # noqa: E402


def build(cfg: TrainConfig, strategy):
    """(distributed train step, G, D) for `cfg` under `strategy` (None: one device)."""
    keras.utils.set_random_seed(0)
    with distribute.scope(strategy):
        G, D = models_from_config(cfg, 3, 0)
        distribute.synchronize_batch_norm(strategy, G, D)
        g_opt, d_opt = create_optimizers(cfg)
        g_opt.build(G.trainable_variables)  # here, not in the first traced step (as create_checkpoint does)
        d_opt.build(D.trainable_variables)
    rng = tf.random.Generator.from_seed(0)
    rng = rng if strategy is None else distribute.GlobalBatchGenerator(rng)
    step = make_train_step(G, D, g_opt, d_opt, rng, cfg)
    return distribute.distribute_train_step(strategy, step), G, D


def seconds_per_call(fn, args, calls: int) -> float:
    """Mean wall time of `fn(*args)` over `calls` calls, after two warm-up calls."""
    for _ in range(2):
        tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, fn(*args))
    t0 = time.perf_counter()
    for _ in range(calls):
        out = fn(*args)
    tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, out)
    return (time.perf_counter() - t0) / calls


def time_step(cfg: TrainConfig, strategy, steps: int) -> float:
    """Seconds per train step on the same synthetic global batch."""
    step, _, _ = build(cfg, strategy)
    images = tf.random.uniform((cfg.batch_size, cfg.output_height, cfg.output_width, 3), -1, 1)
    batch = (images, tf.zeros((cfg.batch_size, 0)))
    if strategy is not None:
        batch = next(iter(distribute.distribute_dataset(strategy, tf.data.Dataset.from_tensors(batch))))
    return seconds_per_call(step, batch, steps)


def time_all_reduces(cfg: TrainConfig, strategy, steps: int) -> tuple[float, float, int]:
    """(gradient all-reduce seconds per step, batch-norm all-reduce seconds per step, batch-norm layer passes)."""
    _, G, D = build(cfg, strategy)
    g_shapes = [v.shape for v in G.trainable_variables]
    d_shapes = [v.shape for v in D.trainable_variables]
    def bn_shapes(model):
        return [layer.gamma.shape for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]

    # Training passes through each network in one step: the D update runs G once and D twice, each G update both.
    passes = bn_shapes(G) * (1 + cfg.g_steps) + bn_shapes(D) * (2 + cfg.g_steps)

    @tf.function
    def gradients():
        def replica():
            ctx = tf.distribute.get_replica_context()
            out = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [tf.ones(s) for s in d_shapes])
            for _ in range(cfg.g_steps):
                out += ctx.all_reduce(tf.distribute.ReduceOp.SUM, [tf.ones(s) for s in g_shapes])
            return tf.add_n([tf.reduce_sum(t) for t in out])
        return strategy.run(replica)

    @tf.function
    def statistics():
        def replica():  # 3 all-reduces forward (sum, sum of squares, count) and 3 for their gradients, in sequence
            ctx, total = tf.distribute.get_replica_context(), tf.constant(0.0)
            for shape in passes:
                for _ in range(6):
                    total += tf.reduce_sum(ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.ones(shape) + total))
            return total
        return strategy.run(replica)

    return seconds_per_call(gradients, (), steps), seconds_per_call(statistics, (), steps), len(passes)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    cfg = TrainConfig(dataset="synthetic", output_height=args.size, input_height=args.size,
                      batch_size=args.batch_size)
    strategy = distribute.create_strategy("mirrored")
    one = time_step(cfg, None, args.steps)
    two = time_step(cfg, strategy, args.steps)
    grads, stats, layers = time_all_reduces(cfg, strategy, args.steps)
    rate1, rate2 = cfg.batch_size / one, cfg.batch_size / two
    print(f"{args.size}x{args.size}, global batch {cfg.batch_size}, default DCGAN (g_steps {cfg.g_steps}), "
          f"{args.steps} timed steps, {np.round(np.array([one, two]) * 1e3, 1)} ms per step")
    print(f"one device:                    {rate1:8.1f} img/s")
    print(f"mirrored, 2 logical CPUs:      {rate2:8.1f} img/s  ({rate2 / rate1:.2f}x one device)")
    print(f"gradient all-reduces per step: {grads * 1e3:8.1f} ms  ({100 * grads / two:.0f}% of a mirrored step)")
    print(f"batch-norm all-reduces / step: {stats * 1e3:8.1f} ms  ({100 * stats / two:.0f}%; {6 * layers} calls)")


if __name__ == "__main__":
    main()
