"""GLMC as pure functions (reference: ../shared/GLMC_REFERENCE.md, section 5).

Every function takes tensors and returns new tensors; none mutates its inputs. Shapes: B batch,
C classes, S image side, P projection width.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def class_weights(counts: torch.Tensor, power: float) -> torch.Tensor:
    """w_c = n_c^(-power), normalised so the C weights sum to C.

    Used twice by GLMC: power q (`resample_weighting`) for the rebalanced sampler, and power tau
    (`label_weighting`) for the soft-label reweighting. (C,) int -> (C,) float.
    """
    w = counts.double().clamp_min(1).pow(-power)
    return (w / w.sum() * counts.numel()).float()


def cumulative_alpha(epoch: int, epochs: int) -> float:
    """alpha = 1 - (e / E)^2 with e the 0-based epoch: the weight of the plain-head loss."""
    return 1.0 - (epoch / epochs) ** 2


def sample_lambda(generator: torch.Generator, beta: float | None = None) -> float:
    """One mixing coefficient per batch. As released: Beta(1, 1) (`beta=None`); the paper's
    Beta(beta, beta) when `beta` is given. Drawn on the CPU generator for reproducibility."""
    if beta is None:
        return float(torch.rand((), generator=generator))
    # Beta(a, a) from two Gammas, with the generator (torch.distributions takes none).
    a = torch.full((2,), float(beta), dtype=torch.float64)
    g = torch._standard_gamma(a, generator=generator)
    return float(g[0] / g.sum())


def mix_global(x_u: torch.Tensor, x_r: torch.Tensor, lam: float) -> torch.Tensor:
    """MixUp: lam * x_u + (1 - lam) * x_r. Works for images (B, 3, S, S) and targets (B, C)."""
    return lam * x_u + (1.0 - lam) * x_r


def cutmix_box(size: int, lam: float, generator: torch.Generator) -> tuple[int, int, int, int]:
    """The CutMix box (y1, y2, x1, x2) for an S x S image, as the reference draws it: side
    int(ceil(S * sqrt(1 - lam))), centre uniform on the grid 0..S-1, edges centre -/+ side // 2
    clipped to the image."""
    side = int(math.ceil(size * math.sqrt(1.0 - lam)))
    cy, cx = (int(v) for v in torch.randint(0, size, (2,), generator=generator))
    half = side // 2
    clip = lambda v: min(max(v, 0), size)  # noqa: E731
    return clip(cy - half), clip(cy + half), clip(cx - half), clip(cx + half)


def mix_local(x_u: torch.Tensor, x_r: torch.Tensor, box: tuple[int, int, int, int]) -> torch.Tensor:
    """CutMix: a copy of x_u (B, 3, S, S) whose `box` region comes from x_r."""
    y1, y2, x1, x2 = box
    out = x_u.clone()
    out[:, :, y1:y2, x1:x2] = x_r[:, :, y1:y2, x1:x2]
    return out


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SCE(o, y) = -mean_i sum_c y_ic log_softmax(o)_ic. (B, C), (B, C) -> ()."""
    return -(target * F.log_softmax(logits.float(), dim=1)).sum(dim=1).mean()


def consistency_loss(p_g: torch.Tensor, z_g: torch.Tensor, p_l: torch.Tensor, z_l: torch.Tensor) -> torch.Tensor:
    """L_sim = -cos(p_g, sg(z_l)).mean() - cos(p_l, sg(z_g)).mean(); sg is stop-gradient. (B, P) each."""
    cos = lambda p, z: F.cosine_similarity(p.float(), z.detach().float(), dim=1).mean()  # noqa: E731
    return -cos(p_g, z_l) - cos(p_l, z_g)


def glmc_loss(
    out_g,
    out_l,
    y_g: torch.Tensor,
    y_l: torch.Tensor,
    label_w: torch.Tensor,
    alpha: float,
    contrast_weight: float,
) -> dict[str, torch.Tensor]:
    """The GLMC objective from the two mixed batches' outputs (each a `GLMCOutput`).

    y_g, y_l: (B, C) mixed one-hot targets; label_w: (C,) from `class_weights(counts, tau)`.
    The reweighted targets are y * label_w, deliberately not renormalised (as released).
    Returns the total `loss` and its parts.
    """
    l_bal = soft_cross_entropy(out_g.logits, y_g) + soft_cross_entropy(out_l.logits, y_l)
    l_rebal = soft_cross_entropy(out_g.logits_cb, y_g * label_w) + soft_cross_entropy(out_l.logits_cb, y_l * label_w)
    l_sim = consistency_loss(out_g.p, out_g.z, out_l.p, out_l.z)
    loss = alpha * l_bal + (1.0 - alpha) * l_rebal + contrast_weight * l_sim
    return dict(loss=loss, bal=l_bal, rebal=l_rebal, sim=l_sim)


def lr_at_epoch(epoch: int, epochs: int, base_lr: float, schedule: str, warmup_epochs: int = 10) -> float:
    """Learning rate of (0-based) `epoch`.

    - "cosine": CIFAR, cosine annealing to 0 over `epochs`, stepped once per epoch.
    - "cosine_stepped_first": cosine over `epochs` with the scheduler stepped before each epoch, as the
      weight-balancing second stage runs it: epoch e at the value of e + 1, the last epoch at 0.
    - "warmup_cosine": linear warm-up (e + 1) / W for W epochs, then cosine over the rest.
    - "warmup_cosine_as_released": the released ImageNet-LT / iNat schedule, whose update runs after
      each epoch: epoch 0 at the base rate, epochs 1..W at (e + 1) / W of it (so epoch W at 1.1x),
      then cosine from epoch W + 1 over the remaining epochs.
    """
    if schedule == "cosine":
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
    if schedule == "cosine_stepped_first":
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * (epoch + 1) / epochs))
    if schedule == "warmup_cosine":
        if epoch < warmup_epochs:
            return base_lr * (epoch + 1) / warmup_epochs
        t = (epoch - warmup_epochs) / max(1, epochs - warmup_epochs)
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * t))
    if schedule == "warmup_cosine_as_released":
        if epoch == 0:
            return base_lr
        if epoch <= warmup_epochs:
            return base_lr * (epoch + 1) / warmup_epochs
        t = (epoch - warmup_epochs - 1) / max(1, epochs - warmup_epochs - 1)
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * t))
    raise ValueError(f"unknown schedule {schedule!r}: use cosine, cosine_stepped_first, warmup_cosine or "
                     f"warmup_cosine_as_released")
