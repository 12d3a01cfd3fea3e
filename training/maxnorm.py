"""GLMC + MaxNorm: the second stage of "Long-tailed recognition via weight balancing" (Alshammari et
al., CVPR 2022) on a finished GLMC model. docs/maxnorm.md says what was taken from where.

The stage fine-tunes the inference head `fc_cb` (weight and bias) of a trained GLMC model, every
other parameter frozen, with the class-balanced softmax loss (Cui et al., CVPR 2019; beta 0.9999),
SGD with weight decay, and a max-norm constraint on each class's weight row, enforced by projected
gradient descent: a row whose L2 norm exceeds the layer's threshold is scaled back onto the ball;
rows inside are left as they are. The threshold is set once from the first stage's rows:
min + thresh * (max - min) of their norms.

Pure functions first (tested against direct computations), then the run, which shares the GLMC
trainer's data, checkpoints, signals, evaluation and run-directory files.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from glmc_zoo._meta import __version__
from glmc_zoo.errors import ModelLoadError, TrainError
from glmc_zoo.registry import WeightSet
from glmc_zoo.training.batches import Batcher, epoch_plan, eval_preprocessing
from glmc_zoo.training.checkpoint import StopSignals, restore, resume_state, save_checkpoint
from glmc_zoo.training.configs import TrainConfig
from glmc_zoo.training.data import LongTailedData, load_data
from glmc_zoo.training.method import lr_at_epoch
from glmc_zoo.training.outputs import evaluate as _evaluate
from glmc_zoo.training.outputs import final_record
from glmc_zoo.training.outputs import plot_run_curves as _plot_curves
from glmc_zoo.training.rundir import RunDir, resolve_init
from glmc_zoo.training.runtime import device_text, resolve_precision

#: The parameters stage 2 trains (the inference head); everything else is frozen.
HEAD = "fc_cb"


# ---------------------------------------------------------------------------------------------
# The method, as pure functions
# ---------------------------------------------------------------------------------------------


def effective_number_weights(counts: torch.Tensor, beta: float) -> torch.Tensor:
    """Class-balanced weights (1 - beta) / (1 - beta^n_c), normalised to sum to C. (C,) -> (C,)."""
    n = counts.double().clamp_min(1)
    w = (1.0 - beta) / (1.0 - torch.pow(torch.tensor(beta, dtype=torch.float64), n))
    return (w / w.sum() * counts.numel()).float()


def cb_softmax_loss(logits: torch.Tensor, targets: torch.Tensor, class_w: torch.Tensor) -> torch.Tensor:
    """The class-balanced "softmax" loss as the weight-balancing code computes it: binary
    cross-entropy between softmax(logits) and the one-hot targets, each row weighted by its true
    class's weight, averaged over all B * C entries. (B, C), (B,) int, (C,) -> ()."""
    onehot = F.one_hot(targets, logits.shape[1]).float()
    w = class_w[targets].unsqueeze(1).expand_as(onehot)
    return F.binary_cross_entropy(logits.float().softmax(dim=1), onehot, weight=w)


def maxnorm_threshold(weight: torch.Tensor, thresh: float) -> float:
    """The layer's radius: min + thresh * (max - min) of the row norms of `weight` (C, D)."""
    norms = torch.linalg.vector_norm(weight.detach().double().reshape(len(weight), -1), dim=1)
    return float(norms.min() + thresh * (norms.max() - norms.min()))


@torch.no_grad()
def project_rows_(weight: torch.Tensor, radius: float) -> int:
    """In place: every row of `weight` whose L2 norm exceeds `radius` is scaled onto the ball of
    that radius; rows inside are not touched. Returns how many rows were projected."""
    flat = weight.reshape(len(weight), -1)
    norms = torch.linalg.vector_norm(flat, dim=1)
    out = norms > radius
    if out.any():
        flat[out] = flat[out] * (radius / norms[out]).unsqueeze(1)
    return int(out.sum())


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


def load_first_stage(ref: str) -> tuple[torch.nn.Module, WeightSet | None]:
    from glmc_zoo.hub import create_model
    from glmc_zoo.models import WEIGHTS

    src, first = resolve_init(ref)
    try:
        model = create_model(src)
    except ModelLoadError as e:
        raise TrainError(f"--init {ref}: {e}") from e
    if not hasattr(model, HEAD) or not hasattr(model, "forward_train"):
        raise TrainError(f"--init {ref}: {type(model).__name__} is not a GLMC model (no {HEAD} head)")
    if first is None and src in WEIGHTS:  # a registered (bundled) weight set: its record has what the card needs
        first = WEIGHTS[src]
    return model, first


