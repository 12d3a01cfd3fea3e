"""Inference speed, side by side in one process: PyTorch eager against onnxruntime (CPU), batch-1
latency and batch-64 throughput, for both ResNet-32 widths and glmc_resnet50; the bundled model
in fp32 and static int8 (calibrated on 200 real CIFAR-10 training JPEGs); and end-to-end
`Predictor` images/s over a folder of full-size JPEG photos (made from scikit-image's public-domain
/ CC0 sample photos, re-encoded at several sizes) with the width-16 CIFAR model.

Run: python benchmarks/inference.py [--photos 500]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from glmc_zoo.cpu import machine_text as cpu_name
from glmc_zoo.inference import DEFAULT_MODEL


def machine() -> str:
    import onnxruntime as ort

    return (f"{cpu_name()}, torch {torch.__version__} "
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
        from glmc_zoo.export.onnx import _export_fp32

        sess = ort.InferenceSession(_export_fp32(model, 18, None).SerializeToString(),
                                    providers=["CPUExecutionProvider"])
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


def int8_rows(model_ref: str, repeat: int) -> list[dict]:
    """The bundled model: PyTorch eager, onnxruntime fp32 and int8 (both made by `export_onnx`)."""
    import onnxruntime as ort

    from glmc_zoo.export.onnx import export_onnx
    from glmc_zoo.hub import create_model
    from glmc_zoo.training.data import cifar10_jpeg_root

    root = cifar10_jpeg_root()
    calib = [str(p) for d in sorted((root / "train").iterdir()) for p in sorted(d.glob("*.jpg"))[:20]]
    check = [str(p) for d in sorted((root / "test").iterdir()) for p in sorted(d.glob("*.jpg"))[:50]]
    model = create_model(model_ref).eval()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        fp32, int8 = Path(d) / "fp32.onnx", Path(d) / "int8.onnx"
        export_onnx(model_ref, fp32, verify_images=check)
        report = export_onnx(model_ref, int8, int8=True, calibration=calib, verify_images=check)
        agree = min(c["top1_agree"] for c in report.checks if c["inputs"] == "real images")
        sessions = {k: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for k, p in
                    (("fp32", fp32), ("int8", int8))}
        for batch in (1, 64):
            x = np.random.default_rng(0).standard_normal((batch, 3, 32, 32)).astype(np.float32)
            reps = repeat if batch == 1 else max(3, repeat // 10)
            with torch.inference_mode():
                t = {"torch": _median_time(lambda: model(torch.from_numpy(x)), reps)}
            for k, sess in sessions.items():
                t[k] = _median_time(lambda: sess.run(None, {"input": x}), reps)
            rows.append(dict(batch=batch, agree=agree, **{f"{k}_s": v for k, v in t.items()}))
    return rows


def int8_width64_rows() -> list[dict]:
    """glmc_resnet32 at width 64 (random weights, BatchNorm statistics from real images: speed only, its
    agreement means nothing), quantized as `export --int8` does, beside its fp32 graph, at batch 1 and 64."""
    import timm

    import glmc_zoo  # noqa: F401
    from glmc_zoo.export.onnx import _export_fp32, _quantize_int8, int8_speed
    from glmc_zoo.inference import load_image
    from glmc_zoo.training.data import cifar10_jpeg_root

    root = cifar10_jpeg_root()
    calib = [str(p) for d in sorted((root / "train").iterdir()) for p in sorted(d.glob("*.jpg"))[:20]]
    model = timm.create_model("glmc_resnet32", num_classes=10)
    from glmc_zoo.inference import Preprocess

    pre = Preprocess.from_config(model.pretrained_cfg)
    with torch.no_grad():  # BatchNorm statistics of real images, so that activations have real ranges
        model.train()(torch.from_numpy(np.stack([pre(load_image(f)) for f in calib])))
    model.eval()
    proto = _export_fp32(model, 18, None)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "int8.onnx"
        import onnx

        onnx.save(_quantize_int8(proto, model, calib, 0), str(path))
        return [int8_speed(proto, path, (3, 32, 32), batch=b, seconds=3.0) for b in (1, 64)]


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
    ap.add_argument("--model", default=DEFAULT_MODEL, help="default: the bundled default model")
    a = ap.parse_args()
    print(f"machine: {machine()}\n")
    print("| model | batch | PyTorch eager | onnxruntime | onnxruntime / PyTorch speed |")
    print("|---|---|---|---|---|")
    for r in model_rows([x for x in a.archs.split(",") if x], a.repeat):
        unit = (f"{r['torch_ms']:.2f} ms", f"{r['ort_ms']:.2f} ms") if r["batch"] == 1 else \
            (f"{r['torch_img_s']:.0f} img/s", f"{r['ort_img_s']:.0f} img/s")
        print(f"| {r['arch']} | {r['batch']} | {unit[0]} | {unit[1]} | {r['speedup']:.2f}x |")
    print(f"\n{a.model}: onnxruntime int8 (static QDQ, uint8 activations, 7-bit per-channel weights) "
          f"beside fp32 and PyTorch\n")
    print("| batch | PyTorch eager | onnxruntime fp32 | onnxruntime int8 | int8 / fp32 speed | int8 top-1 agreement |")
    print("|---|---|---|---|---|---|")
    for r in int8_rows(a.model, a.repeat):
        fmt = (lambda s: f"{1000 * s:.2f} ms") if r["batch"] == 1 else (lambda s: f"{r['batch'] / s:.0f} img/s")
        print(f"| {r['batch']} | {fmt(r['torch_s'])} | {fmt(r['fp32_s'])} | {fmt(r['int8_s'])} | "
              f"{r['fp32_s'] / r['int8_s']:.2f}x | {100 * r['agree']:.1f}% (500 test JPEGs) |")
    print("\nglmc_resnet32 (width 64, random weights: speed only), int8 beside fp32 on onnxruntime\n")
    print("| batch | onnxruntime fp32 | onnxruntime int8 | int8 / fp32 speed |")
    print("|---|---|---|---|")
    for r in int8_width64_rows():
        fmt = (lambda s: f"{1000 * s:.2f} ms") if r["batch"] == 1 else (lambda s: f"{r['batch'] / s:.0f} img/s")
        print(f"| {r['batch']} | {fmt(r['fp32_s'])} | {fmt(r['int8_s'])} | {r['speedup']:.2f}x |")
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
