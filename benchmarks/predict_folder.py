"""`glmc-zoo predict DIR` on a folder of full-size JPEG photos against the single-thread decode floor,
side by side in one run.

The floor is what one thread needs just to read the same files, with no model: open, decode fully,
convert to RGB, resize to the model's input (Pillow, bilinear), in this process. Against it, the whole
`glmc-zoo predict` process is timed (start-up, model loading and writing the output included, default
model on onnxruntime), with the default JPEG draft decoding and with `--no-draft` (full decoding).
The photos are crops of scikit-image's public-domain / CC0 sample photos, re-encoded as JPEG at
500 x 375 px (web-sized) and 2000 x 1500 px (camera-sized), or --sides.

Run: python benchmarks/predict_folder.py [--photos 400] [--sides 500,2000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from glmc_zoo.cpu import machine_text as cpu_name


def make_photos(folder: Path, n: int, side: int, seed: int = 0) -> list[Path]:
    """n JPEGs (quality 90) of `side` px on the long side, 4:3 or 3:4, cut from scikit-image's photos."""
    from skimage import data

    sources = [Image.fromarray(getattr(data, k)()) for k in ("astronaut", "chelsea", "coffee", "rocket", "cat")]
    sources += [Image.fromarray(a) for a in data.stereo_motorcycle()[:2]]
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        src = sources[i % len(sources)]
        w, h = (side, side * 3 // 4) if rng.random() < 0.7 else (side * 3 // 4, side)
        s = max(w / src.width, h / src.height) * rng.uniform(1.0, 1.5)
        big = src.resize((max(w, round(src.width * s)), max(h, round(src.height * s))), Image.BICUBIC)
        x0, y0 = int(rng.integers(0, big.width - w + 1)), int(rng.integers(0, big.height - h + 1))
        p = folder / f"photo_{i:05d}.jpg"
        big.crop((x0, y0, x0 + w, y0 + h)).save(p, quality=90)
        out.append(p)
    return out


def decode_floor(files: list[Path], size: int) -> float:
    """Seconds for one thread to open, decode, convert to RGB and resize every file: no model."""
    t0 = time.perf_counter()
    for f in files:
        with Image.open(f) as im:
            im.convert("RGB").resize((size, size), Image.BILINEAR)
    return time.perf_counter() - t0


def predict_process(folder: Path, *extra: str) -> float:
    cmd = [sys.executable, "-m", "glmc_zoo.cli", "predict", str(folder), "--format", "jsonl", "--no-progress", *extra]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    dt = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {done.stderr[-2000:]}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=400)
    ap.add_argument("--sides", default="500,2000", help="long side of the photos, px (one folder per value)")
    ap.add_argument("--repeat", type=int, default=3, help="medians of this many runs of each")
    a = ap.parse_args()
    jobs = {"single-thread decode floor (no model)": None, "glmc-zoo predict (draft decode, the default)": (),
            "glmc-zoo predict --no-draft (full decode)": ("--no-draft",)}
    print(f"{cpu_name()}; {a.photos} JPEG photos per size; whole process timed (start-up included); "
          f"median of {a.repeat}\n")
    print("| photos | job | seconds | images/s | / decode floor |")
    print("|---|---|---|---|---|")
    for side in (int(x) for x in a.sides.split(",")):
        with tempfile.TemporaryDirectory() as d:
            folder = Path(d) / "photos"
            files = make_photos(folder, a.photos, side)
            mb = sum(f.stat().st_size for f in files) / 1e6
            decode_floor(files[:20], 32)  # warm the page cache and Pillow
            times: dict[str, list[float]] = {k: [] for k in jobs}
            for _ in range(a.repeat):  # interleaved, so that drift in the machine's load hits all three alike
                for k, extra in jobs.items():
                    times[k].append(decode_floor(files, 32) if extra is None else predict_process(folder, *extra))
        med = {k: statistics.median(v) for k, v in times.items()}
        floor = med["single-thread decode floor (no model)"]
        for k, v in med.items():
            print(f"| {side} x {side * 3 // 4} px, {mb:.0f} MB | {k} | {v:.2f} | {a.photos / v:.0f} | {v / floor:.2f} |",
                  flush=True)


if __name__ == "__main__":
    main()
