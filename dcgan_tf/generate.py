"""Using a trained model: sample grids (more modes arrive with generation/visualize/export)."""

from __future__ import annotations

import os

import tensorflow as tf

from dcgan_tf.config import RunPaths, TrainConfig
from dcgan_tf.images import save_image_grid
from dcgan_tf.latent import class_labels, sample_z
from dcgan_tf.model import apply_generator
from dcgan_tf.runs import load_run


def use_trained_model(cfg: TrainConfig) -> str:
    """Loads the run's latest checkpoint and writes a grid of random samples. Returns its path."""
    paths = RunPaths.from_config(cfg)
    run = load_run(paths.checkpoint_dir, cfg)
    rng = tf.random.Generator.from_seed(cfg.seed)
    z = sample_z(rng, cfg.sample_num, cfg.z_dim, cfg.z_dist)
    images = apply_generator(run.generator, z, class_labels(cfg.sample_num, run.y_dim), False).numpy()
    return save_image_grid(images, os.path.join(paths.sample_dir, "test_grid.png"), cols=run.y_dim or None)
