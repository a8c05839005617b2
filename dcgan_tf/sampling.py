"""Sampling a trained generator: the `Sampler` every use of a trained model takes, random batches and grids.

`generate.py` (single test images, the dispatcher) and `visualize.py` (sweeps, interpolations) both build on
this module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow as tf

from dcgan_tf.errors import FlagError
from dcgan_tf.images import save_image_grid
from dcgan_tf.latent import class_labels, sample_z
from dcgan_tf.model import apply_generator

GRID_NAME = "test_grid.png"


@dataclasses.dataclass(frozen=True)
class Sampler:
    """A generator with what sampling from it needs; runs it in batches so any number of images fits."""

    generator: Any  # G(z[, y], training=False) -> images [B, H, W, C] in [-1, 1]
    z_dim: int
    z_dist: str = "uniform_signed"  # the distribution G was trained with
    y_dim: int = 0  # classes of a conditional generator; 0 = unconditional
    batch_size: int = 64  # images per generator call

    @classmethod
    def from_run(cls, run, batch_size: int = 64) -> Sampler:
        """The sampler of a `runs.TrainedRun`: its z_dim and z_dist are the saved run's, not this command's."""
        return cls(run.generator, run.config.z_dim, run.config.z_dist, run.y_dim, batch_size)

    def labels(self, n: int, label: int | None = None) -> np.ndarray:
        """One-hot labels [n, y_dim]: all `label`, or every class in turn; [n, 0] when unconditional."""
        return class_labels(n, self.y_dim, label)

    def __call__(self, z, labels=None) -> np.ndarray:
        """Images [N, H, W, C] float32 in [-1, 1] for z [N, z_dim] and one-hot labels [N, y_dim]."""
        z = np.asarray(z, np.float32)
        labels = self.labels(len(z)) if labels is None else np.asarray(labels, np.float32)
        batches = [apply_generator(self.generator, tf.constant(z[i:i + self.batch_size]),
                                   tf.constant(labels[i:i + self.batch_size]), training=False).numpy()
                   for i in range(0, len(z), self.batch_size)]
        return np.concatenate(batches)


def check_label(label: int | None, y_dim: int) -> None:
    """FlagError naming --label unless it is None or a class of a conditional model."""
    if label is None:
        return
    if not y_dim:
        raise FlagError("label", "this run's model is unconditional (no classes); drop --label")
    if not 0 <= label < y_dim:
        raise FlagError("label", f"must be a class in 0..{y_dim - 1}, got {label}")


def grid_columns(sampler: Sampler, label: int | None) -> int | None:
    """One column per class when classes take turns; otherwise None (the most square grid)."""
    return sampler.y_dim if sampler.y_dim and label is None else None


def sample_batches(sampler: Sampler, n: int, *, seed: int = 0,
                   label: int | None = None) -> Iterator[tuple[int, np.ndarray, list[int | None]]]:
    """Yields (start, images [B, H, W, C], class ids) for n random images, batch by batch.

    z is drawn per batch from one generator seeded with `seed`, so the same (seed, batch size) gives the
    same images, and the first images of a long run equal those of a short one.
    """
    z = random_z(sampler, n, seed=seed)  # [n, z_dim]
    labels = sampler.labels(n, label)  # [n, y_dim]
    for start in range(0, n, sampler.batch_size):
        stop = min(start + sampler.batch_size, n)
        ids = [int(np.argmax(y)) for y in labels[start:stop]] if sampler.y_dim else [None] * (stop - start)
        yield start, sampler(z[start:stop], labels[start:stop]), ids


def random_z(sampler: Sampler, n: int, *, seed: int = 0) -> np.ndarray:
    """The z [n, z_dim] of `sample_batches`: drawn batch by batch from one generator seeded with `seed`.

    Example:
      >>> z = random_z(Sampler(G, z_dim=100), 16, seed=0)  # doctest: +SKIP
    """
    rng = tf.random.Generator.from_seed(seed)
    batches = [sample_z(rng, min(sampler.batch_size, n - start), sampler.z_dim, sampler.z_dist).numpy()
               for start in range(0, n, sampler.batch_size)]
    return np.concatenate(batches) if batches else np.zeros((0, sampler.z_dim), np.float32)


def save_random_grid(sampler: Sampler, path: str, *, n: int, seed: int = 0, label: int | None = None) -> str:
    """Writes one grid of n random samples (one column per class when classes take turns). Returns the path."""
    images = np.concatenate([b for _, b, _ in sample_batches(sampler, n, seed=seed, label=label)])
    return save_image_grid(images, path, cols=grid_columns(sampler, label))
