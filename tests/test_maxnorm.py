"""GLMC + MaxNorm, the weight-balancing second stage: the projection, the threshold and the class-balanced
loss against direct computations on real tensors, and the stage as a run (constraint after every step,
what stays frozen, exact resume, the card naming its first stage)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import PINNED

from glmc_zoo.errors import TrainError
from glmc_zoo.hub import create_model
from glmc_zoo.training.configs import apply_overrides, get_config
from glmc_zoo.training.loop import train
from glmc_zoo.training.maxnorm import (
    cb_softmax_loss,
    effective_number_weights,
    maxnorm_threshold,
    project_rows_,
)

SHIPPED = "glmc_resnet32_w16.cifar10_lt_if100_e200_jpeg"


def test_projection_and_threshold_match_a_direct_computation_on_the_shipped_head():
    w = create_model(SHIPPED).fc_cb.weight.detach().clone()  # (10, 64): a real trained head
    norms = np.linalg.norm(w.double().numpy(), axis=1)
    radius = maxnorm_threshold(w, 0.1)
    assert math.isclose(radius, norms.min() + 0.1 * (norms.max() - norms.min()), rel_tol=1e-12)
    before = w.clone()
    n = project_rows_(w, radius)
    after = np.linalg.norm(w.double().numpy(), axis=1)
    outside = norms > radius
    assert n == outside.sum() and 0 < n < 10  # the smallest row is inside the ball, the others are not
    assert np.allclose(after[outside], radius, rtol=1e-6) and (after <= radius * (1 + 1e-6)).all()
    assert torch.equal(w[~torch.from_numpy(outside)], before[~torch.from_numpy(outside)])  # rows inside: untouched
    direct = before.double().numpy()[outside] * (radius / norms[outside])[:, None]  # the same direction, scaled
    assert np.allclose(w.double().numpy()[outside], direct, rtol=1e-6, atol=1e-9)
    again = w.clone()
    assert project_rows_(again, radius) == 0 or torch.allclose(again, w)  # a projection of a projection: no change


def test_class_balanced_loss_matches_its_formula():
    counts = torch.tensor([5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50])
    w = effective_number_weights(counts, 0.9999)
    direct = (1 - 0.9999) / (1 - 0.9999 ** counts.double().numpy())
    assert np.allclose(w.numpy(), direct / direct.sum() * 10, rtol=1e-6) and math.isclose(float(w.sum()), 10, rel_tol=1e-6)
    torch.manual_seed(0)
    logits, y = torch.randn(6, 10) * 3, torch.tensor([0, 9, 3, 3, 7, 1])
    p = logits.softmax(1).double().numpy()
    onehot = np.eye(10)[y.numpy()]
    bce = -(onehot * np.log(p) + (1 - onehot) * np.log(1 - p))
    expected = (bce * w.numpy()[y.numpy()][:, None]).mean()  # each row by its true class's weight, mean over B * C
    assert math.isclose(float(cb_softmax_loss(logits, y, w)), expected, rel_tol=1e-5)


@pytest.fixture(scope="module")
def first_stage(tiny_lt, tmp_path_factory):
    """A finished (1-epoch) GLMC run on the small real CIFAR-10 slice: the stage's --init."""
    cfg = apply_overrides(get_config("cifar10_lt_if100_w16_cpu"), dict(
        epochs=1, batch_size=32, imbalance_factor=10, max_images_per_class=300, **PINNED))
    out = tmp_path_factory.mktemp("first") / "run"
    train(cfg, out, device="cpu", progress=False, data=tiny_lt, command="glmc-zoo train FIRST")
    return out


def _stage(first, **kw):
    base = dict(imbalance_factor=10, max_images_per_class=300, split="standard", normalization="auto", epochs=2,
                batch_size=32, eval_every=1, init=str(first), **PINNED)
    return apply_overrides(get_config("cifar10_lt_if100_w16_maxnorm"), dict(base, **kw))


