"""What this machine computes fast: oneDNN's kernels, and the precision `--mixed_precision auto` picks.

Mixed precision is not a speed-up everywhere. bfloat16 is 1.6x faster than float32 for a DCGAN step on CPUs
that compute it natively (AVX512_BF16 or AMX-BF16), but about 8x slower on AVX2-only CPUs, where the
convolution gradients have no bfloat16 kernel (docs/speed.md). float16 runs on the tensor cores of GPUs of
compute capability 7.0 and above, and slowly below. So `auto` chooses:

- float16 with loss scaling on a GPU of compute capability >= 7.0;
- bfloat16 on a CPU whose flags include avx512_bf16 or amx_bf16 (read from /proc/cpuinfo), while oneDNN is on
  and not limited below its bfloat16 kernels (ONEDNN_MAX_CPU_ISA);
- float32 everywhere else.

TensorFlow turns its oneDNN kernels on by default only on CPUs with AVX512_VNNI, AVX512_BF16 or AMX; on
others (AVX2 laptops, AMD EPYC up to Zen 3) float32 convolutions then run through slower kernels (1.67x for
a 64 px step). `enable_onednn`, called when `dcgan_tf` is imported, turns them on unless the user set
TF_ENABLE_ONEDNN_OPTS.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterable

ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of a native bfloat16 dot product
MIN_FLOAT16_CAPABILITY = (7, 0)  # tensor cores: Volta and later
# oneDNN's ISA names (ONEDNN_MAX_CPU_ISA) below its first with bfloat16 kernels, AVX512_CORE_BF16
ISAS_WITHOUT_BF16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX512_CORE", "AVX512_CORE_VNNI")
_set_by_us = False


def enable_onednn(environ: dict | None = None) -> bool:
    """Sets TF_ENABLE_ONEDNN_OPTS=1 unless the user set it or TensorFlow is already loaded (too late then).

    Returns:
      True when this call set it.
    """
    global _set_by_us
    environ = os.environ if environ is None else environ
    if ONEDNN_VARIABLE in environ or "tensorflow" in sys.modules:
        return False
    environ[ONEDNN_VARIABLE] = "1"
    if environ is os.environ:
        _set_by_us = True
    return True


def onednn_status() -> str:
    """One phrase: whether TensorFlow's oneDNN kernels are on in this process, and who decided."""
    on = onednn_on()
    if on is None:  # a TensorFlow build without the query
        return "oneDNN unknown"
    value = os.environ.get(ONEDNN_VARIABLE)
    who = ("turned on by dcgan_tf" if _set_by_us else f"{ONEDNN_VARIABLE}={value}" if value is not None
           else "TensorFlow's default on this CPU")
    return f"oneDNN {'on' if on else 'off'} ({who})"


def cpuinfo_field(names: tuple[str, ...], path: str = "/proc/cpuinfo") -> str | None:
    """The value of the first /proc/cpuinfo line named one of `names`; None where it cannot be read."""
    try:
        with open(path) as f:
            for line in f:
                name, _, value = line.partition(":")
                if name.strip() in names:
                    return value.strip()
    except OSError:
        pass
    return None


