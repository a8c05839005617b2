"""Decoding images with Pillow, the same way for training, inpainting and face preparation.

Every image is prepared once on the host: EXIF rotation applied, alpha composited on white, palette / 16-bit
/ CMYK converted, then an optional centre crop of `input_height x input_width` and a resize to
`output_height x output_width` (`prepare_file`, `prepare_array`). `load_image` scales the pixels with
x / 127.5 - 1 to [-1, 1]; `decode_all` prepares many in a thread pool, skipping (and naming) the files that
cannot be used. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import concurrent.futures
import fnmatch
import itertools
import os
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from absl import logging
from PIL import Image, ImageOps

from dcgan_tf.errors import DcganError

GRAYSCALE_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
RESAMPLE = Image.Resampling.BILINEAR  # carpedm20 used scipy.misc.imresize, bilinear by default
SMALLER_THAN_CROP = "smaller than the crop"
_CHUNK = 1024  # images per thread-pool round: bounds the memory of results waiting to be copied


class Unusable(Exception):
    """A file that is readable but cannot be used as configured (e.g. smaller than the crop)."""


def load_image(path: str, *, c_dim: int, output_height: int, output_width: int, crop: bool = False,
               input_height: int | None = None, input_width: int | None = None) -> np.ndarray:
    """Reads one image file and prepares it exactly as training does.

    Args:
      path: an image file Pillow can read.
      c_dim: 1 (grayscale) or 3 (RGB) channels out.
      output_height: height out.
      output_width: width out.
      crop: centre-crop `input_height x input_width` before resizing; otherwise resize the whole image.
      input_height: crop height (None: output_height).
      input_width: crop width (None: input_height).

    Returns:
      float32 [output_height, output_width, c_dim] in [-1, 1].

    Raises:
      DcganError: naming the file, when it cannot be read or is smaller than the crop.
    """
    crop_hw = crop_size(crop, input_height or output_height, input_width)
    try:
        pixels = prepare_file(path, c_dim=c_dim, size=(output_height, output_width), crop=crop_hw)
    except Exception as e:  # any decoder failure becomes one line naming the file
        raise DcganError(f"{path}: {skip_reason(e)}") from e
    return _to_float(pixels)


def list_image_files(folder: str, pattern: str) -> list[str]:
    """Files under `folder` (sub-folders too) whose name matches `pattern`, sorted.

    Args:
      folder: the folder to search.
      pattern: a shell pattern such as "*.jpg", matched case-insensitively against the file name (or
        against the path relative to `folder` when it contains a "/").

    Returns:
      Sorted paths of the matching files.
    """
    pattern = pattern.lower()
    on_relative_path = "/" in pattern
    found, seen_dirs = [], set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen_dirs:  # a symlink loop
            dirs[:] = []
            continue
        seen_dirs.add(real)
        for name in files:
            path = os.path.join(root, name)
            key = os.path.relpath(path, folder) if on_relative_path else name
            if fnmatch.fnmatchcase(key.lower(), pattern):
                found.append(path)
    return sorted(found)


def detect_channels(paths: list[str]) -> int:
    """1 if every readable image is grayscale, else 3; reads only the file headers.

    Args:
      paths: image files; unreadable ones are ignored here (they are skipped when decoding).

    Returns:
      1 or 3.
    """
    with concurrent.futures.ThreadPoolExecutor(num_workers()) as pool:
        for start in range(0, len(paths), _CHUNK):
            modes = pool.map(_header_mode, paths[start:start + _CHUNK])
            if any(mode is not None and mode not in GRAYSCALE_MODES for mode in modes):
                return 3  # one colour image decides it; no need to scan the rest
    return 1


def prepare_file(path: str, *, c_dim: int, size: tuple[int, int],
                  crop: tuple[int, int] | None) -> np.ndarray:
    """One image file -> uint8 [H, W, c_dim]; raises on unreadable files and Unusable when too small."""
    if os.path.getsize(path) == 0:
        raise Unusable("empty file (0 bytes)")
    with Image.open(path) as img:
        img.seek(0)  # the first frame of a GIF
        return _prepare_pil(to_l_or_rgb(ImageOps.exif_transpose(img)), c_dim=c_dim, size=size, crop=crop)


def prepare_array(pixels: np.ndarray, *, c_dim: int, size: tuple[int, int],
                   crop: tuple[int, int] | None) -> np.ndarray:
    """A decoded uint8 [H, W, C] image (C 1, 3 or 4) -> uint8 [H, W, c_dim], as `prepare_file`."""
    pixels = pixels[..., 0] if pixels.shape[-1] == 1 else pixels
    return _prepare_pil(to_l_or_rgb(Image.fromarray(pixels)), c_dim=c_dim, size=size, crop=crop)


def to_l_or_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> "L" or "RGB": alpha composited on white, 16 bit scaled to 8, palette expanded."""
    mode = img.mode
    if mode in ("L", "RGB"):
        return img
    if mode.startswith("I") or mode == "F":
        return _to_8bit(img)
    if mode == "1":
        return img.convert("L")
    if mode in ("LA", "La", "RGBA", "RGBa", "PA") or (mode == "P" and "transparency" in img.info):
        return _on_white(img)
    return img.convert("RGB")  # P, CMYK, YCbCr, RGBX, ...