def train_maxnorm(cfg: TrainConfig, out: Path, dev: torch.device, resume, progress: bool, download: bool,
                  command: str | None, should_stop: Callable[[int, int], bool] | None, data: LongTailedData | None,
                  stop_after: int | None, log: Callable[[Path, str, bool], None]) -> dict:
    """The MaxNorm stage as `cfg` says, from `cfg.init`, into the run directory `out`."""
    from glmc_zoo.hub import save_pretrained

    state = resume_state(resume, cfg, stop_after)
    model, first_ws = load_first_stage(cfg.init)
    data = data or load_data(cfg, download=download)
    if first_ws is not None and first_ws.class_counts and list(first_ws.class_counts) != list(data.class_counts):
        raise TrainError(f"--init {cfg.init}: the first stage was trained on class counts {list(first_ws.class_counts)}, "
                         f"this config's data has {data.class_counts}: give the config of the data it was trained on")
    if model.pretrained_cfg.get("num_classes", len(data.classes)) != len(data.classes):
        raise TrainError(f"--init {cfg.init}: {model.pretrained_cfg['num_classes']} classes, the data has "
                         f"{len(data.classes)}")
    names = list(model.pretrained_cfg.get("label_names") or [])
    if names and names != list(data.classes):  # the same counts on other classes: fc_cb's rows would mean others
        differ = [f"{i}: {a!r} vs {b!r}" for i, (a, b) in enumerate(zip(names, data.classes)) if a != b]
        raise TrainError(f"--init {cfg.init}: the first stage's classes are not this data's, in order "
                         f"({'; '.join(differ[:3])}{' ...' if len(differ) > 3 else ''}): give the data it was trained on")
    run = RunDir(out)
    run.write_start(cfg, data, command, (state["epoch"], state["step"]) if state else None, progress)

    head = getattr(model, HEAD)
    radius = maxnorm_threshold(head.weight, cfg.maxnorm_thresh)  # from the first stage's rows, set once
    for p in model.parameters():
        p.requires_grad_(False)
    active = [head.weight, head.bias]
    for p in active:
        p.requires_grad_(True)
    model.to(dev)
    optimizer = torch.optim.SGD(active, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    start_epoch, start_step, gen_state, running = 0, 0, None, None
    if state is not None:
        restore(state, model, optimizer, resume, cfg.model)
        start_epoch, start_step = state["epoch"], state["step"]
        gen_state, running = state.get("gen_state"), state.get("running")
        radius = float(state["maxnorm_radius"])
    precision, why = resolve_precision(cfg.amp, dev, resumed=state.get("precision") if state else None)
    use_bf16 = precision == "bf16"
    log(out, f"stage maxnorm from {cfg.init}: training {HEAD}.weight and {HEAD}.bias only (every other parameter "
             f"frozen; BatchNorm statistics {'updated (train mode, as released)' if cfg.maxnorm_bn == 'train' else 'frozen'}"
             f"); max-norm radius {radius:.6f} (thresh {cfg.maxnorm_thresh}), projected after every "
             f"{cfg.maxnorm_every}; precision {precision} ({why}); device {dev} ({device_text(dev)})", progress)

    # the evaluation preprocessing of the first stage's model (its config), as the first stage evaluated
    batcher = Batcher(data, cfg.image_size, cfg.workers, dev, eval_cfg=eval_preprocessing(model.pretrained_cfg, data))
    class_w = effective_number_weights(torch.tensor(data.class_counts), cfg.cb_beta).to(dev)
    uniform = torch.ones(len(data.train))
    metrics: dict = {}

    def checkpoint(epoch: int, step: int, gen, sums) -> None:
        save_checkpoint(run.checkpoint, dict(
            model=model.state_dict(), optimizer=optimizer.state_dict(), epoch=epoch, step=step,
            gen_state=gen.get_state() if gen is not None else None, running=sums, config=cfg.to_dict(),
            precision=precision, maxnorm_radius=radius, glmc_zoo_version=__version__))

    with StopSignals() as signals:
        for epoch in range(start_epoch, cfg.epochs):
            lr = lr_at_epoch(epoch, cfg.epochs, cfg.lr, cfg.schedule, cfg.warmup_epochs)
            for group in optimizer.param_groups:
                group["lr"] = lr
            plan = epoch_plan(len(data.train), cfg.batch_size, uniform, cfg.seed, epoch)
            gen = torch.Generator().manual_seed(cfg.seed * 7919 + epoch)
            first = 0
            if epoch == start_epoch and start_step:
                first = start_step
                gen.set_state(gen_state)
            sums = dict(running) if (epoch == start_epoch and running) else dict(loss=0.0, n=0)
            model.train(cfg.maxnorm_bn == "train")
            t0 = time.perf_counter()
            for step, ((x, _), _, y, _) in enumerate(batcher.epoch(plan, first, gen, aug_seed=cfg.seed * 7919 + epoch),
                                                     start=first):
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_bf16):
                    logits = model.forward_train(x).logits_cb
                loss = cb_softmax_loss(logits, y.argmax(1), class_w)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if cfg.maxnorm_every == "step":
                    project_rows_(head.weight, radius)
                sums["loss"] = sums["loss"] + loss.detach() * len(y)
                sums["n"] += len(y)
                if signals.requested or (should_stop is not None and should_stop(epoch, step)):
                    sums = dict(loss=float(sums["loss"]), n=sums["n"])
                    checkpoint(epoch, step + 1, gen, sums)
                    log(out, f"stopped at epoch {epoch + 1}, step {step + 1}: checkpoint saved; continue with "
                             f"--resume {out}", progress)
                    if signals.received:
                        log(out, f"the stop was asked by {signals.received}", progress)
                    return dict(interrupted=True, epoch=epoch, step=step + 1)
            if cfg.maxnorm_every == "epoch":
                projected = project_rows_(head.weight, radius)
            else:
                projected = 0
            if not all(torch.isfinite(p).all() for p in active):
                raise TrainError(f"epoch {epoch + 1}: the head's weights are not finite (lr {lr:g} too large?); "
                                 f"nothing was saved from this epoch")
            secs = time.perf_counter() - t0
            norms = torch.linalg.vector_norm(head.weight.detach().float(), dim=1)
            epoch_log = dict(epoch=epoch + 1, lr=lr, images=sums["n"], images_per_s=sums["n"] / max(secs, 1e-9),
                             seconds=secs, loss=float(sums["loss"]) / max(sums["n"], 1), rows_projected=projected,
                             row_norms=[round(float(v), 6) for v in norms], machine=device_text(dev))
            run.append_epoch(epoch_log)
            checkpoint(epoch + 1, 0, None, None)
            log(out, f"epoch {epoch + 1}/{cfg.epochs}: loss {epoch_log['loss']:.4f}, {secs:.0f} s "
                     f"({epoch_log['images_per_s']:.0f} img/s); {HEAD} row norms {norms.min():.4f}..{norms.max():.4f} "
                     f"(radius {radius:.4f})", progress)
            last = epoch + 1 == cfg.epochs
            stop_here = stop_after == epoch + 1 and not last
            if (epoch + 1) % cfg.eval_every == 0 or last or stop_here:
                metrics = _evaluate(model, batcher, data, dev, False)
                run.append_eval(dict(epoch_log, **{k: metrics.get(k) for k in _EVAL_KEYS}))
                _plot_curves(out)
                log(out, f"eval epoch {epoch + 1}: top1 {metrics['top1']:.2f} ({HEAD})", progress)
            if stop_here:
                log(out, f"stopped after epoch {epoch + 1} of {cfg.epochs} as asked (stop_after): checkpoint saved; "
                         f"continue with --resume {out}", progress)
                return dict(metrics, stopped_after=epoch + 1)

    if not metrics:  # resumed from the last epoch's checkpoint
        metrics = _evaluate(model, batcher, data, dev, False)
    final = dict(metrics, epoch=cfg.epochs, selection="final epoch (nothing selected on the test set)")
    run.write_final(final)
    from glmc_zoo.training.metrics import plot_confusion, plot_per_class
    plot_per_class(metrics, data.class_counts, data.classes, out / "per_class_accuracy.png")
    plot_confusion(metrics, data.classes, out / "confusion_matrix.png")
    for p in model.parameters():
        p.requires_grad_(True)
    model = model.cpu().eval()
    first_stage = dict(init=cfg.init)
    if first_ws is not None:
        first_stage.update(metrics=dict(first_ws.metrics) or None, metrics_kind=first_ws.metrics_kind, recipe=first_ws.recipe,
                           command=first_ws.provenance.get("command"))
    save_pretrained(model, run.model, final_record(
        model, cfg, data, metrics, run.started_command() or command or "", stage=" of the MaxNorm stage",
        first_stage=first_stage, maxnorm=dict(radius=radius, thresh=cfg.maxnorm_thresh, every=cfg.maxnorm_every,
                                              bn=cfg.maxnorm_bn, cb_beta=cfg.cb_beta)))
    return final


_EVAL_KEYS = ("top1", "top5", "many", "medium", "few", "per_class", "fc_top1")
