"""The machine a benchmark ran on, named the same way by every script in benchmarks/."""

from __future__ import annotations

from glmc_zoo.cpu import cpu_isa
from glmc_zoo.cpu import cpu_name as _cpu_name


def cpu_name() -> str:
    """The CPU's model name, core count and the instruction-set flags that decide bf16 / int8 speed."""
    return f"{_cpu_name()} (flags: {cpu_isa()})"
