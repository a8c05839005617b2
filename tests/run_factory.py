"""Builds saved runs for tests: the same FLAGS.json and checkpoint layout that `train()` writes.

`make_run` saves freshly initialised (or briefly trained) tiny networks, so tests of generation, export and
completion do not need a data pipeline or minutes of training.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from dcgan_tf.checkpoint import TrainState, create_checkpoint, create_manager, save_checkpoint
from dcgan_tf.config import RunPaths, TrainConfig
from dcgan_tf.ema import create_ema
from dcgan_tf.latent import class_labels, sample_z
from dcgan_tf.model import models_from_config
from dcgan_tf.training import create_optimizers, make_train_step, write_run_flags


def tiny_config(root, *, conditional: bool = False, size: int = 16, c_dim: int = 3, **overrides) -> TrainConfig:
    """A TrainConfig for a tiny model whose outputs all go under `root`."""
    fields = dict(dataset="tiny", output_height=size, input_height=size, z_dim=8, gf_dim=4, df_dim=4,
                  gfc_dim=16, dfc_dim=16, batch_size=4, conditional=conditional, out_dir=f"{root}/out",
                  checkpoint_dir=f"{root}/checkpoints", sample_dir=f"{root}/samples", sample_num=8,
                  mixed_precision=False)  # float32 on every CPU kind; auto is tested in test_hardware.py
    fields.update(overrides)
    return TrainConfig(**fields).validate()


def make_run(root, *, conditional: bool = False, size: int = 16, c_dim: int = 3, train_steps: int = 0,
             **overrides):
    """Saves a run (FLAGS.json + checkpoint) and returns (cfg, paths, G, D).

    Args:
      root: folder for out/, checkpoints/ and samples/.
      conditional: a 10-class conditional model.
      size: output height and width.
      c_dim: image channels.
      train_steps: real train steps on random images before saving (0 = initial weights).
    """
    cfg = tiny_config(root, conditional=conditional, size=size, c_dim=c_dim, **overrides)
    y_dim = 10 if conditional else 0
    paths = RunPaths.from_config(cfg)
    write_run_flags(cfg, paths, {"c_dim": c_dim, "y_dim": y_dim, "num_examples": 64})
    keras.utils.set_random_seed(cfg.seed)  # as train() does: the same weights in every process
    G, D = models_from_config(cfg, c_dim, y_dim)
    g_opt, d_opt = create_optimizers(cfg)
    state = TrainState.create(cfg.seed, sample_z(tf.random.Generator.from_seed(1), cfg.sample_num, cfg.z_dim),
                              class_labels(cfg.sample_num, y_dim))
    ema = create_ema(cfg, G, c_dim, y_dim)
    ckpt = create_checkpoint(G, D, g_opt, d_opt, state, extra=ema.checkpoint_items() if ema else None)
    if train_steps:
        step_fn = make_train_step(G, D, g_opt, d_opt, state.rng, cfg, nan_skipped=state.nan_skipped, ema=ema)
        rs = np.random.RandomState(0)
        for _ in range(train_steps):
            x = rs.uniform(-1, 1, (cfg.images_per_step, size, size, c_dim)).astype("float32")
            y = class_labels(cfg.images_per_step, y_dim)
            step_fn(tf.constant(x), tf.constant(y))
    state.step.assign(train_steps)
    save_checkpoint(create_manager(ckpt, paths.checkpoint_dir), train_steps)
    return cfg, paths, G, D
