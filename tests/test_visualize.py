"""Tests for dcgan_tf.visualize: latent paths, and each option's files, sizes and GIF frame counts."""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from run_factory import make_run

from dcgan_tf import visualize as vis
from dcgan_tf.errors import FlagError
from dcgan_tf.generate import use_trained_model
from dcgan_tf.sampling import Sampler

SIZE = 8  # images are 8 x 8
Z_DIM = 8
STEPS = 5


class LinearGenerator:
    """A stand-in generator in which every z dimension and class visibly changes the image.

    Tiny untrained networks barely react to z, and Pillow merges a GIF frame identical to the one before, so
    frame counts are tested on this; the real networks are tested through use_trained_model below.
    """

    def __init__(self, z_dim, y_dim=0, channels=3, seed=0):
        w = np.random.default_rng(seed).normal(0.0, 0.5, (z_dim + y_dim, SIZE * SIZE * channels))
        self.w, self.shape = tf.constant(w, tf.float32), (-1, SIZE, SIZE, channels)

    def __call__(self, z, y=None, training=False):
        x = z if y is None else tf.concat([z, y], axis=-1)
        return tf.tanh(tf.reshape(x @ self.w, self.shape))


@pytest.fixture(scope="module")
def plain():
    return Sampler(LinearGenerator(Z_DIM), Z_DIM, batch_size=3)  # 3: no sweep fits one batch


@pytest.fixture(scope="module")
def conditional():
    return Sampler(LinearGenerator(Z_DIM, 10, channels=1), Z_DIM, y_dim=10, batch_size=7)


def _size(path):
    with Image.open(path) as im:
        return im.size


def _frames(path):
    with Image.open(path) as im:
        return im.n_frames, im.size


def _bytes(path):
    with open(path, "rb") as f:
        return f.read()


# --------------------------------------------------------------------------------------------------------------
# Latent paths


@pytest.mark.parametrize("z_dist, low, high", [("uniform_signed", -1, 1), ("uniform_unsigned", 0, 1),
                                               ("normal01", -2, 2)])
def test_sweeps_cover_the_z_range_of_the_run(z_dist, low, high):
    values = vis.sweep_values(z_dist, 9)
    assert values[0] == low and values[-1] == high and np.allclose(np.diff(values), (high - low) / 8)
    assert vis.center_z(z_dist, 4).tolist() == [(low + high) / 2] * 4


def test_sweep_moves_only_its_dimension():
    base = np.arange(6, dtype=np.float32)
    z = vis.sweep(base, 2, np.array([-1.0, 0.0, 1.0]))
    assert z.shape == (3, 6) and z[:, 2].tolist() == [-1, 0, 1]
    np.testing.assert_array_equal(np.delete(z, 2, axis=1), np.tile(np.delete(base, 2), (3, 1)))


def test_slerp_walks_the_great_circle_at_constant_speed():
    rng = np.random.default_rng(0)
    p, q = rng.normal(size=16), rng.normal(size=16)
    q *= np.linalg.norm(p) / np.linalg.norm(q)
    path = vis.slerp(p, q, np.linspace(0, 1, 7))
    np.testing.assert_allclose(path[0], p, atol=1e-5)
    np.testing.assert_allclose(path[-1], q, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), np.linalg.norm(p), rtol=1e-5)  # stays on the sphere
    angles = [np.arccos(np.clip(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)), -1, 1))
              for a, b in zip(path[:-1], path[1:])]
    np.testing.assert_allclose(angles, angles[0], rtol=1e-3)
    middle = vis.lerp(p, q, np.array([0.5]))[0]
    assert np.linalg.norm(middle) < np.linalg.norm(path[3])  # the straight line cuts inside the sphere


def test_slerp_of_parallel_or_opposite_points_is_linear():
    p = np.ones(4, np.float32)
    for q in (2 * p, -p):
        np.testing.assert_allclose(vis.slerp(p, q, np.array([0.0, 0.25, 1.0])), vis.lerp(p, q, [0.0, 0.25, 1.0]))


def test_ping_pong_goes_there_and_back_without_repeating_ends():
    assert vis.ping_pong(4) == [0, 1, 2, 3, 2, 1]
    assert vis.ping_pong(2) == [0, 1]


# --------------------------------------------------------------------------------------------------------------
# Options


def test_option_0_random_grid(plain, tmp_path):
    [path] = vis.visualize(plain, str(tmp_path), option=0, sample_num=5)
    assert os.path.basename(path) == "test_grid.png" and _size(path) == (3 * SIZE, 2 * SIZE)


def test_option_1_one_png_per_dimension(plain, conditional, tmp_path):
    paths = vis.visualize(plain, str(tmp_path / "p"), option=1, steps=STEPS)
    assert [os.path.basename(p) for p in paths] == [f"sweep_dim_{d:03d}.png" for d in range(Z_DIM)]
    assert all(_size(p) == (3 * SIZE, 2 * SIZE) for p in paths)  # 5 steps: 3 x 2 grid
    assert len({_bytes(p) for p in paths}) == Z_DIM
    paths = vis.visualize(conditional, str(tmp_path / "c"), option=1, steps=STEPS)
    assert len(paths) == Z_DIM and _size(paths[0]) == (STEPS * SIZE, 10 * SIZE)  # one row per class
    [path] = vis.save_dimension_sweeps(conditional, str(tmp_path / "l"), steps=STEPS, label=2, dims=[4])
    assert path.endswith("sweep_dim_004.png") and _size(path) == (3 * SIZE, 2 * SIZE)


