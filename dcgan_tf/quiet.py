"""A quiet start: the command-line programs show our own lines, not TensorFlow's start-up chatter.

TensorFlow's C++ runtime writes lines such as the oneDNN notice, "Could not find cuda drivers", a failed
`cuInit`, absl's "All log messages before absl::InitializeLog() is called are written to STDERR" and
grappler's "remapper failed" straight to file descriptor 2, some before `TF_CPP_MIN_LOG_LEVEL` is read.
Its Python side logs INFO lines through absl ("Sharding callback duration" at every checkpoint) with the
same format as ours. `hide_tensorflow_logs`, called by each program before TensorFlow is imported, hides:

- native INFO (I) and WARNING (W) lines, and absl's pre-initialisation banner;
- two native ERROR (E) lines known to be harmless: "failed call to cuInit" (no usable GPU driver; our own
  log says which device computes) and grappler's "<optimizer> failed:" from meta_optimizer.cc (the graph
  then runs unoptimised);
- INFO records of absl logging that come from TensorFlow's, Keras' or tfds' own files.

Never hidden: every other native E line, every F (fatal) line, absl's "*** Check failure stack trace: ***"
and the stack lines after it, Python tracebacks, faulthandler's dump after a crash, warnings and errors of
the Python side, and anything else written to file descriptor 2. `TF_CPP_MIN_LOG_LEVEL` is set to 2, so
TensorFlow itself still logs errors.

The native lines are filtered by a small child process (this file run as a script, on the standard library
only): file descriptor 2 becomes a pipe that it reads and forwards to the original stderr until
end-of-file. Whatever the program wrote before it died (an abort, a segfault) is therefore still shown, and
the forwarder ends by itself when the last writer is gone. It ignores Ctrl-C and hang-ups (the program
decides when to stop), never keeps the program's stdout, and when the original stderr fails (a closed pipe,
a lost terminal) it keeps draining the pipe, so writes to stderr never block the run. A partial line is
forwarded at once (a progress bar redrawn with `\r`) unless it may still become a hidden line.

A user who asks sees everything: `--verbosity 1` (or more) leaves both alone, and a `TF_CPP_MIN_LOG_LEVEL`
set by the user leaves the C++ side to TensorFlow.
"""

from __future__ import annotations

import atexit
import importlib.util
import logging
import os
import re
import signal
import subprocess
import sys

# A TensorFlow C++ log line: severity, date or 0000, time, thread id, source file.cc:line]
_NATIVE_LINE = re.compile(rb"^([IWEF])\d{4} [\d:.]+\s+\d+ ([\w./-]+\.(?:cc|cpp|h)):\d+\] ")
_NATIVE_BANNER = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
# Native E lines that are start-up chatter: (source file, start of the message).
_HARMLESS_ERRORS = ((b"cuda_platform.cc", re.compile(rb"failed call to cuInit")),
                    (b"meta_optimizer.cc", re.compile(rb"\w+ failed: ")))
# What a hidden native line may look like before its header is complete (no "] " yet).
_HEADER_SO_FAR = re.compile(rb"[IWE]\d{0,4}|[IWE]\d{4} [\w:. /-]*")
_LONGEST_HELD = 65536  # a partial line longer than this is judged as it is
# Packages whose absl INFO lines are internal chatter, not ours.
_CHATTY_PACKAGES = ("tensorflow", "keras", "tensorflow_datasets", "tf_keras", "tensorboard")
# Signals the forwarder ignores: a Ctrl-C, a hang-up or a TERM sent to the program's process group would
# otherwise end it before the program's last lines are out. End-of-file on the pipe ends it.
_IGNORED_SIGNALS = ("SIGINT", "SIGHUP", "SIGTERM", "SIGQUIT")

_forwarder: subprocess.Popen | None = None


def hide_tensorflow_logs(argv: list[str]) -> bool:
    """Hides TensorFlow's C++ start-up chatter and internal absl INFO lines, unless `argv` asks for them.

    Call it before TensorFlow is imported, only from a program's `__main__` (it redirects file descriptor 2).

    Args:
      argv: the command line; `--verbosity N` / `-v N` (or `=N`) with N >= 1 keeps everything.

    Returns:
      True when the lines are hidden.
    """
    if requested_verbosity(argv) >= 1:
        return False
    if "TF_CPP_MIN_LOG_LEVEL" not in os.environ:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"  # TensorFlow drops INFO and WARNING, keeps ERROR and FATAL
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
    """Whether `line` is one of TensorFlow's C++ log lines, of any severity (or absl's pre-initialisation banner)."""
    return line.startswith(_NATIVE_BANNER) or bool(_NATIVE_LINE.match(line))


