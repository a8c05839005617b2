"""The GPU path in one run: train-step img/s by precision and batch, completion speed, peak memory, a tuned run.

Prints one table: the device's name; train img/s at 64x64 with batch 64 and 256 for float32, mixed float16
(a LossScaleOptimizer per network) and mixed float16 with --jit_compile; the completion step's
image-iterations/s; the device's peak memory; then trains `--preset tuned` on the emoji folder at 64 px for 2
minutes and writes its sample grid. Meant for one GPU (within 8 minutes); `--quick` uses small sizes and a few
seconds of training, so it runs on a CPU-only machine too (float16 on a CPU is slow: the figures only show that
the path works). Not run in CI.

  python bench/device_check.py [--quick] [--data_dir ../shared/data] [--out /tmp/device_check]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import resource
import tempfile
import time

import tensorflow as tf
from train_throughput import synthetic_batches, time_completion, time_steps

from dcgan_tf.config import TrainConfig, apply_preset

PRECISIONS = (("float32", None, False), ("mixed float16", "mixed_float16", False),
              ("mixed float16 + XLA", "mixed_float16", True))


def device_name() -> str:
    """The first GPU's name, else the CPU's model."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or "unknown CPU"
    return f"CPU only: {model}, {os.cpu_count()} cores"


def peak_memory() -> str:
    """The GPU's peak allocation so far, or the process's peak resident memory on a CPU-only machine."""
    if tf.config.list_physical_devices("GPU"):
        return f"{tf.config.experimental.get_memory_info('GPU:0')['peak'] / 2**30:.2f} GiB (GPU:0 peak)"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB (host peak RSS; no GPU)"


def tuned_run(args, size: int, minutes: float) -> tuple[str, str]:
    """Trains --preset tuned on the emoji folder for `minutes`; returns (what ran, the sample grid's path)."""
    from dcgan_tf.training import train

    folder = os.path.join(args.data_dir, "emoji-google-64")
    if not os.path.isdir(folder):
        return f"skipped: no emoji folder at {folder}", ""
    values = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    values.update(preset="tuned", dataset="emoji-google-64", data_dir=args.data_dir, input_fname_pattern="*.png",
                  input_height=64, output_height=size, epoch=10_000, max_minutes=minutes, sample_freq=10**9,
                  ckpt_freq=10**9, log_freq=50, out_dir=f"{args.out}/out", checkpoint_dir=f"{args.out}/ckpt",
                  sample_dir=f"{args.out}/samples", out_name=f"device_check_{size}px")
    if args.quick:
        values.update(gf_dim=8, df_dim=8, batch_size=16, sample_num=16)
    result = train(TrainConfig(**apply_preset(values, set())))
    grids = sorted(os.listdir(result.paths.sample_dir))
    what = f"{result.step} steps, {result.images_per_second:.1f} img/s"
    return what, os.path.join(result.paths.sample_dir, grids[-1]) if grids else "no grid written"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: runs on a CPU-only machine")
    parser.add_argument("--data_dir", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
    parser.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "dcgan_device_check"))
    args = parser.parse_args()
    size, batches, steps, minutes = (16, (8, 32), 3, 0.3) if args.quick else (64, (64, 256), 30, 2.0)
    t0 = time.perf_counter()
    rows = [("device", device_name())]
    base = TrainConfig(dataset="synthetic", output_height=size, input_height=size, **(
        {"gf_dim": 8, "df_dim": 8} if args.quick else {}))
    for batch in batches:
        for name, policy, jit in PRECISIONS:
            cfg = dataclasses.replace(base, batch_size=batch, jit_compile=jit)
            rate = time_steps(cfg, synthetic_batches(cfg), steps, policy)
            rows.append((f"train {size}x{size} batch {batch}, {name}", f"{rate:.1f} img/s"))
    rate = time_completion(dataclasses.replace(base, batch_size=batches[0]), max(steps, 5))
    rows.append((f"completion {size}x{size} batch {batches[0]}, float32", f"{rate:.1f} image-iterations/s"))
    rows.append(("peak memory (benchmarks)", peak_memory()))
    what, grid = tuned_run(args, size, minutes)
    rows.append((f"--preset tuned, emoji {size} px, {minutes:g} min", what))
    rows.append(("sample grid", grid))
    rows.append(("peak memory (all)", peak_memory()))
    rows.append(("wall time", f"{time.perf_counter() - t0:.0f} s"))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
