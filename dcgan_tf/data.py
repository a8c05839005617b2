"""Training data as `tf.data`: image folders, idx files (MNIST, Fashion-MNIST) and TensorFlow Datasets.

Images are prepared on the host with Pillow (`dcgan_tf.decode`), idx and TFDS datasets are read as arrays
(`dcgan_tf.datasets`); this module turns them into the shuffled, batched pipeline of the training loop.
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
import functools
import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf
from absl import logging

from dcgan_tf.config import LABELLED_DATASETS, TrainConfig
from dcgan_tf.datasets import find_idx_folder, load_idx, tfds_load
from dcgan_tf.decode import (
    SMALLER_THAN_CROP,
    crop_size,
    decode_all,
    detect_channels,
    header_problem,
    list_image_files,
    num_workers,
    prepare_array,
    prepare_file,
    skip_reason,
)
from dcgan_tf.errors import DcganError, FlagError

# Above this estimated size of the prepared uint8 images, stream from the files instead of caching them.
MAX_CACHE_BYTES = 4 << 30


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
    prepare = functools.partial(prepare_file, c_dim=c_dim, size=shape[:2], crop=_cfg_crop(cfg))
    needed = _cap(len(paths), cfg.train_size)
    if needed * math.prod(shape) > MAX_CACHE_BYTES:
        return _stream_folder_data(cfg, folder, paths, prepare, shape, seed)
    images, labels, skipped = decode_all(((p, p, -1) for p in paths), needed, prepare, shape)
    return _in_memory(cfg, folder, images, labels, skipped, c_dim=c_dim, y_dim=0, seed=seed)


def _stream_folder_data(cfg: TrainConfig, folder: str, paths: list[str], prepare: Callable,
                        shape: tuple[int, int, int], seed: int) -> DataInfo:
    """A folder too large for memory: headers checked up front, pixels decoded each epoch."""
    logging.info("%s: about %.1f GiB prepared, more than fits in memory; streaming from the files",
                 folder, _cap(len(paths), cfg.train_size) * math.prod(shape) / 2**30)
    crop = _cfg_crop(cfg)
    with concurrent.futures.ThreadPoolExecutor(num_workers()) as pool:
        problems = list(pool.map(functools.partial(header_problem, crop=crop), paths))
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
        prepare = functools.partial(prepare_array, c_dim=1, size=shape[:2], crop=crop)
        items = ((f"{cfg.dataset}[{i}]", img, lab) for i, (img, lab) in enumerate(zip(images, labels)))
        images, labels, skipped = decode_all(items, needed, prepare, shape)
    where = find_idx_folder(cfg.dataset, cfg.data_dir) or f"tfds:{cfg.dataset}"
    return _in_memory(cfg, where, images, labels, skipped, c_dim=1, y_dim=cfg.y_dim, seed=seed)


def _load_tfds_data(cfg: TrainConfig, folder: str, seed: int) -> DataInfo:
    """A TensorFlow Datasets dataset named --dataset (downloaded on first use); feature `image`, `label`."""
    searched = (f"no folder {folder} (check --data_dir {cfg.data_dir!r} and --dataset {cfg.dataset!r})")
    split = "train"
    hint = (f"; make the folder: put your images in {folder}, or crop faces from photos with "
            f"`python -m dcgan_tf.prepare --input raw/ --output {folder}`")
    ds, info = tfds_load(cfg.dataset, split, searched, hint=hint)
    features = info.features
    if "image" not in features:
        raise FlagError("dataset", f"{searched}, and the TFDS dataset {cfg.dataset!r} has no 'image' feature")
    y_dim = _tfds_y_dim(cfg, features)
    c_dim = 1 if features["image"].shape[-1] == 1 else 3
    shape = (cfg.output_height, cfg.output_width, c_dim)
    prepare = functools.partial(prepare_array, c_dim=c_dim, size=shape[:2], crop=_cfg_crop(cfg))
    needed = _cap(info.splits[split].num_examples, cfg.train_size)
    has_label = "label" in features
    elements = ds.take(needed).map(
        lambda ex: (ex["image"], tf.cast(ex["label"], tf.int64) if has_label else tf.constant(-1, tf.int64)))
    where = f"tfds:{cfg.dataset}"
    if needed * math.prod(shape) > MAX_CACHE_BYTES:
        dataset = _streamed_batches(elements, 10_000, prepare, shape, cfg, seed, y_dim)
        return DataInfo(dataset, needed, needed // cfg.images_per_step, c_dim, y_dim, [])
    items = ((f"{where}[{i}]", img, lab) for i, (img, lab) in enumerate(elements.as_numpy_iterator()))
    images, labels, skipped = decode_all(items, needed, prepare, shape)
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


# ----------------------------------------------------------------------------------------------------------
# Checks, tf.data


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
            logging.log_every_n(logging.WARNING, "Dropped an unreadable image: %s", 100, skip_reason(e))
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


def _cfg_crop(cfg: TrainConfig) -> tuple[int, int] | None:
    return crop_size(cfg.crop, cfg.input_height, cfg.input_width)


