"""Pictures of the latent space (`--visualize --option K`): carpedm20's five options without their bugs, plus
interpolation.

Every function takes a `sampling.Sampler` and the run's sample folder and returns the paths it wrote. Sweeps
cover the run's z range (`latent.z_range`: [-1, 1], [0, 1], or +-2 for normal01) in `steps` evenly spaced
values, both ends included; the number of steps is a setting, not the batch size baked into a graph. A
conditional model gets one row (or one image per frame) per class, or only `label`'s.

Files (S = steps, Z = z_dim):
  0 `test_grid.png`: random samples.
  1 `sweep_dim_<d>.png`, Z files: one base z, dimension d swept over S values.
  2 `sweep_random_dim_<d>.gif`, min(10, Z) files: random dimensions swept around a small random base z.
  3 `sweep_center_dim_<d>.gif`, Z files: dimension d swept from the centre of the z range (0; 0.5 for
    uniform_unsigned).
  4 `sweep_all_dims.gif`: frames go there and back (2S - 2); each is a grid of every dimension's sweep.
  5 `interpolation_<method>.png` and `.gif`: linear or spherical paths between random z pairs.
Pillow merges a GIF frame identical to the previous one, so a dimension the generator ignores gives fewer frames.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from dcgan_tf.config import INTERPOLATIONS, VISUALIZE_OPTIONS
from dcgan_tf.errors import FlagError
from dcgan_tf.images import make_grid, save_gif, save_image_grid, to_uint8
from dcgan_tf.latent import sample_z, z_range
from dcgan_tf.sampling import GRID_NAME, Sampler, save_random_grid

RANDOM_DIMS = 10  # option 2: dimensions swept, at most
BASE_SPREAD = 0.1  # option 2: the base z lies within +-BASE_SPREAD * (range width) of the centre
INTERPOLATION_ROWS = 8  # option 5: z pairs of an unconditional model (or of one --label)
FRAME_MS = 100  # GIF frame duration


# --------------------------------------------------------------------------------------------------------------
# Latent paths


def sweep_values(z_dist: str, steps: int) -> np.ndarray:
    """`steps` evenly spaced values [S] over the z range of `z_dist`, both ends included."""
    low, high = z_range(z_dist)
    return np.linspace(low, high, steps, dtype=np.float32)


def center_z(z_dist: str, z_dim: int) -> np.ndarray:
    """The centre of the z range [z_dim]: 0, or 0.5 for uniform_unsigned."""
    return np.full(z_dim, np.mean(z_range(z_dist)), np.float32)


def lerp(p: np.ndarray, q: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Points [T, D] on the straight line from p [D] to q [D] at fractions t [T]."""
    t = np.asarray(t, np.float32)[:, None]
    return ((1 - t) * p + t * q).astype(np.float32)


