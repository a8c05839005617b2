"""Per-layer convolution rates of the 64x64 DCGAN on this machine, and the alternatives tried for the slow ones.

The train step spends ~90% of its float32 time in convolutions (see train_throughput.py's "conv bound"). This
script shows where: each of the four 5x5 stride-2 shapes in its three passes (forward, backward-data, which is
also G's forward, and backward-weights) at batch 64 and 128 and in NHWC and NCHW, then two rewrites of the
slowest cases:

- the 8x8 -> 4x4 forward as patches (tf.image.extract_patches) times a matmul;
- G's last layer (32x32x64 -> 64x64x3 transposed) as a sub-pixel 3x3 convolution to 12 channels, whose
  depth-to-space gives the same output (the kernel taps rearranged; 36 multiply-adds per output pixel
  group instead of 25, zeros included).

Rates are nominal GFLOP/s (every 5x5 tap counts, as in train_throughput.py), one op at a time (inter-op
parallelism 1), median of repeats. Plain script; prints tables.

  python bench/conv_layers.py [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import tensorflow as tf

SHAPES = ((64, 3, 64), (32, 64, 128), (16, 128, 256), (8, 256, 512))  # (input size, in, out channels)


def seconds_per_call(f, *args, seconds: float = 1.0) -> float:
    f(*args).numpy()
    times, t_end = [], time.perf_counter() + seconds
    while time.perf_counter() < t_end or len(times) < 3:
        t0 = time.perf_counter()
        f(*args).numpy()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def conv_passes(batch: int, h: int, ci: int, co: int, data_format: str = "NHWC", seconds: float = 1.0,
                dtype=tf.float32) -> list[float]:
    """Seconds of (forward, backward-data, backward-weights) of a 5x5 stride-2 'SAME' convolution, each op on
    its own with its inputs already in memory (median of repeats)."""
    out = (h + 1) // 2
    nhwc = data_format == "NHWC"

    def shape(size, channels):
        return (batch, size, size, channels) if nhwc else (batch, channels, size, size)

    strides = [1, 2, 2, 1] if nhwc else [1, 1, 2, 2]
    x, dy = tf.cast(tf.random.normal(shape(h, ci)), dtype), tf.cast(tf.random.normal(shape(out, co)), dtype)
    w = tf.cast(tf.random.normal((5, 5, ci, co), stddev=0.02), dtype)
    fwd = tf.function(lambda x, w: tf.nn.conv2d(x, w, strides, "SAME", data_format=data_format))
    bwd_data = tf.function(lambda dy, w: tf.raw_ops.Conv2DBackpropInput(
        input_sizes=list(shape(h, ci)), filter=w, out_backprop=dy, strides=strides, padding="SAME",
        data_format=data_format))
    bwd_weights = tf.function(lambda x, dy: tf.raw_ops.Conv2DBackpropFilter(
        input=x, filter_sizes=[5, 5, ci, co], out_backprop=dy, strides=strides, padding="SAME",
        data_format=data_format))
    return [seconds_per_call(fwd, x, w, seconds=seconds), seconds_per_call(bwd_data, dy, w, seconds=seconds),
            seconds_per_call(bwd_weights, x, dy, seconds=seconds)]


def alternatives(seconds: float) -> list[tuple[str, float, float]]:
    """(what, seconds of the oneDNN op, seconds of the rewrite), after checking each rewrite's output."""
    rows = []
    x = tf.random.normal((64, 8, 8, 256))
    w = tf.random.normal((5, 5, 256, 512), stddev=0.02)
    conv = tf.function(lambda x, w: tf.nn.conv2d(x, w, 2, "SAME"))
    patches = tf.function(lambda x, w: tf.reshape(tf.matmul(
        tf.reshape(tf.image.extract_patches(x, [1, 5, 5, 1], [1, 2, 2, 1], [1, 1, 1, 1], "SAME"), (-1, 6400)),
        tf.reshape(w, (6400, 512))), (64, 4, 4, 512)))
    np.testing.assert_allclose(patches(x, w).numpy(), conv(x, w).numpy(), atol=1e-3)
    rows.append(("8x8x256 -> 4x4x512 forward: patches x matmul", seconds_per_call(conv, x, w, seconds=seconds),
                 seconds_per_call(patches, x, w, seconds=seconds)))

    h = tf.random.normal((64, 32, 32, 64))
    w5 = tf.random.normal((5, 5, 3, 64), stddev=0.02)
    deconv = tf.function(lambda h, w: tf.nn.conv2d_transpose(h, w, [64, 64, 64, 3], 2, "SAME"))
    w3 = subpixel_kernel(w5)
    subpixel = tf.function(lambda h, w: tf.nn.depth_to_space(tf.nn.conv2d(h, w, 1, "SAME"), 2))
    np.testing.assert_allclose(subpixel(h, w3).numpy(), deconv(h, w5).numpy(), atol=1e-3)
    rows.append(("32x32x64 -> 64x64x3 transposed: sub-pixel 3x3 conv", seconds_per_call(deconv, h, w5, seconds=seconds),
                 seconds_per_call(subpixel, h, w3, seconds=seconds)))
    return rows


def subpixel_kernel(w5: tf.Tensor) -> tf.Tensor:
    """The 3x3, 4*C-output kernel whose stride-1 'SAME' conv + depth_to_space(2) equals conv_transpose(w5, 2, 'SAME').

    w5 [5, 5, C, K] as tf.nn.conv2d_transpose takes it (C output channels, K input channels). The transposed
    convolution of 2n <- n with 'SAME' padding (1 before) gives output row p the input rows q with tap
    k = p + 1 - 2q. For p = 2m + a and the 3x3 window q = m - 1 + i: k = a + 3 - 2i (taps outside 0..4 are
    zero), and likewise for columns.
    """
    w5 = w5.numpy()
    c, k = w5.shape[2], w5.shape[3]
    w3 = np.zeros((3, 3, k, 4, c), np.float32)  # [i, j, in, (a, b) parity, out]
    for a in range(2):
        for b in range(2):
            for i in range(3):
                ky = a + 3 - 2 * i
                if not 0 <= ky < 5:
                    continue
                for j in range(3):
                    kx = b + 3 - 2 * j
                    if 0 <= kx < 5:
                        w3[i, j, :, 2 * a + b, :] = w5[ky, kx].T
    return tf.constant(w3.reshape(3, 3, k, 4 * c))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="timing per op and setting")
    args = parser.parse_args()
    tf.config.threading.set_inter_op_parallelism_threads(1)
    print(f"{'setting':<12}{'convolution (5x5, stride 2)':<28}{'forward':>10}{'bwd data':>10}{'bwd weights':>13}"
          "   (GFLOP/s)")
    for batch, data_format in ((64, "NHWC"), (128, "NHWC"), (64, "NCHW")):
        for h, ci, co in SHAPES:
            out = (h + 1) // 2
            flops = 2.0 * batch * out * out * 25 * ci * co
            rates = [flops / s / 1e9 for s in conv_passes(batch, h, ci, co, data_format, args.seconds)]
            name = f"{h}x{h}x{ci} -> {out}x{out}x{co}"
            print(f"{f'{data_format} b{batch}':<12}{name:<28}{rates[0]:10.0f}{rates[1]:10.0f}{rates[2]:13.0f}")
    print()
    for what, base, rewrite in alternatives(args.seconds):
        print(f"{what}: {1000 * base:.1f} ms -> {1000 * rewrite:.1f} ms")


if __name__ == "__main__":
    main()
