"""Tests of dcgan_tf.masks: shapes, missing fractions, seeding, file masks and the hole/pool rules."""

import numpy as np
import pytest
from PIL import Image

from dcgan_tf import masks
from dcgan_tf.errors import DcganError


def generated(mask_type, size=16, seed=0, **kwargs):
    return masks.make_mask(mask_type, size, size, rng=np.random.default_rng(seed), **kwargs)


def missing(mask):
    return 1.0 - mask.mean()


@pytest.mark.parametrize("mask_type,size,fraction", [
    ("center", 16, 0.25), ("center", 64, 0.25), ("left", 16, 0.5), ("half", 16, 0.5),
    ("grid", 16, 1 - 1 / 16), ("full", 16, 0.0), ("lowres", 16, 0.0), ("random", 20, 0.8),
])
def test_shape_and_missing_fraction(mask_type, size, fraction):
    mask = generated(mask_type, size)
    assert mask.shape == (size, size, 1) and mask.dtype == np.float32
    assert set(np.unique(mask)) <= {0.0, 1.0}
    assert missing(mask) == pytest.approx(fraction, abs=1e-6)


def test_center_matches_bamos_bounds():
    mask = generated("center", 64)[..., 0]
    assert (mask[16:48, 16:48] == 0).all() and mask.sum() == 64 * 64 - 32 * 32
    mask = generated("center", 28, center_scale=0.2)[..., 0]  # l = int(5.6) = 5, u = int(22.4) = 22
    assert np.argwhere(mask == 0).min(0).tolist() == [5, 5] and np.argwhere(mask == 0).max(0).tolist() == [21, 21]


def test_grid_keeps_every_fourth_pixel():
    mask = generated("grid", 16)[..., 0]
    assert np.argwhere(mask == 1).tolist() == [[i, j] for i in range(0, 16, 4) for j in range(0, 16, 4)]


def test_left_and_half_sides():
    assert (generated("left", 16)[:, :8] == 0).all() and (generated("left", 16)[:, 8:] == 1).all()
    top = generated("half", 16, half_side="top")
    assert (top[:8] == 0).all() and (top[8:] == 1).all()
    right = generated("half", 15, half_side="right")  # odd size: the larger half stays known
    assert (right[:, 8:] == 0).all() and (right[:, :8] == 1).all()
    sides = {tuple(generated("half", 8, seed=s).ravel()) for s in range(20)}
    assert len(sides) == 4  # drawn per image from its seed


def test_random_and_pattern_are_seeded_and_differ_per_seed():
    for kind in ("random", "pattern"):
        np.testing.assert_array_equal(generated(kind, seed=3), generated(kind, seed=3))
        assert not np.array_equal(generated(kind, seed=3), generated(kind, seed=4))
    assert missing(generated("random", random_fraction=0.3)) == pytest.approx(round(0.3 * 256) / 256)


def test_pattern_is_about_a_quarter_missing_and_blobby():
    mask = generated("pattern", 32)[..., 0]
    assert 0.2 <= missing(mask) <= 0.3
    # Blobs: most missing pixels have a missing right neighbour (random pixels would have ~25%).
    pairs = (mask[:, :-1] == 0) & (mask[:, 1:] == 0)
    assert pairs.sum() / (mask[:, :-1] == 0).sum() > 0.7


def test_mask_file_white_is_known_and_size_is_checked(tmp_path):
    gray = np.zeros((16, 16), np.uint8)
    gray[:, :4] = 255
    path = tmp_path / "m.png"
    Image.fromarray(gray).convert("RGBA").save(path)
    mask = masks.read_mask_file(str(path))
    assert mask.shape == (16, 16, 1) and mask[..., 0][:, :4].all() and not mask[..., 0][:, 4:].any()
    with pytest.raises(DcganError, match="m.png is 16x16 but the model works on 8x8"):
        masks.check_mask_size(mask, str(path), 8, 8)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DcganError, match="bad.png"):
        masks.read_mask_file(str(tmp_path / "bad.png"))


def test_hole_and_pool_rules():
    known = generated("center", 8)
    np.testing.assert_array_equal(masks.hole_mask("center", known), 1 - known)
    np.testing.assert_array_equal(masks.hole_mask("lowres", generated("lowres", 8)), np.ones((8, 8, 1)))
    assert masks.context_pool("lowres", 8) == 8 and masks.context_pool("center", 8) == 1


