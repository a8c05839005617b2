"""A quiet start: main.py's stderr holds our lines only, unless the user asks for TensorFlow's (dcgan_tf.quiet)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dcgan_tf import quiet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What TensorFlow prints at start-up and at checkpoints when nobody hides it.
NOISE = ("absl::InitializeLog", "oneDNN custom operations", "cudart_stub", "cuInit", "cuda_platform",
         "remapper failed", "meta_optimizer", "Sharding callback duration", "functional_saver")
TINY = ["--dataset=tiny", "--data_dir=data", "--input_fname_pattern=*.png", "--input_height=16",
        "--output_height=16", "--z_dim=8", "--gf_dim=4", "--df_dim=4", "--batch_size=4", "--sample_num=4"]


def run_main(cwd, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user's shell has it
    return subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), *TINY, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def tiny_cwd(tmp_path_factory):
    """A working directory with data/tiny (24 random 16x16 PNGs)."""
    import numpy as np
    from PIL import Image

    cwd = tmp_path_factory.mktemp("quiet")
    (cwd / "data" / "tiny").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(24):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(cwd / "data" / "tiny" / f"{i}.png")
    return cwd


def test_training_and_generating_show_only_our_lines(tiny_cwd):
    train = run_main(tiny_cwd, "--train", "--epoch=1")
    assert train.returncode == 0, train.stderr
    generate = run_main(tiny_cwd, "--generate_test_images=8")
    assert generate.returncode == 0, generate.stderr
    for result in (train, generate):
        for line in result.stderr.splitlines():
            assert not any(noise in line for noise in NOISE), line
            assert not quiet.is_native_log_line(line.encode()), line
    assert "Training data tiny: 24 images" in train.stderr  # our own log lines still show
    assert "done: epoch 1, step 6" in train.stdout
    assert "restored checkpoints/tiny_16x16/ckpt-6" in generate.stderr
    assert "wrote 9 files to samples/tiny_16x16" in generate.stdout
    assert "generate 8/8 [" in generate.stdout  # its progress bar


def test_verbosity_1_shows_tensorflow_lines(tiny_cwd):
    result = run_main(tiny_cwd, "--train", "--epoch=2", "--verbosity=1")
    assert result.returncode == 0, result.stderr
    assert "Sharding callback duration" in result.stderr  # TensorFlow's absl INFO line at each checkpoint
    assert any(quiet.is_native_log_line(line.encode()) for line in result.stderr.splitlines())


def test_native_log_lines_are_told_from_ours():
    assert quiet.is_native_log_line(b"I0000 00:00:1796158647.385802    3652 port.cc:153] oneDNN custom operations")
    assert quiet.is_native_log_line(b"E0000 00:00:1796158650.375921    3652 cuda_platform.cc:52] failed call")
    assert quiet.is_native_log_line(b"WARNING: All log messages before absl::InitializeLog() is called are "
                                    b"written to STDERR")
    assert not quiet.is_native_log_line(b"I1201 20:57:36.006405 140416287148928 data.py:116] Training data")
    assert not quiet.is_native_log_line(b"error: --dataset: no folder data/faces")
    assert not quiet.is_native_log_line(b"Traceback (most recent call last):")


def test_requested_verbosity_reads_absl_spellings():
    assert quiet.requested_verbosity(["main.py", "--train"]) == 0
    assert quiet.requested_verbosity(["main.py", "--verbosity", "1"]) == 1
    assert quiet.requested_verbosity(["main.py", "--verbosity=2", "--train"]) == 2
    assert quiet.requested_verbosity(["main.py", "-v", "1", "-v=0"]) == 0
    assert quiet.requested_verbosity(["main.py", "--verbosity=x"]) == 0
