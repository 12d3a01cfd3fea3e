"""Distributed overhead: the GLMC training step as 2 gloo ranks against 1 process, on this machine.

Each configuration trains the same global batches (`batches.epoch_plan` over random uint8 CIFAR-size
images) through the trainer's own pieces: `Batcher` (this rank's slice of each global batch),
`two_view_forward` (DDP over ranks) and `glmc_step`. The machine's cores are split evenly: one
process with all of them, or each rank with its share. Configurations run one after another in
rounds (1 process, 2 ranks, 2 ranks + SyncBN, again), and each one's best round is reported, as
global training images per second and as a ratio to the single process.

    python benchmarks/ddp_overhead.py --batch 128 --steps 12
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import time

import torch
import torch.multiprocessing as mp

from glmc_zoo.cpu import machine_text as cpu_name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, world: int, port: int, arch: str, batch: int, steps: int, warmup: int, sync_bn: bool,
          threads: int, q) -> None:
    import numpy as np
    import timm
    import torch.distributed as dist

    import glmc_zoo  # noqa: F401
    from glmc_zoo.training.batches import Batcher, epoch_plan
    from glmc_zoo.training.data import LongTailedData, Split
    from glmc_zoo.training.distributed import convert_sync_batchnorm, two_view_forward
    from glmc_zoo.training.loop import glmc_step
    from glmc_zoo.training.method import class_weights

    torch.set_num_threads(threads)
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world)
    n = batch * (steps + warmup)
    rng = np.random.RandomState(0)
    targets = rng.randint(0, 10, n)
    images = rng.randint(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    split = Split(targets, images=images)
    data = LongTailedData(split, split, [str(c) for c in range(10)], np.arange(n), (0.5,) * 3, (0.25,) * 3)
    device = torch.device("cpu")
    torch.manual_seed(0)
    model = timm.create_model(arch, num_classes=10)
    if sync_bn and world > 1:
        convert_sync_batchnorm(model, device)
    model = model.to(memory_format=torch.channels_last).train()
    fwd = two_view_forward(model, device, world)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-3)
    counts = torch.bincount(torch.as_tensor(targets), minlength=10)
    label_w = class_weights(counts, 1.2)
    plan = epoch_plan(n, batch, torch.ones(n), seed=0, epoch=0, world=world)
    gen = torch.Generator().manual_seed(1)
    t0 = 0.0
    for i, (views_u, views_r, y_u, y_r) in enumerate(Batcher(data, 32, 0, device, rank, world).epoch(plan, 0, gen)):
        if i == warmup:
            if world > 1:
                dist.barrier()
            t0 = time.perf_counter()
        glmc_step(fwd, opt, views_u, views_r, y_u, y_r, label_w, 0.5, mix_beta=0.0, contrast_weight=1.0,
                  generator=gen, memory_format=torch.channels_last)
    if world > 1:
        dist.barrier()
    secs = time.perf_counter() - t0
    if rank == 0:
        q.put(steps * batch / secs)
    if world > 1:
        dist.destroy_process_group()


def measure(world: int, sync_bn: bool, a) -> float:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    threads = max(1, a.cores // world)
    args = (world, _free_port(), a.arch, a.batch, a.steps, a.warmup, sync_bn, threads, q)
    procs = [ctx.Process(target=_rank, args=(r, *args)) for r in range(world)]
    for p in procs:
        p.start()
    rate = q.get(timeout=1800)
    for p in procs:
        p.join()
    return rate


def machine() -> str:
    return f"{cpu_name()}, torch {torch.__version__}"


def main() -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="glmc_resnet32_w16")
    p.add_argument("--batch", type=int, default=128, help="global batch (split over the ranks)")
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    configs = {"1 process": (1, False), "2 gloo ranks": (2, False), "2 gloo ranks, sync_bn": (2, True)}
    rates: dict[str, list[float]] = {k: [] for k in configs}
    for _ in range(a.rounds):
        for name, (world, sync) in configs.items():
            rates[name].append(measure(world, sync, a))
    best = {k: max(v) for k, v in rates.items()}
    result = dict(machine=machine(), arch=a.arch, global_batch=a.batch, steps=a.steps,
                  img_per_s={k: round(v, 1) for k, v in best.items()},
                  ratio_to_1_process={k: round(v / best["1 process"], 3) for k, v in best.items()})
    if a.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"machine: {result['machine']}; {a.arch}, global batch {a.batch}, {a.steps} timed steps, best of "
              f"{a.rounds} rounds")
        print("| configuration | training img/s (global) | vs 1 process |")
        print("|---|---|---|")
        for k in configs:
            print(f"| {k} | {result['img_per_s'][k]} | {result['ratio_to_1_process'][k]:.2f} |")
    return result


if __name__ == "__main__":
    main()
