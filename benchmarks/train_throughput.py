"""Training throughput: the full GLMC step against the bare forward+backward of the same model.

Side by side in one process, on whatever device is present (CUDA if available, else CPU):
- full: one `glmc_zoo.training.loop.glmc_step` as the trainer runs it: the two views of the uniform
  and rebalanced batches augmented from uint8 on the device, lambda, MixUp + CutMix, the four heads
  on both mixed batches, the GLMC loss, backward, SGD update; eager, and with the forward under
  `torch.compile` as `compile=on` runs it;
- bare: the model's forward on the same two (already mixed) batches, cross-entropy on `fc`,
  backward; no augmentation, no mixing, no extra heads in the loss, no update; in fp32 and under
  bf16 autocast, eager and compiled, all channels_last (the four floors).

The full step runs in the precision the trainer's `amp=auto` takes on this machine (bf16 where the
device has native bf16, else fp32); "trainer" is the full step as `compile=auto` runs it here, and
its ratio is to the best of the four floors. Images/s counts training images (B per step).
Compiling takes minutes on a CPU (not counted: warm-up steps run first).
Run: python benchmarks/train_throughput.py [--no-compile]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from glmc_zoo.cpu import machine_text as cpu_name


def machine() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return (f"{cpu_name()}; torch ISA {torch.backends.cpu.get_cpu_capability()}, "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads")


def bench(arch: str, batch: int, device: torch.device, steps: int, warmup: int, compiled: bool = True,
          rounds: int = 2, model_args: dict | None = None, amp: str = "auto") -> dict:
    import timm

    import glmc_zoo  # noqa: F401
    from glmc_zoo.training.configs import get_config
    from glmc_zoo.training.data import normalize, random_crop_flip
    from glmc_zoo.training.distributed import TwoViewForward
    from glmc_zoo.training.loop import glmc_step, resolve_compile, resolve_precision
    from glmc_zoo.training.method import class_weights

    cfg = get_config("cifar10_lt_if100")
    mf = torch.channels_last
    torch.manual_seed(0)
    model = timm.create_model(arch, num_classes=10, **(model_args or {})).to(device).to(memory_format=mf).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-3)
    fwd = TwoViewForward(model)
    fwd_c = torch.compile(fwd) if compiled else None
    images = torch.randint(0, 256, (4096, 3, 32, 32), dtype=torch.uint8, device=device)
    targets = torch.randint(0, 10, (4096,), device=device)
    mean, std = torch.tensor([0.49, 0.48, 0.45], device=device), torch.tensor([0.25, 0.24, 0.26], device=device)
    label_w = class_weights(torch.tensor([5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]), 1.2).to(device)
    gen = torch.Generator().manual_seed(0)
    precision, _ = resolve_precision(amp, device)
    bf16 = precision == "bf16"

    def full(f):
        def step(i: int) -> None:
            idx_u = torch.randint(0, 4096, (batch,), generator=gen).to(device)
            idx_r = torch.randint(0, 4096, (batch,), generator=gen).to(device)
            views = lambda idx: tuple(normalize(random_crop_flip(images[idx], gen), mean, std) for _ in range(2))  # noqa: E731
            y_u, y_r = F.one_hot(targets[idx_u], 10).float(), F.one_hot(targets[idx_r], 10).float()
            glmc_step(f, opt, views(idx_u), views(idx_r), y_u, y_r, label_w, 0.5, mix_beta=cfg.mix_beta,
                      contrast_weight=cfg.contrast_weight, generator=gen, memory_format=mf, use_bf16=bf16)
        return step

    fixed = [normalize(images[:batch], mean, std).contiguous(memory_format=mf) for _ in range(2)]
    y = targets[:batch]

    def bare_loss(a, b):
        return F.cross_entropy(model.forward_train(a).logits.float(), y) + \
            F.cross_entropy(model.forward_train(b).logits.float(), y)

    bare_c = torch.compile(bare_loss) if compiled else None

    def bare(use_bf16: bool, fn=bare_loss):
        def step(i: int) -> None:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                loss = fn(fixed[0], fixed[1])
            model.zero_grad(set_to_none=True)
            loss.backward()
        return step

    def timed(fn) -> float:
        for i in range(warmup):
            fn(i)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for i in range(steps):
            fn(i)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return steps * batch / (time.perf_counter() - t0)

    # Interleave to share the machine's state (turbo, caches) fairly: every variant once per round; best of the rounds.
    variants = {"fp32": bare(False), "bf16": bare(True), "full": full(fwd)}
    if compiled:
        variants.update({"fp32_compiled": bare(False, bare_c), "bf16_compiled": bare(True, bare_c),
                         "full_compiled": full(fwd_c)})
    rates: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(rounds):
        for k, fn in variants.items():
            rates[k].append(timed(fn))
    best = {k: max(v) for k, v in rates.items()}
    floors = {k: v for k, v in best.items() if not k.startswith("full")}
    auto, _ = resolve_compile("auto", device, precision)
    trainer = best["full_compiled"] if (auto and compiled) else best["full"]
    label = f"{arch} {json.dumps(model_args, separators=(',', ':'))}" if model_args else arch
    return dict(arch=label, batch=batch, precision=precision, compile_auto=auto,
                **{f"{k}_img_s": round(v, 1) for k, v in best.items()},
                rounds_img_s={k: [round(x, 1) for x in v] for k, v in rates.items()},
                best_floor=max(floors, key=floors.get), trainer_img_s=round(trainer, 1),
                ratio=round(trainer / max(floors.values()), 3),
                best_full_ratio=round(max(v for k, v in best.items() if k.startswith("full")) / max(floors.values()), 3))


def main() -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--archs", default="glmc_resnet32_w16,glmc_resnet32")
    p.add_argument("--batches", default="64,128")
    p.add_argument("--model-args", default="", help="keyword arguments of every model, as JSON: "
                   "'{\"backbone\": \"tf_efficientnet_lite0\", \"upsample_to\": 128}' with --archs glmc_timm")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds; each variant's best is kept")
    p.add_argument("--json", action="store_true")
    p.add_argument("--spread", action="store_true", help="also print every round's images/s of each variant "
                   "(rounds on a 2-core machine differ by 10%% or more: read a ratio against that spread)")
    p.add_argument("--amp", choices=("auto", "bf16", "none"), default="auto",
                   help="the GLMC step's precision, as the trainer's amp key (default: what amp=auto takes here)")
    p.add_argument("--no-compile", action="store_true", help="leave out the compiled variants (minutes each on a CPU)")
    a = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if min(a.steps, a.rounds) < 1 or a.warmup < 0:
        p.error("--steps and --rounds must be at least 1, --warmup at least 0")
    try:
        model_args = json.loads(a.model_args) if a.model_args else {}
    except ValueError as e:
        p.error(f"--model-args {a.model_args!r}: not JSON ({e})")
    if not isinstance(model_args, dict):
        p.error(f"--model-args {a.model_args!r}: give a JSON object of keyword arguments")
    rows = [bench(arch, b, device, a.steps, a.warmup, compiled=not a.no_compile, rounds=a.rounds, model_args=model_args,
                  amp=a.amp)
            for arch in a.archs.split(",") for b in map(int, a.batches.split(","))]
    if a.json:
        print(json.dumps(dict(machine=machine(), rows=rows), indent=2))
    else:
        print(f"machine: {machine()}")
        c = not a.no_compile
        print("| model | batch | GLMC step eager (precision) |" + (" GLMC step compiled |" if c else "")
              + " bare fp32 | bare bf16 |" + (" bare fp32 compiled | bare bf16 compiled |" if c else "")
              + (" trainer (compile=auto) / best floor |" if c else " GLMC step eager / best floor |"))
        print("|---|---|---|" + ("---|" if c else "") + "---|---|" + ("---|---|" if c else "") + "---|")
        for r in rows:
            print(f"| {r['arch']} | {r['batch']} | {r['full_img_s']} ({r['precision']}) |"
                  + (f" {r['full_compiled_img_s']} |" if c else "")
                  + f" {r['fp32_img_s']} | {r['bf16_img_s']} |"
                  + (f" {r['fp32_compiled_img_s']} | {r['bf16_compiled_img_s']} |" if c else "")
                  + f" {r['ratio']:.2f} (best floor: {r['best_floor']}) |")
        if a.spread:
            print("\nEvery round (images/s, in the order run):")
            for r in rows:
                for k, v in r["rounds_img_s"].items():
                    print(f"- {r['arch']}, batch {r['batch']}, {k}: {', '.join(map(str, v))} "
                          f"(spread {(max(v) - min(v)) / max(v) * 100:.0f}%)")
    return rows


if __name__ == "__main__":
    main()
