"""--strategy: a mirrored step equals a one-device step, checkpoints cross strategies, two workers train.

Logical CPU devices must be configured before TensorFlow initialises its devices, which other tests in this
pytest process have already done, so the mirrored checks run this file as a script in a fresh process
(`python tests/test_distribute.py mirrored <folder>`, printing a JSON report), and the multi-worker test runs
`main.py` twice with its own TF_CONFIG each.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import types

import pytest

from dcgan_tf import distribute
from dcgan_tf.errors import DcganError, FlagError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# PYTHONPATH: the subprocesses import this checkout's dcgan_tf, whatever is installed.
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": ROOT}
ENV.pop("TF_CONFIG", None)


# ----------------------------------------------------------------------------------------------------------
# In a fresh process with two logical CPU devices


def run_mirrored_checks(folder: str) -> dict:
    """One step under MirroredStrategy on 2 logical CPUs vs one device, and checkpoints across strategies."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import dataclasses

    import keras
    import numpy as np
    from run_factory import tiny_config

    from dcgan_tf.checkpoint import create_manager, save_checkpoint
    from dcgan_tf.config import RunPaths
    from dcgan_tf.latent import class_labels
    from dcgan_tf.train import create_training, make_train_step

    strategy = distribute.create_strategy("mirrored")
    report = {"replicas": strategy.num_replicas_in_sync,
              "same_strategy_again": distribute.create_strategy("mirrored") is strategy}

    def build(cfg, c_dim, y_dim, name, strategy):
        keras.utils.set_random_seed(cfg.seed)
        paths = RunPaths.from_config(dataclasses.replace(cfg, out_name=name))
        t = create_training(cfg, c_dim, y_dim, paths, strategy)
        G, D, g_opt, d_opt, state, ckpt = t.G, t.D, t.g_opt, t.d_opt, t.state, t.checkpoint
        rng = state.rng if strategy is None else distribute.GlobalBatchGenerator(state.rng)
        step = make_train_step(G, D, g_opt, d_opt, rng, cfg, nan_skipped=state.nan_skipped)
        variables = G.weights + D.weights + g_opt.variables + d_opt.variables  # weights include BN statistics
        return distribute.distribute_train_step(strategy, step), variables, ckpt, paths

    def values(variables):
        return [np.array(v.numpy()) for v in variables]

    for conditional in (False, True):
        # Smoothing and instance noise too: every draw of the global batch must reach the right replica.
        cfg = tiny_config(folder, conditional=conditional, size=28 if conditional else 16, label_smoothing=0.8,
                          instance_noise=0.3, batch_size=6)
        c_dim, y_dim = (1, 10) if conditional else (3, 0)
        images = np.random.RandomState(0).uniform(-1, 1, (6, cfg.output_height, cfg.output_width, c_dim))
        images, labels = tf.constant(images.astype(np.float32)), tf.constant(class_labels(6, y_dim))
        step1, vars1, ckpt1, _ = build(cfg, c_dim, y_dim, f"one_{conditional}", None)
        step2, vars2, ckpt2, _ = build(cfg, c_dim, y_dim, f"two_{conditional}", strategy)
        init1, init2 = values(vars1), values(vars2)
        out1 = step1(images, labels)
        batch = next(iter(distribute.distribute_dataset(strategy, tf.data.Dataset.from_tensors((images, labels)))))
        out2 = step2(*batch)
        after1, after2 = values(vars1), values(vars2)
        names = [v.path for v in vars1]
        # A bias straight before batch norm has a zero gradient in exact arithmetic, so its value after a step is
        # rounding noise amplified by Adam, different on one device and on two: it is left out, with its Adam
        # slots (paths like d_adam/discriminator_d_h1_conv_bias_velocity; the velocity is about 0.001 g^2).
        velocity = {n.split("/", 1)[1][:-len("_velocity")]: float(np.abs(a).max())
                    for n, a in zip(names, after1) if n.endswith("_velocity")}
        dead = {k for k, v in velocity.items() if k.endswith("_bias") and v < 1e-6 * max(velocity.values())}
        weights = [i for i, n in enumerate(names) if "adam" not in n and n.replace("/", "_") not in dead]
        moments = [i for i, n in enumerate(names) if n.endswith(("_momentum", "_velocity"))
                   and n.split("/", 1)[1].rsplit("_", 1)[0] not in dead]

        replica_copies_equal = all(
            all(np.array_equal(c.numpy(), strategy.experimental_local_results(v.value)[0].numpy())
                for c in strategy.experimental_local_results(v.value)) for v in vars2)
        # A mirrored checkpoint restores on one device, and a one-device checkpoint under mirrored.
        restored = {}
        for name, src, dst, want in (("mirrored_to_default", ckpt2, None, after2),
                                     ("default_to_mirrored", ckpt1, strategy, after1)):
            _, _, _, paths = build(cfg, c_dim, y_dim, f"{name}_{conditional}", dst)
            save_checkpoint(create_manager(src, paths.checkpoint_dir), 1)
            _, vars3, _, _ = build(cfg, c_dim, y_dim, f"{name}_{conditional}", dst)  # restores what was saved
            restored[name] = all(np.array_equal(a, b) for a, b in zip(want, values(vars3)))
        report[f"conditional={conditional}"] = {
            "same_init": all(np.array_equal(a, b) for a, b in zip(init1, init2)),
            "changed": sum(not np.allclose(a, b) for a, b in zip(init1, after1)),
            "bn_statistics_changed": sum(not np.allclose(a, b) for a, b, n in zip(init1, after1, names)
                                         if "moving" in n),
            "dead_biases": sorted(dead), "compared": len(weights) + len(moments),
            "weights_excess": excess(after1, after2, weights, 3e-5, 1e-4),
            "moments_excess": excess(after1, after2, moments, 1e-9, 1e-4),
            "loss_diff": max(abs(float(out1[k]) - float(out2[k])) for k in ("d_loss", "g_loss", "d_real")),
            "z_equal": bool(np.array_equal(out1["z"], out2["z"])), "d_shape": list(out2["d"].shape),
            "replica_copies_equal": replica_copies_equal, "restored": restored}
    return report


