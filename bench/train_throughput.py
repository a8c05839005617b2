"""Train-step throughput at 64x64, batch 64: synthetic vs emoji-folder input, float32 vs mixed precision.

Also counts the FLOPs of one train step from the layer shapes and reports the achieved rate as a share of
the float32 / bfloat16 matmul rate measured in the same process, and the convolution bound: every convolution
op of the step timed on its own, summed, i.e. the step's time if batch norm, activations, the optimiser and
the executor cost nothing. Plain script; prints each row as soon as it is measured.

The header names the CPU, whether it computes bfloat16 natively, whether oneDNN is on, and what
`--mixed_precision auto` picks; the last lines compare the precisions and give `auto`'s rate as a share of
the faster one. A probe first times one bfloat16 convolution gradient against float32: where bfloat16 is
several times slower (AVX2-only CPUs, or oneDNN off), a 64 px mixed step would take minutes, so the mixed rows
are skipped and float32 counts as the faster; the defaults then finish within 10 minutes on a 2-core CPU.

  python bench/train_throughput.py [--steps 10] [--data_dir ../shared/data] [--skip_folder] [--skip_bound]
"""

from __future__ import annotations

import argparse
import os
import time

# isort: off
from dcgan_tf import hardware  # before TensorFlow: its import turns oneDNN on, as in every program
# isort: on
import numpy as np
import tensorflow as tf
from conv_layers import conv_passes

from dcgan_tf.config import TrainConfig
from dcgan_tf.model import mixed_precision_policy, models_from_config
from dcgan_tf.ops import layer_sizes
from dcgan_tf.training import create_optimizers, make_train_step

K2 = 25  # 5x5 kernels
SLOW_PROBE = 3.0  # a mixed precision whose convolution probe is this many times slower is timed briefly


def dcgan_conv_shapes(size: int, c_dim: int, gf: int, df: int):
    """The stride-2 5x5 'same' convolutions of the DCGAN as (input size, in channels, out channels).

    Returns (d_layers, g_layers). A transposed convolution of G is listed as the convolution it transposes
    (from G's output side to its input side), so G's forward pass runs that convolution's backward-data op.
    """
    s = [h for h, _ in layer_sizes(size, size, 4)]  # s, s2, s4, s8, s16
    d_channels = [c_dim, df, df * 2, df * 4, df * 8]
    g_channels = [c_dim, gf, gf * 2, gf * 4, gf * 8]
    d_layers = [(s[i], d_channels[i], d_channels[i + 1]) for i in range(4)]
    g_layers = [(s[i], g_channels[i], g_channels[i + 1]) for i in range(4)]
    return d_layers, g_layers


def conv_flops(h: int, ci: int, co: int) -> float:
    """Multiply-add FLOPs (2 per MAC) of one image through a stride-2 'same' 5x5 convolution, padding included."""
    out = (h + 1) // 2
    return 2.0 * K2 * out * out * ci * co


def z_projection_flops(size: int, z_dim: int, gf: int) -> float:
    """FLOPs of one image through G's first layer, the Dense projection of z to [s16, s16, gf * 8]."""
    s16 = layer_sizes(size, size, 4)[4]
    return 2.0 * z_dim * gf * 8 * s16[0] * s16[1]


def dcgan_forward_flops(size: int, c_dim: int, z_dim: int, gf: int, df: int) -> tuple[float, float]:
    """FLOPs of one image through G and through D, from the layer shapes."""
    d_layers, g_layers = dcgan_conv_shapes(size, c_dim, gf, df)
    s16 = layer_sizes(size, size, 4)[4]
    g = z_projection_flops(size, z_dim, gf) + sum(conv_flops(*shape) for shape in g_layers)
    d = sum(conv_flops(*shape) for shape in d_layers) + 2.0 * s16[0] * s16[1] * df * 8
    return g, d


