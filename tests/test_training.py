"""Training end to end on tiny image folders: outputs, resume, TensorBoard tags and the CLI's errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from dcgan_tf.config import PRESETS, TrainConfig
from dcgan_tf.runs import load_run
from dcgan_tf.training import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_train_config(folder, tmp_path, **overrides):
    fields = dict(dataset=folder.name, data_dir=str(folder.parent), input_fname_pattern="*.png", input_height=16,
                  output_height=16, z_dim=8, gf_dim=4, df_dim=4, batch_size=4, epoch=1, log_freq=2,
                  sample_freq=3, ckpt_freq=100, sample_num=6, out_dir=str(tmp_path / "out"),
                  checkpoint_dir=str(tmp_path / "ck"), sample_dir=str(tmp_path / "samples"),
                  mixed_precision=False)  # float32 on every CPU kind; auto is tested in test_hardware.py
    fields.update(overrides)
    return TrainConfig(**fields)


@pytest.mark.slow
def test_train_writes_flags_checkpoint_samples_and_summaries(tiny_image_folder, tmp_path):
    (tiny_image_folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    cfg = tiny_train_config(tiny_image_folder, tmp_path, epoch=2)
    result = train(cfg)
    assert (result.step, result.epoch) == (12, 2)  # 24 good images / batch 4 = 6 steps per epoch
    with open(result.paths.flags_json) as f:
        saved = json.load(f)
    assert saved["c_dim"] == 3 and saved["y_dim"] == 0 and saved["num_examples"] == 24
    assert tf.train.latest_checkpoint(result.paths.checkpoint_dir).endswith("ckpt-12")
    with Image.open(os.path.join(result.paths.sample_dir, "train_00000003.png")) as im:
        assert im.size == (3 * 16, 2 * 16)  # 6 samples in a 2 x 3 grid, no square-number assert
    assert os.path.exists(os.path.join(result.paths.sample_dir, "train_00000012.png"))
    events = EventAccumulator(result.paths.run_dir, size_guidance={"tensors": 0, "images": 0}).Reload()
    tags = set(events.Tags()["tensors"])
    assert tags == {"loss/d_loss", "loss/d_loss_real", "loss/d_loss_fake", "loss/g_loss", "D/real", "D/fake",
                    "lr/d", "lr/g", "health/nan_skipped", "hist/z", "hist/d", "hist/d_", "samples/G"}
    assert [e.step for e in events.Tensors("loss/g_loss")] == [2, 4, 6, 8, 10, 12]  # every --log_freq 2 steps
    samples = events.Tensors("samples/G")
    assert sorted({e.step for e in samples}) == [3, 6, 9, 12]  # every --sample_freq 3 steps, and the last
    for event in samples:  # one grid per step, as train_*.png: [width, height, one PNG]
        width, height, *pngs = tf.make_ndarray(event.tensor_proto)
        assert (int(width), int(height), len(pngs)) == (3 * 16, 2 * 16, 1)
    grid = tf.io.decode_png(pngs[0]).numpy()
    with Image.open(os.path.join(result.paths.sample_dir, "train_00000012.png")) as im:
        np.testing.assert_array_equal(grid, np.asarray(im.convert("RGB")))
    assert all(np.isfinite(v) for v in result.metrics.values())


def test_summaries_are_grouped_under_carpedm20s_names(tmp_path):
    from dcgan_tf.training import write_summaries

    metrics = {k: tf.constant(0.5) for k in ("d_loss", "d_loss_real", "d_loss_fake", "g_loss", "d_real", "d_fake",
                                             "gradient_penalty")}
    metrics.update(nan_skipped=tf.constant(2), z=tf.zeros([4, 8]), d=tf.fill([4, 1], 0.6), d_=tf.fill([4, 1], 0.4))
    writer = tf.summary.create_file_writer(str(tmp_path))
    scalars = write_summaries(writer, 7, metrics, {"learning_rate_d": 4e-4, "learning_rate_g": 2e-4})
    writer.flush()
    assert set(scalars) == {"d_loss", "d_loss_real", "d_loss_fake", "g_loss", "d_real", "d_fake", "gradient_penalty"}
    events = EventAccumulator(str(tmp_path), size_guidance={"tensors": 0}).Reload()
    assert set(events.Tags()["tensors"]) == {
        "loss/d_loss", "loss/d_loss_real", "loss/d_loss_fake", "loss/g_loss", "loss/gradient_penalty", "D/real",
        "D/fake", "lr/d", "lr/g", "health/nan_skipped", "hist/z", "hist/d", "hist/d_"}
    assert float(tf.make_ndarray(events.Tensors("lr/d")[0].tensor_proto)) == pytest.approx(4e-4)
    assert int(tf.make_ndarray(events.Tensors("health/nan_skipped")[0].tensor_proto)) == 2


@pytest.mark.slow
def test_rerun_resumes_at_the_saved_epoch_and_step(tiny_image_folder, tmp_path):
    cfg = tiny_train_config(tiny_image_folder, tmp_path, epoch=1)
    first = train(cfg)
    saved_weights = [v.numpy() for v in load_run(first.paths.checkpoint_dir).generator.weights]
    again = train(cfg)  # nothing left to do: same step, same weights
    assert (again.step, again.epoch) == (6, 1)
    np.testing.assert_array_equal(saved_weights[0], load_run(first.paths.checkpoint_dir).generator.weights[0])
    more = train(tiny_train_config(tiny_image_folder, tmp_path, epoch=3))
    assert (more.step, more.epoch) == (18, 3)


@pytest.mark.slow
def test_mid_epoch_checkpoint_resumes_inside_the_epoch(tiny_image_folder, tmp_path, monkeypatch):
    cfg = tiny_train_config(tiny_image_folder, tmp_path, epoch=2, ckpt_freq=4)
    import dcgan_tf.training as train_module

    calls = {"n": 0}
    real_step = train_module.make_train_step

    def interrupting_step(*args, **kwargs):
        step = real_step(*args, **kwargs)

        def wrapped(images, labels):
            calls["n"] += 1
            if calls["n"] == 9:  # during epoch 2, after the checkpoint at step 8
                raise KeyboardInterrupt
            return step(images, labels)

        return wrapped

    monkeypatch.setattr(train_module, "make_train_step", interrupting_step)
    result = train(cfg)
    assert result.interrupted and result.step == 8
    monkeypatch.setattr(train_module, "make_train_step", real_step)
    resumed = train(cfg)
    assert (resumed.step, resumed.epoch) == (12, 2)  # 4 steps left in epoch 2, not a whole new epoch


@pytest.mark.slow
def test_changed_architecture_flag_is_named(tiny_image_folder, tmp_path):
    train(tiny_train_config(tiny_image_folder, tmp_path))
    with pytest.raises(Exception, match="--gf_dim"):
        train(tiny_train_config(tiny_image_folder, tmp_path, gf_dim=8))


def run_main(*args, cwd):
    return subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("args,needle", [
    (["--batch_size", "0"], "--batch_size"),
    (["--label_smoothing", "1.5"], "--label_smoothing"),
    pytest.param(["--dataset", "nothing_here", "--data_dir", "nowhere_dir"], "nothing_here", marks=pytest.mark.slow),
])
def test_cli_errors_are_one_line_naming_the_flag(tmp_path, args, needle):
    proc = run_main("--train", *args, cwd=tmp_path)
    assert proc.returncode == 2
    assert needle in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_cli_trains_and_finds_its_own_run_again(tiny_image_folder, tmp_path):
    common = ["--dataset", "tiny", "--data_dir", str(tiny_image_folder.parent), "--input_fname_pattern", "*.png",
              "--input_height", "16", "--output_height", "16", "--z_dim", "8", "--gf_dim", "4", "--df_dim", "4",
              "--batch_size", "8", "--epoch", "1", "--sample_num", "4"]
    proc = run_main("--train", *common, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "epoch 1, step 3" in proc.stdout
    assert os.path.exists(tmp_path / "out" / "tiny_16x16" / "FLAGS.json")
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints" / "tiny_16x16"))
    proc = run_main(*common, cwd=tmp_path)  # without --train: uses the trained model
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert list((tmp_path / "samples" / "tiny_16x16").glob("*.png"))


@pytest.mark.slow
def test_nan_stops_the_run_naming_the_step_and_keeps_the_good_checkpoint(tiny_image_folder, tmp_path, monkeypatch):
    import dcgan_tf.training as train_module
    from dcgan_tf.training import NonFiniteError

    cfg = tiny_train_config(tiny_image_folder, tmp_path, epoch=2, ckpt_freq=2)
    real_step = train_module.make_train_step
    state = {"n": 0}

    def poisoning_step(G, D, *args, **kwargs):
        step = real_step(G, D, *args, **kwargs)

        def wrapped(images, labels):
            state["n"] += 1
            if state["n"] == 5:
                D.trainable_variables[0].assign(tf.fill(D.trainable_variables[0].shape, float("nan")))
            return step(images, labels)

        return wrapped

    monkeypatch.setattr(train_module, "make_train_step", poisoning_step)
    with pytest.raises(NonFiniteError, match="step 5"):
        train(cfg)
    ckpt = tf.train.latest_checkpoint(str(tmp_path / "ck" / "tiny_16x16"))
    assert ckpt.endswith("ckpt-4")
    run = load_run(str(tmp_path / "ck" / "tiny_16x16"))
    assert all(np.isfinite(v.numpy()).all() for v in run.discriminator.weights)


@pytest.mark.slow
def test_resume_with_a_larger_batch_finishes_the_epoch_instead_of_repeating_it(tiny_image_folder, tmp_path,
                                                                                monkeypatch):
    import dcgan_tf.training as train_module

    cfg = tiny_train_config(tiny_image_folder, tmp_path, epoch=1, batch_size=2, ckpt_freq=10)
    real_step, calls = train_module.make_train_step, {"n": 0}

    def interrupting_step(*args, **kwargs):
        step = real_step(*args, **kwargs)

        def wrapped(images, labels):
            calls["n"] += 1
            if calls["n"] == 11:  # after the checkpoint at step 10 of 12
                raise KeyboardInterrupt
            return step(images, labels)

        return wrapped

    monkeypatch.setattr(train_module, "make_train_step", interrupting_step)
    assert train(cfg).step == 10
    monkeypatch.setattr(train_module, "make_train_step", real_step)
    resumed = train(tiny_train_config(tiny_image_folder, tmp_path, epoch=1, batch_size=8))  # 3 steps per epoch
    assert (resumed.step, resumed.epoch) == (10, 1)


@pytest.mark.slow
def test_max_minutes_stops_with_a_checkpoint_and_a_rerun_continues(tiny_image_folder, tmp_path):
    first = train(tiny_train_config(tiny_image_folder, tmp_path, epoch=2, max_minutes=1e-6))
    assert first.out_of_time and not first.interrupted and first.step == 1
    assert tf.train.latest_checkpoint(first.paths.checkpoint_dir).endswith("ckpt-1")
    assert os.path.exists(os.path.join(first.paths.sample_dir, "train_00000001.png"))
    rest = train(tiny_train_config(tiny_image_folder, tmp_path, epoch=2))
    assert (rest.step, rest.epoch, rest.out_of_time) == (12, 2, False)


@pytest.mark.slow
def test_wgan_gp_with_critic_steps_and_ema_trains_end_to_end(tiny_image_folder, tmp_path):
    cfg = tiny_train_config(tiny_image_folder, tmp_path, epoch=1, loss="wgan-gp", d_steps=2, g_steps=1,
                            g_ema=0.9, log_freq=1)
    result = train(cfg)
    assert (result.step, result.epoch) == (3, 1)  # 24 images / (2 critic batches of 4) = 3 steps
    assert np.isfinite(result.metrics["gradient_penalty"]) and result.metrics["gradient_penalty"] >= 0
    events = EventAccumulator(result.paths.run_dir)
    events.Reload()
    assert "loss/gradient_penalty" in events.Tags()["tensors"]
    run = load_run(result.paths.checkpoint_dir, cfg)
    assert run.config.d_norm == "layer" and run.config.g_ema == 0.9
    assert not any("moving_variance" in v.path for v in run.discriminator.weights)


@pytest.mark.slow
def test_cli_preset_fills_unset_flags_and_keeps_explicit_ones(tiny_image_folder, tmp_path):
    common = ["--dataset", "tiny", "--data_dir", str(tiny_image_folder.parent), "--input_fname_pattern", "*.png",
              "--input_height", "16", "--output_height", "16", "--z_dim", "8", "--gf_dim", "4", "--df_dim", "4",
              "--batch_size", "8", "--sample_num", "4", "--preset", "tuned", "--loss", "hinge"]
    proc = run_main("--train", "--epoch", "1", *common, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open(tmp_path / "out" / "tiny_16x16_tuned" / "FLAGS.json") as f:
        saved = json.load(f)
    assert saved["preset"] == "tuned" and saved["loss"] == "hinge"
    assert all(saved[k] == v for k, v in PRESETS["tuned"].items() if k not in ("loss", "mixed_precision"))
    from dcgan_tf import hardware  # the preset's precision is auto: FLAGS.json holds what this machine resolved
    expected = hardware.resolve_precision(None, gpus=[])
    assert (saved["mixed_precision"], saved["precision"]) == (expected.mixed, expected.name)
    proc = run_main("--generate_test_images", "3", *common, cwd=tmp_path)  # the same preset finds the run
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(list((tmp_path / "samples" / "tiny_16x16_tuned").glob("test_*.png"))) == 4  # 3 images + test_grid.png


def test_jit_compile_auto_is_on_with_a_gpu_under_the_default_strategy_only(tmp_path):
    from run_factory import tiny_config

    from dcgan_tf.training import resolve_jit_compile

    auto = tiny_config(tmp_path)
    assert auto.jit_compile is None
    assert resolve_jit_compile(auto, gpus=0).jit_compile is False
    assert resolve_jit_compile(auto, gpus=1).jit_compile is True
    assert resolve_jit_compile(tiny_config(tmp_path, strategy="mirrored"), gpus=2).jit_compile is False
    assert resolve_jit_compile(tiny_config(tmp_path, jit_compile=True), gpus=0).jit_compile is True
    assert resolve_jit_compile(tiny_config(tmp_path, jit_compile=False), gpus=1).jit_compile is False
