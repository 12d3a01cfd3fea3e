"""The GLMC training loop: one function, read top to bottom.

Each epoch draws its sample plan (the uniform permutation and the rebalanced draws) from a
generator seeded by (seed, epoch), and each step's augmentation, lambda and CutMix box from a step
generator whose state is checkpointed, so a resumed run equals an uninterrupted one. Data
(`data`, `batches`), checkpoints and signals (`checkpoint`) and many processes (`distributed`)
live in their own modules.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from glmc_zoo.errors import DataError, ImageLoadError, TrainError
from glmc_zoo.training.batches import Batcher, epoch_plan, eval_preprocessing
from glmc_zoo.training.checkpoint import (
    StopSignals,
    checkpoint_state,
    load_checkpoint,
    restore,
    resume_state,
    save_checkpoint,
)
from glmc_zoo.training.configs import TrainConfig
from glmc_zoo.training.data import LongTailedData, load_data
from glmc_zoo.training.distributed import Ranks, convert_sync_batchnorm, init_from_env, rank_world, two_view_forward
from glmc_zoo.training.method import (
    class_weights,
    cumulative_alpha,
    cutmix_box,
    glmc_loss,
    lr_at_epoch,
    mix_global,
    mix_local,
    sample_lambda,
    soft_cross_entropy,
)
from glmc_zoo.training.metrics import plot_confusion, plot_per_class
from glmc_zoo.training.outputs import EVAL_KEYS as _EVAL_KEYS
from glmc_zoo.training.outputs import evaluate as _evaluate
from glmc_zoo.training.outputs import final_record, keep_best
from glmc_zoo.training.outputs import plot_run_curves as _plot_curves
from glmc_zoo.training.rundir import RunDir
from glmc_zoo.training.runtime import (  # noqa: F401  (cpu_has_native_bf16: imported from here by earlier releases)
    cpu_has_native_bf16,
    device_text,
    resolve_compile,
    resolve_device,
    resolve_precision,
)

__all__ = ["TrainError", "cpu_has_native_bf16", "glmc_step", "resolve_compile", "resolve_device", "resolve_precision",
           "train"]


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


def glmc_step(fwd: Callable, optimizer: torch.optim.Optimizer, views_u: tuple, views_r: tuple,
              y_u: torch.Tensor, y_r: torch.Tensor, label_w: torch.Tensor, alpha: float, *, mix_beta: float,
              contrast_weight: float, generator: torch.Generator, memory_format=torch.contiguous_format,
              use_bf16: bool = False) -> dict[str, torch.Tensor]:
    """One GLMC optimisation step (reference section 5, steps 1-7); returns the detached losses.

    fwd: (x_g, x_l) -> their two `GLMCOutput`s (`distributed.TwoViewForward`, in DDP or not).
    views_u, views_r: the two augmented views of the uniform and rebalanced batches, each
    (B, 3, S, S); y_u, y_r: their one-hot targets (B, C). One lambda (Beta(1, 1) when `mix_beta`
    is 0, else Beta(mix_beta, mix_beta)) is drawn per batch from `generator` and shared by the
    global MixUp (view 1) and the local CutMix (view 2), with the same label mix.
    """
    (u1, u2), (r1, r2) = views_u, views_r
    lam = sample_lambda(generator, mix_beta if mix_beta > 0 else None)
    box = cutmix_box(u1.shape[-1], lam, generator)
    x_g = mix_global(u1, r1, lam).contiguous(memory_format=memory_format)  # (B, 3, S, S)
    x_l = mix_local(u2, r2, box).contiguous(memory_format=memory_format)  # (B, 3, S, S)
    y_mix = mix_global(y_u, y_r, lam)  # (B, C): y_g = y_l, CutMix uses the same lambda (as released)
    with torch.autocast(u1.device.type, dtype=torch.bfloat16, enabled=use_bf16):
        out_g, out_l = fwd(x_g, x_l)
        losses = glmc_loss(out_g, out_l, y_mix, y_mix, label_w, alpha, contrast_weight)
    optimizer.zero_grad(set_to_none=True)
    losses["loss"].backward()
    optimizer.step()
    return {k: v.detach() for k, v in losses.items()}


def ce_step(fwd: Callable, optimizer: torch.optim.Optimizer, views_u: tuple, y_u: torch.Tensor, *,
            memory_format=torch.contiguous_format, use_bf16: bool = False) -> dict[str, torch.Tensor]:
    """One step of the plain cross-entropy baseline (`method=ce`, GLMC off): the uniform batch's first view
    (B, 3, S, S), one forward, CE of `fc_cb` against y_u (B, C). The loss is reported as `rebal` (fc_cb's)."""
    model = fwd.model  # TwoViewForward: one process only (the trainer refuses method=ce under DDP)
    x = views_u[0].contiguous(memory_format=memory_format)
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=use_bf16):
        loss = soft_cross_entropy(model.forward_train(x).logits_cb, y_u)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    zero = torch.zeros((), device=loss.device)
    return dict(loss=loss.detach(), bal=zero, rebal=loss.detach(), sim=zero)


