"""Labelled datasets as arrays: MNIST-style idx files (MNIST, Fashion-MNIST) and TensorFlow Datasets.

Idx files are looked up in `<data_dir>/<dataset>/` (also spelt with "-") and Debian's
`/usr/share/datasets/`, never loose in `data_dir`: MNIST and Fashion-MNIST use the same file names. Without
them, `tensorflow_datasets` downloads the dataset on first use. Nothing here imports TensorFlow until a
download is needed.
"""

from __future__ import annotations

import gzip
import math
import os
from typing import Any

import numpy as np
from absl import logging

from dcgan_tf.errors import DcganError, FlagError

# Where Debian's dataset-fashion-mnist package installs the idx files.
SYSTEM_DATASETS_DIR = "/usr/share/datasets"
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


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


def tfds_load(name: str, split: str, searched: str, *, hint: str = "") -> tuple[Any, Any]:
    """tfds.load(name, split=split, with_info=True), its failures turned into one-line errors (`hint` ends the
    error of a name TFDS does not know). Returns the tf.data.Dataset and the DatasetInfo."""
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
    ds, _ = tfds_load(name, split, searched)
    batches = list(ds.map(lambda ex: (ex["image"], ex["label"])).batch(10_000).as_numpy_iterator())
    return (np.concatenate([b[0] for b in batches]).astype(np.uint8),
            np.concatenate([b[1] for b in batches]).astype(np.int64))
