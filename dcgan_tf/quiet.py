"""A quiet start: the command-line programs show our own lines, not TensorFlow's start-up chatter.

TensorFlow's C++ runtime writes lines such as the oneDNN notice, "Could not find cuda drivers", a failed
`cuInit`, absl's "All log messages before absl::InitializeLog() is called are written to STDERR" and
grappler's "remapper failed" straight to file descriptor 2, some before `TF_CPP_MIN_LOG_LEVEL` is read.
Its Python side logs INFO lines through absl ("Sharding callback duration" at every checkpoint) with the
same format as ours. `hide_tensorflow_logs`, called by each program before TensorFlow is imported, hides
both:

- the C++ lines are dropped by a filter on file descriptor 2 (a pipe read by a thread that forwards every
  other line unchanged), and `TF_CPP_MIN_LOG_LEVEL` is set to 3 for the lines logged after start-up;
- INFO records of absl logging that come from TensorFlow's, Keras' or tfds' own files are dropped.

A user who asks sees everything: `--verbosity 1` (or more) leaves both alone, and a `TF_CPP_MIN_LOG_LEVEL`
set by the user leaves the C++ side to TensorFlow. Warnings and errors of the Python side always show.
"""

from __future__ import annotations

import atexit
import importlib.util
import logging
import os
import re
import sys
import threading

# A TensorFlow C++ log line: severity, date or 0000, time, thread id, source file.cc:line]
_NATIVE_LINE = re.compile(rb"^[IWEF]\d{4} [\d:.]+\s+\d+ [\w./-]+\.(cc|cpp|h):\d+\] ")
_NATIVE_BANNER = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
# Packages whose absl INFO lines are internal chatter, not ours.
_CHATTY_PACKAGES = ("tensorflow", "keras", "tensorflow_datasets", "tf_keras", "tensorboard")


def hide_tensorflow_logs(argv: list[str]) -> bool:
    """Hides TensorFlow's C++ start-up lines and internal absl INFO lines, unless `argv` asks for them.

    Call it before TensorFlow is imported, only from a program's `__main__` (it redirects file descriptor 2).

    Args:
      argv: the command line; `--verbosity N` / `-v N` (or `=N`) with N >= 1 keeps everything.

    Returns:
      True when the lines are hidden.
    """
    if requested_verbosity(argv) >= 1:
        return False
    if "TF_CPP_MIN_LOG_LEVEL" not in os.environ:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        _filter_native_stderr()
    from absl import logging as absl_logging

    absl_logging.get_absl_handler().addFilter(_drop_library_info())
    return True


def requested_verbosity(argv: list[str]) -> int:
    """The value of absl's `--verbosity` / `-v` in `argv` (the last one wins); 0 when absent or unreadable."""
    level = 0
    for i, arg in enumerate(argv):
        name, eq, value = arg.partition("=")
        if name not in ("--verbosity", "-v"):
            continue
        if not eq:
            value = argv[i + 1] if i + 1 < len(argv) else ""
        try:
            level = int(value)
        except ValueError:
            pass  # absl's parser reports it
    return level


def is_native_log_line(line: bytes) -> bool:
    """Whether `line` is one of TensorFlow's C++ log lines (or absl's pre-initialisation banner)."""
    return line.startswith(_NATIVE_BANNER) or bool(_NATIVE_LINE.match(line))


def _filter_native_stderr() -> None:
    """Points file descriptor 2 at a pipe whose reader forwards every line but TensorFlow's C++ log lines."""
    sys.stderr.flush()
    original = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def forward() -> None:
        pending = b""
        while chunk := os.read(read_end, 65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            _write_all(original, b"".join(line + b"\n" for line in lines if not is_native_log_line(line)))
        if pending and not is_native_log_line(pending):
            _write_all(original, pending)

    reader = threading.Thread(target=forward, name="stderr-filter", daemon=True)
    reader.start()

    def restore() -> None:  # at exit: give fd 2 back and let the reader drain what is left
        sys.stderr.flush()
        os.dup2(original, 2)  # closes the pipe's last write end, so the reader sees end-of-file
        reader.join(timeout=5)

    atexit.register(restore)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def _drop_library_info() -> logging.Filter:
    """A filter that drops DEBUG/INFO records logged from the files of `_CHATTY_PACKAGES`."""
    roots = []
    for name in _CHATTY_PACKAGES:
        spec = importlib.util.find_spec(name)  # finds the folder without importing the package
        if spec is not None and spec.submodule_search_locations:
            roots += [os.path.join(os.path.realpath(p), "") for p in spec.submodule_search_locations]
    roots_tuple = tuple(roots)

    class DropLibraryInfo(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return record.levelno >= logging.WARNING or not os.path.realpath(record.pathname).startswith(roots_tuple)

    return DropLibraryInfo()