def is_startup_chatter(line: bytes) -> bool:
    """Whether the quiet start hides `line`: a native I or W line, the banner, or a known harmless E line."""
    if line.startswith(_NATIVE_BANNER):
        return True
    match = _NATIVE_LINE.match(line)
    if match is None:
        return False
    severity, source = match.group(1), os.path.basename(match.group(2))
    if severity in (b"I", b"W"):
        return True
    message = line[match.end():]
    return severity == b"E" and any(source == s and pattern.match(message) for s, pattern in _HARMLESS_ERRORS)


def filter_chunk(data: bytes, mid_line: bool) -> tuple[bytes, bytes, bool]:
    """Splits what came through the pipe into what to forward now and a partial line to hold.

    Args:
      data: the held partial line followed by the newly read bytes.
      mid_line: whether the start of the first line was already forwarded (it is then forwarded whole).

    Returns:
      (bytes to forward, partial line to hold until more comes, the new `mid_line`).
    """
    *lines, rest = data.split(b"\n")
    out = []
    for line in lines:
        if mid_line or not is_startup_chatter(line):
            out.append(line + b"\n")
        mid_line = False
    if rest and (mid_line or not _may_become_chatter(rest)):
        out.append(rest)
        rest, mid_line = b"", True
    return b"".join(out), rest, mid_line


def _may_become_chatter(partial: bytes) -> bool:
    """Whether a line that has not ended yet may still turn out to be hidden (so it is held until it ends)."""
    if partial.endswith(b"\r") or len(partial) > _LONGEST_HELD:
        return False
    if _NATIVE_BANNER.startswith(partial) or partial.startswith(_NATIVE_BANNER):
        return True
    match = _NATIVE_LINE.match(partial)
    if match is not None:
        return match.group(1) in b"IWE"  # its message decides, at the newline
    return bool(_HEADER_SO_FAR.fullmatch(partial))


def forward(source: int, target: int) -> None:
    """The forwarder's loop: copies `source` to `target` until end-of-file, without the start-up chatter.

    If writing to `target` fails, it goes on reading `source` (and drops what it reads), so the writers
    never block on a full pipe.
    """
    pending, mid_line, target_ok = b"", False, True
    while chunk := os.read(source, 65536):
        if not target_ok:
            continue
        out, pending, mid_line = filter_chunk(pending + chunk, mid_line)
        target_ok = _write_all(target, out)
    if pending and target_ok and (mid_line or not is_startup_chatter(pending)):
        _write_all(target, pending)


def _write_all(fd: int, data: bytes) -> bool:
    """Writes all of `data` to `fd`; False when `fd` can no longer be written (closed pipe, lost terminal)."""
    while data:
        try:
            data = data[os.write(fd, data):]
        except BlockingIOError:  # a non-blocking stderr that is full: wait until it takes more
            import select

            select.select([], [fd], [], 1.0)
        except OSError:
            return False
    return True


def _filter_native_stderr() -> None:
    """Points file descriptor 2 at a pipe read by a forwarder process that drops the start-up chatter."""
    global _forwarder
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    try:
        _forwarder = _start_forwarder(read_end)
    except OSError:
        os.close(read_end)
        os.close(write_end)
        return  # no forwarder, no filter: better the chatter than a lost line
    os.close(read_end)
    original = os.dup(2)
    os.set_inheritable(original, False)
    os.dup2(write_end, 2)  # the forwarder does not hold this end: it sees end-of-file when the program is gone
    os.close(write_end)
    owner = os.getpid()

    def restore() -> None:  # at a normal exit: give fd 2 back and let the forwarder drain what is left
        if os.getpid() != owner:  # a forked child that exits through Python
            return
        sys.stderr.flush()
        os.dup2(original, 2)  # closes this process's write end
        try:
            _forwarder.wait(timeout=5)  # sooner, unless a child process still holds the pipe
        except subprocess.TimeoutExpired:
            pass

    atexit.register(restore)


def _start_forwarder(read_end: int) -> subprocess.Popen:
    """Starts this file as a script that forwards `read_end` to the current fd 2 (its stdin and stderr)."""
    # Ignored signals stay ignored across exec, so the forwarder is never without its own disposition.
    previous = {}
    for sig in (getattr(signal, name) for name in _IGNORED_SIGNALS):
        handler = signal.getsignal(sig)
        if handler is None:  # set outside Python: cannot be put back, so left alone
            continue
        try:
            signal.signal(sig, signal.SIG_IGN)
        except ValueError:  # not the main thread: the script ignores them itself a moment later
            break
        previous[sig] = handler
    try:
        # -I -S: the standard library only, not the package (whose import may load TensorFlow).
        return subprocess.Popen([sys.executable, "-I", "-S", os.path.abspath(__file__)], stdin=read_end,
                                stdout=subprocess.DEVNULL, stderr=2, close_fds=True, cwd="/")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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


if __name__ == "__main__":  # the forwarder: the pipe on stdin, the program's original stderr on fd 2
    for _name in _IGNORED_SIGNALS:
        signal.signal(getattr(signal, _name), signal.SIG_IGN)
    forward(0, 2)
