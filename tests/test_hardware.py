"""--mixed_precision auto, oneDNN and the XLA fallback: decided from (simulated) CPU flags and GPU capabilities."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf
from absl import logging as absl_logging
from test_train_step import skip_without_bf16
from test_training import tiny_train_config

from dcgan_tf import hardware, training
from dcgan_tf.config import PRESETS, TrainConfig, apply_preset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZEN3 = {"fpu", "sse4_2", "avx", "avx2", "fma", "f16c"}  # AVX2-only: AMD EPYC Zen 3, Intel before Cooper Lake
ZEN4 = ZEN3 | {"avx512f", "avx512_vnni", "avx512_bf16"}
SAPPHIRE_RAPIDS = ZEN3 | {"avx512f", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"}


@pytest.mark.parametrize("flags,gpus,policy", [
    (ZEN3, [], None),
    (ZEN4, [], "mixed_bfloat16"),
    (SAPPHIRE_RAPIDS, [], "mixed_bfloat16"),
    ({"amx_bf16"}, [], "mixed_bfloat16"),
    (set(), [], None),  # no /proc/cpuinfo (macOS, Windows)
    (ZEN3, [(8, 0)], "mixed_float16"),  # A100
    (ZEN4, [(7, 0)], "mixed_float16"),  # V100: the GPU decides, not the CPU
    (ZEN4, [(6, 1)], None),  # GTX 1080: no tensor cores
    (ZEN3, [(6, 1), (7, 5)], "mixed_float16"),
])
def test_auto_resolves_from_cpu_flags_and_gpu_capability(flags, gpus, policy):
    precision = hardware.resolve_precision(None, flags=flags, gpus=gpus)
    assert precision.policy == policy
    assert precision.reason.startswith("auto: ")
    assert hardware.slow_precision_warning(precision) is None  # auto never picks a slow precision


@pytest.mark.parametrize("flags,gpus,policy,native", [
    (ZEN3, [], "mixed_bfloat16", False),
    (ZEN4, [], "mixed_bfloat16", True),
    (ZEN3, [(6, 1)], "mixed_float16", False),
    (ZEN3, [(8, 6)], "mixed_float16", True),
])
def test_true_forces_mixed_precision_and_warns_only_without_native_support(flags, gpus, policy, native):
    precision = hardware.resolve_precision(True, flags=flags, gpus=gpus)
    assert (precision.policy, precision.native) == (policy, native)
    warning = hardware.slow_precision_warning(precision)
    if native:
        assert warning is None
    else:
        assert warning.startswith("--mixed_precision=true: ") and "\n" not in warning
        assert "--mixed_precision=auto picks float32 here" in warning


@pytest.mark.parametrize("onednn,isa_cap,blocker", [
    (False, None, "oneDNN is off (TF_ENABLE_ONEDNN_OPTS=0)"),
    (True, "AVX2", "ONEDNN_MAX_CPU_ISA=AVX2 limits oneDNN below its bfloat16 kernels"),
    (True, "avx512_core", "ONEDNN_MAX_CPU_ISA=avx512_core limits"),
])
def test_native_bfloat16_without_onednn_s_kernels_is_float32(onednn, isa_cap, blocker):
    """bfloat16 is fast only through oneDNN: off, or capped below AVX512_CORE_BF16, auto keeps float32."""
    auto = hardware.resolve_precision(None, flags=ZEN4, gpus=[], onednn=onednn, isa_cap=isa_cap)
    assert auto.policy is None and auto.reason.startswith("auto: this CPU has avx512_bf16, but " + blocker)
    forced = hardware.resolve_precision(True, flags=ZEN4, gpus=[], onednn=onednn, isa_cap=isa_cap)
    assert forced.policy == "mixed_bfloat16"
    assert hardware.slow_precision_warning(forced).startswith("--mixed_precision=true: " + blocker)
    for cap in ("AVX512_CORE_BF16", "AVX512_CORE_AMX", None):
        assert hardware.resolve_precision(None, flags=ZEN4, gpus=[], onednn=True, isa_cap=cap).policy is not None


@pytest.mark.parametrize("gpus", [[], [(8, 0)]])
def test_false_is_float32_everywhere(gpus):
    assert hardware.resolve_precision(False, flags=SAPPHIRE_RAPIDS, gpus=gpus).policy is None


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu avx2 fma avx512_bf16\n\n"
                       "processor\t: 1\nflags\t\t: fpu avx2\n")
    assert hardware.cpu_flags(str(cpuinfo)) == {"fpu", "avx2", "fma", "avx512_bf16"}  # the first processor's
    assert hardware.cpu_model(str(cpuinfo)) == "AMD EPYC 7B13"
    assert hardware.native_bfloat16(hardware.cpu_flags(str(cpuinfo))) == "avx512_bf16"
    assert hardware.cpu_flags(str(tmp_path / "absent")) == frozenset()


def test_the_tuned_preset_leaves_the_precision_to_auto():
    assert PRESETS["tuned"]["mixed_precision"] is None
    assert apply_preset({"preset": "tuned", "mixed_precision": False}, {"mixed_precision"})["mixed_precision"] is False
    assert TrainConfig().mixed_precision is None


def test_resume_keeps_the_trained_precision_unless_the_command_gives_one():
    cfg = TrainConfig(dataset="x")
    fast = hardware.resolve_precision(None, flags=ZEN4, gpus=[])
    slow = hardware.resolve_precision(None, flags=ZEN3, gpus=[])
    assert training.resolve_mixed_precision(cfg, None, fast)[0].mixed_precision is True
    assert training.resolve_mixed_precision(cfg, None, slow)[0].mixed_precision is False
    for saved in (True, False):  # auto on resume: the saved precision, whatever this machine would pick
        resolved, precision = training.resolve_mixed_precision(cfg, {"mixed_precision": saved})
        assert resolved.mixed_precision is saved and "trained with" in precision.reason
    explicit = TrainConfig(dataset="x", mixed_precision=False)
    assert training.resolve_mixed_precision(explicit, {"mixed_precision": True})[0].mixed_precision is False


def simulate_cpu(monkeypatch, flags):
    """resolve_precision sees `flags` and oneDNN on, uncapped; the test skips where bfloat16 cannot run."""
    skip_without_bf16()
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset(flags))
    monkeypatch.setattr(hardware, "onednn_on", lambda: True)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)


@pytest.mark.slow
def test_flags_json_records_the_resolved_precision_and_resume_honours_it(tiny_image_folder, tmp_path, monkeypatch):
    simulate_cpu(monkeypatch, ZEN4)  # a CPU with native bfloat16
    cfg = tiny_train_config(tiny_image_folder, tmp_path, mixed_precision=None, epoch=1)
    first = training.train(cfg)
    with open(first.paths.flags_json) as f:
        saved = json.load(f)
    assert (saved["mixed_precision"], saved["precision"]) == (True, "mixed_bfloat16")
    simulate_cpu(monkeypatch, ZEN3)  # resumed where auto would pick float32
    logged = []
    monkeypatch.setattr(training.logging, "info", lambda msg, *args: logged.append(msg % args))
    again = training.train(tiny_train_config(tiny_image_folder, tmp_path, mixed_precision=None, epoch=2))
    assert again.step == 12
    assert any(line.startswith("compute: mixed_bfloat16 (the precision this run was trained with") for line in logged)
    with open(first.paths.flags_json) as f:
        assert json.load(f)["precision"] == "mixed_bfloat16"


@pytest.mark.slow
def test_true_without_native_support_trains_after_one_warning(tiny_image_folder, tmp_path, monkeypatch):
    simulate_cpu(monkeypatch, ZEN3)
    warnings = []
    monkeypatch.setattr(training.logging, "warning", lambda msg, *args: warnings.append(msg % args))
    result = training.train(tiny_train_config(tiny_image_folder, tmp_path, mixed_precision=True, train_size=8))
    assert result.step == 2
    assert len([w for w in warnings if w.startswith("--mixed_precision=true: this CPU has no native")]) == 1
    with open(result.paths.flags_json) as f:
        assert json.load(f)["precision"] == "mixed_bfloat16"


def xla_failure(*args):
    raise tf.errors.InvalidArgumentError(None, None, "Detected unsupported operations when trying to compile graph")


def test_a_step_xla_cannot_compile_runs_without_xla_after_a_warning(monkeypatch):
    warnings, plain_calls = [], []
    monkeypatch.setattr(absl_logging, "warning", lambda msg, *args: warnings.append(msg % args))
    step = training.with_xla_fallback(xla_failure, lambda: lambda *args: plain_calls.append(args) or "ok")
    assert step(1, 2) == "ok" and step(3, 4) == "ok"
    assert plain_calls == [(1, 2), (3, 4)]
    assert len(warnings) == 1 and warnings[0].startswith("XLA could not compile the train step (Detected unsupported")


def test_errors_after_the_first_step_are_not_swallowed():
    calls = []

    def fails_later(*args):
        calls.append(args)
        if len(calls) > 1:
            raise tf.errors.InvalidArgumentError(None, None, "a real error at step 2")
        return "ok"

    step = training.with_xla_fallback(fails_later, lambda: pytest.fail("no fallback after the first step"))
    assert step() == "ok"
    with pytest.raises(tf.errors.InvalidArgumentError, match="a real error at step 2"):
        step()


@pytest.mark.slow
def test_auto_xla_on_a_gpu_falls_back_in_a_real_run(tiny_image_folder, tmp_path, monkeypatch):
    """--jit_compile auto resolved to on (a GPU, simulated), and XLA fails to compile: the run still trains."""
    real_resolve, real_make = training.resolve_jit_compile, training.make_train_step
    monkeypatch.setattr(training, "resolve_jit_compile", lambda cfg: real_resolve(cfg, gpus=1))

    def make_train_step(*args, **kwargs):
        cfg = args[5]
        return xla_failure if cfg.jit_compile else real_make(*args, **kwargs)

    monkeypatch.setattr(training, "make_train_step", make_train_step)
    warnings = []
    monkeypatch.setattr(training.logging, "warning", lambda msg, *args: warnings.append(msg % args))
    result = training.train(tiny_train_config(tiny_image_folder, tmp_path, train_size=8))
    assert result.step == 2
    assert [w for w in warnings if w.startswith("XLA could not compile")]
    explicit = tiny_train_config(tiny_image_folder, tmp_path, train_size=8, jit_compile=True, out_name="explicit")
    with pytest.raises(tf.errors.InvalidArgumentError):  # asked for by name: the error is the user's to see
        training.train(explicit)


def run_python(code: str, **env) -> str:
    environ = {k: v for k, v in os.environ.items() if k != hardware.ONEDNN_VARIABLE}
    environ.update(env, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True, timeout=120,
                          check=True).stdout.strip()


@pytest.mark.slow
def test_importing_dcgan_tf_turns_onednn_on_unless_the_user_set_it():
    code = "import dcgan_tf, os; from dcgan_tf import hardware; print(os.environ['TF_ENABLE_ONEDNN_OPTS'], " \
           "hardware.onednn_status())"
    assert run_python(code) == "1 oneDNN on (turned on by dcgan_tf)"
    assert run_python(code, TF_ENABLE_ONEDNN_OPTS="0") == "0 oneDNN off (TF_ENABLE_ONEDNN_OPTS=0)"


def test_enable_onednn_leaves_a_set_variable_alone():
    environ = {"TF_ENABLE_ONEDNN_OPTS": "0"}
    assert hardware.enable_onednn(environ) is False and environ == {"TF_ENABLE_ONEDNN_OPTS": "0"}


@pytest.mark.parametrize("argv,value", [
    ([], None), (["--mixed_precision"], True), (["--nomixed_precision"], False), (["--mixed_precision=auto"], None),
    (["--mixed_precision=false"], False), (["--mixed_precision=True"], True), (["--jit_compile=AUTO"], None),
])
def test_auto_boolean_flags_read_true_false_and_auto(argv, value):
    from absl import flags

    from dcgan_tf.cli import define_flags, flag_values

    fv = flags.FlagValues()
    define_flags(TrainConfig, flag_values=fv)
    fv(["prog", *argv])
    name = argv[0].lstrip("-").removeprefix("no").split("=")[0] if argv else "mixed_precision"
    assert flag_values(TrainConfig, flag_values=fv)[0][name] is value


def test_a_bad_auto_boolean_value_names_the_flag():
    from absl import flags

    from dcgan_tf.cli import define_flags

    fv = flags.FlagValues()
    define_flags(TrainConfig, flag_values=fv)
    with pytest.raises(flags.IllegalFlagValueError, match="mixed_precision"):
        fv(["prog", "--mixed_precision=fast"])