def test_option_2_random_dimensions_are_distinct_and_bounded(plain, conditional, tmp_path):
    paths = vis.visualize(plain, str(tmp_path / "p"), option=2, steps=STEPS, seed=1)
    assert len(paths) == min(vis.RANDOM_DIMS, Z_DIM) == len(set(paths))
    assert all(_frames(p) == (STEPS, (SIZE, SIZE)) for p in paths)
    paths = vis.save_random_dimension_gifs(conditional, str(tmp_path / "c"), steps=STEPS, count=3)
    assert len(paths) == 3 and all(_frames(p) == (STEPS, (10 * SIZE, SIZE)) for p in paths)


def test_option_2_is_reproducible_by_seed(plain, tmp_path):
    a = vis.visualize(plain, str(tmp_path / "a"), option=2, steps=3, seed=7)
    b = vis.visualize(plain, str(tmp_path / "b"), option=2, steps=3, seed=7)
    c = vis.visualize(plain, str(tmp_path / "c"), option=2, steps=3, seed=8)
    assert [os.path.basename(p) for p in a] == [os.path.basename(p) for p in b]
    assert [_bytes(p) for p in a] == [_bytes(p) for p in b]
    assert [os.path.basename(p) for p in a] != [os.path.basename(p) for p in c]


def test_option_3_one_gif_per_dimension(plain, conditional, tmp_path):
    paths = vis.visualize(plain, str(tmp_path / "p"), option=3, steps=STEPS)
    assert [os.path.basename(p) for p in paths] == [f"sweep_center_dim_{d:03d}.gif" for d in range(Z_DIM)]
    assert all(_frames(p) == (STEPS, (SIZE, SIZE)) for p in paths)
    paths = vis.visualize(conditional, str(tmp_path / "c"), option=3, steps=STEPS, label=5)
    assert len(paths) == Z_DIM and _frames(paths[0]) == (STEPS, (SIZE, SIZE))


def test_option_4_one_merged_gif(plain, conditional, tmp_path):
    [path] = vis.visualize(plain, str(tmp_path / "p"), option=4, steps=STEPS)
    assert path.endswith("sweep_all_dims.gif")
    assert _frames(path) == (2 * STEPS - 2, (3 * SIZE, 3 * SIZE))  # 8 dimensions: 3 x 3 grid
    [path] = vis.visualize(conditional, str(tmp_path / "c"), option=4, steps=STEPS)
    assert _frames(path) == (2 * STEPS - 2, (3 * SIZE, 3 * SIZE))  # one class (0) unless --label: stays small


@pytest.mark.parametrize("method", vis.INTERPOLATIONS)
def test_option_5_interpolation_grid_and_gif(plain, conditional, tmp_path, method):
    png, gif = vis.visualize(plain, str(tmp_path / "p"), option=5, steps=STEPS, method=method)
    assert png.endswith(f"interpolation_{method}.png") and gif.endswith(f"interpolation_{method}.gif")
    assert _size(png) == (STEPS * SIZE, vis.INTERPOLATION_ROWS * SIZE)
    assert _frames(gif) == (2 * STEPS - 2, (vis.INTERPOLATION_ROWS * SIZE, SIZE))
    png, gif = vis.visualize(conditional, str(tmp_path / "c"), option=5, steps=STEPS, method=method)
    assert _size(png) == (STEPS * SIZE, 10 * SIZE) and _frames(gif)[1] == (10 * SIZE, SIZE)


def test_linear_and_slerp_differ(plain, tmp_path):
    linear, _ = vis.save_interpolation(plain, str(tmp_path), steps=STEPS, method="linear", rows=2)
    spherical, _ = vis.save_interpolation(plain, str(tmp_path), steps=STEPS, method="slerp", rows=2)
    with Image.open(linear) as a, Image.open(spherical) as b:
        a, b = np.asarray(a), np.asarray(b)
    np.testing.assert_array_equal(a[:, :SIZE], b[:, :SIZE])  # same ends
    assert (a[:, 2 * SIZE:3 * SIZE] != b[:, 2 * SIZE:3 * SIZE]).any()  # different middles


def test_bad_settings_name_their_flag(plain, tmp_path):
    for kwargs, flag in ((dict(option=6), "option"), (dict(option=1, steps=1), "sweep_steps"),
                         (dict(option=5, method="cubic"), "interpolation")):
        with pytest.raises(FlagError) as e:
            vis.visualize(plain, str(tmp_path), **kwargs)
        assert e.value.flag == flag
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("conditional_run", [False, True])
def test_use_trained_model_writes_only_under_the_run_sample_folder(tmp_path, monkeypatch, conditional_run):
    monkeypatch.chdir(tmp_path)
    cfg, paths, _, _ = make_run(tmp_path / "run", conditional=conditional_run, size=SIZE, z_dim=3, batch_size=2)
    written = use_trained_model(cfg, visualize=True, option=1)  # steps default: the batch size
    assert [os.path.basename(p) for p in written] == [f"sweep_dim_{d:03d}.png" for d in range(3)]
    assert all(os.path.dirname(p) == paths.sample_dir for p in written)
    rows = 10 if conditional_run else 1
    assert all(_size(p) == (2 * SIZE, rows * SIZE) for p in written)
    written = use_trained_model(cfg, visualize=True, option=4, sweep_steps=3)
    # 3 dims in a 2 x 2 grid; a conditional model shows one class, not ten rows
    assert len(written) == 1 and _frames(written[0])[1] == (2 * SIZE, 2 * SIZE)
    assert sorted(os.listdir(tmp_path)) == ["run"]  # no ./samples
    with pytest.raises(FlagError, match="--option"):
        use_trained_model(cfg, visualize=True, option=7)
