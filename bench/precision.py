"""Where mixed precision pays on this CPU, and what oneDNN is worth: train-step rates under several environments.

TensorFlow decides whether its oneDNN kernels are on when it loads, so each environment runs in a child
process of this script, one after the other:

- `default`: TensorFlow's own choice on this CPU (on only with AVX512_VNNI, AVX512_BF16 or AMX);
- `onednn=0`: TF_ENABLE_ONEDNN_OPTS=0, what TensorFlow does by default on an AVX2-only CPU (Eigen kernels;
  their bfloat16 convolution gradients are the slow ones of an AVX2-only CPU);
- `onednn=1`: TF_ENABLE_ONEDNN_OPTS=1, what dcgan_tf sets;
- `onednn=1, AVX2`: also ONEDNN_MAX_CPU_ISA=AVX2: oneDNN limited to AVX2 and FMA, the float32 speed of an
  AVX2-only CPU with dcgan_tf's setting. bfloat16 convolutions cannot run there (TensorFlow still sends them to
  oneDNN because this CPU has bfloat16, and oneDNN has no AVX2 kernel for them), so those rows say "n/a".

Rows, img/s of the compiled train step on synthetic batches (after 2 warm-up steps):
- `64px float32`: the unconditional 64x64 DCGAN at batch 64 (carpedm20's default model);
- `tuned 28px <precision>`: `--preset tuned` on conditional 28x28 one-channel data at batch 64 (the
  Fashion-MNIST recipe), in float32, in bfloat16, and in bfloat16 with every convolution kept in float32 (what
  remains of bfloat16 when its slow kernels are avoided);
- `conv bound 28px <precision>`: the tuned step's convolutions alone, each timed on its own and summed: the
  step's rate if batch norm, activations, casts and the optimiser were free.

Then one line per environment: `mixed / float32` and what `--mixed_precision auto` picks on this CPU.

  python bench/precision.py [--steps 10] [--envs default,onednn=0,onednn=1,onednn=1_avx2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # conv_layers, train_throughput
ENVIRONMENTS = {
    "default": {},
    "onednn=0": {"TF_ENABLE_ONEDNN_OPTS": "0"},
    "onednn=1": {"TF_ENABLE_ONEDNN_OPTS": "1"},
    "onednn=1_avx2": {"TF_ENABLE_ONEDNN_OPTS": "1", "ONEDNN_MAX_CPU_ISA": "AVX2"},
}
SLOW = 3.0  # a precision whose probe is this many times slower is timed over 2 steps only


def tuned_config():
    from dcgan_tf.config import TrainConfig, apply_preset

    values = apply_preset({"preset": "tuned"}, set())
    return TrainConfig(dataset="fashion_mnist", input_height=28, output_height=28, batch_size=64,
                       **{k: v for k, v in values.items() if k != "mixed_precision"})


def keep_convolutions_in_float32(*models) -> None:
    """Sets every Conv2D / Conv2DTranspose of `models` to compute in float32 (its inputs are cast up)."""
    import keras

    for model in models:
        for layer in model._flatten_layers():
            if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
                layer.dtype_policy = keras.DTypePolicy("float32")


def step_rate(cfg, c_dim: int, y_dim: int, policy: str | None, steps: int, convs_float32: bool = False) -> float:
    """img/s of the train step of `cfg`'s models in `policy` (None = float32) over `steps` synthetic batches."""
    import tensorflow as tf

    from dcgan_tf.ema import create_ema
    from dcgan_tf.latent import class_labels
    from dcgan_tf.model import models_from_config
    from dcgan_tf.training import create_optimizers, make_train_step

    G, D = models_from_config(cfg, c_dim, y_dim, dtype_policy=policy)
    if convs_float32:
        keep_convolutions_in_float32(G, D)
    g_opt, d_opt = create_optimizers(cfg)
    step = make_train_step(G, D, g_opt, d_opt, tf.random.Generator.from_seed(0), cfg,
                           ema=create_ema(cfg, G, c_dim, y_dim))
    images = tf.random.uniform((cfg.batch_size, cfg.output_height, cfg.output_width, c_dim), -1, 1)
    labels = class_labels(cfg.batch_size, y_dim)
    for _ in range(2):
        step(images, labels)["g_loss"].numpy()
    t0 = time.perf_counter()
    for _ in range(steps):
        out = step(images, labels)
    out["g_loss"].numpy()
    return steps * cfg.batch_size / (time.perf_counter() - t0)


def tuned_conv_shapes(cfg) -> list[tuple[tuple[int, int, int], str, int]]:
    """(input size, in, out channels), pass, runs per step: the convolutions of the tuned conditional step.

    D: conv0 on 28x28x(1+10) -> 14x14x(1+10)... as carpedm20's MNIST D (channels include the concatenated
    labels); G: two transposed convolutions, listed as the convolution each transposes. Counts as in
    train_throughput.conv_pass_counts for --g_steps 1.
    """
    y, c, df, gf = 10, 1, cfg.df_dim, cfg.gf_dim
    d_layers = [(28, c + y, c + y), (14, c + y + y, df + y)]
    g_layers = [(28, c, gf * 2 + y), (14, gf * 2, gf * 2 + y)]  # out of G, into G (transposed)
    from train_throughput import layer_pass_counts

    return layer_pass_counts(d_layers, g_layers, cfg.g_steps)


