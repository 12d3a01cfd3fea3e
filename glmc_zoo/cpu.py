"""What this CPU is and can do, read from Linux's /proc/cpuinfo: named with every measured figure, and
the facts that choices such as bf16 autocast or an int8 export are made by (never the machine the
choice was written on)."""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

#: The instruction-set flags that decide a precision's speed, in the order they are printed.
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8")


@functools.cache
def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def cpu_flags() -> set[str]:
    """The CPU's feature flags (empty where /proc/cpuinfo cannot be read)."""
    return set(next((x.split(":", 1)[1].split() for x in _cpuinfo() if x.startswith("flags")), []))


def cpu_name() -> str:
    """The CPU's model name and core count, e.g. "AMD EPYC 7B13, 2 CPU cores"."""
    name = next((x.split(":", 1)[1].strip() for x in _cpuinfo() if x.startswith("model name")), None)
    return f"{name or platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores"


def cpu_isa() -> str:
    """The flags of ISA_FLAGS this CPU has, e.g. "avx2" or "avx2 avx512f avx512_vnni amx_bf16"."""
    flags = cpu_flags()
    return " ".join(f for f in ISA_FLAGS if f in flags) or "none of " + "/".join(ISA_FLAGS)


def machine_text() -> str:
    """How every measured figure names this CPU: model, cores and the flags that decide bf16 / int8 speed,
    e.g. "AMD EPYC 7B13, 2 CPU cores (flags: avx2)"."""
    return f"{cpu_name()} (flags: {cpu_isa()})"


def has_native_bf16() -> bool:
    """bf16 arithmetic in hardware (AVX512-BF16 or AMX-BF16); without it oneDNN emulates bf16."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def has_vnni() -> bool:
    """int8 dot products in one instruction (AVX512-VNNI, AVX-VNNI or AMX-INT8)."""
    return bool(cpu_flags() & {"avx512_vnni", "avx_vnni", "amx_int8"})
