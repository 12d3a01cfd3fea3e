"""A run's resumable state: the checkpoint file, and the signals that end a run with one.

A checkpoint is written to a temporary file in the run folder and renamed over the old one, so a
kill at any moment leaves either the previous or the new checkpoint, never half of one. It is read
with `weights_only=True`: tensors, numbers and strings, no code.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import torch

from glmc_zoo._meta import __version__
from glmc_zoo.convert import load_weights_only
from glmc_zoo.errors import TrainError
from glmc_zoo.training.configs import TrainConfig, config_difference, config_from_dict
from glmc_zoo.training.rundir import RunDir

CKPT_NAME = RunDir.CHECKPOINT


def checkpoint_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, cfg: TrainConfig, epoch: int,
                     step: int, generator: torch.Generator | None, running: dict | None, precision: str) -> dict:
    """Everything a resume needs: weights and BN buffers, optimizer (momentum), the position
    (`epoch` 0-based, `step` next step of it; step 0 = the epoch has not started), the step
    generator's state, the epoch's running loss sums, the config and the precision it ran in."""
    return dict(model=model.state_dict(), optimizer=optimizer.state_dict(), epoch=epoch, step=step,
                gen_state=generator.get_state() if generator is not None else None, running=running,
                config=cfg.to_dict(), precision=precision, glmc_zoo_version=__version__)


def save_checkpoint(path: Path, state: dict) -> None:
    """torch.save to a temporary file in the same folder, then an atomic rename. When the write fails (a full
    disk, a quota, no permission) the temporary file is removed, the previous checkpoint stays as it was, and a
    `TrainError` names the file, the reason and how to go on."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # torch's zip writer reports a short write as a RuntimeError
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if path.is_file():
            then = f"the previous one is kept: free disk space and continue with --resume {path.parent}"
        else:
            then = "the run has no checkpoint yet: free disk space and start it again into a new folder"
        raise TrainError(f"{path}: the checkpoint could not be written ({_why(e)}); {then}") from e


def _why(e: BaseException) -> str:
    import errno

    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return f"{e.strerror}: the disk is full or a size limit was reached"
    if isinstance(e, RuntimeError) and "unexpected pos" in str(e):
        return "a short write: the disk is full or a size limit was reached"
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def load_checkpoint(path: str | Path) -> dict:
    """A run directory or its checkpoint file -> the state `checkpoint_state` wrote."""
    path = Path(path)
    if path.is_dir():
        path = path / CKPT_NAME
    if not path.is_file():
        raise TrainError(f"--resume {path}: no checkpoint there. Give a run directory or its {CKPT_NAME}.")
    try:
        state = load_weights_only(path)
    except Exception as e:  # a corrupt or foreign file: say which and why, never run its code
        raise TrainError(f"--resume {path}: not a readable glmc-zoo checkpoint ({e})") from e
    missing = [k for k in _REQUIRED if not isinstance(state, dict) or k not in state]
    if missing:
        raise TrainError(f"--resume {path}: not a complete glmc-zoo checkpoint (missing {', '.join(missing)}); "
                         f"give the checkpoint.pt that `glmc-zoo train` wrote")
    if not (isinstance(state["epoch"], int) and isinstance(state["step"], int) and state["epoch"] >= 0
            and state["step"] >= 0 and isinstance(state["config"], dict) and isinstance(state["model"], dict)):
        raise TrainError(f"--resume {path}: a damaged checkpoint (epoch, step, config or model of the wrong kind); "
                         f"give the checkpoint.pt that `glmc-zoo train` wrote")
    return state


#: What every checkpoint `checkpoint_state` writes holds.
_REQUIRED = ("model", "optimizer", "epoch", "step", "config")


class StopSignals:
    """While active (a `with` block), SIGINT and SIGTERM only set `requested`: the run finishes
    its step, saves a checkpoint and returns. Outside the main thread signals are left alone."""

    def __init__(self):
        self.requested = False
        self.received: str | None = None  # the signal's name, for the run's log ("SIGTERM")
        self._old: dict = {}

    def _handler(self, signum, frame) -> None:
        self.requested = True
        self.received = signal.Signals(signum).name

    def __enter__(self) -> StopSignals:
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        except ValueError:  # not the main thread
            pass
        return self

    def __exit__(self, *exc) -> None:
        for sig, h in self._old.items():
            signal.signal(sig, h)
        self._old.clear()


def resume_state(resume, cfg: TrainConfig, stop_after: int | None) -> dict | None:
    """The checkpoint a run resumes from (None for a new run), refused when it was made with another
    config (run-time keys aside) or when `stop_after` is not an epoch still ahead of it."""
    state = None
    if resume:
        state = load_checkpoint(resume)
        diff = config_difference(config_from_dict(state["config"]), cfg)
        if diff:
            raise TrainError(f"--resume: the checkpoint was made with a different config: {diff}. "
                             f"Resume with the same --config, --init and --set values.")
    done = state["epoch"] if state else 0
    if stop_after is not None and not done < stop_after <= cfg.epochs:
        raise TrainError(f"--stop-after {stop_after}: give an epoch after the {done} already complete and at most "
                         f"the schedule's {cfg.epochs}")
    return state


def restore(state: dict, model: torch.nn.Module, optimizer: torch.optim.Optimizer, resume, arch: str) -> None:
    """Load a checkpoint's weights and optimizer state; a checkpoint that does not fit is named in one line."""
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as e:
        first = str(e).strip().splitlines()[0][:300]
        raise TrainError(f"--resume {resume}: the checkpoint's weights or optimizer state do not fit {arch} "
                         f"({first}); give the checkpoint.pt of this run") from None
