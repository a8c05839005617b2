"""Grids, single images and GIFs: sizes, value mapping and any number of images."""

import numpy as np
import pytest
from PIL import Image

from dcgan_tf.images import grid_shape, make_grid, save_gif, save_image, save_image_grid, to_uint8


def test_to_uint8_maps_range_and_clips():
    np.testing.assert_array_equal(to_uint8(np.array([-1.0, 0.0, 1.0, 3.0])), [0, 128, 255, 255])


@pytest.mark.parametrize("n,cols,want", [(64, None, (8, 8)), (10, None, (3, 4)), (7, 10, (1, 7)), (23, 10, (3, 10)),
                                         (1, None, (1, 1))])
def test_grid_shape_takes_any_count(n, cols, want):
    assert grid_shape(n, cols) == want


def test_saved_grid_has_the_right_size_and_pixels(tmp_path):
    images = np.full((5, 6, 4, 3), -1.0, np.float32)
    images[4] = 1.0
    path = save_image_grid(images, str(tmp_path / "g" / "train_00000001.png"), cols=2)
    with Image.open(path) as im:
        assert im.size == (2 * 4, 3 * 6) and im.mode == "RGB"
        arr = np.asarray(im)
    assert arr[0, 0].tolist() == [0, 0, 0]
    assert arr[13, 1].tolist() == [255, 255, 255]  # image 4 (row 2, col 0) is white
    assert arr[13, 5].tolist() == [255, 255, 255]  # the empty cell is white too


def test_grayscale_image_and_gif(tmp_path):
    save_image(np.zeros((8, 8, 1), np.float32), str(tmp_path / "one.png"))
    with Image.open(tmp_path / "one.png") as im:
        assert im.mode == "L" and im.size == (8, 8)
    frames = [make_grid(np.full((4, 8, 8, 3), v, np.float32), cols=2) for v in (-1.0, 0.0, 1.0)]
    save_gif(frames, str(tmp_path / "a.gif"))
    with Image.open(tmp_path / "a.gif") as im:
        assert im.n_frames == 3 and im.size == (16, 16)
    assert not list(tmp_path.glob("*.tmp*"))
