"""The GLMC pure functions against values computed by hand from the reference formulas."""

import math

import pytest
import torch

from glmc_zoo.models import GLMCOutput
from glmc_zoo.training.method import (
    class_weights,
    consistency_loss,
    cumulative_alpha,
    cutmix_box,
    glmc_loss,
    lr_at_epoch,
    mix_global,
    mix_local,
    sample_lambda,
    soft_cross_entropy,
)


def test_class_weights_sum_to_c_and_follow_the_power():
    counts = torch.tensor([100, 25, 4])
    w = class_weights(counts, 0.5)  # n^-0.5 = 0.1, 0.2, 0.5 -> sum 0.8 -> * 3 / 0.8
    assert torch.allclose(w, torch.tensor([0.375, 0.75, 1.875]))
    assert class_weights(counts, 0.0).tolist() == [1.0, 1.0, 1.0]
    assert math.isclose(float(class_weights(counts, 1.2).sum()), 3.0, rel_tol=1e-6)


def test_cumulative_alpha():
    assert cumulative_alpha(0, 200) == 1.0
    assert cumulative_alpha(100, 200) == 0.75
    assert math.isclose(cumulative_alpha(199, 200), 1 - (199 / 200) ** 2)


def test_mix_global_and_inputs_untouched():
    a, b = torch.ones(2, 3), torch.zeros(2, 3)
    out = mix_global(a, b, 0.3)
    assert torch.allclose(out, torch.full((2, 3), 0.3))
    assert a.sum() == 6 and b.sum() == 0


def test_cutmix_box_by_hand():
    g = torch.Generator().manual_seed(0)
    cy, cx = (int(v) for v in torch.randint(0, 32, (2,), generator=torch.Generator().manual_seed(0)))
    lam = 0.75  # ratio sqrt(0.25) = 0.5 -> side ceil(16) = 16 -> half 8
    y1, y2, x1, x2 = cutmix_box(32, lam, g)
    clip = lambda v: min(max(v, 0), 32)  # noqa: E731
    assert (y1, y2, x1, x2) == (clip(cy - 8), clip(cy + 8), clip(cx - 8), clip(cx + 8))
    y1, y2, x1, x2 = cutmix_box(32, 1.0, g)  # lam = 1: side 0, nothing is cut
    assert y2 - y1 == 0 and x2 - x1 == 0


def test_mix_local_replaces_only_the_box():
    u, r = torch.zeros(1, 3, 8, 8), torch.ones(1, 3, 8, 8)
    out = mix_local(u, r, (2, 5, 1, 3))
    assert out.sum() == 18  # 3 rows x 2 cols x 3 channels
    assert out[0, :, 2:5, 1:3].eq(1).all() and out[0, :, :2].eq(0).all()
    assert u.sum() == 0


def test_soft_cross_entropy_by_hand():
    logits = torch.tensor([[0.0, math.log(3.0)]])  # softmax = (0.25, 0.75)
    y = torch.tensor([[0.5, 0.5]])
    expected = -(0.5 * math.log(0.25) + 0.5 * math.log(0.75))
    assert math.isclose(float(soft_cross_entropy(logits, y)), expected, rel_tol=1e-6)


def test_consistency_loss_value_and_stop_gradient():
    p_g = torch.tensor([[1.0, 0.0]], requires_grad=True)
    z_l = torch.tensor([[1.0, 1.0]], requires_grad=True)
    p_l = torch.tensor([[0.0, 2.0]], requires_grad=True)
    z_g = torch.tensor([[3.0, 0.0]], requires_grad=True)
    loss = consistency_loss(p_g, z_g, p_l, z_l)
    assert math.isclose(loss.item(), -(1 / math.sqrt(2)), rel_tol=1e-6)
    loss.backward()
    assert z_l.grad is None and z_g.grad is None  # targets are stop-gradient
    assert p_g.grad is not None and p_l.grad is not None


def test_glmc_loss_combines_parts_with_unrenormalised_weights():
    torch.manual_seed(0)
    outs = [GLMCOutput(torch.randn(4, 3), torch.randn(4, 3), torch.randn(4, 5), torch.randn(4, 5)) for _ in range(2)]
    y = torch.eye(3)[[0, 1, 2, 0]] * 0.6 + torch.eye(3)[[1, 1, 0, 2]] * 0.4
    w = torch.tensor([0.5, 1.0, 1.5])
    parts = glmc_loss(outs[0], outs[1], y, y, w, alpha=0.8, contrast_weight=2.0)
    bal = soft_cross_entropy(outs[0].logits, y) + soft_cross_entropy(outs[1].logits, y)
    yw = y * w  # rows no longer sum to 1: as released
    rebal = -(yw * torch.log_softmax(outs[0].logits_cb, 1)).sum(1).mean() - \
        (yw * torch.log_softmax(outs[1].logits_cb, 1)).sum(1).mean()
    sim = consistency_loss(outs[0].p, outs[0].z, outs[1].p, outs[1].z)
    assert torch.allclose(parts["loss"], 0.8 * bal + 0.2 * rebal + 2.0 * sim)
    assert not torch.allclose(yw.sum(1), torch.ones(4))


def test_lambda_distributions():
    g = torch.Generator().manual_seed(1)
    u = torch.tensor([sample_lambda(g) for _ in range(4000)])
    assert 0.47 < float(u.mean()) < 0.53 and 0.07 < float(u.var()) < 0.095  # Beta(1,1): mean 1/2, var 1/12
    b = torch.tensor([sample_lambda(g, 0.5) for _ in range(4000)])
    assert 0.47 < float(b.mean()) < 0.53 and 0.11 < float(b.var()) < 0.14  # Beta(.5,.5): var 1/8


@pytest.mark.parametrize("schedule,epoch,expected", [
    ("cosine", 0, 0.1), ("cosine", 100, 0.05), ("cosine", 200, 0.0),
    ("warmup_cosine", 0, 0.01), ("warmup_cosine", 9, 0.1), ("warmup_cosine", 10, 0.1),
    ("warmup_cosine_as_released", 0, 0.1), ("warmup_cosine_as_released", 1, 0.02),
    ("warmup_cosine_as_released", 10, 0.11), ("warmup_cosine_as_released", 11, 0.1),
])
def test_lr_schedules(schedule, epoch, expected):
    assert math.isclose(lr_at_epoch(epoch, 200, 0.1, schedule, 10), expected, abs_tol=1e-9)


def test_unknown_schedule_is_an_error():
    with pytest.raises(ValueError, match="unknown schedule"):
        lr_at_epoch(0, 10, 0.1, "linear")
