"""A per-epoch progress line: step, img/s and losses; redrawn in place on a terminal, logged lines otherwise."""

from __future__ import annotations

import sys
import time


class ProgressBar:
    """Shows `step/total [bar] img/s losses`. Call `update` only every few steps: it formats floats."""

    def __init__(self, total: int, prefix: str = "", width: int = 24, stream=None):
        self.total, self.prefix, self.width = total, prefix, width
        self.stream = stream or sys.stdout
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.t0 = time.perf_counter()

    def format(self, done: int, values: dict[str, float]) -> str:
        filled = int(self.width * done / max(self.total, 1))
        bar = "=" * filled + "." * (self.width - filled)
        stats = " ".join(f"{k} {v:.4g}" for k, v in values.items())
        return f"{self.prefix}{done}/{self.total} [{bar}] {time.perf_counter() - self.t0:.0f}s {stats}"

    def update(self, done: int, values: dict[str, float]) -> None:
        line = self.format(done, values)
        if self.tty:
            self.stream.write("\r" + line + ("\n" if done >= self.total else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