def excess(want, got, indices, atol, rtol) -> float:
    """max |a - b| / (atol + rtol max |a|) over the variables `indices`: <= 1 is within tolerance."""
    import numpy as np

    return max(float(np.abs(want[i] - got[i]).max() / (atol + rtol * np.abs(want[i]).max())) for i in indices)


def test_mirrored_step_equals_one_device_step_and_checkpoints_cross(tmp_path):
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "mirrored", str(tmp_path)], cwd=ROOT,
                          env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2 and report["same_strategy_again"], report
    for name in ("conditional=False", "conditional=True"):
        r = report[name]
        assert r["same_init"] and r["z_equal"] and r["replica_copies_equal"], (name, r)
        assert r["changed"] > 10 and r["bn_statistics_changed"] >= 4, (name, r)  # the step did something
        assert 4 <= len(r["dead_biases"]) <= 8 and r["compared"] > 60, (name, r)
        assert r["weights_excess"] <= 1, (name, r)  # G, D and BN moving statistics
        # Adam's first step is about lr * sign(g) whatever the scale of g, so its moments (m = 0.1 g,
        # v = 0.001 g^2) show that gradients have the global batch's scale: 1/replicas missing is 2x off.
        assert r["moments_excess"] <= 1, (name, r)
        assert r["loss_diff"] < 1e-5, (name, r)
        assert r["d_shape"] == [6, 1], (name, r)
        assert r["restored"] == {"mirrored_to_default": True, "default_to_mirrored": True}, (name, r)


# ----------------------------------------------------------------------------------------------------------
# Two workers on loopback


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def test_two_workers_train_and_only_the_chief_writes(make_image_folder, tmp_path):
    from dcgan_tf.runs import load_run

    args, temp = _worker_args(make_image_folder, tmp_path)
    workers = [f"127.0.0.1:{p}" for p in free_ports(2)]
    outputs = run_workers(args, workers, temp)
    _check_one_run_written(outputs, tmp_path, temp)
    run_dir = tmp_path / "ck" / "tiny_16x16"
    run = load_run(str(run_dir))  # restores under the default strategy
    assert run.step == 4 and run.config.strategy == "multi_worker"
    # Resuming where worker 1 cannot see the chief's checkpoints would train different weights: refused.
    elsewhere = [*args[:-3], str(tmp_path / "ck_elsewhere"), *args[-2:]]
    outputs = run_workers([args, elsewhere], [f"127.0.0.1:{p}" for p in free_ports(2)], temp, epochs="2")
    for code, _, err in outputs:
        assert code == 2 and "error: the workers resumed at different steps (0 and 4)" in err, err[-3000:]
    assert sorted(os.listdir(run_dir))[-1] == "ckpt-4.index"


def test_a_chief_task_writes_and_the_worker_does_not(make_image_folder, tmp_path):
    """TF_CONFIG with a "chief" task (as cluster managers write it): the chief, not worker 0, owns the files."""
    args, temp = _worker_args(make_image_folder, tmp_path)
    worker_args = [*args[:-1], str(tmp_path / "worker_samples")]  # where worker 0 would write its grids
    chief, worker = (f"127.0.0.1:{p}" for p in free_ports(2))
    outputs = run_workers([args, worker_args], {"chief": [chief], "worker": [worker]}, temp)
    _check_one_run_written(outputs, tmp_path, temp)
    assert not any(path.is_file() for path in (tmp_path / "worker_samples").rglob("*"))


