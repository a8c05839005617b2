"""Latent vectors and labels: every draw comes from a seeded tf.random.Generator."""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def sample_z(rng: tf.random.Generator, n, z_dim: int, z_dist: str = "uniform_signed"):
    """Draws z [n, z_dim] float32 from `z_dist`: uniform_signed U(-1, 1), uniform_unsigned U(0, 1), normal01."""
    shape = (n, z_dim)
    if z_dist == "uniform_signed":
        return rng.uniform(shape, -1.0, 1.0)
    if z_dist == "uniform_unsigned":
        return rng.uniform(shape, 0.0, 1.0)
    if z_dist == "normal01":
        return rng.normal(shape)
    raise ValueError(f"unknown z_dist {z_dist!r}")


def z_range(z_dist: str) -> tuple[float, float]:
    """The range a latent coordinate is kept in (for sweeps and projection); normal01 uses +-2 sigma."""
    return {"uniform_signed": (-1.0, 1.0), "uniform_unsigned": (0.0, 1.0), "normal01": (-2.0, 2.0)}[z_dist]


def class_labels(n: int, y_dim: int, label: int | None = None) -> np.ndarray:
    """One-hot labels [n, y_dim]: all `label`, or classes 0..y_dim-1 in turn (i % y_dim)."""
    ids = np.full(n, label) if label is not None else np.arange(n) % max(y_dim, 1)
    return np.eye(y_dim, dtype=np.float32)[ids] if y_dim else np.zeros((n, 0), np.float32)
