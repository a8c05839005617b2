"""A quiet start: main.py's stderr holds our lines only, unless the user asks for TensorFlow's (dcgan_tf.quiet).

The forwarder's tests run a tiny script (no TensorFlow) that starts the filter and writes to fd 2 itself.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from dcgan_tf import quiet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What TensorFlow prints at start-up and at checkpoints when nobody hides it.
NOISE = ("absl::InitializeLog", "oneDNN custom operations", "cudart_stub", "cuInit", "cuda_platform",
         "remapper failed", "meta_optimizer", "Sharding callback duration", "functional_saver")
# absl's full prefix on a Python log line: shown only with --verbosity 1 or more (cli.ShortLogFormatter).
ABSL_PREFIX = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ [\w.<>-]+:\d+\] ")
TINY = ["--dataset=tiny", "--data_dir=data", "--input_fname_pattern=*.png", "--input_height=16",
        "--output_height=16", "--z_dim=8", "--gf_dim=4", "--df_dim=4", "--batch_size=4", "--sample_num=4"]


def run_main(cwd, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user's shell has it
    return subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), *TINY, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def tiny_cwd(tmp_path_factory):
    """A working directory with data/tiny (24 random 16x16 PNGs) and data/tiny_bad (4 PNGs and a broken one)."""
    import numpy as np
    from PIL import Image

    cwd = tmp_path_factory.mktemp("quiet")
    (cwd / "data" / "tiny").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(24):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(cwd / "data" / "tiny" / f"{i}.png")
    (cwd / "data" / "tiny_bad").mkdir()
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(cwd / "data" / "tiny_bad" / f"{i}.png")
    (cwd / "data" / "tiny_bad" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return cwd


@pytest.mark.slow
def test_training_and_generating_show_only_our_lines(tiny_cwd):
    train = run_main(tiny_cwd, "--train", "--epoch=1")
    assert train.returncode == 0, train.stderr
    generate = run_main(tiny_cwd, "--generate_test_images=8")
    assert generate.returncode == 0, generate.stderr
    for result in (train, generate):
        for line in result.stderr.splitlines():
            assert not any(noise in line for noise in NOISE), line
            assert not quiet.is_native_log_line(line.encode()), line
    assert "Training data tiny: 24 images" in train.stderr  # our own log lines still show, short
    assert re.search(r"^\d\d:\d\d:\d\d Training data tiny: 24 images", train.stderr, re.MULTILINE), train.stderr
    assert re.search(r"^\d\d:\d\d:\d\d restored checkpoints/tiny_16x16/ckpt-6", generate.stderr, re.MULTILINE)
    for line in train.stderr.splitlines() + generate.stderr.splitlines():
        assert not ABSL_PREFIX.match(line), line
    assert "done: epoch 1, step 6" in train.stdout
    assert "restored checkpoints/tiny_16x16/ckpt-6" in generate.stderr
    assert "wrote 9 files to samples/tiny_16x16" in generate.stdout
    assert "generate 8/8 [" in generate.stdout  # its progress bar


@pytest.mark.slow
def test_verbosity_1_shows_tensorflow_lines(tiny_cwd):
    result = run_main(tiny_cwd, "--train", "--epoch=2", "--verbosity=1")
    assert result.returncode == 0, result.stderr
    assert "Sharding callback duration" in result.stderr  # TensorFlow's absl INFO line at each checkpoint
    assert any(quiet.is_native_log_line(line.encode()) for line in result.stderr.splitlines())
    ours = [line for line in result.stderr.splitlines() if "Training data tiny: 24 images" in line]
    assert len(ours) == 1 and ABSL_PREFIX.match(ours[0]) and " data.py:" in ours[0], ours  # absl's full prefix


@pytest.mark.slow
def test_warnings_stay_marked_in_short_lines(tiny_cwd):
    result = run_main(tiny_cwd, "--dataset=tiny_bad", "--train", "--epoch=1")
    assert result.returncode == 0, result.stderr
    assert re.search(r"^WARNING \d\d:\d\d:\d\d Skipped 1 of 5 files in ", result.stderr, re.MULTILINE), result.stderr
    assert re.search(r"^\d\d:\d\d:\d\d Training data tiny_bad: 4 images", result.stderr, re.MULTILINE), result.stderr


def test_native_log_lines_are_told_from_ours():
    assert quiet.is_native_log_line(b"I0000 00:00:1796158647.385802    3652 port.cc:153] oneDNN custom operations")
    assert quiet.is_native_log_line(b"E0000 00:00:1796158650.375921    3652 cuda_platform.cc:52] failed call")
    assert quiet.is_native_log_line(b"WARNING: All log messages before absl::InitializeLog() is called are "
                                    b"written to STDERR")
    assert not quiet.is_native_log_line(b"I1201 20:57:36.006405 140416287148928 data.py:116] Training data")
    assert not quiet.is_native_log_line(b"error: --dataset: no folder data/faces")
    assert not quiet.is_native_log_line(b"Traceback (most recent call last):")


def test_requested_verbosity_reads_absl_spellings():
    assert quiet.requested_verbosity(["main.py", "--train"]) == 0
    assert quiet.requested_verbosity(["main.py", "--verbosity", "1"]) == 1
    assert quiet.requested_verbosity(["main.py", "--verbosity=2", "--train"]) == 2
    assert quiet.requested_verbosity(["main.py", "-v", "1", "-v=0"]) == 0
    assert quiet.requested_verbosity(["main.py", "--verbosity=x"]) == 0


# --------------------------------------------------------------------------------------------------------------
# The forwarder, in a tiny program that writes native-format lines itself

F_LINE = b"F0000 00:00:1796158650.375921    3652 tensor_shape.cc:45] Check failed: d >= 0 (-1 vs. 0)"
STACK = b"*** Check failure stack trace: ***\n    @     0x7f3a2b1c4d5e  (unknown)\n    @     0x7f3a2b1c4e00  abort\n"
CHATTER = (b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
           b"I0000 00:00:1796319837.700661    4273 port.cc:153] oneDNN custom operations are on.\n"
           b"W0000 00:00:1796319837.701101    4273 cpu_feature_guard.cc:227] Your CPU could be faster.\n"
           b"E0000 00:00:1796319842.354967    4273 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error\n"
           b"E0000 00:00:1796319850.100000    4273 meta_optimizer.cc:966] remapper failed: INVALID_ARGUMENT: x\n")


def quiet_script(tmp_path, body: str) -> list[str]:
    """The command that runs `body` after the quiet start (a fresh file per test)."""
    script = tmp_path / "script.py"
    script.write_text("import os, sys\nfrom dcgan_tf import quiet\nquiet.hide_tensorflow_logs([])\n"
                      + textwrap.dedent(body))
    return [sys.executable, str(script)]


def quiet_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_quiet(tmp_path, body: str, stdout=subprocess.PIPE, stderr=subprocess.PIPE) -> subprocess.CompletedProcess:
    return subprocess.run(quiet_script(tmp_path, body), env=quiet_env(), stdout=stdout, stderr=stderr, timeout=60)


def test_a_fatal_line_and_the_line_before_it_show_after_abort(tmp_path):
    fatal = F_LINE + b"\n" + STACK
    result = run_quiet(tmp_path, f"""
        import resource
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        print("loading the model", file=sys.stderr)
        os.write(2, {fatal!r})
        os.abort()
        """)
    assert result.returncode == -signal.SIGABRT
    assert result.stderr == b"loading the model\n" + fatal


def test_a_faulthandler_traceback_shows_after_a_segfault(tmp_path):
    result = run_quiet(tmp_path, """
        import ctypes, faulthandler, resource
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        faulthandler.enable()
        ctypes.string_at(0)
        """)
    assert result.returncode == -signal.SIGSEGV
    assert b"Fatal Python error: Segmentation fault" in result.stderr, result.stderr
    assert b"script.py\", line " in result.stderr  # the Python stack


def test_the_forwarder_ends_with_the_program(tmp_path):
    result = run_quiet(tmp_path, """
        print(quiet._forwarder.pid, flush=True)
        os.write(2, b"last words")  # no newline, and no exit handler runs
        os._exit(3)
        """)
    assert (result.returncode, result.stderr) == (3, b"last words")
    pid = int(result.stdout)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _running(pid):
        time.sleep(0.05)
    assert not _running(pid)


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_broken_stderr_does_not_hang_the_run(tmp_path):
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody reads the program's stderr: every write to it fails
    try:
        result = run_quiet(tmp_path, """
            for _ in range(2048):  # 200 KiB, three times what a pipe holds
                os.write(2, b"x" * 99 + b"\\n")
            print("wrote 200 KiB")
            """, stderr=write_end)
    finally:
        os.close(write_end)
    assert result.returncode == 0
    assert result.stdout == b"wrote 200 KiB\n"


def test_partial_lines_pass_before_a_newline(tmp_path):
    proc = subprocess.Popen(quiet_script(tmp_path, """
        os.write(2, b"\\rgenerate 1/8 [===.....]\\r")
        sys.stdin.readline()
        os.write(2, b"Overwrite samples/? [y/N] ")
        sys.stdin.readline()
        os.write(2, b"\\n")
        """), env=quiet_env(), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert _read_until(proc.stderr.fileno(), b"\rgenerate 1/8 [===.....]\r")
        proc.stdin.write(b"\n")
        proc.stdin.flush()
        assert _read_until(proc.stderr.fileno(), b"Overwrite samples/? [y/N] ")
        proc.stdin.write(b"\n")
        proc.stdin.close()
        assert _read_until(proc.stderr.fileno(), b"\n")
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()


def _read_until(fd: int, expected: bytes, timeout: float = 10.0) -> bool:
    """Whether exactly `expected` can be read from `fd` within `timeout` seconds."""
    data, deadline = b"", time.monotonic() + timeout
    while len(data) < len(expected) and select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
        chunk = os.read(fd, len(expected) - len(data))
        if not chunk:
            break
        data += chunk
    return data == expected


def test_start_up_chatter_is_dropped_and_errors_are_kept(tmp_path):
    error = b"E0000 00:00:1796319851.000000    4273 op_kernel.cc:1830] OP_REQUIRES failed at conv_ops.cc:12: OOM\n"
    result = run_quiet(tmp_path, f"""
        os.write(2, {CHATTER!r})
        print("our line", file=sys.stderr, flush=True)
        os.write(2, {error + CHATTER!r})
        """)
    assert result.returncode == 0
    assert result.stderr == b"our line\n" + error


def test_filter_holds_only_what_may_still_be_hidden():
    def forwarded(data: bytes, mid_line: bool = False) -> bytes:
        return quiet.filter_chunk(data, mid_line)[0]

    assert forwarded(b"I0000 00:00:1796319837.700661    4273 port.cc:153] one") == b""  # held, then dropped
    assert forwarded(b"I0000 00:00:17963") == b""
    assert forwarded(b"WARNING: All log") == b""
    assert forwarded(b"E0000 00:00:1796319842.354967    4273 cuda_platform.cc:52] fail") == b""
    assert forwarded(b"Writing 3/10\r") == b"Writing 3/10\r"
    assert forwarded(b"Epoch 2: ") == b"Epoch 2: "
    assert forwarded(b"F0000 00:00:1.5    1 a.cc:1] Check fa") == b"F0000 00:00:1.5    1 a.cc:1] Check fa"
    # The rest of a line whose start was forwarded is forwarded whatever it looks like.
    assert forwarded(b"I0000 00:00:1.5    1 a.cc:1] x\nnext", mid_line=True) == b"I0000 00:00:1.5    1 a.cc:1] x\nnext"
    assert quiet.filter_chunk(b"ours\nI0000 00:00", False) == (b"ours\n", b"I0000 00:00", False)