def _watch(monkeypatch):
    """Keep a handle on the model the stage trains (the real loader, wrapped)."""
    import glmc_zoo.training.maxnorm as mn

    seen = {}
    original = mn.load_first_stage

    def load(ref):
        model, glmc = original(ref)
        seen["model"] = model
        seen["start"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return model, glmc

    monkeypatch.setattr(mn, "load_first_stage", load)
    return seen


@pytest.mark.slow
@pytest.mark.parametrize("bn", ["train", "frozen"])
def test_every_step_keeps_the_constraint_and_only_the_head_moves(tmp_path, tiny_lt, first_stage, monkeypatch, bn):
    seen = _watch(monkeypatch)
    checked = []

    def after_step(epoch, step):  # called after every optimiser step and its projection
        m = seen["model"]
        radius = maxnorm_threshold(seen["start"]["fc_cb.weight"], 0.1)
        norms = torch.linalg.vector_norm(m.fc_cb.weight.detach().double(), dim=1)
        assert (norms <= radius * (1 + 1e-6)).all(), (epoch, step, norms, radius)
        checked.append(int((norms > radius * (1 - 1e-6)).sum()))
        return False

    # weight decay 0: the rows do not shrink by themselves, so the projection is what holds them
    cfg = _stage(first_stage, maxnorm_every="step", weight_decay=0.0, maxnorm_bn=bn)
    metrics = train(cfg, tmp_path / "mn", device="cpu", progress=False, data=tiny_lt, should_stop=after_step)
    assert len(checked) == 2 * math.ceil(len(tiny_lt.train) / 32) and max(checked) > 0  # rows were on the ball
    end = seen["model"].state_dict()
    assert not torch.equal(end["fc_cb.weight"].cpu(), seen["start"]["fc_cb.weight"])
    for k, v in seen["start"].items():
        if k.startswith("fc_cb."):
            continue  # trained (a 1-epoch first stage in eval mode saturates the softmax: the bias may not move)
        elif k.endswith(("running_mean", "running_var")) and bn == "train":
            continue  # as released: the frozen backbone's BN statistics follow the stage-2 batches
        elif k.endswith("num_batches_tracked"):
            continue
        else:
            assert torch.equal(end[k].cpu(), v), k
    moved = [k for k in seen["start"] if k.endswith("running_mean") and not torch.equal(end[k].cpu(), seen["start"][k])]
    assert bool(moved) == (bn == "train")
    assert 0 <= metrics["top1"] <= 100 and metrics["selection"].startswith("final epoch")


@pytest.mark.slow
def test_epoch_projection_resume_and_card(tmp_path, tiny_lt, first_stage):
    cfg = _stage(first_stage)  # as released: projected once per epoch
    full = train(cfg, tmp_path / "a", device="cpu", progress=False, data=tiny_lt, command="glmc-zoo train MN")
    stopped = train(cfg, tmp_path / "b", device="cpu", progress=False, data=tiny_lt,
                    should_stop=lambda e, s: (e, s) == (1, 2))
    assert stopped == dict(interrupted=True, epoch=1, step=3)
    resumed = train(cfg, tmp_path / "b", device="cpu", progress=False, data=tiny_lt, resume=tmp_path / "b")
    from safetensors.torch import load_file

    a, b = load_file(tmp_path / "a" / "model" / "model.safetensors"), load_file(tmp_path / "b" / "model" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a) and resumed["top1"] == full["top1"]
    rows = [json.loads(x) for x in (tmp_path / "a" / "train_log.jsonl").read_text().splitlines()]
    radius = json.loads((tmp_path / "a" / "model" / "config.json").read_text())["glmc"]["maxnorm"]["radius"]
    assert [r["epoch"] for r in rows] == [1, 2] and all(max(r["row_norms"]) <= radius * (1 + 1e-6) for r in rows)
    # schedule as released: the scheduler steps before each epoch, the last epoch runs at 0
    assert math.isclose(rows[0]["lr"], 0.01 * 0.5 * (1 + math.cos(math.pi / 2))) and rows[1]["lr"] == 0.0
    glmc = json.loads((tmp_path / "a" / "model" / "config.json").read_text())["glmc"]
    assert glmc["first_stage"]["init"] == str(first_stage) and glmc["first_stage"]["command"] == "glmc-zoo train FIRST"
    assert glmc["train_config"]["stage"] == "maxnorm" and glmc["metrics"]["top1"] == round(full["top1"], 2)
    card = (tmp_path / "a" / "model" / "README.md").read_text()
    assert "Measured accuracy" in card
    model = create_model(str(tmp_path / "a" / "model"))
    assert model.pretrained_cfg["label_names"][3] == "cat"


@pytest.mark.slow
def test_a_stage_without_a_usable_first_stage_is_refused(tmp_path, tiny_lt, first_stage, small_lt):
    with pytest.raises(TrainError, match="give --init"):
        train(_stage(first_stage, init=""), tmp_path / "x", device="cpu", progress=False, data=tiny_lt)
    unfinished = tmp_path / "unfinished"
    train(apply_overrides(get_config("cifar10_lt_if100_w16_cpu"), dict(epochs=2, batch_size=32, **PINNED)), unfinished,
          device="cpu", progress=False, data=tiny_lt, stop_after=1)
    with pytest.raises(TrainError, match="has not finished"):
        train(_stage(unfinished), tmp_path / "y", device="cpu", progress=False, data=tiny_lt)
    with pytest.raises(TrainError, match="class counts"):  # trained on other data than the config's
        train(_stage(first_stage), tmp_path / "z", device="cpu", progress=False, data=small_lt)
    # the same counts on other classes (issue 47: names were not compared, and the old labels were saved)
    from dataclasses import replace

    renamed = replace(tiny_lt, classes=[f"{c}_x" if c == "cat" else c for c in tiny_lt.classes])
    with pytest.raises(TrainError, match=r"classes are not this data's, in order \(3: 'cat' vs 'cat_x'\)"):
        train(_stage(first_stage), tmp_path / "w", device="cpu", progress=False, data=renamed)
    assert not (tmp_path / "w").exists()
