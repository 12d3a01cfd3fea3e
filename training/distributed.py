"""Many processes (`torchrun`): process group, DistributedDataParallel, SyncBatchNorm, collective stop.

Each rank trains on its slice of every global batch (`batches.rank_slice`). Gradients are averaged
by DistributedDataParallel (bucketed all-reduce overlapped with the backward pass). GLMC's two
mixed batches go through the network in one `TwoViewForward` call, so DDP's hooks fire once per
step while BatchNorm keeps separate statistics for the global and the local batch, as released.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn

from glmc_zoo.errors import TrainError


def init_from_env(device: str) -> str:
    """Under `torchrun` (WORLD_SIZE > 1): join the process group (NCCL on CUDA, else gloo) and
    return this rank's device; otherwise return `device` unchanged."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or (dist.is_available() and dist.is_initialized()):
        return device
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    dist.init_process_group("nccl" if use_cuda else "gloo")
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return f"cuda:{local}"
    return "cpu"


def rank_world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class TwoViewForward(nn.Module):
    """(x_g, x_l) -> (model.forward_train(x_g), model.forward_train(x_l)): two forward passes
    (per-batch BatchNorm statistics, as released) in one module call, which DDP can wrap."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x_g: torch.Tensor, x_l: torch.Tensor):
        return self.model.forward_train(x_g), self.model.forward_train(x_l)


def two_view_forward(model: nn.Module, device: torch.device, world: int) -> nn.Module:
    """The module the step calls: `TwoViewForward(model)`, inside DDP when `world` > 1 (after
    which every rank holds rank 0's weights and buffers)."""
    fwd = TwoViewForward(model)
    if world <= 1:
        return fwd
    ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(fwd, device_ids=ids)  # buffers synchronised from rank 0 each forward


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """BatchNorm layers -> batch statistics over all ranks. CUDA: `torch.nn.SyncBatchNorm`;
    other devices (torch's supports none but GPUs): `GlobalBatchNorm2d`. In place; parameters and
    buffers (and so checkpoints and saved weights) are unchanged."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    group = dist.new_group() if dist.is_initialized() else None
    _convert(model, group)
    return model


def _convert(module: nn.Module, group) -> None:
    for name, child in list(module.named_children()):
        if type(child) is nn.BatchNorm2d:
            setattr(module, name, GlobalBatchNorm2d.from_batchnorm(child, group))
        elif isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, GlobalBatchNorm2d):
            raise TrainError(f"sync_bn=true: {name} is a {type(child).__name__}, which only CUDA's "
                             f"SyncBatchNorm synchronises. Train on CUDA, or set sync_bn=false.")
        else:
            _convert(child, group)


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch (all ranks), on any
    device and backend (gloo included). Each rank's moments (torch.var_mean) are combined over
    ranks in float64 with one all-reduce, and the backward pass sums the ranks' gradient terms
    with another, so the statistics and the gradient are those of one process on the global
    batch. Eval mode, or one process, is plain BatchNorm2d."""

    group = None

    @classmethod
    def from_batchnorm(cls, bn: nn.BatchNorm2d, group=None) -> GlobalBatchNorm2d:
        like = next(iter(bn.state_dict().values()), None)  # weight, or running_mean without affine
        factory = dict(device=like.device, dtype=like.dtype) if like is not None else {}
        new = cls(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats, **factory)
        new.load_state_dict(bn.state_dict())
        new.train(bn.training)
        new.group = group
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()
                and dist.get_world_size(self.group) > 1):
            return super().forward(x)
        xf = x if x.dtype == torch.float64 else x.float()
        c = xf.shape[1]
        with torch.no_grad():  # statistics: each rank's moments combined in float64, one collective
            var_l, mean_l = torch.var_mean(xf, dim=(0, 2, 3), correction=0)  # (C,) each
            m64, v64 = mean_l.double(), var_l.double()
            n_local = xf.numel() // c
            total = torch.cat([m64 * n_local, (v64 + m64.square()) * n_local, m64.new_full((1,), n_local)])
            dist.all_reduce(total, group=self.group)
            n = total[-1]
            mean64 = total[:c] / n
            var64 = (total[c:2 * c] / n - mean64.square()).clamp_min(0)  # biased
        mean, var = mean64.to(xf.dtype), var64.to(xf.dtype)
        y = _GlobalBatchNormFn.apply(xf, self.weight, self.bias, mean, var, self.eps, float(n), self.group)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = (1.0 / float(self.num_batches_tracked)) if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - m).add_(mean64.to(self.running_mean.dtype), alpha=m)
                self.running_var.mul_(1 - m).add_((var64 * (n / (n - 1))).to(self.running_var.dtype), alpha=m)
        return y.to(x.dtype)


