"""Shared test fixtures: tiny image folders written to tmp_path, the repo's Fashion-MNIST (data/fashion-mnist) and
the optional real data in ../shared/data."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from idx_files import write_idx
from PIL import Image

SHARED_DATA = pathlib.Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
# The Fashion-MNIST idx files shipped with the repository (the default --data_dir): always present.
REPO_DATA = pathlib.Path(__file__).resolve().parents[1] / "data"

_CHANNELS = {"L": 1, "RGB": 3, "RGBA": 4}


@pytest.fixture
def make_image_folder(tmp_path):
    """A factory: make(name="tiny", n=24, size=16, mode="RGB", ext="png", seed=0) -> tmp_path/data/<name>.

    Writes `n` random-noise images of size x size pixels (mode "L", "RGB" or "RGBA") named 000.<ext>,
    001.<ext>, ...; use data_dir=str(folder.parent), dataset=folder.name.
    """
    def make(name: str = "tiny", n: int = 24, size: int = 16, mode: str = "RGB", ext: str = "png",
             seed: int = 0) -> pathlib.Path:
        folder = tmp_path / "data" / name
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(seed)
        for i in range(n):
            pixels = rng.integers(0, 256, (size, size, _CHANNELS[mode]), dtype=np.uint8)
            Image.fromarray(pixels[..., 0] if mode == "L" else pixels).save(folder / f"{i:03d}.{ext}")
        return folder
    return make


@pytest.fixture
def tiny_image_folder(make_image_folder) -> pathlib.Path:
    """24 random RGB 16x16 PNGs in tmp_path/data/tiny."""
    return make_image_folder()


@pytest.fixture
def shared_data() -> pathlib.Path:
    """../shared/data (Fashion-MNIST idx files, emoji PNGs); the test is skipped when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA.resolve()} is absent (see shared/data/README.md)")
    return SHARED_DATA.resolve()


@pytest.fixture
def idx_folder(tmp_path):
    """tmp_path/data/mnist with idx .gz files: 6 train and 4 test images whose pixels are 20 * label."""
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    train_labels, test_labels = np.array([0, 1, 2, 3, 4, 5]), np.array([9, 8, 7, 6])
    for prefix, labels in (("train", train_labels), ("t10k", test_labels)):
        images = np.broadcast_to(20 * labels[:, None, None], (len(labels), 28, 28))
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return folder


def pytest_collection_modifyitems(config, items):
    """Runs the slow tests first, the multi-process ones of test_distribute.py at their head: under pytest-xdist
    (`-n 2`) the longest tests then start early on both workers and the many short ones fill in at the end, so
    the workers finish together. The order within each group is the file order."""
    def rank(item) -> int:
        if item.get_closest_marker("slow") is None:
            return 2
        return 0 if item.path.name == "test_distribute.py" else 1
    items.sort(key=rank)
