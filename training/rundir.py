"""A training run's directory: the one owner of its files' names and formats.

    config.json       the resolved config (+ glmc_zoo_version)       written at every start and resume
    split.json        dataset, split, seed, classes, counts, indices (+ held-out test files)
    command.txt       the command that started the run (resumes are in run.log)
    run.log           time-stamped lines: start, epochs, evaluations, stops, resumes
    train_log.jsonl   one row per finished epoch (an epoch logged twice: the last row wins)
    metrics.jsonl     one row per evaluation (train-log row + the metrics of both heads)
    metrics.json      the final evaluation: written once, at the end
    checkpoint.pt     everything `--resume` needs (training/checkpoint.py writes and checks it)
    model/            the finished weights folder (safetensors + config + card)
    .glmc-zoo.lock    locked (a POSIX record lock) while a process writes the run

The trainer (loop.py, maxnorm.py) writes through `RunDir`; the report, the bundler and `init` read
through it. JSON is written atomically (beside, fsync, rename); the logs are appended line by line, and
a last line cut by a crash is dropped when read (`read_jsonl`).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from glmc_zoo._meta import __version__
from glmc_zoo.atomic import check_not_package_weights, write_text_atomic
from glmc_zoo.errors import DataError, TrainError
from glmc_zoo.jsonfile import MAX_JSON_BYTES, parse_json, read_json
from glmc_zoo.registry import WeightSet

__all__ = ["RunDir", "read_jsonl", "resolve_init"]


def read_jsonl(path: Path, schema: dict | None = None) -> list[dict]:
    """A run log's rows (`train_log.jsonl`, `metrics.jsonl`); [] when the file does not exist. A last line
    cut short (what a crash during an append leaves) is dropped: the epoch it logged is logged again when
    the run resumes. Damage anywhere else, and a row whose fields are not what `schema` says, is a `DataError`
    naming the file, the line and the field."""
    if not path.is_file():
        return []
    if path.stat().st_size > MAX_JSON_BYTES:
        raise DataError(f"{path}: {path.stat().st_size:,} bytes, more than a run log holds; restore the file")
    lines = [x for x in path.read_text(errors="replace").splitlines() if x.strip()]
    rows = []
    for n, line in enumerate(lines, 1):
        try:
            row = parse_json(line, f"line {n}", finite=False)  # a log may record a NaN loss
            if not isinstance(row, dict):
                raise ValueError("not a JSON object")
        except ValueError as e:
            if n == len(lines):
                break
            raise DataError(f"{path}, line {n}: not a log row ({e}); the run log is damaged: remove that line "
                            f"(or restore the file) and try again") from None
        problem = _field_problem(row, schema or {})
        if problem:
            raise DataError(f"{path}, line {n}: {problem}; the run log is damaged: restore the file (or remove that "
                            f"line) and try again")
        rows.append(row)
    return rows


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


#: What the fields of each file must be: (check, what it should be, required).
_NUMBER, _COUNT = (_is_number, "a number"), (_is_count, "a count (an integer >= 0)")
_NUMBER_OR_NULL = (lambda v: v is None or _is_number(v), "a number or null")
TRAIN_ROW = dict(epoch=(*_COUNT, True), seconds=(*_NUMBER, True), images=(*_COUNT, True), loss=(*_NUMBER_OR_NULL, False),
                 lr=(*_NUMBER, False), alpha=(*_NUMBER, False), machine=(lambda v: isinstance(v, str), "text", False),
                 precision=(lambda v: v in ("bf16", "fp32"), "bf16 or fp32", False))
EVAL_ROW = dict(epoch=(*_COUNT, True), top1=(*_NUMBER, True),
                **{k: (*_NUMBER_OR_NULL, False) for k in ("top5", "many", "medium", "few", "fc_top1", "fc_many",
                                                          "fc_medium", "fc_few")},
                per_class=(lambda v: isinstance(v, list) and all(x is None or _is_number(x) for x in v),
                           "a list of numbers (or null)", False))
SPLIT_FILE = dict(split=(lambda v: isinstance(v, str), "a split's name", False), seed=(*_COUNT, False),
                  classes=(lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of names", False),
                  class_counts=(lambda v: isinstance(v, list) and all(map(_is_count, v)), "a list of counts", False),
                  test_files=(lambda v: v is None or (isinstance(v, list) and all(isinstance(x, str) for x in v)),
                              "a list of file paths", False),
                  holdout=(lambda v: _is_number(v) and 0 <= v < 1, "a fraction from 0 to 1", False))


def _field_problem(row: dict, schema: dict) -> str | None:
    for key, (ok, what, required) in schema.items():
        if key not in row:
            if required:
                return f"no {key!r}"
            continue
        if not ok(row[key]):
            return f"{key} is {json.dumps(row[key])[:60]}, not {what}"
    return None


def _by_epoch(rows: list[dict]) -> list[dict]:
    """One row per epoch, the last written winning (a run killed between its log line and its checkpoint
    logs that epoch again when resumed), in epoch order."""
    return sorted({r["epoch"]: r for r in rows}.values(), key=lambda r: r["epoch"])


class RunDir:
    """The files of one run directory (see the module docstring)."""

    CONFIG, SPLIT, COMMAND, LOG = "config.json", "split.json", "command.txt", "run.log"
    TRAIN_LOG, EVAL_LOG, FINAL = "train_log.jsonl", "metrics.jsonl", "metrics.json"
    CHECKPOINT, MODEL, LOCK = "checkpoint.pt", "model", ".glmc-zoo.lock"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock_fd: int | None = None
        self.started = False  # set by the trainer once its set-up is done (see `discard_unstarted`)

    @property
    def checkpoint(self) -> Path:
        return self.path / self.CHECKPOINT

    @property
    def model(self) -> Path:
        return self.path / self.MODEL

    # --- what the folder holds ----------------------------------------------------------------

    def is_run(self) -> bool:
        """Written by `glmc-zoo train` (a run in progress or finished)."""
        return self.checkpoint.is_file() or ((self.path / self.CONFIG).is_file()
                                             and (self.path / self.TRAIN_LOG).is_file())

    def is_finished(self) -> bool:
        return self.checkpoint.is_file() and self.model.is_dir()

    # --- one writer -----------------------------------------------------------------------------

    def claim(self, resume) -> RunDir:
        """Take the folder for this run: it must be new or empty, or be the run `resume` continues; anything
        else (a finished run, a weights folder, someone's files) is refused before a byte is written. Then an
        exclusive lock (`lockf` on `.glmc-zoo.lock`, released by the kernel when the process ends, however it
        ends) keeps a second `train` out while this one lasts; `release()` (or the `with` block's end) frees it.
        A POSIX record lock belongs to this process alone: a forked DataLoader worker does not inherit it (an
        `flock` it would share, keeping the run locked after a failed run returned, until the worker exits)."""
        out = self.path
        check_not_package_weights(out)  # a run folder among the package's weight sets would break the registry
        if out.exists() and not out.is_dir():
            raise TrainError(f"--output {out}: a file, not a folder. Give a folder for the run.")
        resuming_here = resume is not None and Path(resume).resolve() in (out.resolve(), self.checkpoint.resolve())
        if out.is_dir() and not resuming_here:
            held = sorted(p.name for p in out.iterdir() if p.name != self.LOCK)
            if held:
                if self.is_finished():
                    what, fix = "a finished run", "give another --output (a new folder) for a new run"
                elif self.checkpoint.is_file():
                    what, fix = "a run in progress", f"continue it with --resume {out}, or give another --output"
                else:
                    what = f"files this run did not write ({', '.join(held[:4])}{', ...' if len(held) > 4 else ''})"
                    fix = "give another --output (a new or empty folder)"
                raise TrainError(f"--output {out} holds {what}: nothing was written there; {fix}")
        # a folder this run starts in (new, or empty but for a stale lock): a start that fails leaves nothing there
        self._fresh = not resuming_here and not (out.is_dir() and any(p.name != self.LOCK for p in out.iterdir()))
        self._created = not out.exists()
        out.mkdir(parents=True, exist_ok=True)
        import fcntl

        fd = os.open(out / self.LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            other = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise TrainError(f"--output {out}: another glmc-zoo train (pid {other}) is writing this run; wait for it "
                             f"to end (or stop it), or give another --output") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd
        return self

    def discard_unstarted(self) -> bool:
        """After a start that failed (bad model arguments, an init that does not load, Ctrl-C while the data is
        read) in a folder this run started in: remove the files it wrote, and the folder if it made it, so that
        the same command works again once the mistake is fixed. A run that saved a checkpoint is kept (it
        resumes). Returns whether the folder was cleared."""
        if not getattr(self, "_fresh", False) or self.checkpoint.exists() or self.model.exists():
            return False
        for name in (self.CONFIG, self.SPLIT, self.COMMAND, self.LOG, self.TRAIN_LOG, self.EVAL_LOG, self.FINAL,
                     self.LOCK):
            (self.path / name).unlink(missing_ok=True)
        if self._created and not any(self.path.iterdir()):
            self.path.rmdir()
        return True

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock; the empty lock file stays (removing it would race a writer)
            self._lock_fd = None

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    # --- writing ----------------------------------------------------------------------------------

    def write_start(self, cfg, data, command: str | None, resumed_at: tuple[int, int] | None, echo: bool) -> None:
        """config.json and split.json (at every start and resume), command.txt (at the start) or a
        "resumed" line in run.log."""
        write_text_atomic(self.path / self.CONFIG, json.dumps(dict(cfg.to_dict(), glmc_zoo_version=__version__),
                                                              indent=2))
        held_out = dict(holdout=cfg.holdout, test_files=data.test_files) if data.test_files is not None else {}
        write_text_atomic(self.path / self.SPLIT, json.dumps(dict(
            dataset=cfg.dataset, split=cfg.split, seed=cfg.seed, imbalance_factor=cfg.imbalance_factor,
            classes=data.classes, class_counts=data.class_counts, train_indices=data.train_indices.tolist(),
            **held_out)))
        if command and resumed_at is None:
            write_text_atomic(self.path / self.COMMAND, command + "\n")
        elif command and resumed_at[0] >= cfg.epochs:  # a finished run (e.g. a clone without its model/ folder)
            self.log(f"resumed at epoch {cfg.epochs} of {cfg.epochs}, its end: the final evaluation and the weights "
                     f"folder are made again from the checkpoint: {command}", echo)
        elif command:
            self.log(f"resumed at epoch {resumed_at[0] + 1}, step {resumed_at[1]}: {command}", echo)

    def log(self, line: str, echo: bool = False) -> None:
        """Append a time-stamped line to run.log (and echo it to stderr)."""
        stamped = f"{time.strftime('%Y-%m-%d %H:%M:%S')}  {line}"
        with open(self.path / self.LOG, "a") as f:
            f.write(stamped + "\n")
        if echo:
            print(stamped, file=sys.stderr)

    def append_epoch(self, row: dict) -> None:
        self._append(self.TRAIN_LOG, row)

    def append_eval(self, row: dict) -> None:
        self._append(self.EVAL_LOG, row)

    def _append(self, name: str, row: dict) -> None:
        with open(self.path / name, "a") as f:
            f.write(json.dumps(row) + "\n")

    def write_final(self, metrics: dict) -> None:
        write_text_atomic(self.path / self.FINAL, json.dumps(metrics, indent=2))

    # --- reading ----------------------------------------------------------------------------------

    def config(self) -> dict:
        return self._json(self.CONFIG)

    def split(self) -> dict:
        return self._json(self.SPLIT, SPLIT_FILE) if (self.path / self.SPLIT).is_file() else {}

    def _json(self, name: str, schema: dict | None = None) -> dict:
        path = self.path / name
        try:
            value = read_json(path)
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: cannot be read as the run's {name} ({e}); restore it from the run") from None
        if not isinstance(value, dict):
            raise DataError(f"{path}: holds a {type(value).__name__}, not the run's {name}; restore it from the run")
        problem = _field_problem(value, schema or {})
        if problem:
            raise DataError(f"{path}: {problem}; restore it from the run")
        return value

    def epochs(self) -> list[dict]:
        """train_log.jsonl, one row per epoch, in order."""
        return _by_epoch(read_jsonl(self.path / self.TRAIN_LOG, TRAIN_ROW))

    def evals(self, by_epoch: bool = True) -> list[dict]:
        """metrics.jsonl, one row per evaluated epoch (or every row as written)."""
        rows = read_jsonl(self.path / self.EVAL_LOG, EVAL_ROW)
        return _by_epoch(rows) if by_epoch else rows

    def started_command(self) -> str | None:
        """The command that started the run (command.txt): what repeats it."""
        path = self.path / self.COMMAND
        return path.read_text().strip() if path.is_file() else None

    def resumes(self) -> int:
        path = self.path / self.LOG
        return sum(" resumed at epoch " in x for x in path.read_text().splitlines()) if path.is_file() else 0


def resolve_init(ref: str) -> tuple[str, WeightSet | None]:
    """A trained model given as a finished run directory or a weights folder (or any model reference) -> (model
    reference to load, its folder's record or None): a MaxNorm stage's first stage, or a GLMC `init`."""

    if not ref:
        raise TrainError("stage maxnorm starts from a trained GLMC model: give --init RUN_OR_WEIGHTS (a finished "
                         "run directory, a weights folder or a model name such as "
                         "glmc_resnet32_w16.cifar10_lt_if100_e200_jpeg)")
    path = Path(ref)
    if path.is_dir() and RunDir(path).checkpoint.is_file() and not (path / "model.safetensors").is_file():
        if not (RunDir(path).model / "model.safetensors").is_file():
            raise TrainError(f"--init {ref}: this run has not finished (no {RunDir(path).model}); finish it with "
                             f"--resume {ref}, or give a weights folder")
        path = RunDir(path).model
    if path.is_dir():
        try:
            return str(path), WeightSet.from_folder(path)
        except Exception as e:  # a damaged folder: the loader below names what is wrong
            raise TrainError(f"--init {ref}: not a glmc-zoo weights folder ({e})") from e
    return ref, None
