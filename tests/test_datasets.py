"""Tests for dcgan_tf.datasets: where idx files are found, how they are read, and the shipped Fashion-MNIST."""

import gzip
import hashlib
import shutil

import numpy as np
import pytest
from conftest import REPO_DATA
from idx_files import write_idx

from dcgan_tf import datasets
from dcgan_tf.config import TrainConfig
from dcgan_tf.errors import DcganError


def test_idx_folder_with_dash_and_raw_files(tmp_path):
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    for prefix, n in (("train", 3), ("t10k", 2)):
        for kind, shape in (("images-idx3", (n, 28, 28)), ("labels-idx1", (n,))):
            write_idx(folder / f"{prefix}-{kind}-ubyte", np.ones(shape, np.uint8))  # raw, not gzipped
    assert datasets.find_idx_folder("fashion_mnist", str(tmp_path)) == str(folder)
    assert datasets.load_idx("fashion_mnist", str(tmp_path))[0].shape == (5, 28, 28, 1)


def test_malformed_idx_files_name_the_file(idx_folder):
    path = idx_folder / "train-labels-idx1-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"\x00\x00\x08\x03" + bytes(20))  # image magic in a label file
    with pytest.raises(DcganError, match="train-labels-idx1-ubyte.gz: not an idx file"):
        datasets.load_idx("mnist", str(idx_folder.parent))
    write_idx(path, np.arange(6))
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-2]))  # two labels short
    with pytest.raises(DcganError, match="train-labels-idx1-ubyte.gz: truncated"):
        datasets.load_idx("mnist", str(idx_folder.parent))


def test_idx_files_lying_loose_in_data_dir_are_never_taken(idx_folder, tmp_path):
    """MNIST and Fashion-MNIST share file names: loose files in --data_dir could be either, so neither takes them."""
    data_dir = tmp_path / "loose"
    shutil.copytree(idx_folder, data_dir)  # MNIST-named decoys directly in --data_dir
    assert datasets.find_idx_folder("fashion_mnist", str(data_dir)) is None
    assert datasets.find_idx_folder("mnist", str(data_dir)) is None
    # and a sibling mnist/ folder is never read as fashion_mnist
    assert datasets.find_idx_folder("fashion_mnist", str(idx_folder.parent)) is None
    assert datasets.find_idx_folder("mnist", str(idx_folder.parent)) == str(idx_folder)


def test_repo_fashion_mnist_is_the_default_data_dir():
    cfg = TrainConfig(dataset="fashion_mnist", output_height=28)
    assert cfg.data_dir == "./data"
    found = datasets.find_idx_folder("fashion_mnist", str(REPO_DATA))
    assert found == str(REPO_DATA / "fashion-mnist")
    assert (REPO_DATA / "fashion-mnist" / "LICENSE").read_text().startswith("The MIT License")


def test_repo_fashion_mnist_matches_the_shared_copy(shared_data):
    for path in sorted((shared_data / "fashion-mnist").glob("*.gz")):
        ours = REPO_DATA / "fashion-mnist" / path.name
        assert hashlib.sha256(ours.read_bytes()).hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest(), path
