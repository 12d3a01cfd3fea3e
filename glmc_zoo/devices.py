"""The one device vocabulary of every command and backend: `auto`, `cpu`, `cuda` or `cuda:N`.

`parse_device` checks a value before anything is loaded (no torch import); what is actually
available is checked by the backend that opens the device (torch, onnxruntime).
"""

from __future__ import annotations

import re

from glmc_zoo.errors import DeviceError

#: How every message names the vocabulary.
DEVICES = "auto, cpu, cuda or cuda:N"
_DEVICE = re.compile(r"(auto|cpu|cuda)(?::(\d+))?")


def parse_device(device: str) -> tuple[str, int | None]:
    """`device` -> (kind, index): kind is auto, cpu or cuda; index is N of `cuda:N`, else None.
    `DeviceError` naming the value and the vocabulary for anything else (`mps`, `cuda:x`, `cpu:1`)."""
    m = _DEVICE.fullmatch(str(device).strip().lower())
    if m is None or (m.group(2) is not None and m.group(1) != "cuda"):
        raise DeviceError(f"--device {device!r}: use {DEVICES}")
    return m.group(1), None if m.group(2) is None else int(m.group(2))
