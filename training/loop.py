"""The GLMC training loop: one function, read top to bottom.

Each epoch draws its sample plan (the uniform permutation and the rebalanced draws) from a
generator seeded by (seed, epoch), and each step's augmentation, lambda and CutMix box from a step
generator whose state is checkpointed, so a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from glmc_zoo.training.configs import TrainConfig, config_from_dict
from glmc_zoo.training.data import (
    DataError,
    LongTailedData,
    cifar10_jpeg_root,
    load_cifar,
    load_image_folder,
    load_split_lists,
    normalize,
    random_crop_flip,
)
from glmc_zoo.training.method import (
    class_weights,
    cumulative_alpha,
    cutmix_box,
    glmc_loss,
    lr_at_epoch,
    mix_global,
    mix_local,
    sample_lambda,
)
from glmc_zoo.training.metrics import plot_confusion, plot_curves, plot_per_class, predict_topk_heads, summarize

from glmc_zoo._meta import NORMALIZATION, __version__
from glmc_zoo.errors import TrainError  # noqa: F401  (re-exported)

CKPT_NAME = "checkpoint.pt"


# ---------------------------------------------------------------------------------------------
# Data and device
# ---------------------------------------------------------------------------------------------


def load_data(cfg: TrainConfig, download: bool = False) -> LongTailedData:
    """The long-tailed train split and the balanced test split that `cfg` names (the first
    `test_per_class_limit` test images of each class when that is set)."""
    data = _load_data(cfg, download)
    if cfg.normalization != "auto":
        if cfg.normalization not in NORMALIZATION:
            raise DataError(f"normalization={cfg.normalization!r} is not known: use auto or one of "
                            f"{', '.join(NORMALIZATION)}")
        mean, std = NORMALIZATION[cfg.normalization]
        data = dataclasses.replace(data, mean=mean, std=std)
    if cfg.test_per_class_limit:
        t = data.test.targets
        keep = np.concatenate([np.flatnonzero(t == c)[: cfg.test_per_class_limit] for c in range(len(data.classes))])
        data = dataclasses.replace(data, test=data.test.subset(keep))
    return data


def _load_data(cfg: TrainConfig, download: bool) -> LongTailedData:
    root = cfg.data_root
    if cfg.dataset in ("cifar10", "cifar100"):
        return load_cifar(cfg.dataset, root or "./data", cfg.imbalance_factor, cfg.split, cfg.seed,
                          cfg.max_images_per_class, download=download)
    if cfg.dataset == "imagefolder":
        folder = Path(root) if root else cifar10_jpeg_root()
        return load_image_folder(folder, cfg.image_size, cfg.imbalance_factor, cfg.split, cfg.seed,
                                 cfg.max_images_per_class)
    if cfg.dataset in ("imagenet_lt", "inat2018"):
        prefix = {"imagenet_lt": "ImageNet_LT", "inat2018": "iNaturalist18"}[cfg.dataset]
        root = Path(root or ".")
        mean, std = NORMALIZATION["imagenet" if cfg.dataset == "imagenet_lt" else "inat2018"]
        test_name = "val" if cfg.dataset == "inat2018" else "test"
        return load_split_lists(root, root / f"{prefix}_train.txt", root / f"{prefix}_{test_name}.txt", mean=mean, std=std)
    raise DataError(f"unknown dataset {cfg.dataset!r}: use cifar10, cifar100, imagefolder, imagenet_lt or inat2018")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX-BF16; Linux's /proc/cpuinfo).
    Without them oneDNN emulates bf16 and autocast is slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return re.search(r"\b(avx512_bf16|amx_bf16)\b", flags) is not None


def resolve_precision(amp: str, device: torch.device, resumed: str | None = None) -> tuple[str, str]:
    """`amp` (auto | bf16 | none) -> ("bf16" | "fp32", why). `auto` takes bf16 autocast where the
    device has native bf16 (CUDA with bf16 support; a CPU with AVX512-BF16 or AMX) and fp32
    elsewhere. A resumed run keeps the precision it started with (`resumed`), so that moving a
    run to another machine does not change its arithmetic half-way."""
    if amp not in ("auto", "bf16", "none"):
        raise TrainError(f"amp={amp!r}: use auto, bf16 or none")
    if amp == "none":
        return "fp32", "amp=none"
    if amp == "bf16":
        return "bf16", "amp=bf16"
    if resumed in ("bf16", "fp32"):
        return resumed, "amp=auto, kept from the checkpoint this run resumed"
    if device.type == "cuda":
        ok = torch.cuda.is_bf16_supported()
        return ("bf16", "amp=auto: CUDA with bf16") if ok else ("fp32", "amp=auto: this GPU has no bf16")
    if device.type == "cpu" and cpu_has_native_bf16():
        return "bf16", "amp=auto: CPU with native bf16 (AVX512-BF16/AMX)"
    return "fp32", f"amp=auto: no native bf16 on this {device.type} (set amp=bf16 to force it)"


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise TrainError(f"--device {device}: CUDA is not available here (torch {torch.__version__}, "
                         f"cuda build {torch.version.cuda}). Use --device cpu.")
    return torch.device(device)


class _Batches:
    """Turns index batches into pairs of augmented, normalised views.

    In-memory data: the uint8 images live on the training device and are augmented there in one
    batched op per view (no per-sample Python work). File data: DataLoader workers decode and
    augment with the ImageNet-style pipeline.
    """

    def __init__(self, data: LongTailedData, cfg: TrainConfig, device: torch.device):
        self.device, self.cfg = device, cfg
        self.mean = torch.tensor(data.mean, device=device)
        self.std = torch.tensor(data.std, device=device)
        if data.in_memory:
            self.train_u8 = torch.from_numpy(data.train.images).permute(0, 3, 1, 2).contiguous().to(device)
            self.test_u8 = torch.from_numpy(data.test.images).permute(0, 3, 1, 2).contiguous().to(device)
        else:
            from glmc_zoo.training.files import file_datasets

            self.train_ds, self.test_ds = file_datasets(data, cfg.image_size)
        self.data = data

    def views(self, idx: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """idx (B,) -> two independently augmented views, each (B, 3, S, S) float."""
        if self.data.in_memory:
            x = self.train_u8[idx.to(self.device)]
            return (normalize(random_crop_flip(x, generator), self.mean, self.std),
                    normalize(random_crop_flip(x, generator), self.mean, self.std))
        v1, v2, _ = zip(*(self.train_ds[int(i)] for i in idx))
        return torch.stack(v1).to(self.device), torch.stack(v2).to(self.device)

    def loader(self, batches: list[torch.Tensor], generator: torch.Generator):
        """Yields (view1, view2) per index batch; file data go through DataLoader workers."""
        if self.data.in_memory or self.cfg.workers == 0:
            for idx in batches:
                yield self.views(idx, generator)
            return
        from torch.utils.data import DataLoader

        seed = int(torch.randint(0, 2**31 - 1, (), generator=generator))
        loader = DataLoader(self.train_ds, batch_sampler=[b.tolist() for b in batches], num_workers=self.cfg.workers,
                            pin_memory=self.device.type == "cuda", persistent_workers=False,
                            worker_init_fn=lambda w: torch.manual_seed(seed + w))
        for v1, v2, _ in loader:
            yield v1.to(self.device, non_blocking=True), v2.to(self.device, non_blocking=True)

    def test_batches(self, batch_size: int = 500):
        if self.data.in_memory:
            y = self.data.test.targets
            for i in range(0, len(y), batch_size):
                yield normalize(self.test_u8[i:i + batch_size], self.mean, self.std), y[i:i + batch_size]
            return
        from torch.utils.data import DataLoader

        yield from DataLoader(self.test_ds, batch_size=batch_size // 4, num_workers=self.cfg.workers)


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------


def save_checkpoint(path: Path, state: dict) -> None:
    """torch.save to a temporary file in the same folder, then an atomic rename."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if path.is_dir():
        path = path / CKPT_NAME
    if not path.is_file():
        raise TrainError(f"--resume {path}: no checkpoint there. Give a run directory or its {CKPT_NAME}.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a corrupt or foreign file: say which and why, never run its code
        raise TrainError(f"--resume {path}: not a readable glmc-zoo checkpoint ({e})") from e


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


def _epoch_plan(n: int, batch_size: int, sample_w: torch.Tensor, seed: int, epoch: int,
                rank: int = 0, world: int = 1) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """This rank's uniform and rebalanced index batches for `epoch`.

    Uniform: a permutation of the N training images. Rebalanced: N draws with replacement,
    P(i) proportional to the class weight of image i (a WeightedRandomSampler). Each global batch
    of `batch_size` is split into `world` slices (equal but for the last batch); rank r takes
    slice r. A last batch too small to give every rank an image is dropped, so that all ranks take
    the same number of steps.
    """
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=g)
    rebal = torch.multinomial(sample_w, n, replacement=True, generator=g)
    uni, reb = [], []
    for s in range(0, n, batch_size):
        u = perm[s:s + batch_size]
        r = rebal[s:s + batch_size][: len(u)]  # the rebalanced batch is cut to the uniform batch's size
        if world > 1:
            if len(u) < world:
                break
            u, r = torch.tensor_split(u, world)[rank], torch.tensor_split(r, world)[rank]
        uni.append(u)
        reb.append(r)
    return uni, reb


