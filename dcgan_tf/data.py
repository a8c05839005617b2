"""Training data: image folders, idx files (MNIST, Fashion-MNIST) and TensorFlow Datasets, as `tf.data`.

Every image is prepared once on the host with Pillow, the same way for training and for the inpainting tool
(`load_image`): EXIF rotation applied, alpha composited on white, palette / 16-bit / CMYK converted, then an
optional centre crop of `input_height x input_width` and a resize to `output_height x output_width`. Pixels
are scaled with x / 127.5 - 1 to [-1, 1].

When the prepared set fits in memory (`MAX_CACHE_BYTES`) it is decoded by a thread pool into one uint8
array and each epoch gathers shuffled batches from it, so the input never waits on a decoder. Larger sets
are streamed: the file list is reshuffled each epoch and decoded by parallel `tf.numpy_function` calls.

Example:
  info = load_train_data(TrainConfig(dataset="emoji-google-64", data_dir="../shared/data",
                                     input_fname_pattern="*.png"))
  for real_images, y in info.dataset:  # [B, H, W, c_dim] in [-1, 1], [B, y_dim]
      ...
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import fnmatch
import functools
import gzip
import itertools
import math
import os
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import tensorflow as tf
from absl import logging
from PIL import Image, ImageOps

from dcgan_tf.config import LABELLED_DATASETS, TrainConfig
from dcgan_tf.errors import DcganError, FlagError

# Above this estimated size of the prepared uint8 images, stream from the files instead of caching them.
MAX_CACHE_BYTES = 4 << 30
# Where Debian's dataset-fashion-mnist package installs the idx files.
SYSTEM_DATASETS_DIR = "/usr/share/datasets"
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
GRAYSCALE_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
RESAMPLE = Image.Resampling.BILINEAR  # carpedm20 used scipy.misc.imresize, bilinear by default
SMALLER_THAN_CROP = "smaller than the crop"
_CHUNK = 1024  # images per thread-pool round: bounds the memory of results waiting to be copied


@dataclasses.dataclass
class DataInfo:
    """A training set ready for the training loop.

    Attributes:
      dataset: one pass = one epoch of (images, labels): images float32 [B, H, W, C] in [-1, 1], labels
        float32 [B, y_dim] one-hot ([B, 0] when unconditional); the batch dimension B is static.
      num_examples: images used per epoch (after the --train_size cap).
      steps_per_epoch: num_examples // (batch_size * d_steps) (the remainder is dropped).
      c_dim: 1 or 3, detected once from the data.
      y_dim: 10 for labelled conditional data, else 0.
      skipped: (file, reason) for files that could not be used.

    A folder too large for memory is streamed and only its file headers are checked up front; a file that
    then fails to decode is dropped, so an epoch can be a batch or so shorter than steps_per_epoch.
    """

    dataset: tf.data.Dataset
    num_examples: int
    steps_per_epoch: int
    c_dim: int
    y_dim: int
    skipped: list[tuple[str, str]]


class _Unusable(Exception):
    """A file that is readable but cannot be used as configured (e.g. smaller than the crop)."""


# ----------------------------------------------------------------------------------------------------------
# Public entry points


def load_train_data(cfg: TrainConfig, *, seed: int | None = None) -> DataInfo:
    """Loads the training set named by `cfg.dataset` as a shuffled, batched `tf.data.Dataset`.

    Looks, in order, for idx files (mnist, fashion_mnist; see `find_idx_folder`), the image folder
    `cfg.data_dir/cfg.dataset` (sub-folders too) and a TensorFlow Datasets dataset of that name.

    Args:
      cfg: the run's settings (dataset, data_dir, input_fname_pattern, sizes, crop, flip, train_size,
        batch_size, conditional).
      seed: seeds the subset kept by --train_size, the per-epoch shuffles and the flips; None: `cfg.seed`.

    Returns:
      The dataset and what the model needs to know about it.

    Raises:
      FlagError: the folder or dataset does not exist, no file matches the pattern, too few usable images
        for one batch, or every image is smaller than the crop.
      DcganError: no file could be read, or an idx file is malformed.
    """
    seed = cfg.seed if seed is None else seed
    folder = os.path.join(cfg.data_dir, cfg.dataset)
    labelled = cfg.dataset.lower() in LABELLED_DATASETS
    if labelled and (find_idx_folder(cfg.dataset, cfg.data_dir) or not os.path.isdir(folder)):
        info = _load_idx_data(cfg, seed)
    elif os.path.isdir(folder):
        info = _load_folder_data(cfg, folder, seed)
    else:
        info = _load_tfds_data(cfg, folder, seed)
    logging.info("Training data %s: %d images per epoch (%d steps of %d), c_dim %d, y_dim %d, %d skipped",
                 cfg.dataset, info.num_examples, info.steps_per_epoch, cfg.batch_size, info.c_dim,
                 info.y_dim, len(info.skipped))
    return info


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
    crop_size = _crop_size(crop, input_height or output_height, input_width)
    try:
        pixels = _prepare_file(path, c_dim=c_dim, size=(output_height, output_width), crop=crop_size)
    except Exception as e:  # any decoder failure becomes one line naming the file
        raise DcganError(f"{path}: {_reason(e)}") from e
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
    with concurrent.futures.ThreadPoolExecutor(_num_workers()) as pool:
        for start in range(0, len(paths), _CHUNK):
            modes = pool.map(_header_mode, paths[start:start + _CHUNK])
            if any(mode is not None and mode not in GRAYSCALE_MODES for mode in modes):
                return 3  # one colour image decides it; no need to scan the rest
    return 1


def find_idx_folder(name: str, data_dir: str) -> str | None:
    """The first folder holding all four idx files of `name` (raw or .gz).

    Searches `data_dir/<name>`, `data_dir/<name with _ as ->` and `/usr/share/datasets/<fashion-mnist|mnist>`,
    never `data_dir` itself: MNIST and Fashion-MNIST files have the same names, so loose ones could be either.

    Args:
      name: "mnist" or "fashion_mnist".
      data_dir: the --data_dir folder.

    Returns:
      The folder, or None when no candidate has all four files.
    """
    for folder in _idx_candidates(name, data_dir):
        if all(_idx_path(folder, base) for pair in IDX_FILES.values() for base in pair):
            return folder
    return None


def load_idx(name: str, data_dir: str, split: str = "all") -> tuple[np.ndarray, np.ndarray]:
    """Loads MNIST-style idx images and labels, or downloads them with tensorflow_datasets.

    Args:
      name: "mnist" or "fashion_mnist".
      data_dir: the --data_dir folder (see `find_idx_folder` for where the files are looked up).
      split: "train" (60,000), "test" (10,000) or "all" (train + test concatenated, 70,000, as carpedm20).

    Returns:
      Images uint8 [N, 28, 28, 1] and labels int64 [N].

    Raises:
      DcganError: an idx file is malformed, or the data is neither on disk nor downloadable.
    """
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    parts = ("train", "test") if split == "all" else (split,)
    folder = find_idx_folder(name, data_dir)
    if folder is None:
        searched = ", ".join(_idx_candidates(name, data_dir))
        return _load_tfds_arrays(name.lower(), "+".join(parts), f"no idx files in {searched}")
    pairs = [_read_idx_pair(folder, part) for part in parts]
    return np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])


# ----------------------------------------------------------------------------------------------------------
# Sources: image folders, idx files, TensorFlow Datasets


def _load_folder_data(cfg: TrainConfig, folder: str, seed: int) -> DataInfo:
    """An image folder: headers scanned for c_dim, then decoded into memory or streamed."""
    if cfg.conditional:
        raise FlagError("conditional", f"the images in {folder} have no labels; use --noconditional "
                                       "(labels come only with mnist, fashion_mnist or a TFDS dataset)")
    paths = _matching_files(folder, cfg.input_fname_pattern)
    c_dim = detect_channels(paths)
    paths = [paths[i] for i in np.random.default_rng(seed).permutation(len(paths))]  # seeded subset
    shape = (cfg.output_height, cfg.output_width, c_dim)
    prepare = functools.partial(_prepare_file, c_dim=c_dim, size=shape[:2], crop=_cfg_crop(cfg))
    needed = _cap(len(paths), cfg.train_size)
    if needed * math.prod(shape) > MAX_CACHE_BYTES:
        return _stream_folder_data(cfg, folder, paths, prepare, shape, seed)
    images, labels, skipped = _decode_all(((p, p, -1) for p in paths), needed, prepare, shape)
    return _in_memory(cfg, folder, images, labels, skipped, c_dim=c_dim, y_dim=0, seed=seed)


def _stream_folder_data(cfg: TrainConfig, folder: str, paths: list[str], prepare: Callable,
                        shape: tuple[int, int, int], seed: int) -> DataInfo:
    """A folder too large for memory: headers checked up front, pixels decoded each epoch."""
    logging.info("%s: about %.1f GiB prepared, more than fits in memory; streaming from the files",
                 folder, _cap(len(paths), cfg.train_size) * math.prod(shape) / 2**30)
    crop = _cfg_crop(cfg)
    with concurrent.futures.ThreadPoolExecutor(_num_workers()) as pool:
        problems = list(pool.map(functools.partial(_header_problem, crop=crop), paths))
    skipped = [(p, why) for p, why in zip(paths, problems, strict=True) if why]
    usable = [p for p, why in zip(paths, problems, strict=True) if not why][:_cap(len(paths), cfg.train_size)]
    _check_usable(len(usable), skipped, cfg, folder)
    _warn_skipped(skipped, len(paths), folder)
    elements = tf.data.Dataset.from_tensor_slices((usable, np.full(len(usable), -1, np.int64)))
    dataset = _streamed_batches(elements, len(usable), lambda p: prepare(os.fsdecode(p)), shape, cfg, seed, 0)
    return DataInfo(dataset, len(usable), len(usable) // cfg.images_per_step, shape[2], 0, skipped)


def _load_idx_data(cfg: TrainConfig, seed: int) -> DataInfo:
    """MNIST / Fashion-MNIST idx files (train + test, or train only with --idx_split train), resized only when
    the output size is not 28x28."""
    images, labels = load_idx(cfg.dataset, cfg.data_dir, cfg.idx_split)
    needed = _cap(len(images), cfg.train_size)
    keep = np.random.default_rng(seed).permutation(len(images))[:needed]  # seeded subset
    images, labels, skipped = images[keep], labels[keep], []
    crop = _cfg_crop(cfg)
    if crop or images.shape[1:3] != (cfg.output_height, cfg.output_width):
        shape = (cfg.output_height, cfg.output_width, 1)
        prepare = functools.partial(_prepare_array, c_dim=1, size=shape[:2], crop=crop)
        items = ((f"{cfg.dataset}[{i}]", img, lab) for i, (img, lab) in enumerate(zip(images, labels)))
        images, labels, skipped = _decode_all(items, needed, prepare, shape)
    where = find_idx_folder(cfg.dataset, cfg.data_dir) or f"tfds:{cfg.dataset}"
    return _in_memory(cfg, where, images, labels, skipped, c_dim=1, y_dim=cfg.y_dim, seed=seed)


def _load_tfds_data(cfg: TrainConfig, folder: str, seed: int) -> DataInfo:
    """A TensorFlow Datasets dataset named --dataset (downloaded on first use); feature `image`, `label`."""
    searched = (f"no folder {folder} (check --data_dir {cfg.data_dir!r} and --dataset {cfg.dataset!r})")
    split = "train"
    hint = (f"; make the folder: put your images in {folder}, or crop faces from photos with "
            f"`python -m dcgan_tf.prepare --input raw/ --output {folder}`")
    ds, info = _tfds_load(cfg.dataset, split, searched, hint=hint)
    features = info.features
    if "image" not in features:
        raise FlagError("dataset", f"{searched}, and the TFDS dataset {cfg.dataset!r} has no 'image' feature")
    y_dim = _tfds_y_dim(cfg, features)
    c_dim = 1 if features["image"].shape[-1] == 1 else 3
    shape = (cfg.output_height, cfg.output_width, c_dim)
    prepare = functools.partial(_prepare_array, c_dim=c_dim, size=shape[:2], crop=_cfg_crop(cfg))
    needed = _cap(info.splits[split].num_examples, cfg.train_size)
    has_label = "label" in features
    elements = ds.take(needed).map(
        lambda ex: (ex["image"], tf.cast(ex["label"], tf.int64) if has_label else tf.constant(-1, tf.int64)))
    where = f"tfds:{cfg.dataset}"
    if needed * math.prod(shape) > MAX_CACHE_BYTES:
        dataset = _streamed_batches(elements, 10_000, prepare, shape, cfg, seed, y_dim)
        return DataInfo(dataset, needed, needed // cfg.images_per_step, c_dim, y_dim, [])
    items = ((f"{where}[{i}]", img, lab) for i, (img, lab) in enumerate(elements.as_numpy_iterator()))
    images, labels, skipped = _decode_all(items, needed, prepare, shape)
    return _in_memory(cfg, where, images, labels, skipped, c_dim=c_dim, y_dim=y_dim, seed=seed)


def _tfds_y_dim(cfg: TrainConfig, features: Any) -> int:
    """cfg.y_dim, after checking that the TFDS dataset has the 10-class labels --conditional needs."""
    if not cfg.conditional:
        return 0
    num_classes = getattr(features["label"], "num_classes", None) if "label" in features else None
    if num_classes != cfg.y_dim:
        raise FlagError("conditional", f"needs a 'label' feature with {cfg.y_dim} classes; the TFDS dataset "
                                       f"{cfg.dataset!r} has {num_classes}: use --noconditional")
    return cfg.y_dim


def _tfds_load(name: str, split: str, searched: str, *, hint: str = "") -> tuple[tf.data.Dataset, Any]:
    """tfds.load(name, split=split, with_info=True), its failures turned into one-line errors (`hint` ends the
    error of a name TFDS does not know)."""
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise DcganError(f"{searched}; install tensorflow-datasets to download {name!r}") from e
    try:
        logging.info("Loading %r with tensorflow_datasets (downloaded on first use)", name)
        return tfds.load(name, split=split, with_info=True, shuffle_files=False)
    except tfds.core.DatasetNotFoundError as e:
        raise FlagError("dataset", f"{searched}, and TensorFlow Datasets has no dataset named {name!r}{hint}") from e
    except Exception as e:  # network, disk and checksum failures alike
        first_line = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise DcganError(f"--dataset {name}: {searched}, and tensorflow_datasets could not load it "
                         f"({first_line})") from e


def _load_tfds_arrays(name: str, split: str, searched: str) -> tuple[np.ndarray, np.ndarray]:
    """All of a small labelled TFDS split as numpy: uint8 [N, H, W, C] and int64 [N]."""
    ds, _ = _tfds_load(name, split, searched)
    batches = list(ds.map(lambda ex: (ex["image"], ex["label"])).batch(10_000).as_numpy_iterator())
    return (np.concatenate([b[0] for b in batches]).astype(np.uint8),
            np.concatenate([b[1] for b in batches]).astype(np.int64))


# ----------------------------------------------------------------------------------------------------------
# idx files


def _idx_candidates(name: str, data_dir: str) -> list[str]:
    system = "fashion-mnist" if "fashion" in name.lower() else "mnist"
    folders = [os.path.join(data_dir, n) for n in (name, name.replace("_", "-"), name.lower(),
                                                    name.lower().replace("_", "-"))]
    # Never data_dir itself: MNIST and Fashion-MNIST share file names, so loose files there could be either.
    folders.append(os.path.join(SYSTEM_DATASETS_DIR, system))
    return list(dict.fromkeys(os.path.normpath(f) for f in folders))


def _idx_path(folder: str, base: str) -> str | None:
    """The file for `base` in `folder`: raw or .gz, also with Kaggle's "." for "-" before "idx"."""
    for stem in (base, base.replace("-idx", ".idx")):
        for name in (stem, stem + ".gz"):
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                return path
    return None