def train_step_flops(cfg: TrainConfig, c_dim: int) -> float:
    """FLOPs per image of one train step: the operations the step runs.

    - D update: G forward; D forward on the real and the fake batch; D's weight gradients for both; D's input
      gradients for both except its first convolution's (nothing upstream needs them).
    - Each of --g_steps G updates: G and D forward; D's input gradients only (D's weight gradients are not
      asked for, and TensorFlow prunes them from the graph); G's weight gradients; G's input gradients except
      the z projection's.
    A weight gradient and an input gradient each cost one forward pass of the layer. Batch norm, activations
    and the optimiser are not counted (they are not multiply-adds of the layer shapes).
    """
    g, d = dcgan_forward_flops(cfg.output_height, c_dim, cfg.z_dim, cfg.gf_dim, cfg.df_dim)
    d_first = conv_flops(*dcgan_conv_shapes(cfg.output_height, c_dim, cfg.gf_dim, cfg.df_dim)[0][0])
    z_projection = z_projection_flops(cfg.output_height, cfg.z_dim, cfg.gf_dim)
    d_update = g + 2 * d + 2 * d + 2 * (d - d_first)
    g_update = (g + d) + d + g + (g - z_projection)
    return d_update + cfg.g_steps * g_update


def conv_pass_counts(cfg: TrainConfig, c_dim: int) -> list[tuple[tuple[int, int, int], str, int]]:
    """(conv shape, pass, runs per train step) for every convolution op the step runs (see train_step_flops).

    Passes: "forward", "backward_data" (input gradient; also G's forward), "backward_weights".
    """
    return layer_pass_counts(*dcgan_conv_shapes(cfg.output_height, c_dim, cfg.gf_dim, cfg.df_dim), cfg.g_steps)


def layer_pass_counts(d_layers, g_layers, gs: int) -> list[tuple[tuple[int, int, int], str, int]]:
    """conv_pass_counts for D's convolutions and G's (each listed as the convolution it transposes), from
    D's input side, with `gs` G updates per step."""
    runs = []
    for i, shape in enumerate(d_layers):
        runs += [(shape, "forward", 2 + gs), (shape, "backward_weights", 2),
                 (shape, "backward_data", (2 if i else 0) + gs)]
    for shape in g_layers:
        runs += [(shape, "backward_data", 1 + gs), (shape, "forward", gs), (shape, "backward_weights", gs)]
    return [run for run in runs if run[2]]


def conv_bound(cfg: TrainConfig, c_dim: int, dtype) -> float:
    """Seconds per train step spent in its convolutions alone: the step time if everything else were free."""
    passes = ("forward", "backward_data", "backward_weights")  # the order of conv_layers.conv_passes
    timings, total = {}, 0.0
    for shape, kind, runs in conv_pass_counts(cfg, c_dim):
        if shape not in timings:
            timings[shape] = conv_passes(cfg.batch_size, *shape, dtype=dtype)
        total += runs * timings[shape][passes.index(kind)]
    return total


def matmul_rate(dtype, n: int = 2048, trials: int = 5, seconds: float = 1.0) -> float:
    """FLOP/s of a square matmul in `dtype` on this machine, now: the best of `trials` runs of `seconds` each.

    The best, not the mean: on a shared machine a slow trial measures the neighbours, not the CPU, and the
    reference should be the rate the CPU can reach (a lower reference would flatter the shares).
    """
    a = tf.random.normal((n, n), dtype=tf.float32)
    a = tf.cast(a, dtype)
    f = tf.function(lambda x: tf.matmul(x, x))
    f(a).numpy()
    rates = []
    for _ in range(trials):
        count, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            f(a).numpy()
            count += 1
        rates.append(2 * n**3 * count / (time.perf_counter() - t0))
    return max(rates)


def time_steps(cfg: TrainConfig, batches, steps: int, policy: str | None) -> float:
    """img/s of the compiled train step over `steps` batches drawn from `batches` (after 2 warm-up steps)."""
    G, D = models_from_config(cfg, 3, 0, dtype_policy=policy)
    g_opt, d_opt = create_optimizers(cfg, loss_scaling=policy == "mixed_float16")
    step = make_train_step(G, D, g_opt, d_opt, tf.random.Generator.from_seed(0), cfg)
    it = iter(batches)
    for _ in range(2):
        images, labels = next(it)
        step(images, labels)["g_loss"].numpy()
    t0 = time.perf_counter()
    for _ in range(steps):
        images, labels = next(it)
        out = step(images, labels)
    out["g_loss"].numpy()
    return steps * cfg.batch_size / (time.perf_counter() - t0)