def test_block_mean_handles_partial_blocks():
    x = np.arange(10 * 10, dtype=np.float64).reshape(10, 10, 1)
    pooled = masks.block_mean(x, 8)
    assert pooled.shape == (2, 2, 1)
    assert pooled[0, 0, 0] == x[:8, :8].mean() and pooled[1, 1, 0] == x[8:, 8:].mean()
    assert masks.upsample_blocks(pooled, 8, 10, 10).shape == (10, 10, 1)


def test_lowres_view_is_the_block_means_of_a_batch_and_masked_view_shows_it():
    x = np.random.RandomState(0).uniform(-1, 1, (2, 10, 10, 3))
    view = masks.lowres_view(x, 4)
    assert view.shape == x.shape and view.dtype == np.float32
    np.testing.assert_allclose(view[1, :4, :4], np.broadcast_to(x[1, :4, :4].mean((0, 1)), (4, 4, 3)), rtol=1e-6)
    np.testing.assert_allclose(view[0, 8:, 8:], np.broadcast_to(x[0, 8:, 8:].mean((0, 1)), (2, 2, 3)), rtol=1e-6)
    np.testing.assert_array_equal(masks.masked_view(x[1], generated("lowres", 10), 4), view[1])
    np.testing.assert_array_equal(masks.lowres_view(x, 1), x.astype(np.float32))


def test_masked_view_fills_missing_with_white():
    image = np.zeros((8, 8, 3), np.float32)
    view = masks.masked_view(image, generated("center", 8))
    assert (view[2:6, 2:6] == 1).all() and (view[:2] == 0).all()


def test_fill_keeps_known_pixels_and_reproduces_a_constant_image():
    holes = np.stack([masks.make_mask("center", 16, 16, rng=None),
                      masks.make_mask("random", 16, 16, rng=np.random.default_rng(0), random_fraction=0.8)])
    images = np.random.RandomState(0).uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    filled = masks.smooth_fill(images, holes)
    known = np.broadcast_to(holes > 0.5, images.shape)
    np.testing.assert_array_equal(filled[known], images[known])
    assert filled[~known].min() >= images.min() and filled[~known].max() <= images.max()  # convex weights
    constant = np.full((2, 16, 16, 3), 0.25, np.float32)
    np.testing.assert_allclose(masks.smooth_fill(constant, holes), constant, atol=1e-5)  # a 12x12 hole's centre too


def test_fill_follows_the_nearest_known_pixels():
    image = np.zeros((1, 9, 9, 1), np.float32)
    image[0, :, :4] = -1.0  # left part dark, right part bright
    image[0, :, 5:] = 1.0
    mask = np.ones((1, 9, 9, 1), np.float32)
    mask[0, 3:6, 3:6] = 0.0
    filled = masks.smooth_fill(image, mask)[0, :, :, 0]
    assert filled[4, 3] < 0 < filled[4, 5]


def test_fill_reaches_a_wide_hole_and_leaves_nothing_unfilled():
    image = np.full((1, 28, 28, 1), 0.5, np.float32)
    hole = masks.make_mask("center", 28, 28, rng=None, center_scale=0.05)[None]  # a 26x26 hole, 1-pixel rim
    filled = masks.smooth_fill(image, hole)
    np.testing.assert_allclose(filled, image, atol=1e-5)


def test_gaussian_blur_keeps_the_mean_of_a_constant_inside_and_is_separable():
    x = np.ones((12, 12, 2))
    blurred = masks.gaussian_blur(x, 1.5, 3)
    np.testing.assert_allclose(blurred[3:-3, 3:-3], 1.0)
    assert blurred[0, 0, 0] < blurred[0, 6, 0] < 1.0  # zero padding darkens the border, the corner most
    impulse = np.zeros((9, 9))
    impulse[4, 4] = 1.0
    kernel = masks.gaussian_blur(impulse, 1.0, 2)
    np.testing.assert_allclose(kernel.sum(), 1.0)
    np.testing.assert_allclose(kernel, np.outer(kernel[:, 4], kernel[4, :]) / kernel[4, 4], rtol=1e-12)


def test_training_masks_are_seeded_have_holes_and_vary_in_type():
    drawn = [masks.training_mask(16, 16, np.random.default_rng(seed)) for seed in range(40)]
    again = [masks.training_mask(16, 16, np.random.default_rng(seed)) for seed in range(40)]
    for a, b in zip(drawn, again):
        np.testing.assert_array_equal(a, b)
    fractions = sorted({round(float(missing(m)), 3) for m in drawn})
    assert all(0.0 < f < 1.0 for f in fractions) and all(m.shape == (16, 16, 1) for m in drawn)
    assert len(fractions) >= 8  # centre sizes, random fractions, halves, patterns and the grid differ