def glmc_step(fwd, optimizer, views_u: tuple, views_r: tuple, y_u: torch.Tensor, y_r: torch.Tensor,
              label_w: torch.Tensor, alpha: float, cfg: TrainConfig, step_gen: torch.Generator,
              memory_format=torch.contiguous_format, use_bf16: bool = False,
              before_update: Callable[[], None] | None = None) -> dict[str, torch.Tensor]:
    """One GLMC optimisation step (reference section 5, steps 1-7); returns the detached losses.

    views_u, views_r: the two augmented views of the uniform and rebalanced batches, each
    (B, 3, S, S); y_u, y_r: their one-hot targets (B, C). One lambda is drawn per batch and shared
    by the global MixUp (view 1) and the local CutMix (view 2), with the same label mix.
    """
    (u1, u2), (r1, r2) = views_u, views_r
    lam = sample_lambda(step_gen, cfg.mix_beta if cfg.mix_beta > 0 else None)
    box = cutmix_box(u1.shape[-1], lam, step_gen)
    x_g = mix_global(u1, r1, lam).contiguous(memory_format=memory_format)  # (B, 3, S, S)
    x_l = mix_local(u2, r2, box).contiguous(memory_format=memory_format)  # (B, 3, S, S)
    y_mix = mix_global(y_u, y_r, lam)  # (B, C): y_g = y_l, CutMix uses the same lambda (as released)
    with torch.autocast(u1.device.type, dtype=torch.bfloat16, enabled=use_bf16):
        losses = glmc_loss(fwd(x_g), fwd(x_l), y_mix, y_mix, label_w, alpha, cfg.contrast_weight)
    optimizer.zero_grad(set_to_none=True)
    losses["loss"].backward()
    if before_update is not None:
        before_update()
    optimizer.step()
    return {k: v.detach() for k, v in losses.items()}


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
) -> dict:
    """Train GLMC as `cfg` says; write the run directory `output`; return the final metrics.

    `should_stop(epoch, step)` (tests) and SIGINT / SIGTERM end the run after the current step
    with a checkpoint that `resume` continues from exactly.
    """
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    owns_group = not (torch.distributed.is_available() and torch.distributed.is_initialized())
    dev = resolve_device(init_distributed_from_env(device))
    owns_group = owns_group and torch.distributed.is_available() and torch.distributed.is_initialized()
    try:
        return _train(cfg, out, dev, resume, progress, download, command, should_stop, data)
    finally:
        if owns_group:
            torch.distributed.destroy_process_group()


