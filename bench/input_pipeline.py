"""Throughput of the image-folder input pipeline (dcgan_tf.data), in images per second.

Prints: the one-off decode of the folder (Pillow, thread pool), a few epochs of the cached tf.data pipeline
alone, the streaming pipeline alone (--stream), and, unless --steps 0, the speed of a stand-in training step
(a DCGAN-sized discriminator forward + backward) fed by the pipeline versus by one constant synthetic batch.

  python bench/input_pipeline.py                                   # ../shared/data/emoji-google-64
  python bench/input_pipeline.py --data_dir ./data --dataset celebA --pattern "*.jpg" --crop --stream
"""

from __future__ import annotations

import argparse
import math
import time

import tensorflow as tf

from dcgan_tf import data
from dcgan_tf.config import TrainConfig


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", default="../shared/data")
    p.add_argument("--dataset", default="emoji-google-64")
    p.add_argument("--pattern", default="*.png")
    p.add_argument("--size", type=int, default=64, help="output height and width")
    p.add_argument("--crop", action="store_true")
    p.add_argument("--input_size", type=int, default=108, help="crop size with --crop")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--train_size", type=float, default=math.inf)
    p.add_argument("--epochs", type=int, default=3, help="epochs of the pipeline alone")
    p.add_argument("--stream", action="store_true", help="also time the streaming (not cached) pipeline")
    p.add_argument("--steps", type=int, default=10, help="stand-in training steps per input (0: skip)")
    return p.parse_args()


def time_epochs(info: data.DataInfo, epochs: int) -> tuple[float, float]:
    """Images per second of iterating the dataset alone, and CPU milliseconds (all threads) per batch."""
    start, cpu_start, n = time.perf_counter(), time.process_time(), 0
    for _ in range(epochs):
        for images, _ in info.dataset:
            n += int(images.shape[0])
    cpu_ms = 1000 * (time.process_time() - cpu_start) / (n / info.dataset.element_spec[0].shape[0])
    return n / (time.perf_counter() - start), cpu_ms


def make_step(c_dim: int, size: int):
    """A stand-in for one training step: a DCGAN discriminator (5x5 stride-2 convs 64..512) fwd + bwd."""
    layers = [tf.keras.layers.Conv2D(f, 5, 2, "same", activation=tf.nn.leaky_relu) for f in (64, 128, 256, 512)]
    model = tf.keras.Sequential([tf.keras.Input((size, size, c_dim)), *layers, tf.keras.layers.Flatten(),
                                 tf.keras.layers.Dense(1)])

    @tf.function
    def step(images):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(model(images, training=True))
        return tape.gradient(loss, model.trainable_variables)[0][0, 0, 0, 0]

    return step


def time_steps(step, batches, steps: int) -> float:
    """Seconds per step after one warm-up step."""
    it = iter(batches)
    step(next(it))
    start = time.perf_counter()
    for _ in range(steps):
        step(next(it)).numpy()
    return (time.perf_counter() - start) / steps


def main() -> None:
    args = parse_args()
    cfg = TrainConfig(dataset=args.dataset, data_dir=args.data_dir, input_fname_pattern=args.pattern,
                      output_height=args.size, crop=args.crop, input_height=args.input_size,
                      batch_size=args.batch_size, train_size=args.train_size, flip=True)
    start = time.perf_counter()
    info = data.load_train_data(cfg)
    seconds = time.perf_counter() - start
    print(f"decode once: {info.num_examples + len(info.skipped)} files in {seconds:.2f} s = "
          f"{(info.num_examples + len(info.skipped)) / seconds:.0f} images/s ({len(info.skipped)} skipped)")
    rate, cpu_ms = time_epochs(info, args.epochs)
    print(f"cached pipeline: {rate:.0f} images/s, {cpu_ms:.1f} CPU ms per batch")
    if args.stream:
        data.MAX_CACHE_BYTES = 0
        rate, cpu_ms = time_epochs(data.load_train_data(cfg), 1)
        print(f"streaming pipeline: {rate:.0f} images/s, {cpu_ms:.1f} CPU ms per batch")
    if args.steps:
        step = make_step(info.c_dim, args.size)
        synthetic = tf.data.Dataset.from_tensors(next(iter(info.dataset))[0]).repeat()
        real = info.dataset.repeat().map(lambda x, y: x)
        rounds = [(time_steps(step, synthetic, args.steps), time_steps(step, real, args.steps))
                  for _ in range(2)]  # alternate, best of two: other processes share the CPU
        t_synthetic, t_real = min(r[0] for r in rounds), min(r[1] for r in rounds)
        print(f"stand-in step: synthetic {t_synthetic:.3f} s, pipeline {t_real:.3f} s "
              f"-> pipeline at {100 * t_synthetic / t_real:.0f}% of synthetic speed")


if __name__ == "__main__":
    main()
