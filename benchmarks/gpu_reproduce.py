"""Reproduce GLMC's CIFAR-10-LT IF 100 result at the released width on one GPU, and measure speed.

Trains `glmc_resnet32` (width 64, as released) with the released `cifar10_lt_if100` config for
the full 200 epochs on the real CIFAR-10 JPEGs (../shared/data, or --archive), with GPU-resident
uint8 data and batched augmentation, bf16 autocast, channels_last and torch.compile; evaluates
every --eval-every epochs; writes the run directory (metrics.jsonl, per-class plot, confusion
matrix, final weights in the zoo's format, stored in fp16 when fp32 would pass 16 MB) and
`speed.json`: images/s, minutes for the run, and the fraction of the GPU's bf16 peak that the
training step reaches (forward+backward FLOPs of both mixed batches, counted by
torch.utils.flop_counter on one step).

GPU:  python benchmarks/gpu_reproduce.py --output $OUT/c10_if100 --peak-tflops 989
CPU check of the whole path (tiny): python benchmarks/gpu_reproduce.py --device cpu --epochs 2 \
      --set max_images_per_class=100 --set compile=false --output /tmp/gpu_check
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def step_flops(model_name: str, batch: int, device: torch.device) -> int:
    """FLOPs of one GLMC step's forward+backward over both mixed batches (2 x B images)."""
    import timm
    from torch.utils.flop_counter import FlopCounterMode

    import glmc_zoo  # noqa: F401

    model = timm.create_model(model_name, num_classes=10).to(device).train()
    x = torch.randn(batch, 3, 32, 32, device=device)
    with FlopCounterMode(display=False) as counter:
        for _ in range(2):  # the global and the local mixed batch
            out = model.forward_train(x)
            (out.logits.sum() + out.logits_cb.sum() + out.p.sum()).backward()
    return counter.get_total_flops()


def to_fp16_if_large(folder: Path, limit_mb: float = 16.0) -> bool:
    """Rewrite model.safetensors in fp16 when the fp32 file is over `limit_mb` (keeps the format)."""
    from safetensors.torch import load_file, save_file

    path = folder / "model.safetensors"
    if path.stat().st_size <= limit_mb * 1e6:
        return False
    sd = load_file(str(path))
    tmp = path.with_suffix(".tmp")
    save_file({k: v.half() if v.is_floating_point() else v for k, v in sd.items()}, str(tmp))
    tmp.chmod(0o644)
    tmp.replace(path)
    cfg = json.loads((folder / "config.json").read_text())
    cfg.setdefault("glmc", {})["stored_dtype"] = "float16"
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))
    return True


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="cifar10_lt_if100")
    ap.add_argument("--model", default="glmc_resnet32")
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--archive", default=None, help="cifar10-jpeg.tar.gz (default: found in ../shared/data)")
    ap.add_argument("--output", default="runs/gpu_c10_if100")
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak of the GPU (H100/H200 SXM: 989)")
    ap.add_argument("--set", action="append", default=[], help="extra config overrides key=value")
    a = ap.parse_args()

    from glmc_zoo.training.configs import apply_overrides, get_config
    from glmc_zoo.training.data import cifar10_jpeg_root
    from glmc_zoo.training.loop import train

    root = cifar10_jpeg_root(a.archive)
    cfg = apply_overrides(get_config(a.config), dict(
        dataset="imagefolder", data_root=str(root), model=a.model, epochs=a.epochs, eval_every=a.eval_every,
        compile=a.device.startswith("cuda"), channels_last=True, amp="bf16" if a.device.startswith("cuda") else "none"))
    cfg = apply_overrides(cfg, a.set)
    out = Path(a.output)
    t0 = time.perf_counter()
    metrics = train(cfg, out, device=a.device, progress=False,
                    command="python benchmarks/gpu_reproduce.py " + " ".join(f"--{k} {v}" for k, v in vars(a).items()))
    wall = time.perf_counter() - t0
    logs = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    steady = logs[1:] or logs  # the first epoch includes compilation
    img_s = sum(x["images"] for x in steady) / sum(x["seconds"] for x in steady)
    flops = step_flops(cfg.model, cfg.batch_size, torch.device(a.device))
    achieved = flops / cfg.batch_size * img_s / 1e12  # TFLOP/s
    fp16 = to_fp16_if_large(out / "model")
    speed = dict(device=torch.cuda.get_device_name() if a.device.startswith("cuda") else "cpu",
                 images_per_s=round(img_s, 1), minutes_total=round(wall / 60, 2),
                 train_minutes=round(sum(x["seconds"] for x in logs) / 60, 2),
                 step_gflop_per_image=round(flops / cfg.batch_size / 1e9, 2), achieved_tflops=round(achieved, 1),
                 fraction_of_bf16_peak=round(achieved / a.peak_tflops, 4), peak_tflops_assumed=a.peak_tflops,
                 weights_fp16=fp16, final=dict((k, metrics.get(k)) for k in ("top1", "many", "medium", "few")))
    (out / "speed.json").write_text(json.dumps(speed, indent=2))
    print(json.dumps(speed, indent=2))
    return speed


if __name__ == "__main__":
    main()
