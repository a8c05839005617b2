"""Tests of the Python API (dcgan_tf.api, exported from `dcgan_tf`): train, load_run, generate, complete, export."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from run_factory import make_run

import dcgan_tf
from dcgan_tf.errors import DcganError, FlagError
from dcgan_tf.generate import save_test_images

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 16


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory):
    """A tiny saved conditional grey run: (its checkpoint folder, the loaded Run)."""
    _, paths, _, _ = make_run(tmp_path_factory.mktemp("cond"), conditional=True, size=SIZE, c_dim=1)
    return paths.checkpoint_dir, dcgan_tf.load_run(paths.checkpoint_dir)


def test_import_does_not_load_tensorflow():
    code = "import sys, dcgan_tf; print('tensorflow' in sys.modules, sorted(dcgan_tf.__all__))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == "False"


@pytest.mark.slow
def test_train_then_load_and_generate(tiny_image_folder, tmp_path):
    result = dcgan_tf.train(dataset=tiny_image_folder.name, data_dir=str(tiny_image_folder.parent),
                            input_fname_pattern="*.png", input_height=SIZE, output_height=SIZE, z_dim=8, gf_dim=4,
                            df_dim=4, batch_size=4, epoch=1, sample_num=4, mixed_precision=False,
                            out_dir=str(tmp_path / "out"), checkpoint_dir=str(tmp_path / "ck"),
                            sample_dir=str(tmp_path / "samples"))
    assert (result.step, result.epoch) == (6, 1) and os.path.isdir(result.paths.checkpoint_dir)
    assert np.isfinite(result.metrics["d_loss"])
    with open(os.path.join(result.paths.checkpoint_dir, "FLAGS.json")) as f:
        assert json.load(f)["g_steps"] == 2  # main.py's default
    run = dcgan_tf.load_run(result.paths.checkpoint_dir)
    assert run.step == 6 and run.image_shape == (SIZE, SIZE, 3)
    images = run.generate(8, seed=0)
    assert images.dtype == np.uint8 and images.shape == (8, SIZE, SIZE, 3)
    np.testing.assert_array_equal(run.generate(8, seed=0), images)
    assert not np.array_equal(run.generate(8, seed=1), images)
    # the images main.py --generate_test_images writes for the same seed
    written = save_test_images(run.sampler(), str(tmp_path / "written"), n=8, seed=0)
    np.testing.assert_array_equal(np.stack([np.asarray(Image.open(p)) for p in written[:8]]), images)
    # by name under checkpoint_dir, and from a given z
    again = dcgan_tf.load_run(os.path.basename(result.paths.checkpoint_dir), checkpoint_dir=str(tmp_path / "ck"))
    z = np.random.default_rng(0).uniform(-1, 1, (3, 8))
    np.testing.assert_array_equal(again.generate(z=z), run.generate(z=z))


def test_train_settings_and_config_are_validated_by_name(tmp_path):
    with pytest.raises(TypeError, match="unknown setting 'epochs'"):
        dcgan_tf.train(epochs=1)
    with pytest.raises(FlagError) as e:
        dcgan_tf.train(dataset="tiny", beta1=1.5)
    assert e.value.flag == "beta1"
    with pytest.raises(TypeError):
        dcgan_tf.train(dcgan_tf.TrainConfig(), epoch=1)


def test_preset_fills_in_under_explicit_settings():
    from dcgan_tf.api import train_config

    assert train_config(dataset="fashion_mnist", preset="tuned").g_ema == 0.999
    assert train_config(dataset="fashion_mnist", preset="tuned", g_ema=0.0).g_ema == 0.0
    assert train_config(dataset="fashion_mnist").g_ema == 0.0


def test_load_run_errors(conditional_run, tmp_path):
    folder, _ = conditional_run
    with pytest.raises(DcganError, match="no run 'nothing'"):
        dcgan_tf.load_run("nothing", checkpoint_dir=str(tmp_path))
    with pytest.raises(FlagError) as e:
        dcgan_tf.load_run(folder, z_dim=16)
    assert e.value.flag == "z_dim"


def test_generate_labels(conditional_run):
    _, run = conditional_run
    assert run.y_dim == 10 and run.generate(4, label=3, seed=0).shape == (4, SIZE, SIZE, 1)
    per_image = run.generate(4, label=[3, 3, 3, 3], seed=0)
    np.testing.assert_array_equal(per_image, run.generate(4, label=3, seed=0))
    with pytest.raises(FlagError) as e:
        run.generate(2, label=10)
    assert e.value.flag == "label"


@pytest.mark.slow
def test_complete_with_a_label_keeps_known_pixels_and_scores_the_hole(conditional_run):
    _, run = conditional_run
    images = run.generate(3, seed=5)
    done = run.complete(images, mask_type="center", n_iter=5, label=0)
    assert done.images.dtype == np.uint8 and done.images.shape == images.shape
    known = np.broadcast_to(done.masks > 0, images.shape)
    assert known.any() and not known.all()
    np.testing.assert_array_equal(done.images[known], images[known])
    assert list(done.labels) == [0, 0, 0] and list(done.runner_up) == [-1, -1, -1]
    assert done.losses["total"].shape == (3, 6)
    assert np.isfinite(done.psnr).all() and np.isfinite(done.ssim).all()
    again = run.complete([Image.fromarray(im[..., 0]) for im in images], mask_type="center", n_iter=5, label=0)
    np.testing.assert_array_equal(again.images, done.images)  # PIL images prepared as the arrays; same seed
    unscored = run.complete(images[:1], masks=done.masks[:1], n_iter=5, label=0, originals=False)
    assert np.isnan(unscored.psnr).all()
    np.testing.assert_array_equal(unscored.images, done.images[:1])


def test_complete_label_free_names_the_runner_up(conditional_run):
    _, run = conditional_run
    done = run.complete(run.generate(2, seed=1), n_iter=2, pilot_iter=1, classifier_dir="none")
    assert ((done.labels >= 0) & (done.labels < 10)).all()
    assert ((done.runner_up >= 0) & (done.runner_up != done.labels)).all()


def test_complete_settings_are_checked(conditional_run):
    _, run = conditional_run
    images = run.generate(1, seed=0)
    with pytest.raises(FlagError) as e:
        run.complete(images, n_iter=1, label=0, lam=-1.0)
    assert e.value.flag == "lam"
    with pytest.raises(TypeError):
        run.complete(images, n_iter=1, label=0, out_dir="x")
    with pytest.raises(FlagError):
        run.complete(images, mask_type="file", n_iter=1, label=0)


def test_export_and_interpolate(conditional_run, tmp_path):
    _, run = conditional_run
    rows = run.interpolate(n=2, steps=3, seed=0, method="linear")
    assert rows.shape == (2, 3, SIZE, SIZE, 1) and rows.dtype == np.uint8
    folder = run.export(str(tmp_path / "export"))
    assert os.path.isfile(os.path.join(folder, "saved_model.pb"))
