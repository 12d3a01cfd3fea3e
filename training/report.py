"""A training run's results as Markdown, from the files the trainer writes into its run directory:
every evaluation of both heads, per-class accuracy at the latest one, training time and the command.

    glmc-zoo report runs/cifar10_lt_if100_w16            # or: python -m glmc_zoo report RUN_DIR

Works on a finished run and on one still in progress (the latest evaluation is labelled as such). It
reports what was logged and selects nothing: the final row is the final epoch, never the best one.
"""

from __future__ import annotations

from pathlib import Path

from glmc_zoo.errors import TrainError
from glmc_zoo.evaluation import SHOT_GROUPS, shot_groups
from glmc_zoo.training.rundir import RunDir

__all__ = ["compare_report", "run_report", "time_text"]


def started_command(run_dir: str | Path) -> str | None:
    """The command that started the run (its `command.txt`): what repeats it. Resumes are in run.log."""
    return RunDir(run_dir).started_command()


def time_text(run_dir: str | Path, unrecorded: str | None = None) -> str:
    """Training time from the run's train_log.jsonl: the sum of its epochs' times (an epoch logged twice
    counts once), the median time of a whole epoch (an epoch resumed part-way is not one), and the machine
    (recorded per epoch since glmc-zoo 0.3: a run carried across sessions may change machines, and then
    each one's median is given). `unrecorded` names the machine of epochs logged without one."""
    rows = RunDir(run_dir).epochs()
    text = f"{duration_text(sum(r['seconds'] for r in rows))} for {len(rows)} epoch{'s' * (len(rows) != 1)}"
    pace = _pace(rows)
    if pace is None:
        return text
    median, slowest, _ = pace
    if slowest <= 1.5 * median:
        text = f"{text} (median epoch {median:.0f} s)"
    else:  # an epoch that shared the machine (or was paused) counts in full in the sum: the median is the pace
        text = f"{text}, counting time the machine was shared (median epoch {median:.0f} s, slowest {slowest:.0f} s)"
    machines = {m or unrecorded: v for m, v in _by_machine(rows).items()}
    if list(machines) == [None]:
        return text
    if len(machines) == 1:
        return f"{text} on {next(iter(machines))}"
    return text + "; by machine: " + "; ".join(
        f"median epoch {sec:.0f} s over {n} epochs on {m or 'a machine not recorded (before glmc-zoo 0.3)'}"
        for m, (sec, n) in machines.items())


def duration_text(seconds: float) -> str:
    """Hours to two decimals from six minutes up (13.57 h), minutes below that (4.2 min), seconds below one
    (39 s): a short run is not "0.01 h"."""
    if seconds >= 360:
        return f"{seconds / 3600:.2f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def precision_text(run_dir: str | Path) -> str | None:
    """Which epochs ran in which precision, from the epochs' log rows (recorded since glmc-zoo 0.4): "fp32" for a
    run in one precision, "bf16 for epochs 1-57, fp32 for epochs 58-200" for one that changed (a bf16 run resumed
    on a CPU without native bf16). None when no row recorded it."""
    spans: list[list] = []  # [precision, first epoch, last epoch]
    for row in sorted({r["epoch"]: r for r in RunDir(run_dir).epochs()}.values(), key=lambda r: r["epoch"]):
        p = row.get("precision") or "not recorded"
        if spans and spans[-1][0] == p:
            spans[-1][2] = row["epoch"]
        else:
            spans.append([p, row["epoch"], row["epoch"]])
    if not spans or all(p == "not recorded" for p, _, _ in spans):
        return None
    if len(spans) == 1:
        return spans[0][0]
    return ", ".join(f"{p} for epoch{'s' if a != b else ''} {a}{f'-{b}' if a != b else ''}" for p, a, b in spans)


