"""One rank of a distributed test (launched by tests/test_distributed.py under torchrun, or alone
as the single-process reference).

    python tests/ddp_worker.py train CIFAR_ROOT OUT '{"epochs": 1, ...}' [--resume]

trains on the first 256 images of a small long-tailed CIFAR-10 split and saves this rank's final
state_dict as OUT/rank<r>.pt (and its pid as OUT.pid<r>, beside the run folder, at the start).

    python tests/ddp_worker.py bn OUT

checks GlobalBatchNorm2d in float64 against one BatchNorm2d over the global batch and writes the
largest differences to OUT/bn<r>.json.
"""

import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from conftest import PINNED

from glmc_zoo.training.configs import apply_overrides, get_config
from glmc_zoo.training.data import load_image_folder
from glmc_zoo.training.loop import train


def main() -> None:
    if sys.argv[1] == "bn":
        return check_global_batchnorm(Path(sys.argv[2]))
    root, out, overrides = sys.argv[2], Path(sys.argv[3]), json.loads(sys.argv[4])
    rank = int(os.environ.get("RANK", "0"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_name(f"{out.name}.pid{rank}").write_text(str(os.getpid()))  # beside: the run folder starts empty
    data = load_image_folder(root, 32, imbalance_factor=10, split="standard", max_images_per_class=100)
    keep = np.arange(256)  # 8 global batches of 32: equal slices on 2 ranks, nothing dropped
    data = replace(data, train=data.train.subset(keep), train_indices=data.train_indices[keep])
    keep_test = np.concatenate([np.flatnonzero(data.test.targets == c)[:10] for c in range(10)])
    data = replace(data, test=data.test.subset(keep_test))
    base = dict(batch_size=32, lr=0.02, eval_every=100, imbalance_factor=10, max_images_per_class=100, **PINNED)
    cfg = apply_overrides(get_config("cifar10_lt_if100_w16_cpu"), dict(base, **overrides))

    def save_rank(model: torch.nn.Module) -> None:
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, out / f"rank{rank}.pt")

    stop_at = int(os.environ.get("GLMC_TEST_STOP_AT_STEP", "-1"))
    result = train(cfg, out, device="cpu", progress=False, data=data, on_trained=save_rank,
                   resume=out if "--resume" in sys.argv else None,
                   should_stop=(lambda e, s: s == stop_at) if stop_at >= 0 else None)
    (out / f"result{rank}.json").write_text(json.dumps({k: v for k, v in result.items() if k != "per_class"}))


def check_global_batchnorm(out: Path) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    diff = {}
    for fmt in (torch.contiguous_format, torch.channels_last):
        for k, v in _bn_diffs(rank, world, fmt).items():
            diff[f"{k} ({str(fmt).split('.')[-1]})"] = v
    (out / f"bn{rank}.json").write_text(json.dumps(diff))
    dist.destroy_process_group()


def _bn_diffs(rank: int, world: int, fmt: torch.memory_format) -> dict[str, float]:
    import torch.distributed as dist

    from glmc_zoo.training.distributed import GlobalBatchNorm2d

    g = torch.Generator().manual_seed(0)
    x = (torch.randn(8, 4, 5, 5, generator=g, dtype=torch.float64) * 3 + 1).contiguous(memory_format=fmt)
    upstream = torch.randn(8, 4, 5, 5, generator=g, dtype=torch.float64)
    ref = torch.nn.BatchNorm2d(4).double()
    torch.nn.init.uniform_(ref.weight, generator=g)
    torch.nn.init.uniform_(ref.bias, generator=g)
    bn = GlobalBatchNorm2d.from_batchnorm(ref)
    x_ref = x.clone().requires_grad_()
    y_ref = ref(x_ref)
    (y_ref * upstream).sum().backward()
    part = slice(rank * 8 // world, (rank + 1) * 8 // world)
    x_loc = x[part].clone().requires_grad_()
    y = bn(x_loc)
    (y * upstream[part]).sum().backward()
    w_grad = bn.weight.grad.clone()
    dist.all_reduce(w_grad)  # each rank holds its part of d/dweight; DDP would sum (and average) them
    return dict(output=(y - y_ref[part]).abs().max().item(), input_grad=(x_loc.grad - x_ref.grad[part]).abs().max().item(),
                weight_grad=(w_grad - ref.weight.grad).abs().max().item(),
                running_mean=(bn.running_mean - ref.running_mean).abs().max().item(),
                running_var=(bn.running_var - ref.running_var).abs().max().item())


if __name__ == "__main__":
    main()