def _train(cfg: TrainConfig, out: Path, dev: torch.device, resume, progress: bool, download: bool,
           command: str | None, should_stop, data: LongTailedData | None) -> dict:
    import timm

    import glmc_zoo  # noqa: F401
    from glmc_zoo.hub import save_pretrained

    dist = _dist_info()
    is_main = dist[0] == 0

    state = None
    if resume:
        state = load_checkpoint(resume)
        saved = config_from_dict(state["config"])
        if saved != cfg:
            diff = {k: (v, getattr(cfg, k)) for k, v in saved.to_dict().items() if getattr(cfg, k) != v}
            raise TrainError(f"--resume: the checkpoint was made with a different config: {diff}. "
                             f"Resume with the same --config and --set values.")

    data = data or load_data(cfg, download=download)
    counts = torch.tensor(data.class_counts)
    num_classes = len(data.classes)
    if is_main:
        (out / "config.json").write_text(json.dumps(dict(cfg.to_dict(), glmc_zoo_version=__version__), indent=2))
        (out / "split.json").write_text(json.dumps(dict(
            dataset=cfg.dataset, split=cfg.split, seed=cfg.seed, imbalance_factor=cfg.imbalance_factor,
            classes=data.classes, class_counts=data.class_counts, train_indices=data.train_indices.tolist())))
        if command:
            (out / "command.txt").write_text(command + "\n")

    torch.manual_seed(cfg.seed)
    model = timm.create_model(cfg.model, pretrained=False, num_classes=num_classes)
    model.pretrained_cfg = dict(model.pretrained_cfg, num_classes=num_classes, label_names=tuple(data.classes),
                                mean=data.mean, std=data.std,
                                input_size=(3, cfg.image_size, cfg.image_size), tag=None, hf_hub_id=None)
    model.to(dev)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model.to(memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    start_epoch, start_step, step_gen_state, running = 0, 0, None, None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, start_step = state["epoch"], state["step"]
        step_gen_state, running = state.get("gen_state"), state.get("running")

    if dist[1] > 1:  # identical initial weights on every rank
        for t in model.state_dict().values():
            torch.distributed.broadcast(t, 0)
    fwd = torch.compile(model.forward_train) if cfg.compile else model.forward_train
    precision, why = resolve_precision(cfg.amp, dev, resumed=state.get("precision") if state else None)
    use_bf16 = precision == "bf16"
    if is_main:
        _log(out, f"precision {precision} ({why}); device {dev}; torch {torch.__version__}; "
                  f"{torch.get_num_threads()} threads", progress)

    batches = _Batches(data, cfg, dev)
    sample_w = class_weights(counts, cfg.resample_weighting)[torch.as_tensor(data.train.targets)]
    label_w = class_weights(counts, cfg.label_weighting).to(dev)  # (C,)
    stop = {"flag": False}
    handlers = _install_signal_handlers(stop)
    metrics: dict = {}
    epoch_secs: list[float] = []
    try:
        for epoch in range(start_epoch, cfg.epochs):
            lr = lr_at_epoch(epoch, cfg.epochs, cfg.lr, cfg.schedule, cfg.warmup_epochs)
            for group in optimizer.param_groups:
                group["lr"] = lr
            alpha = cumulative_alpha(epoch, cfg.epochs)
            uni, reb = _epoch_plan(len(data.train), cfg.batch_size, sample_w, cfg.seed, epoch, *dist)
            step_gen = torch.Generator().manual_seed(cfg.seed * 7919 + epoch)
            first = 0
            if epoch == start_epoch and start_step:
                first = start_step
                step_gen.set_state(step_gen_state)
            sums = running if (epoch == start_epoch and running) else dict(loss=0.0, bal=0.0, rebal=0.0, sim=0.0, n=0)
            model.train()
            t0, seen = time.perf_counter(), 0
            bar = _progress(len(uni), first, f"epoch {epoch + 1}/{cfg.epochs}", progress and is_main)
            if not data.in_memory:
                loader, reb_loader = batches.loader(uni[first:], step_gen), batches.loader(reb[first:], step_gen)
            for step in range(first, len(uni)):
                if data.in_memory:
                    u1, u2 = batches.views(uni[step], step_gen)
                    r1, r2 = batches.views(reb[step], step_gen)
                else:
                    (u1, u2), (r1, r2) = next(loader), next(reb_loader)
                y_u = F.one_hot(torch.as_tensor(data.train.targets[uni[step]]), num_classes).float().to(dev)
                y_r = F.one_hot(torch.as_tensor(data.train.targets[reb[step]]), num_classes).float().to(dev)
                losses = glmc_step(fwd, optimizer, (u1, u2), (r1, r2), y_u, y_r, label_w, alpha, cfg, step_gen,
                                   memory_format, use_bf16,
                                   before_update=(lambda: _allreduce_grads(model, dist[1])) if dist[1] > 1 else None)
                for k in ("loss", "bal", "rebal", "sim"):  # device tensors: no host sync per step
                    sums[k] = sums[k] + losses[k] * len(u1)
                sums["n"] += len(u1)
                seen += len(u1)
                if bar is not None:
                    bar.update(1)
                    if step % 20 == 0:
                        bar.set_postfix(loss=f"{float(sums['loss']) / sums['n']:.3f}", lr=f"{lr:.4g}")
                if stop["flag"] or (should_stop is not None and should_stop(epoch, step)):
                    if is_main:
                        save_checkpoint(out / CKPT_NAME, _ckpt(model, optimizer, cfg, epoch, step + 1, step_gen,
                                                               {k: float(v) for k, v in sums.items()}, precision))
                    if bar is not None:
                        bar.close()
                    return dict(interrupted=True, epoch=epoch, step=step + 1)
            if bar is not None:
                bar.close()
            secs = time.perf_counter() - t0
            if dist[1] > 1:  # images seen by all ranks together
                seen_t = torch.tensor([seen], dtype=torch.int64, device=dev)
                torch.distributed.all_reduce(seen_t)
                seen = int(seen_t)
            epoch_log = dict(epoch=epoch + 1, lr=lr, alpha=alpha, images=seen, images_per_s=seen / max(secs, 1e-9),
                             seconds=secs, **{k: float(sums[k]) / max(sums["n"], 1) for k in ("loss", "bal", "rebal", "sim")})
            if is_main:
                with open(out / "train_log.jsonl", "a") as f:
                    f.write(json.dumps(epoch_log) + "\n")
                save_checkpoint(out / CKPT_NAME, _ckpt(model, optimizer, cfg, epoch + 1, 0, None, None, precision))
            last = epoch + 1 == cfg.epochs
            epoch_secs.append(secs)
            if is_main:
                left = (cfg.epochs - epoch - 1) * float(np.mean(epoch_secs[-10:]))
                _log(out, f"epoch {epoch + 1}/{cfg.epochs}: loss {epoch_log['loss']:.4f}, {secs:.0f} s "
                          f"({epoch_log['images_per_s']:.0f} img/s); run remaining ~{_hms(left)}", progress)
            if is_main and ((epoch + 1) % cfg.eval_every == 0 or last):
                metrics = _evaluate(model, batches, data, dev, cfg.channels_last)
                line = dict(epoch_log, **{k: metrics.get(k) for k in _EVAL_KEYS})
                with open(out / "metrics.jsonl", "a") as f:
                    f.write(json.dumps(line) + "\n")
                _plot_curves(out)
                _log(out, f"eval epoch {epoch + 1}: top1 {metrics['top1']:.2f} (fc_cb), {metrics['fc_top1']:.2f} (fc); "
                          f"many {_fmt(metrics['many'])}, medium {_fmt(metrics['medium'])}, few {_fmt(metrics['few'])}",
                     progress)
                if cfg.keep_best:
                    _keep_best(model, out, metrics, epoch + 1)
    finally:
        _restore_signal_handlers(handlers)

    if not is_main:
        return metrics
    if not metrics:  # resumed from the last epoch's checkpoint: the final evaluation did not run
        metrics = _evaluate(model, batches, data, dev, cfg.channels_last)
        _log(out, f"eval epoch {cfg.epochs} (after resume): top1 {metrics['top1']:.2f}", progress)
        log = out / "metrics.jsonl"
        rows = [json.loads(x) for x in log.read_text().splitlines() if x.strip()] if log.is_file() else []
        if not rows or rows[-1].get("epoch") != cfg.epochs:  # killed during the final save: already logged
            with open(log, "a") as f:
                f.write(json.dumps(dict(epoch=cfg.epochs, **{k: metrics.get(k) for k in _EVAL_KEYS})) + "\n")
        _plot_curves(out)
    final = dict(metrics, epoch=cfg.epochs, selection="final epoch (nothing selected on the test set)")
    (out / "metrics.json").write_text(json.dumps(final, indent=2))
    plot_per_class(metrics, data.class_counts, data.classes, out / "per_class_accuracy.png")
    plot_confusion(metrics, data.classes, out / "confusion_matrix.png")
    measured = {k: round(metrics[k], 2) for k in ("top1", "top5", "many", "medium", "few") if metrics.get(k) is not None}
    save_pretrained(model.to(memory_format=torch.contiguous_format).cpu(), out / "model", glmc=dict(
        measured=measured, metrics_note=f"Measured at the final epoch ({cfg.epochs}) on the {len(data.test)}-image "
                                        f"test set; nothing was selected on it.",
        dataset=cfg.dataset, train_config=cfg.to_dict(), class_counts=data.class_counts,
        command=command or "", recipe=cfg.reference or cfg.name, data=_describe_data(cfg, data)))
    return final


def _describe_data(cfg: TrainConfig, data: LongTailedData) -> str:
    return (f"{cfg.dataset} ({cfg.data_root or 'default location'}), {len(data.train)} training images in "
            f"{len(data.classes)} classes (imbalance factor {cfg.imbalance_factor:g}, split {cfg.split!r}, "
            f"seed {cfg.seed}; indices in split.json), {len(data.test)} test images.")


#: What each evaluation line of `metrics.jsonl` records (per-class accuracy is of `fc_cb`).
_EVAL_KEYS = ("top1", "top5", "many", "medium", "few", "per_class", "fc_top1", "fc_many", "fc_medium", "fc_few")


def _evaluate(model, batches: _Batches, data: LongTailedData, dev, channels_last: bool) -> dict:
    """Metrics of the inference head `fc_cb` (GLMC's reported numbers), plus top-1 and groups of
    the plain head `fc` as `fc_*`, from one pass over the test set."""
    preds, labels = predict_topk_heads(model, batches.test_batches(), dev, k=5, channels_last=channels_last)
    out = summarize(preds["fc_cb"], labels, data.class_counts, len(data.classes))
    plain = summarize(preds["fc"], labels, data.class_counts, len(data.classes))
    out.update({f"fc_{k}": plain.get(k) for k in ("top1", "many", "medium", "few")})
    return out


def _plot_curves(out: Path) -> None:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    plot_curves(rows, out / "training_curves.png")


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def _hms(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def _keep_best(model, out: Path, metrics: dict, epoch: int) -> None:
    from glmc_zoo.hub import read_config, save_pretrained

    best = out / "model_best_on_test"
    if best.exists() and read_config(best)["glmc"]["measured"]["top1"] >= metrics["top1"]:
        return
    save_pretrained(model, best, glmc=dict(
        measured=dict(top1=round(metrics["top1"], 2)), best_epoch=epoch,
        metrics_note=f"BEST EPOCH ({epoch}) SELECTED ON THE TEST SET: optimistic, not a fair final-epoch number."))


def _ckpt(model, optimizer, cfg, epoch: int, step: int, gen: torch.Generator | None, running,
          precision: str) -> dict:
    return dict(model=model.state_dict(), optimizer=optimizer.state_dict(), epoch=epoch, step=step,
                gen_state=gen.get_state() if gen is not None else None, running=running,
                config=cfg.to_dict(), precision=precision, glmc_zoo_version=__version__)


def _log(out: Path, line: str, echo: bool) -> None:
    """Append a time-stamped line to the run's `run.log` (and echo it to stderr)."""
    stamped = f"{time.strftime('%Y-%m-%d %H:%M:%S')}  {line}"
    with open(out / "run.log", "a") as f:
        f.write(stamped + "\n")
    if echo:
        print(stamped, file=sys.stderr)


def _progress(total: int, initial: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True)


def _install_signal_handlers(stop: dict):
    def handler(signum, frame):
        stop["flag"] = True

    old = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread: leave signals alone
        pass
    return old


def _restore_signal_handlers(old: dict) -> None:
    for sig, h in old.items():
        signal.signal(sig, h)


# ---------------------------------------------------------------------------------------------
# Distributed (torchrun): each rank takes its slice of every global batch
# ---------------------------------------------------------------------------------------------


def init_distributed_from_env(device: str) -> str:
    """Under `torchrun` (WORLD_SIZE > 1): join the process group (NCCL on CUDA, else gloo) and
    return this rank's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return device
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    torch.distributed.init_process_group("nccl" if use_cuda else "gloo")
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return f"cuda:{local}"
    return "cpu"


def _dist_info() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _allreduce_grads(model: torch.nn.Module, world: int) -> None:
    """Average gradients over ranks (DDP's hooks are bypassed by calling forward_train directly)."""
    for p in model.parameters():
        if p.grad is not None:
            torch.distributed.all_reduce(p.grad)
            p.grad.div_(world)


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in ["glmc-zoo", *sys.argv[1:]])

