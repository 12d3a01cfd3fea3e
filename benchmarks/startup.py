"""Whole-process start-up times of the `glmc-zoo` command (wall clock, standard library only).

Each command is run `--runs` times as a fresh process, interleaved so that all see the same
machine state; the median and the min are printed, with the machine named. The torch backend
is the reference the others are compared with (ratio = its median / this command's median).

Run: python benchmarks/startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from glmc_zoo.cpu import machine_text as cpu_name

ROOT = Path(__file__).resolve().parents[1]
CAT = str(ROOT / "examples" / "cat.jpg")

def machine() -> str:
    return f"{cpu_name()}, Python {platform.python_version()}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--onnx", action="append", default=[], metavar="MODEL.onnx",
                   help="also time `predict cat.jpg --model MODEL.onnx` (repeatable): another model's whole-process cost")
    a = p.parse_args()
    if a.runs < 1:
        p.error("--runs must be at least 1")
    for f in a.onnx:
        if not Path(f).is_file():
            p.error(f"--onnx {f}: no such file")
    exe = shutil.which("glmc-zoo") or str(Path(sys.executable).with_name("glmc-zoo"))
    from glmc_zoo.inference import bundled_onnx

    commands = {
        "glmc-zoo --help": [exe, "--help"],
        "glmc-zoo --version": [exe, "--version"],
        "predict cat.jpg (default: bundled .onnx)": [exe, "predict", CAT],
        "predict cat.jpg --model bundled.onnx": [exe, "predict", CAT, "--model", str(bundled_onnx())],
        "predict cat.jpg --backend torch": [exe, "predict", CAT, "--backend", "torch"],
        **{f"predict cat.jpg --model {Path(f).parent.name}/{Path(f).name}": [exe, "predict", CAT, "--model", f]
           for f in a.onnx},
    }
    times: dict[str, list[float]] = {k: [] for k in commands}
    for _ in range(a.runs):
        for name, cmd in commands.items():
            t0 = time.perf_counter()
            r = subprocess.run(cmd, capture_output=True, text=True)
            times[name].append(time.perf_counter() - t0)
            if r.returncode != 0:
                raise SystemExit(f"{name} failed: {r.stderr}")
    ref = statistics.median(times["predict cat.jpg --backend torch"])
    print(f"machine: {machine()}; {a.runs} runs each, interleaved")
    print("| command | median (s) | min (s) | torch-backend median / this |")
    print("|---|---|---|---|")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"| `{name}` | {med:.2f} | {min(ts):.2f} | {ref / med:.1f}x |")


if __name__ == "__main__":
    main()
