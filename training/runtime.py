"""How a run computes on the machine at hand: the device, the precision and compilation, decided by measured
capability (never by the machine a config was written on), and the machine's name as logs record it. Both
stages (`loop`, `maxnorm`) ask here."""

from __future__ import annotations

import torch

from glmc_zoo.cpu import has_native_bf16, machine_text
from glmc_zoo.devices import parse_device
from glmc_zoo.errors import TrainError

__all__ = ["cpu_has_native_bf16", "device_text", "resolve_compile", "resolve_device", "resolve_precision"]


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX-BF16; Linux's /proc/cpuinfo).
    Without them oneDNN emulates bf16 and autocast is slower than fp32."""
    return has_native_bf16()


def resolve_precision(amp: str, device: torch.device, resumed: str | None = None,
                      native_bf16: bool | None = None) -> tuple[str, str]:
    """`amp` (auto | bf16 | none) -> ("bf16" | "fp32", why). `auto` takes bf16 autocast where the
    device has native bf16 (CUDA with bf16 support; a CPU with AVX512-BF16 or AMX) and fp32
    elsewhere. A resumed run keeps the precision it ran in (`resumed`), so that moving a run to
    another machine does not change its arithmetic half-way (the resume is exact), with one exception:
    a bf16 run resumed on a CPU without native bf16, where emulated bf16 runs about 10x slower than
    fp32, continues in fp32 from there (said in run.log; every epoch's log row records its precision,
    and `report` and a bundled card say which epochs ran in which). A run never switches back to bf16.
    `native_bf16`: this CPU's capability (default: read from it)."""
    if amp not in ("auto", "bf16", "none"):
        raise TrainError(f"amp={amp!r}: use auto, bf16 or none")
    if amp == "none":
        return "fp32", "amp=none"
    if amp == "bf16":
        return "bf16", "amp=bf16"
    native = (cpu_has_native_bf16() if native_bf16 is None else native_bf16) if device.type == "cpu" else None
    if resumed == "bf16" and native is False:
        return "fp32", ("amp=auto: the run trained in bf16 until here, but this cpu has no native bf16 (emulated "
                        "bf16 is ~10x slower than fp32), so it continues in fp32 from this point; the resume is "
                        "exact up to that change of precision (set amp=bf16 to keep bf16 at that cost)")
    if resumed in ("bf16", "fp32"):
        return resumed, "amp=auto, kept from the checkpoint this run resumed"
    if device.type == "cuda":
        ok = torch.cuda.is_bf16_supported()
        return ("bf16", "amp=auto: CUDA with bf16") if ok else ("fp32", "amp=auto: this GPU has no bf16")
    if native:
        return "bf16", "amp=auto: CPU with native bf16 (AVX512-BF16/AMX)"
    return "fp32", f"amp=auto: no native bf16 on this {device.type} (set amp=bf16 to force it)"


def resolve_compile(setting: str, device: torch.device, precision: str) -> tuple[bool, str]:
    """`compile` (auto | on | off) -> (whether to torch.compile the training forward, why).

    auto decides by what was measured side by side (benchmarks/train_throughput.py, width 16, the full
    GLMC step): it compiles on CUDA and stays eager on a CPU, where it did not pay in either precision and
    costs minutes of compiling at every start and resume. AMD EPYC, AVX2, fp32: the compiled step 0.94x
    the eager one at batch 64 and 1.10x at 128 (rounds differing by about 10%). Intel Xeon with AMX, bf16
    (20 steps, best of 3 rounds): 1.02x at batch 64 and 0.93x at 128, though the bare compiled bf16
    forward+backward was 1.08x its eager floor at batch 64.
    """
    if setting == "on":
        return True, "compile=on"
    if setting == "off":
        return False, "compile=off"
    if device.type == "cuda":
        return True, "compile=auto: CUDA"
    return False, (f"compile=auto: off for {precision} on this {device.type}, where it was measured not to pay "
                   f"(set compile=on to force it)")


def resolve_device(device: str = "auto") -> torch.device:
    """`device` (the one vocabulary, `glmc_zoo.devices`) as a torch device that is here."""
    kind, index = parse_device(device)
    if kind == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise TrainError(f"--device {device}: CUDA is not available here (torch {torch.__version__}, "
                         f"cuda build {torch.version.cuda}). Use --device cpu.")
    if index is not None and index >= torch.cuda.device_count():
        raise TrainError(f"--device {device}: this machine has {torch.cuda.device_count()} GPU(s), numbered from 0. "
                         f"Use --device cuda:0 (or cuda).")
    return torch.device(kind if index is None else f"cuda:{index}")


def device_text(dev: torch.device) -> str:
    """The machine an epoch ran on, as its log row and run.log name it: the CPU (model, cores, flags), or the
    GPU and its host. A run carried across sessions may change machines; its pace is read per machine."""
    if dev.type == "cuda":
        return f"{torch.cuda.get_device_name(dev)}, host {machine_text()}"
    return machine_text()