def _to_8bit(img: Image.Image) -> Image.Image:
    """16-bit (I;16*, I) images: 0..65535 -> 0..255; float (F) images: clipped to 0..255."""
    pixels = np.asarray(img)
    if img.mode == "F":
        return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "L")
    pixels = np.clip(pixels.astype(np.int64), 0, 65535)
    return Image.fromarray(((pixels * 255 + 32767) // 65535).astype(np.uint8), "L")


def _on_white(img: Image.Image) -> Image.Image:
    """Composites an image with alpha on an opaque white background; grayscale stays grayscale."""
    white = Image.new("RGBA", img.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(white, img.convert("RGBA")).convert("RGB")
    return rgb.convert("L") if img.mode in ("LA", "La") else rgb


def _prepare_pil(img: Image.Image, *, c_dim: int, size: tuple[int, int],
                 crop: tuple[int, int] | None) -> np.ndarray:
    """An "L"/"RGB" image -> optional centre crop -> resize to `size` (H, W) -> uint8 [H, W, c_dim]."""
    img = img.convert("L" if c_dim == 1 else "RGB")
    if crop is not None:
        crop_h, crop_w = crop
        width, height = img.size
        if height < crop_h or width < crop_w:
            raise Unusable(f"{SMALLER_THAN_CROP} {crop_h}x{crop_w} (the image is {height}x{width})")
        top, left = (height - crop_h) // 2, (width - crop_w) // 2
        img = img.crop((left, top, left + crop_w, top + crop_h))
    height, width = size
    if img.size != (width, height):
        img = img.resize((width, height), RESAMPLE)
    return np.asarray(img, np.uint8).reshape(height, width, c_dim)


def _to_float(pixels: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in [-1, 1] (the same arithmetic as the tf.data map)."""
    return pixels.astype(np.float32) / np.float32(127.5) - np.float32(1.0)


def _header_mode(path: str) -> str | None:
    """The Pillow mode from the file header, without decoding pixels; None if unreadable."""
    try:
        with Image.open(path) as img:
            return img.mode
    except Exception:  # unreadable files are reported when decoding
        return None


def displayed_size(path: str) -> tuple[int, int]:
    """(width, height) as the image is shown (EXIF rotation applied), from the header alone; raises if unreadable."""
    with Image.open(path) as img:
        width, height = img.size
        if img.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # EXIF orientation swaps width and height
            width, height = height, width
    return width, height


def header_problem(path: str, *, crop: tuple[int, int] | None) -> str:
    """Why a file cannot be used, judged from its header alone ("" if it looks usable)."""
    try:
        if os.path.getsize(path) == 0:
            return "empty file (0 bytes)"
        width, height = displayed_size(path)
    except Exception as e:
        return skip_reason(e)
    if crop is not None and (height < crop[0] or width < crop[1]):
        return f"{SMALLER_THAN_CROP} {crop[0]}x{crop[1]} (the image is {height}x{width})"
    return ""


def skip_reason(e: Exception) -> str:
    """A short, one-line reason for a skipped file."""
    if isinstance(e, Unusable):
        return str(e)
    text = (str(e).strip().splitlines() or [""])[0][:160]
    return f"unreadable ({type(e).__name__}: {text})" if text else f"unreadable ({type(e).__name__})"


def decode_all(items: Iterable[tuple[str, Any, int]], needed: int, prepare: Callable[[Any], np.ndarray],
                shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """Prepares images in a thread pool until `needed` succeed or the items run out.

    Args:
      items: (name for messages, input of `prepare`, label) triples.
      needed: how many images to keep.
      prepare: input -> uint8 array of `shape`; raises for an unusable input.
      shape: [H, W, C] of one prepared image.

    Returns:
      uint8 [n, H, W, C] images, int64 [n] labels (n <= needed) and the skipped (name, reason) pairs.
    """
    if needed > 10_000:
        logging.info("Decoding %d images with %d threads", needed, num_workers())
    images = np.empty((needed, *shape), np.uint8)
    labels = np.empty((needed,), np.int64)
    skipped, n, items = [], 0, iter(items)
    with concurrent.futures.ThreadPoolExecutor(num_workers()) as pool:
        while n < needed:
            chunk = list(itertools.islice(items, min(needed - n, _CHUNK)))
            if not chunk:
                break
            for (name, _, label), result in zip(chunk, pool.map(_try(prepare), [c[1] for c in chunk])):
                if isinstance(result, str):
                    skipped.append((name, result))
                else:
                    images[n], labels[n] = result, label
                    n += 1
    return images[:n], labels[:n], skipped


def _try(prepare: Callable[[Any], np.ndarray]) -> Callable[[Any], np.ndarray | str]:
    """Wraps `prepare` to return the reason string instead of raising."""
    def call(x: Any) -> np.ndarray | str:
        try:
            return prepare(x)
        except Exception as e:  # a bad file is skipped, never a crash
            return skip_reason(e)
    return call


def crop_size(crop: bool, input_height: int, input_width: int | None) -> tuple[int, int] | None:
    return (input_height, input_width or input_height) if crop else None


def num_workers() -> int:
    """Decoder threads: Pillow releases the GIL while decoding and resizing, so one per core and a spare."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return min(32, cores + 1)