def cpu_flags(path: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags (Linux); empty where /proc/cpuinfo cannot be read (macOS, Windows)."""
    return frozenset((cpuinfo_field(("flags", "Features"), path) or "").split())


def cpu_model(path: str = "/proc/cpuinfo") -> str:
    """The CPU's model name, or the platform's processor string."""
    import platform

    return (cpuinfo_field(("model name",), path) or platform.processor() or platform.machine()
            or "unknown CPU")


def native_bfloat16(flags: Iterable[str]) -> str | None:
    """The flag that shows a native bfloat16 dot product, or None."""
    flags = set(flags)
    return next((f for f in BF16_CPU_FLAGS if f in flags), None)


def onednn_on() -> bool | None:
    """Whether TensorFlow's oneDNN kernels are on in this process (None: this TensorFlow cannot say)."""
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        return None


def bfloat16_blocker(onednn: bool | None, isa_cap: str | None) -> str | None:
    """Why a CPU with native bfloat16 still cannot run it fast here, or None.

    TensorFlow's fast bfloat16 convolutions are oneDNN's: with oneDNN off they fall back to kernels 10-30x slower
    than float32, and with oneDNN limited (ONEDNN_MAX_CPU_ISA) below AVX512_CORE_BF16 they do not run at all.
    """
    if onednn is False:
        return f"oneDNN is off ({ONEDNN_VARIABLE}=0), and without it bfloat16 convolutions are slow"
    if isa_cap and isa_cap.upper() in ISAS_WITHOUT_BF16:
        return f"ONEDNN_MAX_CPU_ISA={isa_cap} limits oneDNN below its bfloat16 kernels"
    return None


def gpu_capabilities() -> list[tuple[int, int]]:
    """The compute capability (major, minor) of each visible GPU; (0, 0) where TensorFlow does not say."""
    import tensorflow as tf

    found = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        found.append(tuple(details.get("compute_capability") or (0, 0)))
    return found


@dataclasses.dataclass(frozen=True)
class Precision:
    """A resolved --mixed_precision: the Keras dtype policy (None = float32) and why it was chosen."""

    policy: str | None  # "mixed_bfloat16", "mixed_float16" or None
    reason: str
    native: bool  # whether this hardware computes the policy's low precision fast
    blocker: str | None = None  # why a CPU with native bfloat16 cannot run it fast here (oneDNN off or capped)

    @property
    def mixed(self) -> bool:
        return self.policy is not None

    @property
    def name(self) -> str:
        return self.policy or "float32"


def resolve_precision(requested: bool | None, *, flags: Iterable[str] | None = None,
                      gpus: list[tuple[int, int]] | None = None, onednn: bool | None = None,
                      isa_cap: str | None = None) -> Precision:
    """The precision for --mixed_precision `requested` (None = auto) on this machine.

    Args:
      requested: True (mixed, whatever the hardware), False (float32) or None (auto).
      flags: the CPU's flags; default: read from /proc/cpuinfo.
      gpus: the GPUs' compute capabilities; default: asked from TensorFlow.
      onednn: whether oneDNN is on; default: asked from TensorFlow (when `flags` is not given).
      isa_cap: ONEDNN_MAX_CPU_ISA; default: the environment's (when `flags` is not given).

    Returns:
      A Precision. `native` is False when `requested` forces a precision this hardware has no fast kernels for.

    Example:
      >>> resolve_precision(None, flags={"avx2", "fma"}, gpus=[]).name
      'float32'
    """
    if flags is None:  # this machine: also ask whether oneDNN can run bfloat16 here
        flags = cpu_flags()
        onednn = onednn_on() if onednn is None else onednn
        isa_cap = os.environ.get("ONEDNN_MAX_CPU_ISA") if isa_cap is None else isa_cap
    flags = frozenset(flags)
    gpus = gpu_capabilities() if gpus is None else list(gpus)
    if gpus:
        best = max(gpus)
        native = best >= MIN_FLOAT16_CAPABILITY
        where = f"GPU compute capability {best[0]}.{best[1]}"
        if requested is False:
            return Precision(None, "--mixed_precision=false", native)
        if requested:
            return Precision("mixed_float16", "--mixed_precision=true", native)
        if native:
            return Precision("mixed_float16", f"auto: {where} has tensor cores for float16", True)
        return Precision(None, f"auto: {where} is below 7.0, no fast float16", False)
    bf16_flag = native_bfloat16(flags)
    blocker = bfloat16_blocker(onednn, isa_cap) if bf16_flag else None
    fast = bf16_flag is not None and blocker is None
    if requested is False:
        return Precision(None, "--mixed_precision=false", fast)
    if requested:
        return Precision("mixed_bfloat16", "--mixed_precision=true", fast, blocker)
    if fast:
        return Precision("mixed_bfloat16", f"auto: this CPU computes bfloat16 natively ({bf16_flag})", True)
    if blocker:
        return Precision(None, f"auto: this CPU has {bf16_flag}, but {blocker}", False, blocker)
    return Precision(None, f"auto: this CPU has no native bfloat16 (no {' or '.join(BF16_CPU_FLAGS)})", False)


def slow_precision_warning(precision: Precision) -> str | None:
    """The one-line warning for mixed precision forced on hardware without fast kernels for it, else None."""
    if not precision.mixed or precision.native:
        return None
    if precision.policy == "mixed_float16":
        return ("--mixed_precision=true: this GPU is below compute capability 7.0 (no tensor cores), so float16 "
                "may be slower than float32; --mixed_precision=auto picks float32 here")
    why = precision.blocker or f"this CPU has no native bfloat16 (no {' or '.join(BF16_CPU_FLAGS)})"
    return (f"--mixed_precision=true: {why}, so bfloat16 may be several times slower than float32 (or fail); "
            "--mixed_precision=auto picks float32 here")
