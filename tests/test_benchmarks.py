"""The benchmark scripts still run and report what they say: a smallest run of each that the suite can afford
(no timing is asserted; speed is measured by the scripts themselves, not by tests)."""

import json
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def test_train_throughput_reports_every_variant_and_its_rounds():
    out = subprocess.run(
        [sys.executable, str(BENCH / "train_throughput.py"), "--archs", "glmc_resnet32_w16", "--batches", "8",
         "--steps", "1", "--warmup", "0", "--rounds", "2", "--no-compile", "--json"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    assert "cores" in report["machine"] and "torch" in report["machine"]
    (row,) = report["rows"]
    assert row["batch"] == 8 and row["precision"] in ("fp32", "bf16")
    assert set(row["rounds_img_s"]) == {"fp32", "bf16", "full"}  # --no-compile: no compiled variant
    assert all(len(v) == 2 and min(v) > 0 for v in row["rounds_img_s"].values())
    for k, v in row["rounds_img_s"].items():  # each variant's figure is the best of its rounds
        assert row[f"{k}_img_s"] == max(v)
    floor = max(row["fp32_img_s"], row["bf16_img_s"])
    assert abs(row["ratio"] - round(row["full_img_s"] / floor, 3)) <= 2e-3


def test_train_throughput_refuses_nonsense_counts():
    out = subprocess.run([sys.executable, str(BENCH / "train_throughput.py"), "--steps", "0", "--no-compile"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "--steps and --rounds must be at least 1" in out.stderr
    assert "Traceback" not in out.stderr