class _GlobalBatchNormFn(torch.autograd.Function):
    """y = BatchNorm(x) with the global batch's `mean` and `var` (given): forward and the local
    parts of the backward are torch's fused kernels; the terms through the statistics use the
    gradient sums of all ranks (one collective), as torch's SyncBatchNorm does on GPUs."""

    @staticmethod
    def forward(ctx, x, weight, bias, mean, var, eps: float, n: float, group):
        ctx.save_for_backward(x, weight, mean, var)
        ctx.eps, ctx.n, ctx.group = eps, n, group
        return torch.nn.functional.batch_norm(x, mean, var, weight, bias, training=False, eps=eps)

    @staticmethod
    def backward(ctx, dy):
        x, weight, mean, var = ctx.saved_tensors
        dy = dy.contiguous(memory_format=_memory_format(x))
        # with train=False: dx0 = dy * invstd * w, and this rank's sums d/dw = sum(dy * xmu) * invstd, d/db = sum(dy)
        dx0, dw, db = torch.ops.aten.native_batch_norm_backward(
            dy, x, weight, mean, var, None, None, False, ctx.eps, [True, True, True])
        invstd = torch.rsqrt(var + ctx.eps)
        sums = torch.cat([db, dw / invstd]).double()  # sum(dy), sum(dy * (x - mean)) over this rank
        dist.all_reduce(sums, group=ctx.group)
        c = x.shape[1]
        mean_dy, mean_dy_xmu = (sums[:c] / ctx.n).to(x.dtype), (sums[c:] / ctx.n).to(x.dtype)
        w = weight if weight is not None else torch.ones_like(invstd)
        k = invstd.pow(3) * w * mean_dy_xmu  # dx = dx0 - (x - mean) * k - mean_dy * invstd * w
        shift = mean_dy * invstd * w - mean * k
        dx = dx0 - torch.addcmul(shift.view(1, c, 1, 1), x, k.view(1, c, 1, 1))
        return dx, (dw if weight is not None else None), (db if weight is not None else None), None, None, None, None, None


def _memory_format(x: torch.Tensor):
    return torch.channels_last if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
        and not x.is_contiguous() else torch.contiguous_format


class Ranks:
    """This process's place among the ranks, and the few collectives the loop needs besides DDP's,
    on a gloo group (so they cost no device synchronisation under NCCL). All ranks must call each
    method at the same point."""

    def __init__(self):
        self.rank, self.world = rank_world()
        self.is_main = self.rank == 0
        self._cpu = dist.new_group(backend="gloo") if self.world > 1 else None

    def any(self, local: bool) -> bool:
        """True on every rank if it is true on any: the collective stop decision."""
        if self.world <= 1:
            return local
        flag = torch.tensor([int(local)], dtype=torch.int32)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self._cpu)
        return bool(flag.item())

    def sum(self, n: int) -> int:
        if self.world <= 1:
            return n
        t = torch.tensor([n], dtype=torch.int64)
        dist.all_reduce(t, group=self._cpu)
        return int(t.item())

    def sum_floats(self, values: dict) -> dict[str, float]:
        """Numbers or one-element tensors (on any device) -> floats summed over ranks (one host
        synchronisation for all of them)."""
        t = torch.tensor([float(v) for v in values.values()], dtype=torch.float64)
        if self.world > 1:
            dist.all_reduce(t, group=self._cpu)
        return dict(zip(values, t.tolist()))

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier(group=self._cpu)

    def broadcast_buffers(self, model: nn.Module) -> None:
        """Rank 0's buffers (BatchNorm running statistics) onto every rank. DDP broadcasts them at
        the start of each forward; this makes them equal after the last one too."""
        if self.world > 1:
            for b in model.buffers():
                dist.broadcast(b, 0)