def _pace(rows: list[dict]) -> tuple[float, float, int] | None:
    """(median, slowest) seconds of a whole epoch (a resumed part of an epoch saw fewer images) and the
    images of one; None for fewer than two epochs."""
    if len(rows) < 2:
        return None
    full = max(r["images"] for r in rows)
    secs = sorted(r["seconds"] for r in rows if r["images"] == full)
    return secs[len(secs) // 2], secs[-1], full


def _by_machine(rows: list[dict]) -> dict[str | None, tuple[float, int]]:
    """machine -> (the median seconds of its whole epochs, or of all it ran if none was whole; how many epochs
    it ran), in order of first appearance."""
    full = max((r["images"] for r in rows), default=0)
    groups: dict[str | None, list[dict]] = {}
    for r in rows:
        groups.setdefault(r.get("machine"), []).append(r)
    out = {}
    for m, rs in groups.items():
        secs = sorted(r["seconds"] for r in rs if r["images"] == full) or sorted(r["seconds"] for r in rs)
        out[m] = (secs[len(secs) // 2], len(rs))
    return out


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def run_report(run_dir: str | Path) -> str:
    """The run's results as Markdown (see the module's docstring). Raises `TrainError` naming the folder
    when it is not a run directory."""
    rd = _open(run_dir)
    run = rd.path
    cfg, evals, split = rd.config(), rd.evals(), rd.split()
    total = cfg.get("epochs")
    finished, last_done = _progress(rd, total, rd.epochs())
    status = "finished" if finished else f"in progress: {last_done} of {total} epochs complete"

    lines = [f"# Run `{cfg.get('name', run.name)}` ({run})", "",
             f"- **Status**: {status}",
             f"- **Model**: {cfg.get('model')}; {total} epochs, batch {cfg.get('batch_size')}, lr {cfg.get('lr')}, "
             f"weight decay {cfg.get('weight_decay')}, {cfg.get('schedule')} schedule; resample_weighting (q) "
             f"{cfg.get('resample_weighting')}, label_weighting (tau) {cfg.get('label_weighting')}, contrast_weight (w) "
             f"{cfg.get('contrast_weight')}" + (f"; method {cfg['method']}" if cfg.get("method", "glmc") != "glmc" else ""),
             f"- **Data**: {cfg.get('dataset')}, imbalance factor {cfg.get('imbalance_factor')}, split "
             f"{split.get('split', cfg.get('split'))!r} (seed {split.get('seed', cfg.get('seed'))})"
             + (f", {sum(split['class_counts'])} training images" if split.get("class_counts") else "")
             + (f"; test split: {split['holdout']:.0%} of each class held out ({len(split['test_files'])} images, "
                f"listed in split.json)" if split.get("test_files") else ""),
             f"- **Training time**: {time_text(run)}"]
    if precision := precision_text(run):
        lines.append(f"- **Precision**: {precision}")
    if command := rd.started_command():
        lines.append(f"- **Command**: `{command}`")
    resumes = rd.resumes()
    if resumes:
        lines.append(f"- **Resumed** {resumes} time{'s' * (resumes != 1)} (exactly, from checkpoint.pt; see run.log)")

    counts = split.get("class_counts") or []
    sizes = {g: len(idx) for g, idx in shot_groups(counts).items()}
    lines += ["", "## Evaluations", "",
              "`fc_cb` is the rebalanced head used at inference (GLMC's reported numbers), `fc` the plain head. "
              "Groups by training images per class: "
              + ", ".join(f"{g} {rule} ({_n_classes(sizes[g])})" if counts else f"{g} {rule}"
                          for g, rule, _, _ in SHOT_GROUPS)
              + ".", "",
              "| epoch | fc_cb top-1 | fc_cb top-5 | fc_cb many | fc_cb medium | fc_cb few | fc top-1 | fc many | "
              "fc medium | fc few | train loss |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in evals:
        tag = " (final)" if finished and r["epoch"] == total else ""
        cells = [r.get(k) for k in ("top1", "top5", "many", "medium", "few", "fc_top1", "fc_many", "fc_medium",
                                    "fc_few")]
        lines.append(f"| {r['epoch']}{tag} | " + " | ".join(map(_pct, cells))
                     + f" | {'-' if r.get('loss') is None else format(r['loss'], '.4f')} |")
    if not evals:
        lines.append("| (no evaluation yet) |" + " |" * 10)

    if evals and evals[-1].get("per_class"):
        last = evals[-1]
        which = "the final epoch" if finished and last["epoch"] == total else f"epoch {last['epoch']} (latest)"
        names = split.get("classes") or [str(i) for i in range(len(last["per_class"]))]
        lines += ["", f"## Per-class accuracy of fc_cb at {which}", "", "| class | training images | top-1 |",
                  "|---|---|---|"]
        for i, (name, acc) in enumerate(zip(names, last["per_class"])):
            lines.append(f"| {name} | {counts[i] if i < len(counts) else '-'} | {_pct(acc)} |")
    if (run / "training_curves.png").is_file():
        lines += ["", f"Learning curves: `{run / 'training_curves.png'}`."]
    return "\n".join(lines) + "\n"


def compare_report(run_dirs: list[str | Path]) -> str:
    """Several runs side by side as one Markdown table: each run's final evaluation (or its latest, labelled
    so, while it is in progress), its data, pace and machine. Selects nothing: no best epoch is read."""
    rds = [_open(d) for d in run_dirs]
    lines = ["| run | training images | imbalance | evaluated at | fc_cb top-1 | top-5 | many | medium | few | fc top-1 "
             "| median epoch | images/s | logged time | machine |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for rd in rds:
        cfg, evals, epochs, split = rd.config(), rd.evals(), rd.epochs(), rd.split()
        total = cfg.get("epochs")
        finished, done = _progress(rd, total, epochs)
        last = evals[-1] if evals else {}
        if not last:
            at = f"(no evaluation yet; {done}/{total} epochs)"
        elif finished and last["epoch"] == total:
            at = f"{total} (final)"
        else:
            at = f"{last['epoch']} (latest; {done}/{total} epochs done)"
        pace = _pace(epochs)
        machines = [m or "not recorded" for m in _by_machine(epochs)] or ["-"]
        counts = split.get("class_counts") or []
        lines.append(" | ".join([
            f"| `{cfg.get('name', rd.path.name)}`", str(sum(counts)) if counts else "-",
            str(cfg.get("imbalance_factor", "-")), at,
            *(_pct(last.get(k)) for k in ("top1", "top5", "many", "medium", "few", "fc_top1")),
            f"{pace[0]:.0f} s" if pace else "-", f"{pace[2] / pace[0]:.0f}" if pace else "-",
            f"{sum(r['seconds'] for r in epochs) / 3600:.2f} h", "; ".join(machines)]) + " |")
    lines += ["", "Top-1 in % on each run's test set; `fc_cb` is the inference head, `fc` the plain one. A row is the "
              "final epoch's evaluation unless marked latest; no best epoch is selected. The pace is the median "
              "whole epoch (training images / median epoch seconds); the logged time also counts epochs that shared "
              "the machine or were paused."]
    return "\n".join(lines) + "\n"


def _open(run_dir: str | Path) -> RunDir:
    """The run directory, or a `TrainError` naming the folder when it is not one."""
    rd = RunDir(run_dir)
    # A run that has not finished its first epoch has its config and command.txt, and no train_log.jsonl yet.
    started = (rd.path / rd.TRAIN_LOG).is_file() or (rd.path / rd.COMMAND).is_file()
    if not ((rd.path / rd.CONFIG).is_file() and started):
        raise TrainError(f"{rd.path}: not a training run directory (no {rd.CONFIG}, or neither {rd.TRAIN_LOG} nor "
                         f"{rd.COMMAND}); give the "
                         f"folder that `glmc-zoo train -o` wrote")
    return rd


def _progress(rd: RunDir, total: int | None, epochs: list[dict]) -> tuple[bool, int]:
    """(finished, epochs done) from the run's epoch rows: finished once the final metrics are written after
    the last epoch."""
    done = epochs[-1]["epoch"] if epochs else 0
    return (rd.path / rd.FINAL).is_file() and done == total, done


def _n_classes(n: int) -> str:
    return f"{n} class" if n == 1 else f"{n} classes"
