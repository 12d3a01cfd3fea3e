"""Turn a finished run directory into a weight set shipped inside the package
(`glmc_zoo/weights/<arch>.<tag>/`), with its provenance in config.json and the model card.

    glmc-zoo bundle runs/cifar10_lt_if100_w16 glmc_resnet32_w16.cifar10_lt_if100_e200_jpeg \
        --data "CIFAR-10 stored as JPEG (quality about 75), ../shared/data/cifar10-jpeg.tar.gz"
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from glmc_zoo.cpu import machine_text
from glmc_zoo.errors import BundleError
from glmc_zoo.registry import CONFIG_NAME, WeightSet, read_config, weight_set_name_problem
from glmc_zoo.training.report import precision_text, time_text
from glmc_zoo.training.rundir import RunDir


def bundle_root() -> Path:
    """The installed package's `weights/` folder (in a source checkout: glmc_zoo/weights)."""
    import glmc_zoo

    return Path(glmc_zoo.__file__).resolve().parent / "weights"


SPLITS = {"standard": "the standard (LDAM) split: seed-0 shuffle per class",
          "glmc": "GLMC's split: np.random.choice without replacement per class, seed {seed}",
          "glmc_with_replacement": "GLMC's pre-2023-05-23 split: choice with replacement per class, seed {seed}"}


def bundle_run(run_dir: str | Path, name: str, data: str, root: str | Path | None = None,
               machine: str | None = None, replace: bool = False) -> Path:
    """Write `root/name/` from `run_dir/model`, tagged `name` and carrying the run's measured
    final-epoch metrics, exact command, training time and machine, and data provenance. An existing
    `root/name/` (a weight set already shipped under that name) is refused unless `replace`: a tag is
    never reused for other weights by accident."""
    from glmc_zoo.hub import create_model, save_pretrained

    run = RunDir(run_dir)
    run_dir = run.path
    arch, _, tag = name.partition(".")
    problem = weight_set_name_problem(name)  # one folder name under --root, never a path (`/`, `..`)
    if problem:
        raise BundleError(problem)
    if not run_dir.is_dir():
        raise BundleError(f"{run_dir}: no such folder; give the run directory that `glmc-zoo train -o` wrote")
    if not (run.model / CONFIG_NAME).is_file():  # written at a run's end; checkpoint.pt may be gone once shipped
        if run.checkpoint.is_file():
            raise BundleError(f"{run_dir}: not a finished run (no {run.model} folder yet); finish it, or make that "
                              f"folder again from its last checkpoint, with `glmc-zoo train --resume {run_dir}`")
        if (run_dir / run.LOG).is_file():  # e.g. a clone of a shipped run: its logs are in git, its weights not
            raise BundleError(f"{run_dir}: a run's logs without its weights (neither {run.model} nor "
                              f"{run.CHECKPOINT} is there, as in a clone of a run that was shipped); bundle it where "
                              f"those are, or load the weight set it shipped as")
        raise BundleError(f"{run_dir}: not a run directory of `glmc-zoo train` (neither {run.model} nor "
                          f"{run.CHECKPOINT} is there)")
    target = Path(root or bundle_root()) / name
    if (target.exists() or target.is_symlink()) and not replace:
        raise BundleError(f"{target} exists (a weight set named {name} is there already): nothing was written; "
                          f"choose a new tag (a tag is never reused for other weights), or give --replace to "
                          f"make that folder again from {run_dir}")
    cfg = read_config(run.model)
    if cfg["architecture"] != arch:
        raise BundleError(f"{run_dir}: the run trained {cfg['architecture']}, not {arch}")
    model = create_model(str(run.model))
    model.pretrained_cfg = dict(model.pretrained_cfg, tag=tag, architecture=arch)
    ws = WeightSet.from_config(cfg, str(run.model / "config.json"))
    ws = dataclasses.replace(ws, trained_by="glmc-zoo", provenance=dict(
        ws.provenance, data=data,
        training_time=_time_and_machine(run, machine),
        **({"precision": precision} if (precision := precision_text(run_dir)) else {}),
        split_file=f"split.json of the run ({_split_text(run_dir)})",
        command=run.started_command() or ws.provenance.get("command", "")))  # the start, not the last resume
    return save_pretrained(model, target, ws)


def _time_and_machine(run: RunDir, machine: str | None) -> str:
    """The run's time and pace with the machine each epoch ran on: as its log recorded it (glmc-zoo >= 0.3);
    epochs logged without one ran on `machine`, by default this one (a run bundled where it trained)."""

    return time_text(run.path, unrecorded=machine or machine_text())


def _split_text(run_dir: Path) -> str:
    """The split the run actually used, from its split.json."""

    split = RunDir(run_dir).split()
    return SPLITS.get(split["split"], split["split"]).format(seed=split.get("seed"))
