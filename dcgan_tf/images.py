"""Turning model outputs into files: PNG grids, single images and GIFs, always written atomically."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from dcgan_tf.atomic import atomic_path


def to_uint8(images) -> np.ndarray:
    """[-1, 1] float images [N, H, W, C] (or [H, W, C]) -> uint8 in [0, 255]."""
    images = np.asarray(images, dtype=np.float32)
    return np.clip(np.rint((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def as_written(images) -> np.ndarray:
    """The float32 images in [-1, 1] that a PNG written by `save_image` holds: clipped and rounded to 8 bits."""
    return to_uint8(images).astype(np.float32) / 127.5 - 1.0


def grid_shape(n: int, cols: int | None = None) -> tuple[int, int]:
    """(rows, cols) for n images: `cols` columns, or the most square layout; any n works (no square assert)."""
    if n < 1:
        raise ValueError("a grid needs at least one image")
    cols = cols or int(math.ceil(math.sqrt(n)))
    cols = min(cols, n)
    return int(math.ceil(n / cols)), cols


def make_grid(images, cols: int | None = None, pad: int = 0) -> np.ndarray:
    """Tiles [N, H, W, C] images in [-1, 1] into one uint8 [rows*H, cols*W, C] image; empty cells are white."""
    images = to_uint8(images)
    n, h, w, c = images.shape
    rows, cols = grid_shape(n, cols)
    grid = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad, c), 255, np.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        grid[r * (h + pad):r * (h + pad) + h, k * (w + pad):k * (w + pad) + w] = images[i]
    return grid


def _to_pil(array: np.ndarray) -> Image.Image:
    return Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)


def save_pil_atomic(image: Image.Image, path: str, **kwargs) -> None:
    """Saves a PIL image to a temporary file beside `path` (same extension) and renames it into place."""
    with atomic_path(path) as tmp:
        image.save(tmp, **kwargs)


def save_image_grid(images, path: str, cols: int | None = None) -> str:
    """Writes [N, H, W, C] images in [-1, 1] as one PNG grid. Returns the path."""
    save_pil_atomic(_to_pil(make_grid(images, cols)), path)
    return path


def save_image(image, path: str) -> str:
    """Writes one [H, W, C] image in [-1, 1] as PNG. Returns the path."""
    save_pil_atomic(_to_pil(to_uint8(image)), path)
    return path


def save_gif(frames, path: str, duration_ms: int = 100, loop: int = 0) -> str:
    """Writes an animated GIF from uint8 frames [T, H, W, C] (e.g. grids from make_grid). Returns the path."""
    pil = [_to_pil(np.asarray(f)) for f in frames]
    save_pil_atomic(pil[0], path, save_all=True, append_images=pil[1:], duration=duration_ms, loop=loop,
                 format="GIF")
    return path
