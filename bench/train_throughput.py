"""Train-step throughput at 64x64, batch 64: synthetic vs emoji-folder input, float32 vs mixed precision.

Also counts the FLOPs of one train step from the layer shapes and reports the achieved rate as a share of
the float32 / bfloat16 matmul rate measured in the same process. Plain script; prints a table.

  python bench/train_throughput.py [--steps 20] [--data_dir ../shared/data] [--skip_folder]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import tensorflow as tf

from dcgan_tf.config import TrainConfig
from dcgan_tf.model import mixed_precision_policy, models_from_config
from dcgan_tf.ops import layer_sizes
from dcgan_tf.train import create_optimizers, make_train_step

K2 = 25  # 5x5 kernels


def dcgan_forward_flops(size: int, c_dim: int, z_dim: int, gf: int, df: int) -> tuple[float, float]:
    """Multiply-add FLOPs (2 per MAC) of one image through G and through D, from the layer shapes."""
    s = [h * w for h, w in layer_sizes(size, size, 4)]  # spatial sizes s, s2, s4, s8, s16
    g = 2 * z_dim * gf * 8 * s[4]
    g += 2 * K2 * (s[4] * gf * 8 * gf * 4 + s[3] * gf * 4 * gf * 2 + s[2] * gf * 2 * gf + s[1] * gf * c_dim)
    d = 2 * K2 * (s[1] * c_dim * df + s[2] * df * df * 2 + s[3] * df * 2 * df * 4 + s[4] * df * 4 * df * 8)
    d += 2 * s[4] * df * 8
    return float(g), float(d)


def train_step_flops(cfg: TrainConfig, c_dim: int) -> float:
    """FLOPs of one train step per image: D update (G fwd, D fwd x2, D bwd x2) + g_steps x (fwd + bwd of both).

    A backward pass costs about twice its forward pass (input and weight gradients).
    """
    g, d = dcgan_forward_flops(cfg.output_height, c_dim, cfg.z_dim, cfg.gf_dim, cfg.df_dim)
    return g + 2 * d + 2 * (2 * d) + cfg.g_steps * 3 * (g + d)


def matmul_rate(dtype, n: int = 2048, seconds: float = 3.0) -> float:
    """FLOP/s of a square matmul in `dtype` on this machine, now."""
    a = tf.random.normal((n, n), dtype=tf.float32)
    a = tf.cast(a, dtype)
    f = tf.function(lambda x: tf.matmul(x, x))
    f(a).numpy()
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        f(a).numpy()
        count += 1
    return 2 * n**3 * count / (time.perf_counter() - t0)


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--data_dir", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
    parser.add_argument("--skip_folder", action="store_true")
    args = parser.parse_args()
    cfg = TrainConfig(dataset="emoji-google-64", data_dir=args.data_dir, input_fname_pattern="*.png",
                      input_height=64, output_height=64, batch_size=64)
    per_image = train_step_flops(cfg, 3)
    f32_rate = matmul_rate(tf.float32)
    bf16_rate = matmul_rate(tf.bfloat16)
    rows = [("synthetic", "float32", time_steps(cfg, synthetic_batches(cfg), args.steps, None))]
    policy = mixed_precision_policy()
    rows.append(("synthetic", policy, time_steps(cfg, synthetic_batches(cfg), args.steps, policy)))
    if not args.skip_folder and os.path.isdir(os.path.join(args.data_dir, cfg.dataset)):
        rows.append(("emoji folder", "float32", time_steps(cfg, folder_batches(cfg), args.steps, None)))
        rows.append(("emoji folder", policy, time_steps(cfg, folder_batches(cfg), args.steps, policy)))
    completion_rate = time_completion(cfg, max(args.steps, 5))
    g, d = dcgan_forward_flops(cfg.output_height, 3, cfg.z_dim, cfg.gf_dim, cfg.df_dim)
    completion_flops = 2 * (g + d)  # forward, then gradients with respect to the inputs only (to z)
    print(f"train step FLOPs per image: {per_image / 1e9:.3f} GFLOP; per batch of {cfg.batch_size}: "
          f"{per_image * cfg.batch_size / 1e9:.1f} GFLOP")
    print(f"matmul rate (2048^2, same run): float32 {f32_rate / 1e9:.1f} GFLOP/s, "
          f"bfloat16 {bf16_rate / 1e9:.1f} GFLOP/s")
    print(f"{'input':<14}{'precision':<16}{'img/s':>8}{'GFLOP/s':>10}{'% f32 matmul':>14}{'% bf16 matmul':>15}")
    for source, precision, rate in rows:
        flops = rate * per_image
        print(f"{source:<14}{precision:<16}{rate:8.1f}{flops / 1e9:10.1f}{100 * flops / f32_rate:13.0f}%"
              f"{100 * flops / bf16_rate:14.0f}%")
    flops = completion_rate * completion_flops
    print(f"{'completion':<14}{'float32':<16}{completion_rate:8.1f}{flops / 1e9:10.1f}{100 * flops / f32_rate:13.0f}%"
          f"{100 * flops / bf16_rate:14.0f}%   (image-iterations/s; {completion_flops / 1e9:.2f} GFLOP each)")
    by = {(s, p): r for s, p, r in rows}
    print(f"mixed / float32 (synthetic): {by[('synthetic', policy)] / by[('synthetic', 'float32')]:.2f}x")
    if ("emoji folder", "float32") in by:
        share = by[("emoji folder", "float32")] / by[("synthetic", "float32")]
        print(f"folder / synthetic (float32): {100 * share:.0f}%")


if __name__ == "__main__":
    main()
