"""Inference speed, side by side in one process: PyTorch eager against onnxruntime (CPU), batch-1
latency and batch-64 throughput, for both ResNet-32 widths and glmc_resnet50; and end-to-end
`Predictor` images/s over a folder of full-size JPEG photos (made from scikit-image's public-domain
/ CC0 sample photos, re-encoded at several sizes) with the width-16 CIFAR model.

Run: python benchmarks/inference.py [--photos 500]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def machine() -> str:
    import onnxruntime as ort

    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), onnxruntime {ort.__version__}")


def _median_time(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def model_rows(archs: list[str], repeat: int) -> list[dict]:
    import onnxruntime as ort
    import timm

    import glmc_zoo  # noqa: F401

    rows = []
    for arch in archs:
        model = timm.create_model(arch, num_classes=10 if "resnet32" in arch else 1000).eval()
        size = model.pretrained_cfg["input_size"]
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "m.onnx"
            torch.onnx.export(model, (torch.randn(1, *size),), str(path), input_names=["input"],
                              output_names=["logits"], dynamic_axes={"input": {0: "b"}, "logits": {0: "b"}},
                              opset_version=17, dynamo=False)
            opts = ort.SessionOptions()
            sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        for batch in (1, 64):
            x = np.random.default_rng(0).standard_normal((batch, *size)).astype(np.float32)
            xt = torch.from_numpy(x)

            def run_torch():
                with torch.inference_mode():
                    model(xt)

            def run_ort():
                sess.run(None, {"input": x})

            reps = repeat if batch == 1 else max(3, repeat // 10)
            t_torch, t_ort = _median_time(run_torch, reps), _median_time(run_ort, reps)
            rows.append(dict(arch=arch, batch=batch, torch_ms=1000 * t_torch, ort_ms=1000 * t_ort,
                             torch_img_s=batch / t_torch, ort_img_s=batch / t_ort, speedup=t_torch / t_ort))
    return rows


def make_photos(folder: Path, n: int) -> list[Path]:
    """n full-size JPEGs from scikit-image's sample photos at several sizes (640 to 2400 px)."""
    from PIL import Image
    from skimage import data

    sources = [data.chelsea(), data.astronaut(), data.coffee(), data.rocket(), data.stereo_motorcycle()[0]]
    sizes = [640, 1024, 1600, 2400]
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        img = Image.fromarray(sources[i % len(sources)])
        side = sizes[(i // len(sources)) % len(sizes)]
        scale = side / max(img.size)
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.BICUBIC)
        p = folder / f"photo_{i:04d}.jpg"
        img.save(p, quality=90)
        out.append(p)
    return out


def predict_rows(photos: list[Path], model: str) -> list[dict]:
    from glmc_zoo.export.onnx import export_onnx

    from glmc_zoo.inference import Predictor

    rows = []
    with tempfile.TemporaryDirectory() as d:
        onnx_path = Path(d) / "m.onnx"
        export_onnx(model, onnx_path)
        for backend, ref, draft in (("torch", model, True), ("onnx", str(onnx_path), True),
                                    ("onnx", str(onnx_path), False)):
            p = Predictor(ref, backend=backend, draft=draft)
            p.predict(photos[:8])
            t0 = time.perf_counter()
            res = p.predict(photos, batch_size=64)
            dt = time.perf_counter() - t0
            assert not any(r.error for r in res)
            rows.append(dict(backend=backend, draft=draft, n=len(photos), img_s=len(photos) / dt))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--archs", default="glmc_resnet32_w16,glmc_resnet32,glmc_resnet50")
    ap.add_argument("--model", default="glmc_resnet32_w16.cifar10_lt_if100_jpeg")
    a = ap.parse_args()
    print(f"machine: {machine()}\n")
    print("| model | batch | PyTorch eager | onnxruntime | onnxruntime / PyTorch speed |")
    print("|---|---|---|---|---|")
    for r in model_rows(a.archs.split(","), a.repeat):
        unit = (f"{r['torch_ms']:.2f} ms", f"{r['ort_ms']:.2f} ms") if r["batch"] == 1 else \
            (f"{r['torch_img_s']:.0f} img/s", f"{r['ort_img_s']:.0f} img/s")
        print(f"| {r['arch']} | {r['batch']} | {unit[0]} | {unit[1]} | {r['speedup']:.2f}x |")
    with tempfile.TemporaryDirectory() as d:
        photos = make_photos(Path(d) / "photos", a.photos)
        mp = sum(p.stat().st_size for p in photos) / 1e6
        print(f"\nend-to-end predict, {len(photos)} JPEG photos (640-2400 px, {mp:.0f} MB), model {a.model}:\n")
        print("| backend | JPEG draft decode | images/s |")
        print("|---|---|---|")
        for r in predict_rows(photos, a.model):
            print(f"| {r['backend']} | {'on' if r['draft'] else 'off'} | {r['img_s']:.0f} |")


if __name__ == "__main__":
    main()