def conv_bound_rate(cfg, dtype) -> float:
    """img/s of the tuned step's convolutions alone (each pass timed on its own, summed)."""
    from conv_layers import conv_passes

    passes = ("forward", "backward_data", "backward_weights")
    timings, total = {}, 0.0
    for shape, kind, runs in tuned_conv_shapes(cfg):
        if shape not in timings:
            timings[shape] = conv_passes(cfg.batch_size, *shape, dtype=dtype, seconds=0.3)
        total += runs * timings[shape][passes.index(kind)]
    return cfg.batch_size / total


def child(steps: int) -> None:
    """Measures every row in this process's environment; prints one JSON object per row, flushed."""
    import tensorflow as tf  # before dcgan_tf, whose import would set TF_ENABLE_ONEDNN_OPTS for `default`
    from train_throughput import probe_slowdown

    from dcgan_tf import hardware
    from dcgan_tf.config import TrainConfig

    def emit(**row):
        print(json.dumps(row), flush=True)

    emit(kind="status", onednn=hardware.onednn_status())
    big = TrainConfig(dataset="x", input_height=64, output_height=64, batch_size=64)
    emit(kind="rate", row="64px float32", rate=step_rate(big, 3, 0, None, steps))
    try:
        ratio = probe_slowdown(tf.bfloat16)
    except tf.errors.OpError as e:
        emit(kind="note", text=f"bfloat16 convolutions cannot run here ({type(e).__name__})")
        ratio = None
    cfg = tuned_config()
    emit(kind="rate", row="tuned 28px float32", rate=step_rate(cfg, 1, 10, None, steps))
    if ratio is not None:
        emit(kind="note", text=f"probe: a bfloat16 convolution input gradient takes {ratio:.1f}x float32's")
        bf16_steps = steps if ratio < SLOW else 2
        emit(kind="rate", row="tuned 28px mixed_bfloat16", rate=step_rate(cfg, 1, 10, "mixed_bfloat16", bf16_steps))
        emit(kind="rate", row="tuned 28px bf16, convs float32",
             rate=step_rate(cfg, 1, 10, "mixed_bfloat16", steps, convs_float32=True))
    emit(kind="rate", row="conv bound 28px float32", rate=conv_bound_rate(cfg, tf.float32))
    if ratio is not None:
        emit(kind="rate", row="conv bound 28px bfloat16", rate=conv_bound_rate(cfg, tf.bfloat16))


def run_environment(name: str, steps: int) -> dict[str, float]:
    """Runs `child` under environment `name`, printing its rows as they arrive. Returns {row: img/s}."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_ENABLE_ONEDNN_OPTS", "ONEDNN_MAX_CPU_ISA")}
    env.update(ENVIRONMENTS[name], TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.Popen([sys.executable, __file__, "--child", "--steps", str(steps)], env=env,
                            stdout=subprocess.PIPE, text=True)
    rates = {}
    for line in proc.stdout:
        row = json.loads(line)
        if row["kind"] == "rate":
            rates[row["row"]] = row["rate"]
            print(f"  {row['row']:<34}{row['rate']:8.1f} img/s", flush=True)
        else:
            print(f"  {row.get('onednn') or row['text']}", flush=True)
    if proc.wait():
        print(f"  (the child process failed with exit code {proc.returncode})", flush=True)
    return rates


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--envs", default=",".join(ENVIRONMENTS))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.steps)
    from dcgan_tf import hardware

    flags = hardware.cpu_flags()
    native = hardware.native_bfloat16(flags)
    auto = hardware.resolve_precision(None, flags=flags, gpus=[])
    print(f"CPU: {hardware.cpu_model()}, {os.cpu_count()} cores; native bfloat16: "
          f"{'yes (' + native + ')' if native else 'no'}; --mixed_precision auto picks {auto.name} with oneDNN on",
          flush=True)
    results = {}
    for name in args.envs.split(","):
        print(f"{name} ({' '.join(f'{k}={v}' for k, v in ENVIRONMENTS[name].items()) or 'no variable set'}):",
              flush=True)
        results[name] = run_environment(name, args.steps)
    print("summary:")
    for name, rates in results.items():
        f32, mixed = rates.get("tuned 28px float32"), rates.get("tuned 28px mixed_bfloat16")
        if f32 and mixed:
            print(f"  {name}: tuned 28px mixed / float32 = {mixed / f32:.2f}x", flush=True)
    off, on = results.get("onednn=0", {}), results.get("onednn=1", {})
    for row in ("64px float32", "tuned 28px float32"):
        if row in off and row in on:
            print(f"  oneDNN on / off, {row}: {on[row] / off[row]:.2f}x ({on[row]:.1f} vs {off[row]:.1f} img/s)")


if __name__ == "__main__":
    main()
