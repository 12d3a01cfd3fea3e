"""How small may a JPEG be drafted before the predictions change? Side by side in one process.

JPEG can be decoded at 1/2, 1/4 or 1/8 of its size almost for free (DCT scaling, Pillow's `draft`).
`Predictor` drafts a JPEG to the smallest such scale whose short side is still >= FACTOR x the
model's resize target (`Preprocess.scale_size`), then applies the eval preprocessing as usual. This
script measures, for several FACTORs, how many top-1 predictions of the bundled models stay equal to
those from a full decode, on three sets of real images:

- `photos`: crops of scikit-image's public-domain / CC0 sample photos (astronaut, cat, coffee,
  rocket, motorcycle, ...) at random positions, aspect ratios and sizes (100 to 3000 px on the long
  side), saved as JPEG at random quality (70-95), some progressive, some with 4:4:4 chroma;
- `cifar-up`: CIFAR-10 test JPEGs upscaled to 96-1024 px and re-encoded (photo-like, and the
  models' own classes);
- `cifar`: the CIFAR-10 test JPEGs as shipped (32 px: drafting must change nothing).

It also times decode + preprocess of the photo set at each factor against a full decode (one thread).

Run: python benchmarks/draft_decode.py [--photos 800] [--per-class 100] [--factors 1,2,3,4,6,8]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from glmc_zoo.cpu import machine_text as cpu_name
from glmc_zoo.inference import Predictor, bundled_onnx, image_files, load_image
from glmc_zoo.registry import weight_sets


def photo_crops(out: Path, n: int, seed: int = 0) -> list[str]:
    """n JPEGs cut from scikit-image's sample photos: random crop, aspect, size, quality, encoding."""
    from skimage import data

    names = ["astronaut", "chelsea", "coffee", "rocket", "cat", "immunohistochemistry", "retina",
             "hubble_deep_field", "camera", "coins", "moon", "page"]
    sources = [getattr(data, k)() for k in names] + list(data.stereo_motorcycle()[:2])
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        src = Image.fromarray(sources[i % len(sources)])
        w, h = src.size
        cw = int(w * rng.uniform(0.35, 1.0))
        ch = int(min(h, max(16, cw * rng.uniform(0.5, 2.0))))
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        img = src.crop((x0, y0, x0 + cw, y0 + ch))
        long_side = int(np.exp(rng.uniform(np.log(100), np.log(3000))))
        scale = long_side / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BICUBIC)
        p = out / f"photo_{i:04d}.jpg"
        img.save(p, quality=int(rng.integers(70, 96)), progressive=bool(rng.random() < 0.3),
                 subsampling=0 if rng.random() < 0.3 else 2)
        files.append(str(p))
    return files


def cifar_upscaled(test_dir: Path, out: Path, per_class: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    files = []
    for cls in sorted(p.name for p in test_dir.iterdir() if p.is_dir()):
        (out / cls).mkdir(parents=True)
        for src in image_files(test_dir / cls)[:per_class]:
            side = int(rng.integers(96, 1025))
            dst = out / cls / Path(src).name
            with Image.open(src) as im:
                im.convert("RGB").resize((side, side), Image.BICUBIC).save(dst, quality=90)
            files.append(str(dst))
    return files


def cifar_test(test_dir: Path, per_class: int) -> list[str]:
    return [str(f) for cls in sorted(p for p in test_dir.iterdir() if p.is_dir())
            for f in image_files(cls)[:per_class]]


def inputs(pre, files: list[str], factor: int | None) -> tuple[np.ndarray, float]:
    """The preprocessed batch of `files` with drafting at `factor` (None: full decode), and the seconds."""
    t0 = time.perf_counter()
    x = np.stack([pre(load_image(f, draft_size=factor * pre.scale_size if factor else None)) for f in files])
    return x, time.perf_counter() - t0


def main() -> None:
    from glmc_zoo.training.data import cifar10_jpeg_root

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=800)
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--factors", default="1,2,3,4,6,8")
    a = ap.parse_args()
    factors = [int(f) for f in a.factors.split(",")]
    models = [w.name for w in weight_sets() if bundled_onnx(w.name).is_file()]
    predictors = {m: Predictor(str(bundled_onnx(m)), backend="onnx", device="cpu") for m in models}
    pre = next(iter(predictors.values())).preprocess
    assert all(p.preprocess == pre for p in predictors.values()), "the bundled models preprocess alike"
    test_dir = cifar10_jpeg_root() / "test"
    print(f"{cpu_name()}; models {', '.join(models)}; resize target {pre.scale_size} px "
          f"({pre.interpolation}); draft to short side >= FACTOR x {pre.scale_size}\n")
    with tempfile.TemporaryDirectory() as tmp:
        sets = {"photos": photo_crops(Path(tmp) / "photos", a.photos),
                "cifar-up": cifar_upscaled(test_dir, Path(tmp) / "cifar-up", a.per_class),
                "cifar": cifar_test(test_dir, a.per_class)}
        print("| set | images | FACTOR | top-1 equal to full decode (worst model) | max abs input diff | "
              "decode+preprocess s | vs full |")
        print("|---|---|---|---|---|---|---|")
        for set_name, files in sets.items():
            full, t_full = inputs(pre, files, None)
            top_full = {m: p.backend(full).argmax(1) for m, p in predictors.items()}
            for f in factors:
                x, t = inputs(pre, files, f)
                agree = min(float((p.backend(x).argmax(1) == top_full[m]).mean()) for m, p in predictors.items())
                print(f"| {set_name} | {len(files)} | {f} | {100 * agree:.2f}% | {np.abs(x - full).max():.3f} | "
                      f"{t:.2f} | {t / t_full:.2f}x ({t_full:.2f} s full) |", flush=True)


if __name__ == "__main__":
    main()