def _worker_args(make_image_folder, tmp_path):
    """main.py --train --strategy multi_worker on a 16-image folder (batch 4: 4 steps), and a TMPDIR for it."""
    folder = make_image_folder(n=16, size=16)
    temp = tmp_path / "worker_tmp"
    temp.mkdir()
    args = [sys.executable, "main.py", "--train", "--strategy", "multi_worker", "--dataset", folder.name,
            "--data_dir", str(folder.parent), "--input_fname_pattern", "*.png", "--input_height", "16",
            "--output_height", "16", "--z_dim", "8", "--gf_dim", "4", "--df_dim", "4", "--batch_size", "4",
            "--epoch", "1", "--log_freq", "1", "--sample_freq", "2", "--ckpt_freq", "2", "--sample_num", "4",
            "--out_dir", str(tmp_path / "out"), "--checkpoint_dir", str(tmp_path / "ck"),
            "--sample_dir", str(tmp_path / "samples")]
    return args, temp


def _check_one_run_written(outputs, tmp_path, temp):
    """Both tasks finished the 4 steps and exactly one copy of the run (checkpoints, samples) was written."""
    import tensorflow as tf

    for code, out, err in outputs:
        assert code == 0, err[-3000:]
        assert "done: epoch 1, step 4" in out, out
    run_dir = tmp_path / "ck" / "tiny_16x16"
    assert sorted(os.listdir(run_dir)) == ["FLAGS.json", "checkpoint", "ckpt-4.data-00000-of-00001", "ckpt-4.index"]
    assert tf.train.latest_checkpoint(str(run_dir)).endswith("ckpt-4")
    assert os.listdir(temp) == []  # the other task's copies were deleted
    assert sorted(os.listdir(tmp_path / "samples" / "tiny_16x16")) == ["train_00000002.png", "train_00000004.png"]


def run_workers(args, cluster, temp, epochs=None):
    """Runs `args` (or one argument list per task) as the two tasks of `cluster`: a list of two worker addresses,
    or {"chief": [address], "worker": [address]}. Returns [(returncode, stdout, stderr)], chief or worker 0 first.
    """
    per_worker = args if isinstance(args[0], list) else [args, args]
    if isinstance(cluster, list):
        cluster, tasks = {"worker": cluster}, [("worker", 0), ("worker", 1)]
    else:
        tasks = [("chief", 0), ("worker", 0)]
    procs = []
    try:
        for (task_type, index), argv in zip(tasks, per_worker):
            if epochs:
                argv = [*argv, "--epoch", epochs]
            tf_config = {"cluster": cluster, "task": {"type": task_type, "index": index}}
            env = {**ENV, "TF_CONFIG": json.dumps(tf_config), "TMPDIR": str(temp)}
            procs.append(subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True))
        outputs = [p.communicate(timeout=240) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outputs)]


# ----------------------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize("flags, flag, words", [
    ({"strategy": "horovod"}, "strategy", "must be one of default, mirrored, multi_worker"),
    ({"strategy": "mirrored", "jit_compile": True}, "jit_compile", "XLA is not supported with --strategy mirrored"),
    ({"strategy": "multi_worker", "mixed_precision": True}, "mixed_precision", "not supported with --strategy"),
    ({"strategy": "mirrored", "nan_policy": "skip_batch"}, "nan_policy", "skip_batch is not supported"),
])
def test_unsupported_flags_name_the_flag(tmp_path, flags, flag, words):
    from run_factory import tiny_config

    with pytest.raises(FlagError) as e:
        tiny_config(tmp_path, **flags)
    assert str(e.value).startswith(f"--{flag}: ") and words in str(e.value) and "\n" not in str(e.value)


def test_global_batch_must_divide_among_replicas():
    with pytest.raises(FlagError, match=r"^--batch_size: is the global batch and must divide evenly among the 4 "
                                        r"replicas of --strategy mirrored, got 6$"):
        distribute.check_batch_size(6, types.SimpleNamespace(num_replicas_in_sync=4), "mirrored")
    distribute.check_batch_size(8, types.SimpleNamespace(num_replicas_in_sync=4), "mirrored")


def test_multi_worker_needs_a_valid_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(FlagError, match="^--strategy: multi_worker needs the TF_CONFIG environment variable"):
        distribute.create_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {}}')
    with pytest.raises(DcganError, match="^TF_CONFIG must be JSON like"):
        distribute.create_strategy("multi_worker")


def test_default_strategy_changes_nothing():
    step = object()
    assert distribute.create_strategy("default") is None
    assert distribute.distribute_train_step(None, step) is step
    assert distribute.distribute_dataset(None, step) is step
    assert distribute.is_chief(None)


if __name__ == "__main__":
    if sys.argv[1] == "mirrored":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        print(json.dumps(run_mirrored_checks(sys.argv[2])))
