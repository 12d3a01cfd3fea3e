"""Evaluation: top-1 / top-5, per-class accuracy, many / medium / few (reference section 7), and
the two plots a run writes."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from glmc_zoo.atomic import write_bytes_atomic
from glmc_zoo.evaluation import summarize  # noqa: F401  (re-exported: the one definition of the metrics)

#: GLMC's two class heads, by the `GLMCOutput` field that holds their logits.
_HEAD_FIELDS = {"fc_cb": "logits_cb", "fc": "logits"}


@torch.no_grad()
def predict_topk_heads(model: torch.nn.Module, batches, device: torch.device, k: int = 5,
                       channels_last: bool = False, heads: tuple[str, ...] = ("fc_cb", "fc"),
                       ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Top-k indices (N, k) of each of `heads` ("fc_cb": the rebalanced inference head, "fc": the
    plain one) in one pass over the (x, y) batches; and the labels (N,)."""
    model.eval()
    preds: dict[str, list] = {h: [] for h in heads}
    labels = []
    for x, y in batches:
        x = x.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out = model.forward_train(x)
        for h in heads:
            logits = getattr(out, _HEAD_FIELDS[h])
            preds[h].append(logits.float().topk(min(k, logits.shape[1]), dim=1).indices.cpu())
        labels.append(torch.as_tensor(y))
    return {h: torch.cat(p).numpy() for h, p in preds.items()}, torch.cat(labels).numpy()


def plot_curves(rows: list[dict], path: Path) -> None:
    """Learning curves from a run's evaluations (`metrics.jsonl` rows): top-1 of both heads and
    many / medium / few of the inference head `fc_cb` against epoch."""
    plt = _pyplot()
    epochs = [r["epoch"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    series = [("top1", "top-1, fc_cb (inference head)", "k", "-"), ("fc_top1", "top-1, fc (plain head)", "grey", "--"),
              ("many", "many (n > 100), fc_cb", "tab:blue", ":"), ("medium", "medium (20 < n <= 100), fc_cb",
                                                                  "tab:orange", ":"),
              ("few", "few (n <= 20), fc_cb", "tab:red", ":")]
    for key, label, color, ls in series:
        pts = [(e, r[key]) for e, r in zip(epochs, rows) if r.get(key) is not None]
        if pts:
            ax.plot(*zip(*pts), label=label, color=color, ls=ls, marker="o", ms=3)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.set_xlim(0, max(epochs, default=1) * 1.05)  # from the start, also when only one evaluation exists
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    _save(fig, path)


def plot_per_class(metrics: dict, train_counts: list[int], classes: list[str], path: Path) -> None:
    """Per-class test accuracy against training-class size, groups marked; and the confusion matrix."""
    plt = _pyplot()
    counts = np.asarray(train_counts)
    acc = np.asarray([np.nan if a is None else a for a in metrics["per_class"]], dtype=float)
    fig, ax = plt.subplots(figsize=(7, 4))
    colors = np.where(counts > 100, "tab:blue", np.where(counts > 20, "tab:orange", "tab:red"))
    ax.scatter(counts, acc, c=colors, s=18)
    ax.set_xscale("log")
    ax.axvline(100.5, color="grey", lw=0.8, ls="--")
    ax.axvline(20.5, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("training images in class (log)")
    ax.set_ylabel("test accuracy (%)")
    groups = ", ".join(f"{g} {metrics[g]:.1f}" for g in ("many", "medium", "few") if metrics.get(g) is not None)
    ax.set_title(f"top-1 {metrics['top1']:.2f}%  ({groups})  [many >100 | medium 21-100 | few <=20]", fontsize=8)
    if len(classes) <= 20:
        for x, y, name in zip(counts, acc, classes):
            ax.annotate(name, (x, y), fontsize=6, xytext=(2, 2), textcoords="offset points")
    _save(fig, path)


def plot_confusion(metrics: dict, classes: list[str], path: Path) -> None:
    plt = _pyplot()
    conf = np.asarray(metrics["confusion"], dtype=float)
    conf = conf / np.maximum(conf.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6, 5))
    im = ax.imshow(conf, cmap="viridis", vmin=0, vmax=1)
    if len(classes) <= 20:
        ax.set_xticks(range(len(classes)), classes, rotation=90, fontsize=6)
        ax.set_yticks(range(len(classes)), classes, fontsize=6)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.colorbar(im, ax=ax, label="fraction of true class")
    _save(fig, path)


def plot_compare(runs: list[tuple[str, list[dict]]], path: Path) -> None:
    """Learning curves of several runs on one plot: top-1 of the inference head `fc_cb` (solid) and of the
    plain head `fc` (dashed) against epoch, one colour per run (`runs`: (label, metrics.jsonl rows))."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (label, rows) in enumerate(runs):
        color = f"C{i % 10}"
        for key, ls, what in (("top1", "-", "fc_cb"), ("fc_top1", "--", "fc")):
            pts = [(r["epoch"], r[key]) for r in rows if r.get(key) is not None]
            if pts:
                ax.plot(*zip(*pts), color=color, ls=ls, marker="o", ms=2.5, label=f"{label}, {what}")
    last = max((r["epoch"] for _, rows in runs for r in rows), default=1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test top-1 (%)")
    ax.set_xlim(0, last * 1.05)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    _save(fig, path)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    """The figure as a PNG at `path`, written whole or not at all."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, dpi=120, format="png")
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())