def time_completion(cfg: TrainConfig, iterations: int) -> float:
    """Image-iterations/s of the completion step (z update through G and D) on a batch of centre-masked images."""
    from dcgan_tf.completion import Completer
    from dcgan_tf.masks import make_mask

    G, D = models_from_config(cfg, 3, 0)
    images = tf.random.uniform((cfg.batch_size, cfg.output_height, cfg.output_width, 3), -1, 1).numpy()
    mask = make_mask("center", cfg.output_height, cfg.output_width, rng=np.random.default_rng(0))
    masks = np.broadcast_to(mask, images.shape[:3] + mask.shape[-1:]).copy()
    completer = Completer(G, D, batch_size=cfg.batch_size, z_dim=cfg.z_dim)
    completer(images, masks, None, n_iter=2)  # compile outside the timing
    t0 = time.perf_counter()
    completer(images, masks, None, n_iter=iterations)
    return cfg.batch_size * iterations / (time.perf_counter() - t0)


def synthetic_batches(cfg: TrainConfig):
    x = tf.random.uniform((cfg.batch_size, cfg.output_height, cfg.output_width, 3), -1, 1)
    y = tf.zeros((cfg.batch_size, 0))
    while True:
        yield x, y


def folder_batches(cfg: TrainConfig):
    from dcgan_tf.data import load_train_data

    data = load_train_data(cfg, seed=0)
    while True:
        yield from data.dataset


def probe_slowdown(dtype) -> float:
    """How many times longer a low-precision convolution input gradient (G's forward op) takes than float32's."""
    dy32, k32 = tf.random.normal((64, 7, 7, 128)), tf.random.normal((5, 5, 64, 128))
    times = []
    for dt in (dtype, tf.float32):
        dy, k = tf.cast(dy32, dt), tf.cast(k32, dt)
        f = tf.function(lambda dy, k: tf.raw_ops.Conv2DBackpropInput(
            input_sizes=[64, 14, 14, 64], filter=k, out_backprop=dy, strides=[1, 2, 2, 1], padding="SAME"))
        f(dy, k).numpy()
        t0 = time.perf_counter()
        for _ in range(3):
            f(dy, k).numpy()
        times.append(time.perf_counter() - t0)
    return times[0] / times[1]