def _read_idx_pair(folder: str, part: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [N, 28, 28, 1] images and int64 [N] labels of one part ("train" or "test")."""
    image_path, label_path = (_idx_path(folder, base) for base in IDX_FILES[part])
    images = _read_idx(image_path, ndim=3)
    labels = _read_idx(label_path, ndim=1).astype(np.int64)
    if len(images) != len(labels):
        raise DcganError(f"{label_path}: {len(labels)} labels for {len(images)} images in {image_path}; "
                         "the idx files do not belong together")
    return images[..., None], labels


def _read_idx(path: str, *, ndim: int) -> np.ndarray:
    """Parses an idx file of unsigned bytes (magic 0x0000080N, N = ndim), raw or gzip-compressed."""
    try:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise DcganError(f"{path}: cannot read the idx file ({e}); delete it and fetch it again") from e
    header = 4 + 4 * ndim
    if len(data) < header or data[:3] != b"\x00\x00\x08" or data[3] != ndim:
        raise DcganError(f"{path}: not an idx file of unsigned bytes with {ndim} dimension(s) "
                         f"(magic {data[:4].hex() or 'missing'}, expected 0000080{ndim})")
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    if len(data) != header + math.prod(shape):
        raise DcganError(f"{path}: truncated or padded idx file ({len(data) - header} bytes of data for "
                         f"shape {shape}); delete it and fetch it again")
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


# ----------------------------------------------------------------------------------------------------------
# Decoding one image with Pillow


def _prepare_file(path: str, *, c_dim: int, size: tuple[int, int],
                  crop: tuple[int, int] | None) -> np.ndarray:
    """One image file -> uint8 [H, W, c_dim]; raises on unreadable files and _Unusable when too small."""
    if os.path.getsize(path) == 0:
        raise _Unusable("empty file (0 bytes)")
    with Image.open(path) as img:
        img.seek(0)  # the first frame of a GIF
        return _prepare_pil(_to_l_or_rgb(ImageOps.exif_transpose(img)), c_dim=c_dim, size=size, crop=crop)


def _prepare_array(pixels: np.ndarray, *, c_dim: int, size: tuple[int, int],
                   crop: tuple[int, int] | None) -> np.ndarray:
    """A decoded uint8 [H, W, C] image (C 1, 3 or 4) -> uint8 [H, W, c_dim], as `_prepare_file`."""
    pixels = pixels[..., 0] if pixels.shape[-1] == 1 else pixels
    return _prepare_pil(_to_l_or_rgb(Image.fromarray(pixels)), c_dim=c_dim, size=size, crop=crop)


def _to_l_or_rgb(img: Image.Image) -> Image.Image:
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
            raise _Unusable(f"{SMALLER_THAN_CROP} {crop_h}x{crop_w} (the image is {height}x{width})")
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


def _header_problem(path: str, *, crop: tuple[int, int] | None) -> str:
    """Why a file cannot be used, judged from its header alone ("" if it looks usable)."""
    try:
        if os.path.getsize(path) == 0:
            return "empty file (0 bytes)"
        with Image.open(path) as img:
            width, height = img.size
            if img.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # EXIF orientation swaps width and height
                width, height = height, width
    except Exception as e:
        return _reason(e)
    if crop is not None and (height < crop[0] or width < crop[1]):
        return f"{SMALLER_THAN_CROP} {crop[0]}x{crop[1]} (the image is {height}x{width})"
    return ""


def _reason(e: Exception) -> str:
    """A short, one-line reason for a skipped file."""
    if isinstance(e, _Unusable):
        return str(e)
    text = (str(e).strip().splitlines() or [""])[0][:160]
    return f"unreadable ({type(e).__name__}: {text})" if text else f"unreadable ({type(e).__name__})"


# ----------------------------------------------------------------------------------------------------------
# Decoding many images, checks, tf.data


def _decode_all(items: Iterable[tuple[str, Any, int]], needed: int, prepare: Callable[[Any], np.ndarray],
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
        logging.info("Decoding %d images with %d threads", needed, _num_workers())
    images = np.empty((needed, *shape), np.uint8)
    labels = np.empty((needed,), np.int64)
    skipped, n, items = [], 0, iter(items)
    with concurrent.futures.ThreadPoolExecutor(_num_workers()) as pool:
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
            return _reason(e)
    return call


def _in_memory(cfg: TrainConfig, where: str, images: np.ndarray, labels: np.ndarray,
               skipped: list[tuple[str, str]], *, c_dim: int, y_dim: int, seed: int) -> DataInfo:
    """Checks and reports the decoded set, then wraps it in the cached pipeline."""
    _check_usable(len(images), skipped, cfg, where)
    _warn_skipped(skipped, len(images) + len(skipped), where)
    dataset = _cached_batches(images, _one_hot(labels, y_dim, where), cfg, seed)
    return DataInfo(dataset, len(images), len(images) // cfg.images_per_step, c_dim, y_dim, skipped)


def _check_usable(n: int, skipped: list[tuple[str, str]], cfg: TrainConfig, where: str) -> None:
    """Raises when fewer than one batch of images is usable, naming the flag that most likely fixes it."""
    if n >= cfg.images_per_step:
        return
    too_small = [s for s in skipped if s[1].startswith(SMALLER_THAN_CROP)]
    if n == 0 and too_small:
        raise FlagError("input_height", f"every usable image in {where} is {SMALLER_THAN_CROP} "
                                        f"{cfg.input_height}x{cfg.input_width} (e.g. {too_small[0][1]}); "
                                        "lower --input_height/--input_width or drop --crop")
    if n == 0:
        raise DcganError(f"{where}: none of the {len(skipped)} files could be read "
                         f"(e.g. {_examples(skipped, 2)})")
    per_step = f" x --d_steps {cfg.d_steps}" if cfg.d_steps > 1 else ""
    raise FlagError("batch_size", f"is {cfg.batch_size}{per_step} but {where} has only {n} usable images "
                                  f"({len(skipped)} skipped); lower --batch_size or add images")


def _warn_skipped(skipped: list[tuple[str, str]], total: int, where: str) -> None:
    if skipped:
        logging.warning("Skipped %d of %d files in %s, e.g. %s", len(skipped), total, where,
                        _examples(skipped, 3))


def _examples(skipped: list[tuple[str, str]], k: int) -> str:
    return "; ".join(f"{os.path.basename(name)}: {why}" for name, why in skipped[:k])


def _one_hot(labels: np.ndarray, y_dim: int, where: str) -> np.ndarray:
    """int labels [N] -> float32 one-hot [N, y_dim] ([N, 0] when y_dim is 0)."""
    if y_dim and len(labels) and not 0 <= labels.min() <= labels.max() < y_dim:
        raise DcganError(f"{where}: labels must lie in [0, {y_dim}), found {labels.min()}..{labels.max()}")
    return np.eye(y_dim, dtype=np.float32)[labels] if y_dim else np.zeros((len(labels), 0), np.float32)


def _cached_batches(images: np.ndarray, onehot: np.ndarray, cfg: TrainConfig, seed: int) -> tf.data.Dataset:
    """Shuffled batches gathered from in-memory uint8 images: only indices go through the shuffle buffer."""
    with tf.device("/cpu:0"):
        images_t, labels_t = tf.constant(images), tf.constant(onehot)  # [N, H, W, C] uint8, [N, y_dim]
    ds = tf.data.Dataset.range(len(images))
    ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(cfg.images_per_step, drop_remainder=True)
    ds = ds.map(lambda idx: (tf.gather(images_t, idx), tf.gather(labels_t, idx)))
    return _float_batches(ds, cfg.flip, seed)


def _streamed_batches(elements: tf.data.Dataset, shuffle_buffer: int, prepare: Callable[[Any], np.ndarray],
                      shape: tuple[int, int, int], cfg: TrainConfig, seed: int, y_dim: int) -> tf.data.Dataset:
    """Batches decoded on the fly from (input of `prepare`, int label) elements; failures are dropped."""
    def load(x: Any) -> tuple[np.ndarray, bool]:
        try:
            return prepare(x), True
        except Exception as e:  # a file that fails mid-training is dropped, not fatal
            logging.log_every_n(logging.WARNING, "Dropped an unreadable image: %s", 100, _reason(e))
            return np.zeros(shape, np.uint8), False

    ds = elements.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(lambda x, y: (*tf.numpy_function(load, [x], (tf.uint8, tf.bool), stateful=False), y),
                num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.filter(lambda img, ok, y: ok)
    ds = ds.map(lambda img, ok, y: (tf.ensure_shape(img, shape), tf.one_hot(y, y_dim, dtype=tf.float32)))
    return _float_batches(ds.batch(cfg.images_per_step, drop_remainder=True), cfg.flip, seed)


def _float_batches(ds: tf.data.Dataset, flip: bool, seed: int) -> tf.data.Dataset:
    """uint8 batches -> float32 in [-1, 1], each image flipped left-right with probability 1/2 if `flip`."""
    to_float = lambda x: tf.cast(x, tf.float32) / 127.5 - 1.0
    if not flip:
        ds = ds.map(lambda x, y: (to_float(x), y), num_parallel_calls=tf.data.AUTOTUNE)
        return ds.prefetch(tf.data.AUTOTUNE)

    def flip_some(batch: tuple[tf.Tensor, tf.Tensor], r: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        x, y = batch
        coin = tf.random.stateless_uniform([tf.shape(x)[0]], seed=tf.stack([r, tf.constant(0, tf.int64)]))
        x = tf.where((coin < 0.5)[:, None, None, None], tf.reverse(x, axis=[2]), x)
        return to_float(x), y

    # One stateless seed per batch, from a stream seeded apart from the shuffle's.
    coins = tf.data.Dataset.random(seed=seed + 1_000_003, rerandomize_each_iteration=True)
    ds = tf.data.Dataset.zip(ds, coins).map(flip_some, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


# ----------------------------------------------------------------------------------------------------------
# Small helpers


def _matching_files(folder: str, pattern: str) -> list[str]:
    """`list_image_files`, raising one-line errors for an empty folder or a pattern that matches nothing."""
    paths = list_image_files(folder, pattern)
    if paths:
        return paths
    exts = collections.Counter(os.path.splitext(name)[1].lower() or name for _, _, names in
                               os.walk(folder, followlinks=True) for name in names)
    if not exts:
        raise FlagError("dataset", f"the folder {folder} is empty; put the training images there or point "
                                   "--data_dir/--dataset at the folder that has them")
    found = ", ".join(f"{count} {ext}" for ext, count in exts.most_common(3))
    raise FlagError("input_fname_pattern", f"no file in {folder} (or its sub-folders) matches {pattern!r}; "
                                           f"it holds {found}; set --input_fname_pattern, e.g. '*.png'")


def _cap(total: int, train_size: float) -> int:
    """min(total, --train_size), as an int (train_size may be math.inf)."""
    return total if train_size >= total else int(train_size)


def _crop_size(crop: bool, input_height: int, input_width: int | None) -> tuple[int, int] | None:
    return (input_height, input_width or input_height) if crop else None


def _cfg_crop(cfg: TrainConfig) -> tuple[int, int] | None:
    return _crop_size(cfg.crop, cfg.input_height, cfg.input_width)


def _num_workers() -> int:
    """Decoder threads: Pillow releases the GIL while decoding and resizing, so one per core and a spare."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return min(32, cores + 1)
