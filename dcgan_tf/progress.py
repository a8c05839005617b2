"""Progress lines: step, img/s and losses; redrawn in place on a terminal, logged lines otherwise.

`ProgressBar` is the training loop's per-epoch bar; `track` wraps any loop over batches (generation,
evaluation, the classifier's training) with one.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


class ProgressBar:
    """Shows `step/total [bar] img/s losses`. Call `update` only every few steps: it formats floats.

    On a terminal the line is redrawn at every update; elsewhere (a log file, a pipe) each update is a new line,
    at most one every `every_s` seconds besides the last.
    """

    def __init__(self, total: int, prefix: str = "", width: int = 24, stream=None, every_s: float = 0.0):
        self.total, self.prefix, self.width, self.every_s = total, prefix, width, every_s
        self.stream = stream or sys.stdout
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.t0 = self.last = time.perf_counter()

    def format(self, done: int, values: dict[str, float]) -> str:
        filled = int(self.width * done / max(self.total, 1))
        bar = "=" * filled + "." * (self.width - filled)
        stats = " ".join(f"{k} {v:.4g}" for k, v in values.items())
        return f"{self.prefix}{done}/{self.total} [{bar}] {time.perf_counter() - self.t0:.0f}s {stats}"

    def update(self, done: int, values: dict[str, float]) -> None:
        now = time.perf_counter()
        if self.tty:
            self.stream.write("\r" + self.format(done, values) + ("\n" if done >= self.total else ""))
        elif done >= self.total or now - self.last >= self.every_s:
            self.stream.write(self.format(done, values) + "\n")
        else:
            return
        self.last = now
        self.stream.flush()


def track(items: Iterable[T], total: int, *, prefix: str = "", size: Callable[[T], int] = len,
          stream=None, every_s: float = 5.0) -> Iterator[T]:
    """Yields `items` unchanged and shows how many of `total` are done after each one is processed.

    Args:
      items: batches (or anything with a size).
      total: the sum of the sizes of all items.
      prefix: the bar's label, e.g. "generate ".
      size: the number of things (images, examples) in one item; len by default.
      stream: where the bar goes (default stdout).
      every_s: off a terminal, a line at most every this many seconds (and at the end), not one per item.
    """
    bar = ProgressBar(total, prefix=prefix, stream=stream, every_s=every_s)
    done = 0
    for item in items:
        yield item
        done += size(item)
        bar.update(min(done, total), {})
