"""Using a trained model (`main.py` without `--train`): N single test images, sample grids, and the dispatcher.

`use_trained_model(cfg, ...)` loads the run's latest checkpoint once and runs every mode asked for:
`--generate_test_images N` (here), `--visualize --option K` (visualize.py) and `--export` (export.py); with
none of them it writes one grid of random samples, as carpedm20 did. The library functions take a
`sampling.Sampler` and keyword-only settings and return the paths they wrote.
"""

from __future__ import annotations

import collections
import os

import numpy as np

from dcgan_tf import visualize as visualize_lib
from dcgan_tf.config import ModeConfig, RunPaths, TrainConfig
from dcgan_tf.export import export_generator
from dcgan_tf.images import save_image, save_image_grid
from dcgan_tf.progress import track
from dcgan_tf.runs import load_run
from dcgan_tf.sampling import GRID_NAME, Sampler, check_label, grid_columns, sample_batches, save_random_grid


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


def describe_written(paths: list[str]) -> list[str]:
    """One line per folder written to (`wrote 12 files to samples/run`) and per export, for the CLI."""
    counts = collections.Counter(os.path.dirname(p) for p in paths if not os.path.isdir(p))
    lines = [f"wrote {count} file{'s' * (count != 1)} to {folder}" for folder, count in counts.items()]
    return lines + [f"exported the generator to {p}" for p in paths if os.path.isdir(p)]


def use_trained_model(cfg: TrainConfig, *, generate_test_images: int = 0, label: int | None = None,
                      visualize: bool = False, option: int = 0, interpolation: str = "slerp",
                      sweep_steps: int | None = None, export: bool = False, export_dir: str = "") -> list[str]:
    """Loads the run's latest checkpoint and runs each mode asked for; with none, writes `test_grid.png`.

    Args:
      cfg: this command's settings; the architecture flags must match the saved run's FLAGS.json.
      generate_test_images: write this many single PNGs and a grid (0 = off).
      label: class for every image of a conditional model (None = all classes).
      visualize: run visualization `option` (see config.VISUALIZE_OPTIONS).
      option: 0-5, as config.VISUALIZE_OPTIONS.
      interpolation: "linear" or "slerp", for option 5.
      sweep_steps: values per sweep or interpolation (None = cfg.batch_size).
      export: write the generator as a SavedModel.
      export_dir: where (default: `<checkpoint_dir>/<out_name>/export`).

    Returns:
      The paths written (the export folder for an export).
    """
    ModeConfig(generate_test_images=generate_test_images, label=label, visualize=visualize, option=option,
               interpolation=interpolation, sweep_steps=sweep_steps, export=export, export_dir=export_dir).validate()
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
        written.append(save_random_grid(sampler, os.path.join(paths.sample_dir, GRID_NAME), n=cfg.sample_num,
                                        seed=cfg.seed, label=label))
    return written
