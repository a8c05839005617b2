"""An exponential moving average of the generator's weights (--g_ema), kept in a second generator.

The average, not the raw G, draws every sample grid, evaluation, export and completion of a run trained with
--g_ema, and it is saved in the run's checkpoints. Early on the decay is warmed up as TensorFlow's
ExponentialMovingAverage does with num_updates: d_n = min(decay, (1 + n) / (10 + n)) for the n-th update, so
the average is not stuck near G's random initialisation in short runs.
"""

from __future__ import annotations

import tensorflow as tf


def ema_decay(decay: float, updates):
    """The decay used by update number `updates` (0-based): min(decay, (1 + n) / (10 + n))."""
    n = tf.cast(updates, tf.float32)
    return tf.minimum(tf.constant(decay, tf.float32), (1.0 + n) / (10.0 + n))


class GeneratorEma:
    """average <- d * average + (1 - d) * weights, over every weight of G (BN moving statistics included).

    Args:
      source: the generator being trained.
      average: a generator of the same architecture; its weights are overwritten with the source's.
      decay: --g_ema, in (0, 1).
    """

    def __init__(self, source, average, decay: float):
        if len(source.weights) != len(average.weights) or any(
                a.shape != s.shape for a, s in zip(average.weights, source.weights)):
            raise ValueError("the EMA generator must have the same architecture as the trained one")
        self.source, self.model, self.decay = source, average, float(decay)
        self.updates = tf.Variable(0, dtype=tf.int64, trainable=False, name="ema_updates")
        self.copy_from_source()

    def copy_from_source(self) -> None:
        for a, s in zip(self.model.weights, self.source.weights):
            a.assign(tf.cast(s, a.dtype))

    def update(self) -> None:
        """One averaging step (graph-safe: call it inside the train step's tf.function)."""
        d = ema_decay(self.decay, self.updates)
        for a, s in zip(self.model.weights, self.source.weights):
            a.assign(d * a + (1.0 - d) * tf.cast(s, a.dtype))
        self.updates.assign_add(1)

    def checkpoint_items(self) -> dict:
        return {"generator_ema": self.model, "ema_updates": self.updates}


def create_ema(cfg, G, c_dim: int, y_dim: int) -> GeneratorEma | None:
    """The EMA of generator G for a run's settings (a second generator of cfg's architecture), or None without
    --g_ema. The average is built with the default float32 policy whatever G computes in."""
    from dcgan_tf.model import models_from_config  # here: keeps this module free of the model definitions

    return GeneratorEma(G, models_from_config(cfg, c_dim, y_dim)[0], cfg.g_ema) if cfg.g_ema > 0 else None
