"""Tests for dcgan_tf.generate and main.py without --train: N test images, seeds, labels, flag errors."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from run_factory import make_run

from dcgan_tf.errors import FlagError
from dcgan_tf.generate import numbered_name, save_test_images, use_trained_model
from dcgan_tf.runs import load_run
from dcgan_tf.sampling import Sampler, save_random_grid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 16


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory):
    cfg, paths, _, _ = make_run(tmp_path_factory.mktemp("plain"), size=SIZE)
    return cfg, paths, Sampler.from_run(load_run(paths.checkpoint_dir, cfg), batch_size=4)


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory):
    cfg, paths, _, _ = make_run(tmp_path_factory.mktemp("cond"), conditional=True, size=SIZE, c_dim=1)
    return cfg, paths, Sampler.from_run(load_run(paths.checkpoint_dir, cfg), batch_size=4)


def _bytes(path):
    with open(path, "rb") as f:
        return f.read()


def test_numbered_names_are_zero_padded():
    assert numbered_name(42, 10) == "test_00042.png"
    assert numbered_name(42, 10, class_id=3) == "test_00042_class3.png"
    assert numbered_name(5, 1_000_001) == "test_0000005.png"  # wide enough to sort for any N


def test_n_not_a_multiple_of_the_batch_nor_square(plain_run, tmp_path):
    _, _, sampler = plain_run
    paths = save_test_images(sampler, str(tmp_path), n=7, seed=1, grid_size=64)
    singles = sorted(p for p in os.listdir(tmp_path) if p != "test_grid.png")
    assert singles == [f"test_{i:05d}.png" for i in range(7)]
    assert paths[-1] == os.path.join(str(tmp_path), "test_grid.png") and len(paths) == 8
    for name in singles:
        with Image.open(tmp_path / name) as im:
            assert im.size == (SIZE, SIZE) and im.mode == "RGB"
    with Image.open(paths[-1]) as grid:
        assert grid.size == (3 * SIZE, 3 * SIZE)  # 7 images: 3 x 3, two cells empty


def test_grid_is_capped_and_first_images_do_not_depend_on_n(plain_run, tmp_path):
    _, _, sampler = plain_run
    save_test_images(sampler, str(tmp_path / "short"), n=3, seed=5)
    save_test_images(sampler, str(tmp_path / "long"), n=10, seed=5, grid_size=4)
    for i in range(3):
        assert _bytes(tmp_path / "short" / f"test_{i:05d}.png") == _bytes(tmp_path / "long" / f"test_{i:05d}.png")
    with Image.open(tmp_path / "long" / "test_grid.png") as grid:
        assert grid.size == (2 * SIZE, 2 * SIZE)


def test_same_seed_gives_byte_identical_files(plain_run, tmp_path):
    _, _, sampler = plain_run
    a = save_test_images(sampler, str(tmp_path / "a"), n=5, seed=3)
    b = save_test_images(sampler, str(tmp_path / "b"), n=5, seed=3)
    c = save_test_images(sampler, str(tmp_path / "c"), n=5, seed=4)
    assert [_bytes(p) for p in a] == [_bytes(p) for p in b]
    assert _bytes(a[0]) != _bytes(c[0])


def test_conditional_spreads_images_over_classes(conditional_run, tmp_path):
    _, _, sampler = conditional_run
    paths = save_test_images(sampler, str(tmp_path), n=12, seed=0)
    assert [os.path.basename(p) for p in paths[:-1]] == [f"test_{i:05d}_class{i % 10}.png" for i in range(12)]
    with Image.open(paths[0]) as im:
        assert im.mode == "L" and im.size == (SIZE, SIZE)
    with Image.open(paths[-1]) as grid:
        assert grid.size == (10 * SIZE, 2 * SIZE)  # one column per class


def _z(sampler, n, seed):
    """z as sample_batches draws it: one seeded generator, batch by batch."""
    import tensorflow as tf

    from dcgan_tf.latent import sample_z

    rng = tf.random.Generator.from_seed(seed)
    for start in range(0, n, sampler.batch_size):
        yield from sample_z(rng, min(sampler.batch_size, n - start), sampler.z_dim, sampler.z_dist).numpy()


def test_conditional_label_fixes_the_class(conditional_run, tmp_path):
    _, _, sampler = conditional_run
    three = save_test_images(sampler, str(tmp_path / "3"), n=3, seed=0, label=3)
    four = save_test_images(sampler, str(tmp_path / "4"), n=3, seed=0, label=4)
    assert [os.path.basename(p) for p in three[:-1]] == [f"test_{i:05d}_class3.png" for i in range(3)]
    expected = sampler(np.asarray(list(_z(sampler, 3, seed=0))), sampler.labels(3, label=3))
    with Image.open(three[0]) as im:
        np.testing.assert_array_equal(np.asarray(im), np.rint((expected[0, ..., 0] + 1) * 127.5).astype(np.uint8))
    assert _bytes(three[0]) != _bytes(four[0])


def test_default_mode_writes_one_grid_equal_to_the_generated_one(plain_run, tmp_path):
    cfg, paths, sampler = plain_run
    written = use_trained_model(cfg)
    assert written == [os.path.join(paths.sample_dir, "test_grid.png")]
    generated = save_test_images(sampler, str(tmp_path), n=11, seed=cfg.seed, grid_size=cfg.sample_num)
    assert _bytes(written[0]) == _bytes(generated[-1])  # the first sample_num images, in the same batches
    assert save_random_grid(sampler, str(tmp_path / "g.png"), n=cfg.sample_num, seed=cfg.seed)


def test_use_trained_model_generates_into_the_run_sample_folder(conditional_run):
    cfg, paths, _ = conditional_run
    written = use_trained_model(cfg, generate_test_images=5, label=7)
    assert all(os.path.dirname(p) == paths.sample_dir for p in written)
    assert [os.path.basename(p) for p in written] == [f"test_{i:05d}_class7.png" for i in range(5)] + [
        "test_grid.png"]
    for kwargs, flag in ((dict(generate_test_images=-1), "generate_test_images"), (dict(label=10), "label"),
                         (dict(visualize=True, interpolation="cubic"), "interpolation"),
                         (dict(visualize=True, sweep_steps=1), "sweep_steps")):
        with pytest.raises(FlagError) as e:
            use_trained_model(cfg, **kwargs)
        assert e.value.flag == flag


# --------------------------------------------------------------------------------------------------------------
# main.py without --train


def _tiny_argv(cfg, *extra):
    argv = ["main.py", f"--dataset={cfg.dataset}", f"--input_height={cfg.input_height}",
            f"--output_height={cfg.output_height}", f"--z_dim={cfg.z_dim}", f"--gf_dim={cfg.gf_dim}",
            f"--df_dim={cfg.df_dim}", f"--gfc_dim={cfg.gfc_dim}", f"--dfc_dim={cfg.dfc_dim}",
            f"--batch_size={cfg.batch_size}", f"--sample_num={cfg.sample_num}", f"--out_dir={cfg.out_dir}",
            f"--checkpoint_dir={cfg.checkpoint_dir}", f"--sample_dir={cfg.sample_dir}"]
    return argv + (["--conditional"] if cfg.conditional else []) + list(extra)


@pytest.fixture
def cli():
    """Runs main.main(argv) in this process; returns (exit code, stdout, stderr)."""
    sys.path.insert(0, ROOT)
    import main

    def run(argv, capsys):
        main.FLAGS.unparse_flags()
        rest = main.FLAGS(argv)  # absl's leftover argv, as app.run gives main
        with pytest.raises(SystemExit) as e:
            main.main(rest)
        out = capsys.readouterr()
        return e.value.code, out.out, out.err

    yield run
    main.FLAGS.unparse_flags()
    sys.path.remove(ROOT)


def test_main_generates_and_reports(cli, plain_run, capsys):
    cfg, paths, _ = plain_run
    code, out, _ = cli(_tiny_argv(cfg, "--generate_test_images=3", "--seed=9"), capsys)
    assert code == 0
    assert f"wrote 4 files to {paths.sample_dir}" in out
    assert os.path.exists(os.path.join(paths.sample_dir, "test_00002.png"))


@pytest.mark.parametrize("flag, value", [("z_dim", 16), ("gf_dim", 8), ("output_height", 32)])
def test_main_mismatched_flag_is_one_line_naming_it(cli, plain_run, capsys, flag, value):
    cfg, _, _ = plain_run
    code, _, err = cli(_tiny_argv(cfg, f"--{flag}={value}", f"--out_name={cfg.out_name}"), capsys)
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err
    assert lines[0].startswith(f"error: --{flag}: is {value}") and str(getattr(cfg, flag)) in lines[0]


def test_main_other_output_size_looks_in_another_run_folder(cli, plain_run, capsys):
    cfg, _, _ = plain_run
    code, _, err = cli(_tiny_argv(cfg, "--output_height=32"), capsys)
    folder = os.path.join(cfg.checkpoint_dir, "tiny_32x32")  # the default out_name follows the sizes
    assert code == 2 and f"error: no trained checkpoint in {folder}:" in err


def test_main_mode_setting_without_its_mode_names_the_flag(cli, plain_run, capsys):
    cfg, _, _ = plain_run
    code, _, err = cli(_tiny_argv(cfg, "--option=3"), capsys)
    assert code == 2 and "error: --option: only applies with --visualize" in err


def test_main_label_on_unconditional_run(cli, plain_run, capsys):
    cfg, _, _ = plain_run
    code, _, err = cli(_tiny_argv(cfg, "--label=2"), capsys)
    assert code == 2 and "error: --label:" in err


@pytest.mark.slow
def test_cli_missing_checkpoint_names_the_folder(tmp_path):
    folder = os.path.join("ck", "nothing_16x16")  # <checkpoint_dir>/<out_name>
    result = subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), "--dataset=nothing", "--input_height=16",
                             "--output_height=16", "--checkpoint_dir=ck", "--out_dir=o", "--sample_dir=s",
                             "--generate_test_images=2"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: no trained checkpoint in {folder}: train first with the same --dataset, sizes and --out_name "
        "(and --checkpoint_dir), or point --checkpoint_dir at a run")
    assert not os.path.exists(tmp_path / "s")


def test_main_takes_the_architecture_the_run_was_trained_with(cli, tmp_path, capsys):
    """A run carries its settings: a flag the command leaves out is the run's (FLAGS.json); one given and
    different still stops, naming it."""
    cfg, paths, _, _ = make_run(tmp_path, size=SIZE, g_ema=0.999, out_name="ema_run")
    argv = ["main.py", f"--dataset={cfg.dataset}", f"--out_name={cfg.out_name}", f"--out_dir={cfg.out_dir}",
            f"--checkpoint_dir={cfg.checkpoint_dir}", f"--sample_dir={cfg.sample_dir}", "--batch_size=4"]
    code, out, err = cli(argv + ["--generate_test_images=2"], capsys)  # no --z_dim, --gf_dim, --g_ema, sizes...
    assert code == 0, err
    assert f"wrote 3 files to {paths.sample_dir}" in out
    code, _, err = cli(argv + ["--generate_test_images=2", "--g_ema=0.5"], capsys)
    assert code == 2 and "error: --g_ema: is 0.5 but the saved run 'ema_run' was trained with 0.999" in err