def train(
    cfg: TrainConfig,
    output: str | Path,
    device: str = "auto",
    resume: str | Path | None = None,
    progress: bool = True,
    download: bool = False,
    command: str | None = None,
    should_stop: Callable[[int, int], bool] | None = None,
    data: LongTailedData | None = None,
    on_trained: Callable[[torch.nn.Module], None] | None = None,
    stop_after: int | None = None,
) -> dict:
    """Train GLMC as `cfg` says; write the run directory `output`; return the final metrics.

    Under `torchrun` each rank trains on its slice of every global batch (DistributedDataParallel);
    rank 0 writes the run directory. `should_stop(epoch, step)` (tests) and SIGINT / SIGTERM to any
    rank end the run on all ranks after the same step, with one checkpoint that `resume` continues
    from exactly. `on_trained(model)` is called on every rank when the last epoch ends.

    `stop_after=N` runs the config's schedule (learning rate, alpha) but stops once epoch N is
    complete: the run is evaluated there, its checkpoint saved, and `resume` continues it; the
    return value is that evaluation with `stopped_after=N`.
    """
    out = Path(output)
    owns_group = not (torch.distributed.is_available() and torch.distributed.is_initialized())
    dev = resolve_device(init_from_env(device))
    owns_group = owns_group and torch.distributed.is_available() and torch.distributed.is_initialized()
    try:
        run = RunDir(out)
        with run.claim(resume) if rank_world()[0] == 0 else run:  # other ranks write nothing there
            try:
                return _train(cfg, out, dev, resume, progress, download, command, should_stop, data, on_trained,
                              stop_after, claimed=run)
            except BaseException:
                if rank_world()[0] == 0 and not run.started:
                    run.discard_unstarted()  # a start that failed leaves no folder that -o would refuse
                raise
    finally:
        if owns_group:
            torch.distributed.destroy_process_group()


def _train(cfg: TrainConfig, out: Path, dev: torch.device, resume, progress: bool, download: bool,
           command: str | None, should_stop, data: LongTailedData | None, on_trained,
           stop_after: int | None, claimed: RunDir | None = None) -> dict:
    """The run, phase by phase: set up (or resume), then each epoch and its end, then finish. `claimed.started`
    is set once the set-up is done: a failure after that keeps the folder (its run.log says what happened)."""
    if cfg.stage == "maxnorm":
        from glmc_zoo.training.maxnorm import train_maxnorm

        # (its set-up is inside; a failure before its first checkpoint leaves no folder behind)
        return train_maxnorm(cfg, out, dev, resume, progress, download, command, should_stop, data, stop_after, _log)
    r = _setup(cfg, out, dev, resume, progress, download, command, data, stop_after)
    if claimed is not None:
        claimed.started = True
    metrics: dict = {}
    with StopSignals() as signals:
        for epoch in range(r.start_epoch, cfg.epochs):
            ended = _one_epoch(r, epoch, lambda step, epoch=epoch: r.ranks.any(
                signals.requested or (should_stop is not None and should_stop(epoch, step))))
            if ended.interrupted:
                if signals.received:  # who stopped it: a signal (from a user, a scheduler, a session's end)
                    r.log(f"the stop was asked by {signals.received} (received by process {os.getpid()})")
                return dict(interrupted=True, epoch=epoch, step=ended.done)
            metrics, stop = _end_of_epoch(r, epoch, ended, stop_after, metrics)
            if stop is not None:
                return stop
    if on_trained is not None:
        on_trained(r.model)
    return _finish(r, metrics, command) if r.ranks.is_main else metrics