def print_header(policy: str) -> hardware.Precision:
    """The machine line: CPU, native bfloat16, oneDNN, and what --mixed_precision auto picks. Returns auto's pick."""
    flags = hardware.cpu_flags()
    native = hardware.native_bfloat16(flags)
    gpus = tf.config.list_physical_devices("GPU")
    auto = hardware.resolve_precision(None, gpus=None if gpus else [])  # this machine: flags, oneDNN, its cap
    print(f"CPU: {hardware.cpu_model()}, {os.cpu_count()} cores; native bfloat16: "
          f"{'yes (' + native + ')' if native else 'no'}; {hardware.onednn_status()}; GPUs: {len(gpus)}", flush=True)
    print(f"--mixed_precision auto picks {auto.name} ({auto.reason}); mixed rows use {policy}", flush=True)
    return auto


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--data_dir", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
    parser.add_argument("--skip_folder", action="store_true")
    parser.add_argument("--skip_bound", action="store_true", help="do not time the convolutions one by one")
    args = parser.parse_args()
    cfg = TrainConfig(dataset="emoji-google-64", data_dir=args.data_dir, input_fname_pattern="*.png",
                      input_height=64, output_height=64, batch_size=64)
    policy = mixed_precision_policy()
    low = tf.bfloat16 if "bfloat16" in policy else tf.float16
    auto = print_header(policy)
    try:
        slowdown = probe_slowdown(low)
    except tf.errors.OpError as e:  # e.g. oneDNN capped below its bfloat16 kernels (ONEDNN_MAX_CPU_ISA)
        print(f"probe: a {low.name} convolution cannot run here ({type(e).__name__}); mixed rows are skipped")
        slowdown = None
    slow = slowdown is not None and slowdown > SLOW_PROBE  # a 64 px step would take minutes: not timed
    if slowdown is not None:
        print(f"probe: a {low.name} convolution input gradient takes {slowdown:.1f}x float32's"
              + (f"; over {SLOW_PROBE:g}x, so the mixed rows are skipped (float32 is the faster)" if slow else ""),
              flush=True)
    per_image = train_step_flops(cfg, 3)
    f32_rate = matmul_rate(tf.float32)
    low_rate = matmul_rate(low) if slowdown is not None else float("nan")
    print(f"train step FLOPs per image: {per_image / 1e9:.3f} GFLOP; per batch of {cfg.batch_size}: "
          f"{per_image * cfg.batch_size / 1e9:.1f} GFLOP")
    print(f"matmul rate (2048^2, same run): float32 {f32_rate / 1e9:.1f} GFLOP/s, "
          f"{low.name} {low_rate / 1e9:.1f} GFLOP/s")
    low_matmul = f"% {low.name} matmul"
    print(f"{'input':<14}{'precision':<16}{'img/s':>8}{'GFLOP/s':>10}{'% f32 matmul':>14}{low_matmul:>19}", flush=True)
    by = {}

    def row(source, precision, rate):
        by[(source, precision)] = rate
        flops = rate * per_image
        print(f"{source:<14}{precision:<16}{rate:8.1f}{flops / 1e9:10.1f}{100 * flops / f32_rate:13.0f}%"
              f"{100 * flops / low_rate:18.0f}%", flush=True)

    row("synthetic", "float32", time_steps(cfg, synthetic_batches(cfg), args.steps, None))
    fast = slowdown is not None and not slow
    if fast:
        row("synthetic", policy, time_steps(cfg, synthetic_batches(cfg), args.steps, policy))
    if not args.skip_folder and os.path.isdir(os.path.join(args.data_dir, cfg.dataset)):
        row("emoji folder", "float32", time_steps(cfg, folder_batches(cfg), args.steps, None))
        if fast:
            row("emoji folder", policy, time_steps(cfg, folder_batches(cfg), args.steps, policy))
    if not args.skip_bound:
        row("conv bound", "float32", cfg.batch_size / conv_bound(cfg, 3, tf.float32))
        if fast:
            row("conv bound", policy, cfg.batch_size / conv_bound(cfg, 3, low))
    completion_rate = time_completion(cfg, max(args.steps, 5))
    g, d = dcgan_forward_flops(cfg.output_height, 3, cfg.z_dim, cfg.gf_dim, cfg.df_dim)
    completion_flops = 2 * (g + d)  # forward, then gradients with respect to the inputs only (to z)
    flops = completion_rate * completion_flops
    print(f"{'completion':<14}{'float32':<16}{completion_rate:8.1f}{flops / 1e9:10.1f}{100 * flops / f32_rate:13.0f}%"
          f"{100 * flops / low_rate:18.0f}%   (image-iterations/s; {completion_flops / 1e9:.2f} GFLOP each)")
    f32, mixed = by[("synthetic", "float32")], by.get(("synthetic", policy), 0.0)  # 0: skipped or cannot run
    if mixed:
        print(f"mixed / float32 (synthetic): {mixed / f32:.2f}x")
    print(f"auto ({auto.name}): {(mixed if auto.mixed else f32) / max(f32, mixed):.2f}x the faster of float32 and "
          "mixed")
    if ("emoji folder", "float32") in by:
        share = by[("emoji folder", "float32")] / by[("synthetic", "float32")]
        print(f"folder / synthetic (float32): {100 * share:.0f}%")


if __name__ == "__main__":
    main()
