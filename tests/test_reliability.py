"""Reliability of training: kills, SIGTERM, failed writes, Ctrl-C during a save, and flags checked up front.

The kill tests run `main.py --train` in subprocesses on a tiny folder (32 random 16x16 PNGs, batch 4: 8 steps
per epoch) and read the checkpoints back in this process; the others call `train()` here, on copies of one
tiny trained run. NaN handling is tested in test_training.py and test_train_step.py.
"""

from __future__ import annotations

import errno
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from dcgan_tf.checkpoint import TrainState, create_checkpoint, restore_latest
from dcgan_tf.config import TrainConfig
from dcgan_tf.errors import DcganError, FlagError
from dcgan_tf.latent import class_labels
from dcgan_tf.model import models_from_config
from dcgan_tf.runs import load_run
from dcgan_tf.training import create_optimizers, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = "tiny_16x16"  # the default out_name of the tiny runs below
CKPT_DIR = os.path.join("checkpoints", RUN)  # relative to the run's working directory (tmp_path)
COUNTERS = {  # checkpoint keys of the loop's counters and the optimisers' update counts
    "step": "step/.ATTRIBUTES/VARIABLE_VALUE",
    "epoch": "epoch/.ATTRIBUTES/VARIABLE_VALUE",
    "epoch_step": "epoch_step/.ATTRIBUTES/VARIABLE_VALUE",
    "d_updates": "d_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE",
    "g_updates": "g_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE",
}
RNG_KEY = "rng/_state_var/.ATTRIBUTES/VARIABLE_VALUE"  # the training tf.random.Generator's state


def tiny_argv(**overrides) -> list[str]:
    """`main.py --train` flags for a tiny run on tmp_path/data/tiny; outputs go to the working directory."""
    flags = dict(dataset="tiny", data_dir="data", input_fname_pattern="*.png", input_height=16, output_height=16,
                 z_dim=8, gf_dim=4, df_dim=4, batch_size=4, sample_num=4, epoch=40, ckpt_freq=1,
                 sample_freq=100_000, log_freq=100_000)
    flags.update(overrides)
    return ["--train", *(f"--{name}={value}" for name, value in flags.items())]


@pytest.fixture(scope="module")
def main_module():
    """main.py imported in this process, its flags reset before and after."""
    sys.path.insert(0, ROOT)
    import main

    main.FLAGS.unparse_flags()
    yield main
    main.FLAGS.unparse_flags()
    sys.path.remove(ROOT)


def config_for(main, argv):
    """The validated TrainConfig main.py builds from `argv` (FlagError when a flag is out of range)."""
    main.FLAGS.unparse_flags()
    main.FLAGS(["main.py", *argv])
    return main.config_from_flags()


# ----------------------------------------------------------------------------------------------------------
# Reading checkpoints back


def latest_step(ckpt_dir) -> int:
    """The step of the checkpoint the `checkpoint` state file points at; 0 before the first one."""
    state = tf.train.get_checkpoint_state(str(ckpt_dir))
    return int(state.model_checkpoint_path.rsplit("-", 1)[1]) if state else 0


def check_loadable(ckpt_dir) -> dict[str, int]:
    """Checks the latest checkpoint is whole and loads; returns its counters (step, epoch, epoch_step, ...)."""
    path = tf.train.latest_checkpoint(str(ckpt_dir))
    assert path is not None, f"no complete checkpoint in {ckpt_dir}"
    reader = tf.train.load_checkpoint(path)
    for key in reader.get_variable_to_shape_map():  # reads every tensor: a partial data file fails here
        reader.get_tensor(key)
    counters = {name: int(reader.get_tensor(key)) for name, key in COUNTERS.items()}
    assert path.endswith(f"ckpt-{counters['step']}")  # named by the step it holds
    assert load_run(str(ckpt_dir)).step == counters["step"]
    return counters


def weights(ckpt_dir) -> list[np.ndarray]:
    run = load_run(str(ckpt_dir))
    return [w.numpy() for w in run.generator.weights + run.discriminator.weights]


def checkpoint_files(ckpt_dir) -> dict[str, bytes]:
    """The bytes of the state file and every checkpoint file (FLAGS.json aside: each run rewrites it).

    Folders are left out: a kill during a save can leave TensorFlow's `ckpt-N_temp/` behind.
    """
    files = [p for p in sorted(pathlib.Path(ckpt_dir).iterdir()) if p.is_file()]
    return {p.name: p.read_bytes() for p in files if p.name == "checkpoint" or p.name.startswith("ckpt-")}


