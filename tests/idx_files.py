"""Writes tiny idx files (the MNIST format) for tests: magic 0x0000080N, N big-endian dims, then uint8 data."""

import gzip

import numpy as np


def write_idx(path, array: np.ndarray) -> None:
    """Writes `array` as an idx file of unsigned bytes; gzipped when `path` ends with .gz."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with (gzip.open if str(path).endswith(".gz") else open)(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())
