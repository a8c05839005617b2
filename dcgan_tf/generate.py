"""Using a trained model (`main.py` without `--train`): N single test images, sample grids, and the dispatcher.

`use_trained_model(cfg, ...)` loads the run's latest checkpoint once and runs every mode asked for:
`--generate_test_images N` (here), `--visualize --option K` (visualize.py) and `--export` (export.py); with
none of them it writes one grid of random samples, as carpedm20 did. The library functions take a `Sampler`
and keyword-only settings and return the paths they wrote.
"""

from __future__ import annotations

import collections
import dataclasses
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow as tf

from dcgan_tf.config import RunPaths, TrainConfig
from dcgan_tf.errors import FlagError
from dcgan_tf.export import export_generator
from dcgan_tf.images import save_image, save_image_grid
from dcgan_tf.latent import class_labels, sample_z
from dcgan_tf.model import apply_generator
from dcgan_tf.progress import track
from dcgan_tf.runs import load_run

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
                                   tf.constant(labels[i:i + self.batch_size]), False).numpy()
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
    rng = tf.random.Generator.from_seed(seed)
    labels = sampler.labels(n, label)  # [n, y_dim]
    for start in range(0, n, sampler.batch_size):
        stop = min(start + sampler.batch_size, n)
        z = sample_z(rng, stop - start, sampler.z_dim, sampler.z_dist)
        ids = [int(np.argmax(y)) for y in labels[start:stop]] if sampler.y_dim else [None] * (stop - start)
        yield start, sampler(z, labels[start:stop]), ids


def numbered_name(index: int, n: int, class_id: int | None = None) -> str:
    """`test_00042.png`, or `test_00042_class3.png` for a conditional model; at least five digits."""
    digits = max(5, len(str(n - 1)))
    suffix = "" if class_id is None else f"_class{class_id}"
    return f"test_{index:0{digits}d}{suffix}.png"


def save_test_images(sampler: Sampler, sample_dir: str, *, n: int, seed: int = 0, label: int | None = None,
                     grid_size: int = 64) -> list[str]:
    """Writes n single PNGs and a grid of the first `grid_size` of them (`test_grid.png`).

    Args:
      sampler: the trained generator.
      sample_dir: the run's sample folder.
      n: number of images (any number >= 1; batches of `sampler.batch_size`, the last one smaller).
      seed: seed of z; the same seed gives byte-identical files.
      label: class of every image (conditional models); None spreads the images over all classes.
      grid_size: images in the grid at most.

    Returns:
      The paths written, single images first, the grid last.
    """
    paths, grid = [], []
    batches = track(sample_batches(sampler, n, seed=seed, label=label), n, prefix="generate ", size=lambda b: len(b[1]))
    for start, images, ids in batches:
        for i, (image, class_id) in enumerate(zip(images, ids)):
            paths.append(save_image(image, os.path.join(sample_dir, numbered_name(start + i, n, class_id))))
        grid.extend(images[:max(grid_size - len(grid), 0)])
    paths.append(save_image_grid(np.stack(grid), os.path.join(sample_dir, GRID_NAME),
                                 cols=grid_columns(sampler, label)))
    return paths


def save_sample_grid(sampler: Sampler, path: str, *, n: int, seed: int = 0, label: int | None = None) -> str:
    """Writes one grid of n random samples (one column per class when classes take turns). Returns the path."""
    images = np.concatenate([b for _, b, _ in sample_batches(sampler, n, seed=seed, label=label)])
    return save_image_grid(images, path, cols=grid_columns(sampler, label))


def describe_written(paths: list[str]) -> list[str]:
    """One line per folder written to (`wrote 12 files to samples/run`) and per export, for the CLI."""
    counts = collections.Counter(os.path.dirname(p) for p in paths if not os.path.isdir(p))
    lines = [f"wrote {count} file{'s' * (count != 1)} to {folder}" for folder, count in counts.items()]
    return lines + [f"exported the generator to {p}" for p in paths if os.path.isdir(p)]


def _check_modes(generate_test_images: int, option: int, interpolation: str, sweep_steps: int | None) -> None:
    """FlagError naming the first mode setting out of range, before the checkpoint is loaded."""
    from dcgan_tf.visualize import INTERPOLATIONS, OPTIONS

    if generate_test_images < 0:
        raise FlagError("generate_test_images", f"must be >= 0 (0 = off), got {generate_test_images}")
    if option not in OPTIONS:
        raise FlagError("option", f"must be one of {', '.join(map(str, OPTIONS))}, got {option}")
    if interpolation not in INTERPOLATIONS:
        raise FlagError("interpolation", f"must be one of {', '.join(INTERPOLATIONS)}, got {interpolation!r}")
    if sweep_steps is not None and sweep_steps < 2:
        raise FlagError("sweep_steps", f"must be >= 2, got {sweep_steps}")


def use_trained_model(cfg: TrainConfig, *, generate_test_images: int = 0, label: int | None = None,
                      visualize: bool = False, option: int = 0, interpolation: str = "slerp",
                      sweep_steps: int | None = None, export: bool = False, export_dir: str = "") -> list[str]:
    """Loads the run's latest checkpoint and runs each mode asked for; with none, writes `test_grid.png`.

    Args:
      cfg: this command's settings; the architecture flags must match the saved run's FLAGS.json.
      generate_test_images: write this many single PNGs and a grid (0 = off).
      label: class for every image of a conditional model (None = all classes).
      visualize: run visualization `option` (see visualize.OPTIONS).
      option: 0-5, as visualize.OPTIONS.
      interpolation: "linear" or "slerp", for option 5.
      sweep_steps: values per sweep or interpolation (None = cfg.batch_size).
      export: write the generator as a SavedModel.
      export_dir: where (default: `<checkpoint_dir>/<out_name>/export`).

    Returns:
      The paths written (the export folder for an export).
    """
    from dcgan_tf import visualize as visualize_lib  # it builds on this module

    _check_modes(generate_test_images, option, interpolation, sweep_steps)
    paths = RunPaths.from_config(cfg)
    run = load_run(paths.checkpoint_dir, cfg)
    sampler = Sampler.from_run(run, cfg.batch_size)
    check_label(label, sampler.y_dim)
    written = []
    if generate_test_images:
        written += save_test_images(sampler, paths.sample_dir, n=generate_test_images, seed=cfg.seed,
                                    label=label, grid_size=cfg.sample_num)
    if visualize:
        written += visualize_lib.visualize(sampler, paths.sample_dir, option=option, seed=cfg.seed, label=label,
                                           steps=sweep_steps, sample_num=cfg.sample_num, method=interpolation)
    if export:
        written.append(export_generator(
            sampler, export_dir or os.path.join(paths.checkpoint_dir, "export"),
            source={"checkpoint": run.checkpoint_path, "step": run.step, "out_name": cfg.out_name}))
    if not (generate_test_images or visualize or export):
        written.append(save_sample_grid(sampler, os.path.join(paths.sample_dir, GRID_NAME), n=cfg.sample_num,
                                        seed=cfg.seed, label=label))
    return written