def assert_counters_agree(counters: dict[str, int], steps_per_epoch: int) -> None:
    """One D update and g_steps (2) G updates per step, and step = epoch * steps_per_epoch + epoch_step."""
    step = counters["step"]
    assert counters["d_updates"] == step and counters["g_updates"] == 2 * step, counters
    assert counters["epoch"] * steps_per_epoch + counters["epoch_step"] == step, counters


# ----------------------------------------------------------------------------------------------------------
# Training in a subprocess


class Trainer:
    """`python main.py` subprocesses in one working directory, stdout and stderr written to files."""

    def __init__(self, cwd):
        self.cwd, self.procs = cwd, []

    def start(self, argv, name: str) -> subprocess.Popen:
        with open(self.cwd / f"{name}.out", "w") as out, open(self.cwd / f"{name}.err", "w") as err:
            proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "main.py"), *argv], cwd=self.cwd,
                                    stdout=out, stderr=err)
        proc.name = name
        self.procs.append(proc)
        return proc

    def output(self, proc) -> tuple[str, str]:
        return tuple((self.cwd / f"{proc.name}.{part}").read_text() for part in ("out", "err"))

    def wait_until(self, condition, proc, what: str, timeout: float = 240) -> None:
        """Polls `condition` while `proc` runs; fails if it exits or the time runs out first."""
        deadline = time.monotonic() + timeout
        while not condition():
            if proc.poll() is not None:
                pytest.fail(f"{proc.name} exited with {proc.returncode} before {what}:\n{self.output(proc)[1][-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"{proc.name}: no {what} after {timeout} s")
            time.sleep(0.02)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture
def trainer(tmp_path):
    runner = Trainer(tmp_path)
    yield runner
    runner.stop_all()


def resume_line(counters: dict[str, int]) -> str:
    return f"resuming {os.path.join('out', RUN)} at epoch {counters['epoch']}, step {counters['step']}"


@pytest.mark.slow
def test_sigkill_never_leaves_a_partial_checkpoint_and_reruns_resume_exactly(make_image_folder, tmp_path,
                                                                              trainer, main_module, monkeypatch):
    """Three SIGKILLs at random moments while a checkpoint is written every step, then a rerun to the end."""
    make_image_folder(n=32)  # 8 steps per epoch
    steps_per_epoch, rng = 8, np.random.default_rng(0)
    saved = {"step": 0}
    for kill in range(3):
        proc = trainer.start(tiny_argv(), f"killed{kill}")  # --epoch 40: never finishes before the kill
        # The last kill comes after the first epoch's end, so a rerun can ask for exactly the epochs done.
        after = max(saved["step"], steps_per_epoch if kill == 2 else 0)
        trainer.wait_until(lambda after=after: latest_step(tmp_path / CKPT_DIR) > after, proc,
                           f"a checkpoint after step {after}")
        time.sleep(rng.uniform(0, 0.5))  # often lands inside a save: one runs every step
        proc.send_signal(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
        if saved["step"]:
            assert resume_line(saved) in trainer.output(proc)[1]
        counters = check_loadable(tmp_path / CKPT_DIR)
        assert counters["step"] > saved["step"]
        assert_counters_agree(counters, steps_per_epoch)
        saved = counters

    # A rerun asking for the epochs already done takes no step and leaves the checkpoint as it was.
    monkeypatch.chdir(tmp_path)
    files, before = checkpoint_files(CKPT_DIR), weights(CKPT_DIR)
    result = train(config_for(main_module, tiny_argv(epoch=saved["epoch"])))
    assert (result.step, result.interrupted) == (saved["step"], False)
    assert checkpoint_files(CKPT_DIR) == files
    for a, b in zip(before, weights(CKPT_DIR), strict=True):
        np.testing.assert_array_equal(a, b)

    # Run to the end of the next epoch: the resumed epoch finishes where it stopped, no step lost or repeated.
    epochs = saved["epoch"] + 1
    proc = trainer.start(tiny_argv(epoch=epochs), "final")
    assert proc.wait(timeout=300) == 0, trainer.output(proc)[1][-3000:]
    out, err = trainer.output(proc)
    assert resume_line(saved) in err
    assert f"done: epoch {epochs}, step {epochs * steps_per_epoch}" in out
    counters = check_loadable(tmp_path / CKPT_DIR)
    assert (counters["step"], counters["epoch"], counters["epoch_step"]) == (epochs * steps_per_epoch, epochs, 0)
    assert_counters_agree(counters, steps_per_epoch)


@pytest.mark.slow
def test_sigterm_saves_the_step_reached_and_exits_130(make_image_folder, tmp_path, trainer):
    make_image_folder(n=32)
    argv = tiny_argv(batch_size=2, ckpt_freq=1000, log_freq=1)  # 16 steps per epoch, no periodic checkpoint
    proc = trainer.start(argv, "terminated")
    trainer.wait_until(lambda: "epoch 1/40 2/16 " in trainer.output(proc)[0], proc, "step 2")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 130
    out, err = trainer.output(proc)
    reached = int(re.search(r"interrupted: epoch 0, step (\d+)", out)[1])
    assert 2 <= reached < 16 and f"interrupted at step {reached}" in err
    ckpt_dir = tmp_path / CKPT_DIR
    kept = tf.train.get_checkpoint_state(str(ckpt_dir)).all_model_checkpoint_paths
    assert [os.path.basename(p) for p in kept] == [f"ckpt-{reached}"]  # the only checkpoint of the run
    counters = check_loadable(ckpt_dir)
    assert (counters["step"], counters["epoch"], counters["epoch_step"]) == (reached, 0, reached)
    assert_counters_agree(counters, 16)


# ----------------------------------------------------------------------------------------------------------
# In this process, on a copy of one trained run: the restored RNG, failed writes, Ctrl-C during a save


TRAINED_ARGV = tiny_argv(epoch=1, ckpt_freq=200)


@pytest.fixture(scope="module")
def trained_template(tmp_path_factory, main_module):
    """A tiny run trained once in this process: 16 random images, batch 4, one epoch (4 steps)."""
    root = tmp_path_factory.mktemp("trained")
    (root / "data" / "tiny").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(16):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(root / "data" / "tiny" / f"{i}.png")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert train(config_for(main_module, TRAINED_ARGV)).step == 4
    finally:
        os.chdir(cwd)
    return root


@pytest.fixture
def trained_run(trained_template, tmp_path, monkeypatch):
    """A copy of the trained run in tmp_path, the working directory. Returns its flags."""
    shutil.copytree(trained_template, tmp_path, dirs_exist_ok=True)
    monkeypatch.chdir(tmp_path)
    return TRAINED_ARGV


@pytest.mark.slow
def test_resume_restores_the_training_rng(trained_run):
    with open(os.path.join(CKPT_DIR, "FLAGS.json")) as f:
        flags = json.load(f)
    cfg = TrainConfig.from_dict(flags)
    G, D = models_from_config(cfg, flags["c_dim"], flags["y_dim"])
    state = TrainState.create(cfg.seed, np.zeros((cfg.sample_num, cfg.z_dim), np.float32),
                              class_labels(cfg.sample_num, flags["y_dim"]))
    seeded = state.rng.state.numpy().copy()
    restore_latest(create_checkpoint(G, D, *create_optimizers(cfg), state), CKPT_DIR)
    saved = tf.train.load_checkpoint(tf.train.latest_checkpoint(CKPT_DIR)).get_tensor(RNG_KEY)
    assert not np.array_equal(saved, seeded)  # the run's draws moved the generator on ...
    np.testing.assert_array_equal(state.rng.state.numpy(), saved)  # ... and a resume continues from there


def refuse_writes(monkeypatch, error: Exception) -> None:
    def save(self, *args, **kwargs):
        raise error

    monkeypatch.setattr(tf.train.CheckpointManager, "save", save)


@pytest.mark.slow
def test_failed_checkpoint_write_names_the_folder_and_keeps_the_previous_one(trained_run, main_module, monkeypatch,
                                                                             capsys):
    files, before = checkpoint_files(CKPT_DIR), weights(CKPT_DIR)
    argv = trained_run + ["--epoch=2"]  # the last value of a repeated flag wins
    refuse_writes(monkeypatch, tf.errors.PermissionDeniedError(None, None, "Read-only file system"))
    with pytest.raises(DcganError) as e:
        train(config_for(main_module, argv))
    assert CKPT_DIR in str(e.value) and "intact" in str(e.value) and "PermissionDeniedError" in str(e.value)

    refuse_writes(monkeypatch, OSError(errno.ENOSPC, "No space left on device"))
    config_for(main_module, argv)
    with pytest.raises(SystemExit) as e:  # the CLI: one line, exit code 2
        main_module.main(["main.py"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(f"error: could not write a checkpoint to {CKPT_DIR} (OSError)")

    assert checkpoint_files(CKPT_DIR) == files and check_loadable(CKPT_DIR)["step"] == 4
    for a, b in zip(before, weights(CKPT_DIR), strict=True):
        np.testing.assert_array_equal(a, b)


def permissions_enforced(folder) -> bool:
    """False when this user can write into a 0o500 folder (root with CAP_DAC_OVERRIDE)."""
    probe = os.path.join(folder, "probe")
    os.chmod(folder, 0o500)
    try:
        open(probe, "w").close()
    except PermissionError:
        return True
    finally:
        os.chmod(folder, 0o700)
    os.remove(probe)
    return False


def test_read_only_checkpoint_folder_is_an_error_naming_it(request, tmp_path, main_module):
    if not permissions_enforced(tmp_path):  # asked before the trained run is made: seconds saved for root
        pytest.skip("file permissions are not enforced for this user (root): see the monkeypatched test above")
    trained_run = request.getfixturevalue("trained_run")
    files = checkpoint_files(CKPT_DIR)
    argv = trained_run + ["--epoch=2"]
    os.chmod(CKPT_DIR, 0o500)
    try:
        with pytest.raises(DcganError, match=re.escape(CKPT_DIR)):
            train(config_for(main_module, argv))
    finally:
        os.chmod(CKPT_DIR, 0o700)
    assert checkpoint_files(CKPT_DIR) == files and check_loadable(CKPT_DIR)["step"] == 4


@pytest.mark.slow
def test_full_disk_while_writing_a_sample_grid_is_an_error_naming_the_folder(trained_run, main_module, monkeypatch):
    from PIL import Image

    def full_disk(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full_disk)
    argv = trained_run + ["--epoch=2", "--sample_freq=2"]
    with pytest.raises(DcganError, match=re.escape(os.path.join("samples", RUN))):
        train(config_for(main_module, argv))
    assert check_loadable(CKPT_DIR)["step"] == 4


@pytest.mark.slow
def test_ctrl_c_during_an_epoch_end_save_still_saves_the_step_reached(trained_run, main_module, monkeypatch):
    real_save, calls = tf.train.CheckpointManager.save, {"n": 0}

    def interrupted_once(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:  # Ctrl-C arrives while the first save of this run is being written
            raise KeyboardInterrupt
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(tf.train.CheckpointManager, "save", interrupted_once)
    result = train(config_for(main_module, trained_run + ["--epoch=3"]))  # first save: the end of epoch 2
    assert result.interrupted and result.step == 8
    counters = check_loadable(CKPT_DIR)
    assert counters["step"] == result.step, f"the run reported step {result.step}, the checkpoint is older"
    monkeypatch.setattr(tf.train.CheckpointManager, "save", real_save)
    resumed = train(config_for(main_module, trained_run + ["--epoch=3"]))
    assert (resumed.step, resumed.epoch) == (12, 3)  # 3 epochs of 4 steps, none lost or repeated


# ----------------------------------------------------------------------------------------------------------
# Flags checked before any work


@pytest.mark.parametrize("flag, value", [
    ("input_height", 0), ("output_height", -1), ("batch_size", 0), ("epoch", 0), ("learning_rate", -1),
    ("beta1", 1.5), ("label_smoothing", 1), ("instance_noise", 2), ("train_size", 0), ("lr_decay", 0),
    ("sample_freq", 0), ("ckpt_freq", 0), ("max_to_keep", 0), ("z_dim", 0), ("g_steps", 0),
])
def test_out_of_range_flag_is_named(main_module, flag, value):
    with pytest.raises(FlagError) as e:
        config_for(main_module, tiny_argv(**{flag: value}))
    assert e.value.flag == flag and str(e.value).startswith(f"--{flag}: ")


def nothing_written(tmp_path) -> bool:
    return not any((tmp_path / d).exists() for d in ("checkpoints", "out", "samples"))


@pytest.mark.parametrize("extra, flag", [
    (["--crop", "--input_height=64"], "input_height"),  # a crop larger than the 16 px images
    (["--conditional"], "conditional"),  # an image folder has no labels
])
def test_flags_incompatible_with_the_data_are_named_before_anything_is_written(make_image_folder, tmp_path,
                                                                                monkeypatch, main_module, extra,
                                                                                flag):
    make_image_folder(n=8)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FlagError) as e:
        train(config_for(main_module, tiny_argv() + extra))
    assert e.value.flag == flag and str(e.value).startswith(f"--{flag}: ")
    assert nothing_written(tmp_path)


def test_resuming_with_another_architecture_flag_is_named_and_changes_nothing(trained_run, main_module, tmp_path):
    files = checkpoint_files(CKPT_DIR)
    flags_json = (tmp_path / "out" / RUN / "FLAGS.json").read_bytes()
    with pytest.raises(FlagError) as e:
        train(config_for(main_module, trained_run + ["--gf_dim=8"]))
    assert e.value.flag == "gf_dim" and str(e.value).startswith("--gf_dim: is 8 ")
    assert checkpoint_files(CKPT_DIR) == files
    assert (tmp_path / "out" / RUN / "FLAGS.json").read_bytes() == flags_json