def slerp(p: np.ndarray, q: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Points [T, D] on the great circle from p to q (norms interpolated too); lerp when p and q are (anti)parallel.

    Random high-dimensional z lie near a sphere, where the straight line between two of them passes through
    unlikely, low-norm points; slerp stays at typical norms (White, Sampling Generative Networks, 2016).
    """
    cos = np.dot(p, q) / max(np.linalg.norm(p) * np.linalg.norm(q), 1e-12)
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if np.sin(omega) < 1e-6:
        return lerp(p, q, t)
    t = np.asarray(t, np.float64)[:, None]
    return ((np.sin((1 - t) * omega) * p + np.sin(t * omega) * q) / np.sin(omega)).astype(np.float32)


def ping_pong(n: int) -> list[int]:
    """Frame indices there and back without repeating the ends: 0..n-1, n-2..1 (2n - 2 frames)."""
    return list(range(n)) + list(range(n - 2, 0, -1))


# --------------------------------------------------------------------------------------------------------------
# Helpers


def row_classes(sampler: Sampler, label: int | None) -> list[int | None]:
    """The class of each row: every class, only `label`, or [None] for an unconditional model."""
    if not sampler.y_dim:
        return [None]
    return [label] if label is not None else list(range(sampler.y_dim))


def generate_rows(sampler: Sampler, z: np.ndarray, classes: Sequence[int | None]) -> np.ndarray:
    """Images [K, S, H, W, C]: the same z [S, z_dim] once per class (row)."""
    steps = len(z)
    ids = np.repeat([c or 0 for c in classes], steps)
    labels = np.eye(sampler.y_dim, dtype=np.float32)[ids] if sampler.y_dim else np.zeros((len(ids), 0), np.float32)
    images = sampler(np.tile(z, (len(classes), 1)), labels)  # [K*S, H, W, C], class-major
    return images.reshape((len(classes), steps) + images.shape[1:])


def sweep(base: np.ndarray, dim: int, values: np.ndarray) -> np.ndarray:
    """z [S, z_dim]: `base` with dimension `dim` set to each of `values`."""
    z = np.repeat(base[None].astype(np.float32), len(values), axis=0)
    z[:, dim] = values
    return z


def rows_frames(rows: np.ndarray, order: Sequence[int]) -> list[np.ndarray]:
    """GIF frames: frame t shows column t of images [K, S, H, W, C] (K images side by side)."""
    return [make_grid(rows[:, t], cols=rows.shape[0]) for t in order]


def dim_name(dim: int, z_dim: int) -> str:
    return f"{dim:0{max(3, len(str(z_dim - 1)))}d}"


def _dims(sampler: Sampler, dims: Sequence[int] | None) -> list[int]:
    return list(range(sampler.z_dim)) if dims is None else [int(d) for d in dims]


# --------------------------------------------------------------------------------------------------------------
# Options


def save_dimension_sweeps(sampler: Sampler, sample_dir: str, *, steps: int, seed: int = 0, label: int | None = None,
                          dims: Sequence[int] | None = None) -> list[str]:
    """Option 1: for each dimension, `sweep_dim_<d>.png` sweeping it over S values from one random base z.

    The same base z serves every dimension, so the files differ only in which dimension moves (carpedm20
    drew a new random z per image, which hid the sweep).
    """
    base = sample_z(tf.random.Generator.from_seed(seed), 1, sampler.z_dim, sampler.z_dist).numpy()[0]
    values, classes = sweep_values(sampler.z_dist, steps), row_classes(sampler, label)
    paths = []
    for d in _dims(sampler, dims):
        rows = generate_rows(sampler, sweep(base, d, values), classes)
        path = os.path.join(sample_dir, f"sweep_dim_{dim_name(d, sampler.z_dim)}.png")
        paths.append(save_image_grid(rows.reshape((-1,) + rows.shape[2:]), path,
                                     cols=steps if len(classes) > 1 else None))
    return paths


def save_random_dimension_gifs(sampler: Sampler, sample_dir: str, *, steps: int, seed: int = 0,
                               label: int | None = None, count: int = RANDOM_DIMS) -> list[str]:
    """Option 2: `sweep_random_dim_<d>.gif` for min(count, z_dim) distinct random dimensions.

    Each sweeps its dimension over S values (S frames) from its own base z drawn near the centre of the range.
    """
    rng = tf.random.Generator.from_seed(seed)
    dims = np.argsort(rng.uniform([sampler.z_dim]).numpy())[:min(count, sampler.z_dim)]
    low, high = z_range(sampler.z_dist)
    values, classes = sweep_values(sampler.z_dist, steps), row_classes(sampler, label)
    paths = []
    for d in dims:
        spread = BASE_SPREAD * (high - low) * rng.uniform([sampler.z_dim], -1.0, 1.0).numpy()
        rows = generate_rows(sampler, sweep(center_z(sampler.z_dist, sampler.z_dim) + spread, d, values), classes)
        path = os.path.join(sample_dir, f"sweep_random_dim_{dim_name(d, sampler.z_dim)}.gif")
        paths.append(save_gif(rows_frames(rows, range(steps)), path, duration_ms=FRAME_MS))
    return paths


def save_dimension_gifs(sampler: Sampler, sample_dir: str, *, steps: int, label: int | None = None,
                        dims: Sequence[int] | None = None) -> list[str]:
    """Option 3: `sweep_center_dim_<d>.gif` per dimension, S frames sweeping it from the centre z."""
    base, values = center_z(sampler.z_dist, sampler.z_dim), sweep_values(sampler.z_dist, steps)
    classes, paths = row_classes(sampler, label), []
    for d in _dims(sampler, dims):
        rows = generate_rows(sampler, sweep(base, d, values), classes)
        path = os.path.join(sample_dir, f"sweep_center_dim_{dim_name(d, sampler.z_dim)}.gif")
        paths.append(save_gif(rows_frames(rows, range(steps)), path, duration_ms=FRAME_MS))
    return paths


def save_merged_sweep_gif(sampler: Sampler, sample_dir: str, *, steps: int, label: int | None = None,
                          dims: Sequence[int] | None = None) -> list[str]:
    """Option 4: `sweep_all_dims.gif`, 2S - 2 frames there and back; frame t is a square grid of every
    dimension at step t. A conditional model shows one class (`label`, default 0): every frame would otherwise
    hold z_dim x 10 images (a 70 MB GIF for z_dim 100 at 28x28).
    """
    base, values = center_z(sampler.z_dist, sampler.z_dim), sweep_values(sampler.z_dist, steps)
    label = label if label is not None or not sampler.y_dim else 0
    classes, dims = row_classes(sampler, label), _dims(sampler, dims)
    # [D, K, S, H, W, C] as uint8
    sweeps = np.stack([to_uint8(generate_rows(sampler, sweep(base, d, values), classes)) for d in dims])
    cells = np.moveaxis(sweeps, 0, 1)  # [K, D, S, H, W, C], K = 1 class
    frames = [make_grid(_from_uint8(cells[:, :, t].reshape((-1,) + cells.shape[3:]))) for t in ping_pong(steps)]
    return [save_gif(frames, os.path.join(sample_dir, "sweep_all_dims.gif"), duration_ms=FRAME_MS)]


def _from_uint8(images: np.ndarray) -> np.ndarray:
    """uint8 images back to [-1, 1] floats, exactly (make_grid converts them to the same bytes again)."""
    return images.astype(np.float32) / 127.5 - 1.0


def save_interpolation(sampler: Sampler, sample_dir: str, *, steps: int, seed: int = 0, label: int | None = None,
                       method: str = "slerp", rows: int = INTERPOLATION_ROWS) -> list[str]:
    """Option 5: `interpolation_<method>.png` (a row per path, S columns from one end to the other) and
    `interpolation_<method>.gif` (2S - 2 frames there and back, the paths side by side).

    An unconditional model (or one --label) gets `rows` random z pairs; a conditional one gets one pair
    walked once per class.
    """
    if method not in INTERPOLATIONS:
        raise FlagError("interpolation", f"must be one of {', '.join(INTERPOLATIONS)}, got {method!r}")
    classes = row_classes(sampler, label)
    ends = sample_z(tf.random.Generator.from_seed(seed), 2 * (rows if len(classes) == 1 else 1), sampler.z_dim,
                    sampler.z_dist).numpy()  # [2P, z_dim]: pairs (p, q)
    t = np.linspace(0.0, 1.0, steps)
    path_fn = slerp if method == "slerp" else lerp
    images = np.concatenate([generate_rows(sampler, path_fn(p, q, t), classes) for p, q in zip(ends[::2], ends[1::2])])
    png = save_image_grid(images.reshape((-1,) + images.shape[2:]),
                          os.path.join(sample_dir, f"interpolation_{method}.png"), cols=steps)
    gif = save_gif(rows_frames(images, ping_pong(steps)), os.path.join(sample_dir, f"interpolation_{method}.gif"),
                   duration_ms=FRAME_MS)
    return [png, gif]


def visualize(sampler: Sampler, sample_dir: str, *, option: int, seed: int = 0, label: int | None = None,
              steps: int | None = None, sample_num: int = 64, method: str = "slerp") -> list[str]:
    """Runs one visualization option (see VISUALIZE_OPTIONS and the module docstring). Returns the paths written.

    Args:
      sampler: the trained generator.
      sample_dir: the run's sample folder; every file goes there.
      option: 0-5.
      seed: seed of every random z and dimension choice.
      label: show only this class of a conditional model (None = one row per class).
      steps: values per sweep or interpolation (None = the sampler's batch size, as carpedm20).
      sample_num: images in option 0's grid.
      method: "linear" or "slerp", for option 5.
    """
    if option == 0:
        return [save_random_grid(sampler, os.path.join(sample_dir, GRID_NAME), n=sample_num, seed=seed, label=label)]
    steps = steps or sampler.batch_size
    if steps < 2:
        raise FlagError("sweep_steps", f"a sweep needs at least 2 steps, got {steps} (it defaults to --batch_size)")
    if option == 1:
        return save_dimension_sweeps(sampler, sample_dir, steps=steps, seed=seed, label=label)
    if option == 2:
        return save_random_dimension_gifs(sampler, sample_dir, steps=steps, seed=seed, label=label)
    if option == 3:
        return save_dimension_gifs(sampler, sample_dir, steps=steps, label=label)
    if option == 4:
        return save_merged_sweep_gif(sampler, sample_dir, steps=steps, label=label)
    if option == 5:
        return save_interpolation(sampler, sample_dir, steps=steps, seed=seed, label=label, method=method)
    raise FlagError("option", f"must be one of {', '.join(map(str, VISUALIZE_OPTIONS))}, got {option}")
