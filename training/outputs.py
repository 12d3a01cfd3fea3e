"""What a run leaves behind, for both stages (`loop`, `maxnorm`): its evaluations (both heads, one pass), the
curves, the record its final weights are saved with, and the best-on-test copy (labelled as selected)."""

from __future__ import annotations

from pathlib import Path

from glmc_zoo.hub import save_pretrained
from glmc_zoo.registry import WeightSet
from glmc_zoo.training.batches import Batcher
from glmc_zoo.training.configs import TrainConfig
from glmc_zoo.training.data import LongTailedData
from glmc_zoo.training.metrics import plot_curves, predict_topk_heads, summarize
from glmc_zoo.training.rundir import RunDir

#: What each evaluation line of `metrics.jsonl` records (per-class accuracy is of `fc_cb`).
EVAL_KEYS = ("top1", "top5", "many", "medium", "few", "per_class", "fc_top1", "fc_many", "fc_medium", "fc_few")


def evaluate(model, batches: Batcher, data: LongTailedData, dev, channels_last: bool) -> dict:
    """Metrics of the inference head `fc_cb` (GLMC's reported numbers), plus top-1 and groups of
    the plain head `fc` as `fc_*`, from one pass over the test set."""
    preds, labels = predict_topk_heads(model, batches.test_batches(), dev, k=5, channels_last=channels_last)
    out = summarize(preds["fc_cb"], labels, data.class_counts, len(data.classes))
    plain = summarize(preds["fc"], labels, data.class_counts, len(data.classes))
    out.update({f"fc_{k}": plain.get(k) for k in ("top1", "many", "medium", "few")})
    return out


def plot_run_curves(out: Path) -> None:
    """training_curves.png of the run in `out`, from its metrics.jsonl."""
    plot_curves(RunDir(out).evals(by_epoch=False), out / "training_curves.png")


def final_record(model, cfg: TrainConfig, data: LongTailedData, metrics: dict, command: str, stage: str = "",
                 **provenance) -> WeightSet:
    """The record a run's final weights are saved with: the final-epoch metrics of `fc_cb` (and of the plain head
    `fc` where evaluated), per class, the class counts, the recipe and how the run was made (+ `provenance`)."""
    measured = {k: round(metrics[k], 2) for k in ("top1", "top5", "many", "medium", "few") if metrics.get(k) is not None}
    plain = {k: round(metrics[f"fc_{k}"], 2) for k in ("top1", "many", "medium", "few")
             if metrics.get(f"fc_{k}") is not None}
    per_class = {c: None if a is None else round(a, 2) for c, a in zip(data.classes, metrics.get("per_class") or [])}
    return WeightSet.local(
        model.pretrained_cfg, metrics=measured, metrics_kind="measured", per_class=per_class or None,
        plain_head=plain or None, metrics_source=f"Measured at the final epoch ({cfg.epochs}){stage} on the "
                                                 f"{len(data.test)}-image test set; nothing was selected on it.",
        class_counts=tuple(data.class_counts), recipe=cfg.reference or cfg.name, trained_by="glmc-zoo",
        provenance=dict(dataset=cfg.dataset, train_config=cfg.to_dict(), command=command,
                        data=describe_data(cfg, data), **provenance))


def describe_data(cfg: TrainConfig, data: LongTailedData) -> str:
    """The data a run trained on, in one sentence for its weights' record."""
    return (f"{cfg.dataset} ({cfg.data_root or 'default location'}), {len(data.train)} training images in "
            f"{len(data.classes)} classes (imbalance factor {cfg.imbalance_factor:g}, split {cfg.split!r}, "
            f"seed {cfg.seed}; indices in split.json), {len(data.test)} test images"
            + (f" held out from the same folder ({cfg.holdout:.0%} of each class, listed in split.json)."
               if data.test_files is not None else "."))


def keep_best(model, out: Path, metrics: dict, epoch: int) -> None:
    """`keep_best=true`: the best evaluation so far kept as `model_best_on_test/`, its card saying in capitals that
    it was selected on the test set."""
    best = out / "model_best_on_test"
    if best.exists() and WeightSet.from_folder(best).metrics.get("top1", -1.0) >= metrics["top1"]:
        return
    save_pretrained(model, best, WeightSet.local(
        model.pretrained_cfg, metrics=dict(top1=round(metrics["top1"], 2)), metrics_kind="measured",
        metrics_source=f"BEST EPOCH ({epoch}) SELECTED ON THE TEST SET: optimistic, not a fair final-epoch number.",
        provenance=dict(best_epoch=epoch)))
