"""--strategy: a mirrored step equals a one-device step, checkpoints cross strategies, two workers train.

Logical CPU devices must be configured before TensorFlow initialises its devices, which other tests in this
pytest process have already done, so the mirrored checks run this file as a script in a fresh process
(`python tests/test_distribute.py mirrored <folder>`, printing a JSON report), and the multi-worker test runs
`main.py` twice with its own TF_CONFIG each.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
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
    from dcgan_tf.training import create_training, make_train_step

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
        out2 = distribute.gather_metrics(strategy, step2(*batch))
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


def run_checks(mode: str, folder, timeout: int) -> dict:
    """Runs this file as a script (`mode` checks on 2 logical CPUs, in a fresh process); returns its JSON report."""
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), mode, str(folder)], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_mirrored_step_equals_one_device_step_and_checkpoints_cross(tmp_path):
    report = run_checks("mirrored", tmp_path, timeout=300)
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


# Each option refused until now, one step on 2 logical CPU devices against one device, in few runs (each costs
# half a minute of tracing on a loaded CPU). `excess` tolerances (atol, rtol) for weights (G, D, batch-norm
# statistics, spectral-norm u, EMA) and for Adam's moments. This is the check that a strategy computes what one
# device computes, so it runs in float32, where the two differ only in summation order: fused batch norm on one
# device, E[x^2] - E[x]^2 in float32 on two, and the all-reduce of two half-batch gradients (float32's rounding
# is 2^-24 = 6e-8 per sum). Adam's first steps are lr * sign(g), so a gradient component within that noise of 0
# may change sign and move a weight by 2 lr = 4e-4 and, after several updates (--d_steps), what depends on it:
# atol 1e-4 = lr / 2 plus 1e-3 of the largest value (measured: at most 0.3 of this tolerance). One missing or
# doubled Adam step (lr = 2e-4 on every weight) exceeds it on every kernel (largest value < 0.1), and a missing
# 1/replicas (every moment 2x) or a D update on the wrong images is far outside both.
# bfloat16 is checked against float32 on one device (tests/test_train_step.py), where its rounding has derived
# bounds: here its 8 bits (2^-8 per rounding) would hide the strategy's own errors. float16, the GPU's mixed
# precision, is compared here for its loss scaling, which must skip or apply on every replica alike; its 11
# bits (2^-11 = 4.9e-4 per rounding, the same values rounded in both runs but where summation order moves one
# across a rounding boundary) keep it within float32's weight tolerance, and its moments within 1e-2: 20
# roundings in series (G and D, forward and backward) of 2^-11 each.
FLOAT32, FLOAT16 = ((1e-4, 1e-3), (1e-9, 2e-3)), ((1e-4, 1e-3), (1e-9, 1e-2))
# Each network's update as a whole (`update_mismatch`): float32's summation-order noise (~1e-7 relative, even if
# batch norm's cancellation amplifies it 1000x) flips a component's sign with probability arctan(1e-4) / pi
# and changes the update's norm by as little; 1e-2 allows --d_steps to compound it (measured: 4e-5 and no
# flips). A doubled or missing update is 1 away in size, a sign-flipped one flips every component.
UPDATE_MISMATCH = 1e-2
OPTIONS = {  # name: (TrainConfig fields, tolerances)
    "g_ema, spectral_norm, nan_policy skip_batch, d_steps 3": (
        {"g_ema": 0.9, "spectral_norm": True, "nan_policy": "skip_batch", "d_steps": 3}, FLOAT32),
    "loss wgan-gp, d_steps 2": ({"loss": "wgan-gp", "d_steps": 2}, FLOAT32),
    "preset tuned's training in float32 (g_ema, g_steps 1, its learning rates)": (
        {"mixed_precision": False, "g_ema": 0.999, "g_steps": 1, "learning_rate_d": 0.0004,
         "learning_rate_g": 0.0002}, FLOAT32),
    "mixed_precision float16 (loss scaling)": ({"mixed_precision": True}, FLOAT16),
    "NaN on replica 1 only": ({"nan_policy": "skip_batch", "d_norm": "layer"}, FLOAT32),
}


def run_option_checks(folder: str) -> dict:
    """For each of OPTIONS: one step on one device and on 2 logical CPU devices from the same weights, data and
    seed; a JSON-able report per option."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import numpy as np
    from run_factory import tiny_config

    from dcgan_tf import training

    strategy = distribute.create_strategy("mirrored")
    report = {}
    for name, (fields, tolerances) in OPTIONS.items():
        size = 16 if fields.get("mixed_precision") else 8  # 1x1 batch-norm maps of 4 values blow up in float16
        cfg = tiny_config(folder, size=size, batch_size=4, **fields)
        images = np.random.RandomState(0).uniform(-1, 1, (cfg.images_per_step, size, size, 3)).astype(np.float32)
        if name.startswith("NaN"):
            images[2:4] = np.nan  # the rows of replica 1 (batch 4 split in two)
        if "float16 (loss scaling)" in name:  # what a GPU gets; float16 runs on CPU too
            training.mixed_precision_policy = lambda: "mixed_float16"
        try:
            t0 = time.perf_counter()
            report[name] = compare_one_step(strategy, cfg, tf.constant(images), tolerances)
            print(f"{name}: {time.perf_counter() - t0:.1f} s {report[name]}", file=sys.stderr)
        finally:
            training.mixed_precision_policy = mixed_precision_policy
    return report


