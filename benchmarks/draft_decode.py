"""What JPEG draft decoding (`Predictor(draft=True)`, `predict --draft`) costs in accuracy, side by
side in one process: the first N CIFAR-10 test JPEGs of each class, upscaled to SIZE px and saved as
JPEG (as photos arrive: larger than the model's 32 px input), predicted by one model with draft
decoding off (the eval preprocessing) and on. Prints top-1 of each, how many top-1 predictions the
draft decode changed, and the decode speed-up on these files.

Run: python benchmarks/draft_decode.py [--model NAME] [--per-class 100] [--size 256]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _machine import cpu_name
from PIL import Image

from glmc_zoo.inference import DEFAULT_MODEL, Predictor, image_files
from glmc_zoo.training.data import cifar10_jpeg_root


def upscaled_copies(test_dir: Path, out: Path, per_class: int, size: int) -> tuple[list[str], list[str]]:
    files, labels = [], []
    for cls in sorted(p.name for p in test_dir.iterdir() if p.is_dir()):
        (out / cls).mkdir(parents=True)
        for src in image_files(test_dir / cls)[:per_class]:
            dst = out / cls / Path(src).name
            with Image.open(src) as im:
                im.convert("RGB").resize((size, size), Image.BILINEAR).save(dst, quality=90)
            files.append(str(dst))
            labels.append(cls)
    return files, labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--data-root", default=None, help="CIFAR-10 JPEG root (default: ../shared/data, unpacked)")
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--size", type=int, default=256)
    a = ap.parse_args()
    test_dir = Path(a.data_root or cifar10_jpeg_root()) / "test"
    with tempfile.TemporaryDirectory() as tmp:
        files, labels = upscaled_copies(test_dir, Path(tmp), a.per_class, a.size)
        top1, seconds = {}, {}
        for draft in (False, True):
            p = Predictor(a.model, backend="torch", draft=draft)
            t0 = time.perf_counter()
            top1[draft] = [r.predictions[0]["label"] for r in p.predict(files, top_k=1)]
            seconds[draft] = time.perf_counter() - t0
    n = len(files)
    acc = {d: 100 * sum(p == y for p, y in zip(top1[d], labels)) / n for d in (False, True)}
    changed = 100 * sum(a_ != b_ for a_, b_ in zip(top1[False], top1[True])) / n
    print(f"{cpu_name()}; model {a.model}; {n} CIFAR-10 test JPEGs ({a.per_class} per class) upscaled to "
          f"{a.size} px")
    print("| draft decode | top-1 | predict s |")
    print("|---|---|---|")
    for d in (False, True):
        print(f"| {'on' if d else 'off (eval preprocessing)'} | {acc[d]:.1f} | {seconds[d]:.2f} |")
    print(f"top-1 prediction changed by draft decoding: {changed:.1f}% of {n} images; "
          f"time on/off {seconds[True] / seconds[False]:.2f}")


if __name__ == "__main__":
    main()