@dataclasses.dataclass
class _Run:
    """What the phases of one run share: the set-up run, and where it starts."""

    cfg: TrainConfig
    run: RunDir
    dev: torch.device
    ranks: Ranks
    data: LongTailedData
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    fwd: Callable
    batcher: Batcher
    sample_w: torch.Tensor
    label_w: torch.Tensor
    precision: str
    compiled: bool
    memory_format: torch.memory_format
    progress: bool
    start_epoch: int = 0
    start_step: int = 0
    step_gen_state: torch.Tensor | None = None
    running: dict | None = None
    epoch_secs: list[float] = dataclasses.field(default_factory=list)

    @property
    def out(self) -> Path:
        return self.run.path

    def log(self, line: str) -> None:
        if self.ranks.is_main:
            self.run.log(line, self.progress)


@dataclasses.dataclass
class _Epoch:
    """How an epoch's steps ended: steps `first`..`done`, its sums (all ranks'), images and seconds."""

    lr: float
    alpha: float
    first: int
    done: int
    steps: int
    sums: dict
    seen: int
    secs: float
    interrupted: bool = False


def _setup(cfg: TrainConfig, out: Path, dev: torch.device, resume, progress: bool, download: bool,
           command: str | None, data: LongTailedData | None, stop_after: int | None) -> _Run:
    """Resume state and pretrained weights checked, data read, run folder written, model built (or restored),
    precision and compilation chosen."""
    import glmc_zoo  # noqa: F401
    from glmc_zoo.training.pretrained import build_model, check_init

    ranks = Ranks()
    state = resume_state(resume, cfg, stop_after)
    # pretrained weights fetched and checked before the data is read or the folder written
    pretrained = check_init(cfg) if state is None else None
    data = data or load_data(cfg, download=download)
    counts = torch.tensor(data.class_counts)
    num_classes = len(data.classes)
    run = RunDir(out)
    if ranks.is_main:
        run.write_start(cfg, data, command, (state["epoch"], state["step"]) if state else None, progress)

    made = build_model(cfg, num_classes, data.classes, load=state is None, pretrained=pretrained)  # seeded by cfg.seed
    model = made.model
    if made.mean is not None and cfg.normalization == "auto":  # the pretrained weights' own normalisation
        data = dataclasses.replace(data, mean=made.mean, std=made.std)
    if made.note and ranks.is_main and state is None:
        _log(out, made.note, progress)
    eval_cfg = eval_preprocessing(model.pretrained_cfg, data)  # the model's config decides; the saved model carries it
    model.pretrained_cfg = dict(model.pretrained_cfg, num_classes=num_classes, label_names=tuple(data.classes),
                                mean=data.mean, std=data.std, **eval_cfg,
                                input_size=(3, cfg.image_size, cfg.image_size), tag=None, hf_hub_id=None)
    if cfg.sync_bn and ranks.world > 1:
        convert_sync_batchnorm(model, dev)
    model.to(dev)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model.to(memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    position = {}
    if state is not None:
        restore(state, model, optimizer, resume, cfg.model)
        position = dict(start_epoch=state["epoch"], start_step=state["step"], step_gen_state=state.get("gen_state"),
                        running=state.get("running"))

    if cfg.method == "ce" and ranks.world > 1:
        raise TrainError("method=ce (the cross-entropy baseline) trains fc_cb alone, which DDP refuses (the other "
                         "heads get no gradient): run it in one process")
    fwd = two_view_forward(model, dev, ranks.world)  # DDP: every rank now holds rank 0's weights
    if ranks.world > 1:  # in-process file augmentation draws from the global RNG: one stream per rank
        torch.manual_seed(cfg.seed + 1_000_003 * ranks.rank)
    precision, why = resolve_precision(cfg.amp, dev, resumed=state.get("precision") if state else None)
    compiled, why_compile = resolve_compile(cfg.compile, dev, precision)
    if compiled:
        fwd = torch.compile(fwd)
    if ranks.is_main:
        procs = "1 process" if ranks.world == 1 else (
            f"{ranks.world} ranks (DDP, BatchNorm {'synchronised' if cfg.sync_bn else 'per rank'})")
        _log(out, f"precision {precision} ({why}); {'compiled' if compiled else 'eager'} ({why_compile}); "
                  f"device {dev} ({device_text(dev)}); "
                  f"{procs}; torch {torch.__version__}; {torch.get_num_threads()} threads", progress)

    batcher = Batcher(data, cfg.image_size, cfg.workers, dev, ranks.rank, ranks.world, eval_cfg=eval_cfg)
    sample_w = class_weights(counts, cfg.resample_weighting)[torch.as_tensor(data.train.targets)]
    label_w = class_weights(counts, cfg.label_weighting).to(dev)  # (C,)
    return _Run(cfg, run, dev, ranks, data, model, optimizer, fwd, batcher, sample_w, label_w, precision, compiled,
                memory_format, progress, **position)


def _one_epoch(r: _Run, epoch: int, stop_requested: Callable[[int], bool]) -> _Epoch:
    """The epoch's steps (from where a resume left it). A stop asked for on any rank ends every rank after the
    same step with one checkpoint; a file that does not decode ends it with a checkpoint and a DataError; a
    diverging loss stops the run at once."""
    cfg, ranks, optimizer = r.cfg, r.ranks, r.optimizer
    lr = lr_at_epoch(epoch, cfg.epochs, cfg.lr, cfg.schedule, cfg.warmup_epochs)
    for group in optimizer.param_groups:
        group["lr"] = lr
    alpha = cumulative_alpha(epoch, cfg.epochs)
    plan = epoch_plan(len(r.data.train), cfg.batch_size, r.sample_w, cfg.seed, epoch, ranks.world)
    step_gen = torch.Generator().manual_seed(cfg.seed * 7919 + epoch)
    first = 0
    if epoch == r.start_epoch and r.start_step:
        first = r.start_step
        step_gen.set_state(r.step_gen_state)
    # the epoch's loss sums; a resumed epoch's sums so far are all ranks' (saved by rank 0)
    sums = dict(r.running) if (epoch == r.start_epoch and r.running and ranks.is_main) else \
        dict(loss=0.0, bal=0.0, rebal=0.0, sim=0.0, n=0)
    r.model.train()
    t0, seen = time.perf_counter(), 0
    bar = _progress(len(plan), first, f"epoch {epoch + 1}/{cfg.epochs}", r.progress and ranks.is_main)
    batches, done = _ImageErrors(r.batcher.epoch(plan, first, step_gen, aug_seed=cfg.seed * 7919 + epoch)), first
    for step, (views_u, views_r, y_u, y_r) in enumerate(batches, start=first):
        t_step = time.perf_counter()
        if cfg.method == "ce":
            losses = ce_step(r.fwd, optimizer, views_u, y_u, memory_format=r.memory_format,
                             use_bf16=r.precision == "bf16")
        else:
            losses = glmc_step(r.fwd, optimizer, views_u, views_r, y_u, y_r, r.label_w, alpha, mix_beta=cfg.mix_beta,
                               contrast_weight=cfg.contrast_weight, generator=step_gen,
                               memory_format=r.memory_format, use_bf16=r.precision == "bf16")
        if r.compiled and step == first and epoch == r.start_epoch:
            r.log(f"first compiled step (compiling included): {time.perf_counter() - t_step:.1f} s")
        # a diverging run stops at once: no checkpoint or model is written from it (on the CPU the check
        # costs nothing; on a GPU it synchronises, so it runs every 50 steps; with many ranks, at the
        # epoch's end, on the all-reduced sums, so that all ranks stop together)
        if ranks.world == 1 and (r.dev.type == "cpu" or step % 50 == 0) and not math.isfinite(float(losses["loss"])):
            _diverged(r.out, epoch, step, float(losses["loss"]), r.progress)
        b = len(y_u)
        for k in ("loss", "bal", "rebal", "sim"):  # device tensors: no host sync per step
            sums[k] = sums[k] + losses[k] * b
        sums["n"] += b
        seen += b
        if bar is not None:
            bar.update(1)
            if step % 20 == 0:
                bar.set_postfix(loss=f"{float(sums['loss']) / sums['n']:.3f}", lr=f"{lr:.4g}")
        if stop_requested(step):
            ranks.broadcast_buffers(r.model)
            sums = ranks.sum_floats(sums)
            if ranks.is_main:
                save_checkpoint(r.run.checkpoint, checkpoint_state(r.model, optimizer, cfg, epoch, step + 1,
                                                                    step_gen, sums, r.precision))
            r.log(f"stopped at epoch {epoch + 1}, step {step + 1}: checkpoint saved; continue with --resume {r.out}")
            ranks.barrier()
            if bar is not None:
                bar.close()
            return _Epoch(lr, alpha, first, step + 1, len(plan), sums, seen, 0.0, interrupted=True)
        done = step + 1
    if bar is not None:
        bar.close()
    if batches.error:  # a file that passed the start-up scan but does not decode (a truncated JPEG, ...)
        msg = f"epoch {epoch + 1}, step {done + 1}: {batches.error}"
        if ranks.world == 1:  # with many ranks the others are mid-step: the last epoch's checkpoint stays
            save_checkpoint(r.run.checkpoint, checkpoint_state(r.model, optimizer, cfg, epoch, done, step_gen,
                                                                ranks.sum_floats(sums), r.precision))
            msg += (f". Checkpoint saved after step {done}: replace the file with a readable image, then "
                    f"continue with --resume {r.out}")
        _log(r.out, f"stopped at {msg}", r.progress)
        raise DataError(msg)
    secs = time.perf_counter() - t0
    seen = ranks.sum(seen)  # images seen by all ranks together
    sums = ranks.sum_floats(sums)
    if not math.isfinite(sums["loss"]) or not all(torch.isfinite(p).all() for p in r.model.parameters()):
        _diverged(r.out, epoch, done - 1, sums["loss"], r.progress)
    ranks.broadcast_buffers(r.model)
    return _Epoch(lr, alpha, first, done, len(plan), sums, seen, secs)


def _end_of_epoch(r: _Run, epoch: int, e: _Epoch, stop_after: int | None, metrics: dict) -> tuple[dict, dict | None]:
    """Log the epoch, checkpoint it, evaluate when due; -> (the latest metrics, the return value if the run
    stops here as `stop_after` asked, else None)."""
    cfg, ranks = r.cfg, r.ranks
    epoch_log = dict(epoch=epoch + 1, lr=e.lr, alpha=e.alpha, images=e.seen, images_per_s=e.seen / max(e.secs, 1e-9),
                     seconds=e.secs, **{k: e.sums[k] / max(e.sums["n"], 1) for k in ("loss", "bal", "rebal", "sim")},
                     machine=device_text(r.dev), precision=r.precision)
    last = epoch + 1 == cfg.epochs
    stop_here = stop_after == epoch + 1 and not last
    if e.first == 0:  # a resumed part of an epoch would skew the remaining-time estimate
        r.epoch_secs.append(e.secs)
    if not ranks.is_main:
        if stop_here:
            ranks.barrier()  # rank 0 evaluates and saves
            return metrics, dict(stopped_after=epoch + 1)
        return metrics, None
    r.run.append_epoch(epoch_log)
    save_checkpoint(r.run.checkpoint, checkpoint_state(r.model, r.optimizer, cfg, epoch + 1, 0, None, None,
                                                        r.precision))
    # median: robust to a paused epoch; a resumed part of an epoch alone is scaled to a whole one
    whole = e.secs * e.steps / max(e.steps - e.first, 1)
    left = (cfg.epochs - epoch - 1) * float(np.median(r.epoch_secs[-10:] or [whole]))
    r.log(f"epoch {epoch + 1}/{cfg.epochs}: loss {epoch_log['loss']:.4f}, {e.secs:.0f} s "
          f"({epoch_log['images_per_s']:.0f} img/s); run remaining ~{_hms(left)}")
    if (epoch + 1) % cfg.eval_every == 0 or last or stop_here:
        metrics = _evaluate(r.model, r.batcher, r.data, r.dev, cfg.channels_last)
        r.run.append_eval(dict(epoch_log, **{k: metrics.get(k) for k in _EVAL_KEYS}))
        _plot_curves(r.out)
        r.log(f"eval epoch {epoch + 1}: top1 {metrics['top1']:.2f} (fc_cb), {metrics['fc_top1']:.2f} (fc); "
              f"many {_fmt(metrics['many'])}, medium {_fmt(metrics['medium'])}, few {_fmt(metrics['few'])}")
        if cfg.keep_best:
            keep_best(r.model, r.out, metrics, epoch + 1)
    if stop_here:
        r.log(f"stopped after epoch {epoch + 1} of {cfg.epochs} as asked (stop_after): checkpoint saved; "
              f"continue with --resume {r.out}")
        ranks.barrier()
        return metrics, dict(metrics, stopped_after=epoch + 1)
    return metrics, None


def _finish(r: _Run, metrics: dict, command: str | None) -> dict:
    """The final evaluation (again, if a resume started after it), metrics.json, plots, the weights folder."""
    from glmc_zoo.hub import save_pretrained

    cfg, data, run = r.cfg, r.data, r.run
    if not metrics:  # resumed from the last epoch's checkpoint: the final evaluation did not run
        metrics = _evaluate(r.model, r.batcher, data, r.dev, cfg.channels_last)
        r.log(f"eval epoch {cfg.epochs} (after resume): top1 {metrics['top1']:.2f}")
        rows = run.evals(by_epoch=False)
        if not rows or rows[-1].get("epoch") != cfg.epochs:  # killed during the final save: already logged
            run.append_eval(dict(epoch=cfg.epochs, **{k: metrics.get(k) for k in _EVAL_KEYS}))
        _plot_curves(r.out)
    final = dict(metrics, epoch=cfg.epochs, selection="final epoch (nothing selected on the test set)")
    run.write_final(final)
    plot_per_class(metrics, data.class_counts, data.classes, r.out / "per_class_accuracy.png")
    plot_confusion(metrics, data.classes, r.out / "confusion_matrix.png")
    model = r.model.to(memory_format=torch.contiguous_format).cpu()
    save_pretrained(model, run.model, final_record(model, cfg, data, metrics, run.started_command() or command or ""))
    return final


def _diverged(out: Path, epoch: int, step: int, loss: float, echo: bool) -> None:
    """Stop a run whose loss or weights are no longer finite, keeping the last good checkpoint."""
    ckpt = RunDir(out).checkpoint
    kept = (f"the last good checkpoint ({ckpt}, end of epoch {int(load_checkpoint(ckpt)['epoch'])}) is kept"
            if ckpt.is_file() else "no checkpoint was written")
    msg = (f"the run diverged at epoch {epoch + 1}, step {step + 1} (loss {loss}): it stopped, {kept}, and no model "
           f"was saved. Lower lr (or check the data), then start again")
    _log(out, msg, echo)
    raise TrainError(msg)


class _ImageErrors:
    """An epoch's batches; an image that fails to decode ends them, its one-line reason kept in `error`
    (from a DataLoader worker the exception's text carries the worker's traceback: only its last line
    is kept)."""

    def __init__(self, batches):
        self.batches, self.error = batches, None

    def __iter__(self):
        try:
            yield from self.batches
        except ImageLoadError as e:
            last = [x for x in str(e).splitlines() if x.strip()][-1]
            self.error = last.split(f"{type(e).__name__}: ", 1)[-1]


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def _hms(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def _log(out: Path, line: str, echo: bool) -> None:
    """Append a time-stamped line to the run's `run.log` (and echo it to stderr)."""
    RunDir(out).log(line, echo)


def _progress(total: int, initial: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True)


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in ["glmc-zoo", *sys.argv[1:]])