@pytest.mark.slow
def test_every_option_one_mirrored_step_equals_one_device_step(tmp_path):
    report = run_checks("options", tmp_path, timeout=900)
    assert set(report) == set(OPTIONS)
    for name, r in report.items():
        assert r["same_init"] and r["replica_copies_equal"] and r["all_finite"], (name, r)
        assert r["changed"] > 50 and r["compared"] > 80, (name, r)  # the step did something, and it is compared
        assert r["weights_excess"] <= 1 and r["moments_excess"] <= 1 and r["counters_equal"], (name, r)
        assert all(max(m) <= UPDATE_MISMATCH for m in r["update_mismatch"].values()), (name, r)
        assert r["g_changed"] and r["reduced_every_step"] == ["finite"], (name, r)
    ema_sn = report["g_ema, spectral_norm, nan_policy skip_batch, d_steps 3"]
    assert ema_sn["sn_vectors"] == 5 and ema_sn["ema_weights"] == 26 and ema_sn["nan_skipped"] == [0, 0], ema_sn
    assert not ema_sn["d_unchanged"] and ema_sn["loss_diff"] < 1e-4, ema_sn
    assert report["preset tuned's training in float32 (g_ema, g_steps 1, its learning rates)"]["ema_weights"] == 26
    # NaN images only in replica 1's rows: both replicas skip D's update (counted once, as on one device), G's
    # update (on generated images) goes ahead, and the copies stay equal.
    nan = report["NaN on replica 1 only"]
    assert nan["nan_skipped"] == [1, 1] and nan["d_unchanged"], nan


def run_overflow_checks() -> dict:
    """A float16 loss-scaled update on 2 logical CPU devices whose gradients overflow on replica 1 only, with the
    replicas' agreement (distribute.agree_on_overflow) and, to show what it prevents, without it."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import numpy as np

    from dcgan_tf.optimizers import FusedAdam
    from dcgan_tf.training import scaled_loss

    strategy = distribute.create_strategy("mirrored")
    # Replica 0's input is finite; replica 1's has one inf, so its float16 gradient does too
    inputs = strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant([1.0, 2.0, float("inf") if ctx.replica_id_in_sync_group else 3.0], tf.float16))
    finite_inputs = strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant([1.0, 2.0, 3.0], tf.float16))
    report = {}
    for name, agree in (("agreed", distribute.agree_on_overflow), ("not_agreed", lambda grads: grads)):
        with strategy.scope():
            w = keras.Variable(np.full(3, 0.5, np.float32), name=f"w_{name}")
            opt = keras.optimizers.LossScaleOptimizer(FusedAdam(0.1), name=f"scale_{name}")
            opt.build([w])

        def replica_update(x, w=w, opt=opt, agree=agree):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.cast(tf.cast(w, tf.float16) * x, tf.float32))
                objective = scaled_loss(opt, loss)
            grads = agree(tape.gradient(objective, [w]))
            opt.apply_gradients(zip(grads, [w]))

        @tf.function
        def update(x, replica_update=replica_update):
            strategy.run(replica_update, args=(x,))

        scale = float(opt.dynamic_scale.numpy())
        try:
            update(inputs)
            copies = [c.numpy().tolist() for c in strategy.experimental_local_results(w.value)]
            scales = [float(c.numpy()) for c in strategy.experimental_local_results(opt.dynamic_scale.value)]
            update(finite_inputs)  # the next, finite update goes ahead on every replica
            report[name] = {"weights": copies, "scale_before": scale, "scales": scales,
                            "then": [c.numpy().tolist() for c in strategy.experimental_local_results(w.value)]}
        except tf.errors.OpError as e:
            report[name] = {"error": e.message[:300]}
    return report


@pytest.mark.slow
def test_a_float16_overflow_on_one_replica_skips_the_update_on_every_replica(tmp_path):
    report = run_checks("overflow", tmp_path, timeout=300)
    agreed = report["agreed"]
    assert agreed["weights"] == [[0.5] * 3] * 2, agreed  # skipped on both replicas: the weights are untouched
    assert agreed["scales"] == [agreed["scale_before"] / 2] * 2, agreed  # and both lowered the loss scale
    then = agreed["then"]
    assert then[0] == then[1] and all(v < 0.5 for v in then[0]), agreed  # the finite update applies everywhere
    # Without the agreement replica 0's finite gradients decide, and the summed inf reaches the weights as NaN
    wrong = report["not_agreed"]
    assert "error" in wrong or any(v != v for copy in wrong["weights"] for v in copy), report


def _build(cfg, name, strategy):
    """create_training + the (distributed) train step. Returns (step, [(name, variable)], training)."""
    import dataclasses

    import keras

    from dcgan_tf.config import RunPaths
    from dcgan_tf.training import create_training, make_train_step

    keras.utils.set_random_seed(cfg.seed)
    paths = RunPaths.from_config(dataclasses.replace(cfg, out_name=name))
    t = create_training(cfg, 3, 0, paths, strategy)
    rng = t.state.rng if strategy is None else distribute.GlobalBatchGenerator(t.state.rng)
    step = make_train_step(t.G, t.D, t.g_opt, t.d_opt, rng, cfg, nan_skipped=t.state.nan_skipped, ema=t.ema)
    named = [(v.path, v) for v in t.G.weights + t.D.weights + t.g_opt.variables + t.d_opt.variables]
    if t.ema is not None:  # the average of each G weight, named after it
        named += [(f"ema:{g.path}", a) for g, a in zip(t.G.weights, t.ema.model.weights)]
        named.append(("ema_updates", t.ema.updates))
    return distribute.distribute_train_step(strategy, step), named, t


def compare_one_step(strategy, cfg, images, tolerances) -> dict:
    import numpy as np
    import tensorflow as tf

    labels = tf.zeros([images.shape[0], 0])
    step1, named1, t1 = _build(cfg, "one", None)
    step2, named2, t2 = _build(cfg, "two", strategy)
    init1, init2 = [v.numpy() for _, v in named1], [v.numpy() for _, v in named2]
    out1 = step1(images, labels)
    dataset = tf.data.Dataset.from_tensors((images, labels))
    per_replica = step2(*next(iter(distribute.distribute_dataset(strategy, dataset, cfg.d_steps))))
    out2 = distribute.gather_metrics(strategy, per_replica)
    after1, after2 = [v.numpy() for _, v in named1], [v.numpy() for _, v in named2]
    names = [n for n, _ in named1]
    dead = dead_biases(names)
    floats = [i for i, n in enumerate(names) if after1[i].dtype.kind == "f" and _base(n) not in dead]
    moments = [i for i in floats if names[i].endswith(("_momentum", "_velocity"))]
    weights = [i for i in floats if i not in moments]
    (w_atol, w_rtol), (m_atol, m_rtol) = tolerances
    return {
        "same_init": all(np.array_equal(a, b) for a, b in zip(init1, init2)),
        "changed": sum(not np.array_equal(a, b) for a, b in zip(init1, after1)),
        "compared": len(floats), "dead_biases": len(dead),
        "weights_excess": excess(after1, after2, weights, w_atol, w_rtol),
        "moments_excess": excess(after1, after2, moments, m_atol, m_rtol),
        "update_mismatch": {net: update_mismatch(init1, after1, after2, [i for i in weights if names[i].startswith(
            f"{net}/") and "moving" not in names[i]]) for net in ("generator", "discriminator")},
        "counters_equal": all(np.array_equal(after1[i], after2[i]) for i, n in enumerate(names)
                              if after1[i].dtype.kind != "f"),
        "loss_diff": max(abs(float(out1[k]) - float(out2[k])) for k in ("d_loss", "g_loss")),
        "nan_skipped": [int(out1["nan_skipped"]), int(out2["nan_skipped"])],
        "d_unchanged": all(np.array_equal(init2[i], after2[i]) for i, n in enumerate(names)
                           if n.startswith("discriminator/") and n.endswith(("kernel", "bias"))),
        "g_changed": any(not np.array_equal(init2[i], after2[i]) for i, n in enumerate(names)
                         if n.startswith("generator/")),
        "all_finite": all(np.isfinite(a).all() for a in after2 if a.dtype.kind == "f"),
        "replica_copies_equal": all(_copies_equal(strategy, v) for _, v in named2),
        # only `finite` is reduced every step; the rest waits for gather_metrics (the steps that log)
        "reduced_every_step": sorted(k for k, v in per_replica.items()
                                     if not isinstance(v, tf.distribute.DistributedValues)),
        "sn_vectors": sum(n.endswith("sn_u") for n in names),
        "ema_weights": sum(n.startswith("ema:") for n in names)}


def update_mismatch(before, want, got, indices) -> list[float]:
    """[|size - 1|, flipped] of the update got - before against want - before over the variables `indices`: its
    norm relative to want's, and the fraction of the components that want moves whose sign differs. A doubled
    or missing update has size 2 or 0, a sign-flipped one flips every component."""
    import numpy as np

    step_want = np.concatenate([(want[i] - before[i]).ravel() for i in indices])
    step_got = np.concatenate([(got[i] - before[i]).ravel() for i in indices])
    if not step_want.any():
        return [float(step_got.any()), 0.0]
    moved = step_want != 0
    return [float(abs(np.linalg.norm(step_got) / np.linalg.norm(step_want) - 1)),
            float(np.mean(np.sign(step_want[moved]) != np.sign(step_got[moved])))]


def _copies_equal(strategy, variable) -> bool:
    import keras
    import numpy as np

    copies = strategy.experimental_local_results(variable.value if isinstance(variable, keras.Variable) else variable)
    return all(np.array_equal(c.numpy(), copies[0].numpy()) for c in copies)


def _base(name: str) -> str:
    """The weight a variable belongs to, as optimiser slots name it: ema:generator/x/bias -> generator_x_bias."""
    name = name.removeprefix("ema:")
    if name.endswith(("_momentum", "_velocity")):
        return name.rsplit("/", 1)[1].rsplit("_", 1)[0]
    return name.replace("/", "_")


def dead_biases(names) -> set:
    """The biases of layers followed by batch norm (g_h1 -> g_bn1): zero gradient in exact arithmetic, so their
    values after a step are rounding noise that Adam amplifies (see run_mirrored_checks)."""
    dead = set()
    for name in names:
        match = re.fullmatch(r"(generator|discriminator)/([gd])_h(\d+)\w*/bias", name)
        if match and f"{match[1]}/{match[2]}_bn{match[3]}/gamma" in names:
            dead.add(_base(name))
    return dead


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


@pytest.mark.slow
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


@pytest.mark.slow
def test_a_chief_task_writes_and_the_worker_does_not(make_image_folder, tmp_path):
    """TF_CONFIG with a "chief" task (as cluster managers write it): the chief, not worker 0, owns the files."""
    args, temp = _worker_args(make_image_folder, tmp_path)
    worker_args = [*args[:-1], str(tmp_path / "worker_samples")]  # where worker 0 would write its grids
    chief, worker = (f"127.0.0.1:{p}" for p in free_ports(2))
    outputs = run_workers([args, worker_args], {"chief": [chief], "worker": [worker]}, temp)
    _check_one_run_written(outputs, tmp_path, temp)
    assert not any(path.is_file() for path in (tmp_path / "worker_samples").rglob("*"))


@pytest.mark.slow
def test_two_workers_stop_together_at_max_minutes_and_resume_after_a_kill(make_image_folder, tmp_path):
    """--preset tuned --max_minutes on two workers: the chief's clock picks one step for both, one checkpoint
    is written, and the same command continues; a SIGKILLed worker costs only the steps since the last
    checkpoint: the restarted run continues from it, step and data position together."""
    import tensorflow as tf

    args, temp = _worker_args(make_image_folder, tmp_path)  # 16 images, batch 4: 4 steps per epoch
    args = [*args, "--preset", "tuned", "--out_name", "tuned", "--epoch", "1000", "--max_minutes", "0.15"]
    run_dir = tmp_path / "ck" / "tuned"
    outputs = run_workers(args, [f"127.0.0.1:{p}" for p in free_ports(2)], temp)
    stops = [re.search(r"stopped at --max_minutes: epoch \d+, step (\d+)", out) for _, out, _ in outputs]
    assert all(code == 0 for code, _, _ in outputs) and all(stops), [o[2][-2000:] for o in outputs]
    stop = int(stops[0][1])
    assert int(stops[1][1]) == stop > 0
    assert sorted(os.listdir(run_dir)) == ["FLAGS.json", "checkpoint", f"ckpt-{stop}.data-00000-of-00001",
                                           f"ckpt-{stop}.index"]
    assert os.listdir(temp) == []

    # The same command again, to a fixed end, killing worker 1 once the chief has checkpointed a later step.
    epochs = str(stop // 4 + 5)
    resumed = [*args[:-4], "--epoch", epochs, "--max_minutes", "5", "--ckpt_freq", "3"]
    killed_at = _kill_worker_after_a_checkpoint(resumed, run_dir, stop, temp)
    assert stop < killed_at < 4 * int(epochs)
    outputs = run_workers(resumed, [f"127.0.0.1:{p}" for p in free_ports(2)], temp)
    for code, out, err in outputs:
        assert code == 0 and f"done: epoch {epochs}, step {4 * int(epochs)}," in out, err[-3000:]
    first = re.search(r"epoch (\d+)/\d+ (\d+)/4 ", outputs[0][1])  # the restarted run's first step
    assert 4 * (int(first[1]) - 1) + int(first[2]) == killed_at + 1, outputs[0][1][:500]
    reader = tf.train.load_checkpoint(str(run_dir))
    state = {k: int(reader.get_tensor(f"{k}/.ATTRIBUTES/VARIABLE_VALUE")) for k in ("step", "epoch", "epoch_step")}
    assert state == {"step": 4 * int(epochs), "epoch": int(epochs), "epoch_step": 0}, state


@pytest.mark.slow
def test_a_sigterm_to_one_worker_stops_both_at_one_step_and_the_same_command_resumes(make_image_folder, tmp_path):
    """SIGTERM to worker 1 only: both workers stop after the same step, exit 130, and the chief has saved that
    step; the same two commands continue from it, and a Ctrl-C to the chief alone stops both again."""
    import signal

    import tensorflow as tf

    args, temp = _worker_args(make_image_folder, tmp_path)  # 16 images, batch 4: 4 steps per epoch
    # Far more steps than the test waits for; --max_minutes ends the run if a stop is never agreed
    args = [*args, "--epoch", "1000", "--ckpt_freq", "1000", "--sample_freq", "5", "--max_minutes", "3"]
    run_dir, samples = tmp_path / "ck" / "tiny_16x16", tmp_path / "samples" / "tiny_16x16"
    stopped = 0
    for signum, index in ((signal.SIGTERM, 1), (signal.SIGINT, 0)):
        outputs = _signal_one_worker_while_training(args, signum, index, samples, stopped, tmp_path / "logs")
        stops = [re.search(r"interrupted: epoch \d+, step (\d+)", out) for _, out, _ in outputs]
        assert [code for code, _, _ in outputs] == [130, 130] and all(stops), [o[2][-3000:] for o in outputs]
        if stopped:  # the same command resumed at the step after the stop
            first = re.search(r"epoch (\d+)/\d+ (\d+)/4 ", outputs[0][1])
            assert 4 * (int(first[1]) - 1) + int(first[2]) == stopped + 1, outputs[0][1][:500]
        step = int(stops[0][1])
        assert int(stops[1][1]) == step > stopped, (stops[0][0], stops[1][0])
        assert tf.train.latest_checkpoint(str(run_dir)).endswith(f"ckpt-{step}")
        stopped = step
    assert os.listdir(temp) == []


def _signal_one_worker_while_training(args, signum, index, samples, after, logs):
    """Starts both workers, sends `signum` to worker `index` once the chief has written a sample grid beyond step
    `after` (both are then training: every step all-reduces), and waits for both. Returns
    [(returncode, stdout, stderr)], worker 0 first."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(2)]}
    logs.mkdir(exist_ok=True)
    procs, files = [], []
    try:
        for task in (0, 1):
            env = {**ENV, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": task}}),
                   "TMPDIR": str(logs.parent / "worker_tmp")}
            out, err = (open(logs / f"{task}.{after}.{name}", "w+") for name in ("out", "err"))
            files += [out, err]
            procs.append(subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=err, text=True))
        deadline = time.time() + 240
        while not any(int(f.stem.split("_")[1]) > after for f in samples.glob("train_*.png")):
            assert time.time() < deadline and all(p.poll() is None for p in procs), "no training step"
            time.sleep(0.2)
        procs[index].send_signal(signum)
        for p in procs:
            p.wait(timeout=120)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    outputs = []
    for p, out, err in zip(procs, files[::2], files[1::2]):
        out.seek(0), err.seek(0)
        outputs.append((p.returncode, out.read(), err.read()))
        out.close(), err.close()
    return outputs


def _kill_worker_after_a_checkpoint(args, run_dir, after: int, temp) -> int:
    """Starts both workers, SIGKILLs worker 1 once the chief has a checkpoint beyond step `after`, then the
    chief (left waiting on its peer). Returns the step of the newest checkpoint."""
    import signal

    import tensorflow as tf

    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(2)]}
    procs = []
    try:
        for index in (0, 1):
            env = {**ENV, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
                   "TMPDIR": str(temp)}
            procs.append(subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
        deadline = time.time() + 240
        while time.time() < deadline:
            latest = tf.train.latest_checkpoint(str(run_dir))
            if latest and int(latest.rsplit("-", 1)[1]) > after:
                break
            assert procs[0].poll() is None, "the chief ended before a new checkpoint"
            time.sleep(0.2)
        procs[1].send_signal(signal.SIGKILL)
        procs[1].wait()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    return int(tf.train.latest_checkpoint(str(run_dir)).rsplit("-", 1)[1])


def _worker_args(make_image_folder, tmp_path):
    """main.py --train --strategy multi_worker on a 16-image folder (batch 4: 4 steps), and a TMPDIR for it."""
    from test_train_step import bf16_unsupported

    folder = make_image_folder(n=16, size=16)
    temp = tmp_path / "worker_tmp"
    temp.mkdir()
    # --mixed_precision auto picks bfloat16 from the CPU's flags; where oneDNN is capped at AVX2 on such a CPU
    # (ONEDNN_MAX_CPU_ISA) bfloat16 cannot run, and float32 is what auto picks on a real AVX2-only CPU
    precision = ["--mixed_precision=false"] if bf16_unsupported() else []
    args = [sys.executable, "main.py", "--train", *precision, "--strategy", "multi_worker", "--dataset", folder.name,
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
    ({"strategy": "mirrored", "jit_compile": True}, "jit_compile", "XLA cannot compile the step of --strategy"),
    ({"strategy": "multi_worker", "jit_compile": True}, "jit_compile", "tfvariable_on_a_different_device"),
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


def test_d_steps_batches_are_interleaved_so_each_replica_holds_its_rows_of_every_one():
    import numpy as np
    import tensorflow as tf

    x = tf.constant(np.arange(12).reshape(12, 1))  # 3 D updates of a global batch of 4, for 2 replicas
    got = distribute._replica_major(x, 3, 2).numpy().ravel().tolist()
    # replica 0: rows 0-1 of each D update's batch (0-1, 4-5, 8-9); replica 1: rows 2-3 of each
    assert got == [0, 1, 4, 5, 8, 9, 2, 3, 6, 7, 10, 11]
    assert distribute._replica_major(tf.zeros((12, 0)), 3, 2).shape == (12, 0)  # unconditional labels


def test_default_strategy_changes_nothing():
    step = object()
    assert distribute.create_strategy("default") is None
    assert distribute.distribute_train_step(None, step) is step
    assert distribute.distribute_dataset(None, step) is step
    metrics = {"d_loss": 1.0}
    assert distribute.gather_metrics(None, metrics) is metrics
    assert distribute.is_chief(None)


if __name__ == "__main__":
    if sys.argv[1] == "mirrored":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        print(json.dumps(run_mirrored_checks(sys.argv[2])))
    elif sys.argv[1] == "options":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from dcgan_tf.model import mixed_precision_policy

        print(json.dumps(run_option_checks(sys.argv[2])))
    elif sys.argv[1] == "overflow":
        print(json.dumps(run_overflow_checks()))
