"""The one weights format (timm's Hub layout): loading by any model reference, and saving (atomically, never
over someone else's folder). The model card is `glmc_zoo.card`, the authors' checkpoints `glmc_zoo.convert`,
publishing `glmc_zoo.push`.

A weights folder holds `model.safetensors`, a timm `config.json` (with a `glmc` block for what
timm's config has no field for: metrics, provenance, the training config) and a model card
`README.md`. It loads with `timm.create_model("local-dir:DIR", pretrained=True)`, and from the Hub
(or its offline cache) with `hf-hub:ORG/NAME`.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

import torch

from glmc_zoo.atomic import check_not_package_weights
from glmc_zoo.card import model_card
from glmc_zoo.errors import ModelLoadError, OutputExistsError, UnknownModelError, did_you_mean, error_text
from glmc_zoo.registry import (
    CONFIG_NAME,
    WeightSet,
    check_config,
    find_weights,
    read_config,
    unknown_model_message,
    weight_set_name,
)

WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"


# ---------------------------------------------------------------------------------------------
# Resolving model references
# ---------------------------------------------------------------------------------------------


def create_model(ref: str | os.PathLike, pretrained: bool = True, **kwargs) -> torch.nn.Module:
    """Build a GLMC model from any reference, in eval mode:

    - a registry name or `arch.tag` (`glmc_resnet32_w16.cifar10_lt_if100_e200_jpeg`);
    - `hf-hub:ORG/NAME` (the Hub, or its local cache with `HF_HUB_OFFLINE=1`);
    - `local-dir:DIR` or a plain path to a weights folder.
    """
    import timm

    import glmc_zoo  # noqa: F401  (registers the architectures)

    ref = os.fspath(ref)  # a Path to a weights folder works as its string does
    if not ref.startswith(("hf-hub:", "local-dir:")) and (os.sep in ref or Path(ref).is_dir()):
        ref = f"local-dir:{ref}"
    if ref.startswith("local-dir:"):
        _check_weights_folder(Path(ref[len("local-dir:"):]))
    elif not ref.startswith("hf-hub:"):
        arch = ref.split(".", 1)[0]
        if not timm.is_model(arch) or not arch.startswith("glmc_"):
            names = timm.list_models("glmc_*", pretrained=True) + timm.list_models("glmc_*")
            raise ModelLoadError(f"unknown model {ref!r}.{did_you_mean(ref, names)} `glmc-zoo list --pretrained` shows "
                                 f"them all; "
                                 f"a weights folder is given as local-dir:DIR.")
        if "." in ref and find_weights(ref) is None:  # a known architecture, a tag it has not
            raise UnknownModelError(unknown_model_message(ref))
    from safetensors import SafetensorError

    try:
        model = timm.create_model(ref, pretrained=pretrained, **kwargs)
    except ModelLoadError:
        raise
    except (OSError, RuntimeError, ValueError, SafetensorError) as e:  # a cached Hub file can be damaged too
        raise ModelLoadError(_explain_load_failure(ref, e)) from e
    return model.eval()


def _check_weights_folder(path: Path) -> None:
    if not path.is_dir():
        raise ModelLoadError(f"{path}: not a directory. A weights folder holds {WEIGHTS_NAME} and {CONFIG_NAME} "
                             f"(write one with `glmc-zoo convert` or `glmc_zoo.hub.save_pretrained`).")
    missing = [n for n in (CONFIG_NAME, WEIGHTS_NAME) if not (path / n).is_file()]
    if missing and (path / "model" / WEIGHTS_NAME).is_file() and (path / "train_log.jsonl").is_file():
        raise ModelLoadError(f"{path}: a training run directory, not a weights folder; give its final model, "
                             f"{path / 'model'}")
    if missing and (path / "train_log.jsonl").is_file():
        raise ModelLoadError(f"{path}: a training run directory with no final model yet (it is written to "
                             f"{path / 'model'} when the run finishes); finish it with `glmc-zoo train ... "
                             f"--resume {path}`.")
    if missing:
        raise ModelLoadError(f"{path}: missing {', '.join(missing)}. A weights folder holds {WEIGHTS_NAME} and "
                             f"{CONFIG_NAME} (write one with `glmc-zoo convert` or `glmc_zoo.hub.save_pretrained`).")
    check_config(read_config(path), str(path / CONFIG_NAME))
    from safetensors import SafetensorError, safe_open

    try:  # reads the header only: a truncated or foreign file is named here, not deep inside timm
        with safe_open(str(path / WEIGHTS_NAME), framework="pt"):
            pass
    except (SafetensorError, OSError) as e:
        raise ModelLoadError(f"{path / WEIGHTS_NAME}: not a readable safetensors file ({error_text(e)}). It may be "
                             f"truncated: copy or convert the weights folder again.") from e


def _explain_load_failure(ref: str, e: Exception) -> str:
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    msg = str(e)
    chain = [e, e.__cause__, e.__context__]
    if any(isinstance(c, (LocalEntryNotFoundError, OfflineModeIsEnabled)) for c in chain) or "offline" in msg.lower():
        repo = ref[len("hf-hub:"):] if ref.startswith("hf-hub:") else _hub_id_of(ref)
        missing = _missing_in_cache(repo) if repo else []
        which = f" Missing from the cache: {', '.join(missing)}." if missing else ""
        offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
        unset = " (HF_HUB_OFFLINE is set: unset it to let the download run)" if offline else ""
        return (f"{ref}: the files are not in the local Hugging Face cache and the Hub cannot be reached."
                f"{which} Fetch them once with network access: `hf download {repo}`{unset}, or point to a "
                f"local folder with local-dir:DIR. Cause: {msg}")
    mismatched = [ln.strip() for ln in msg.splitlines() if ln.strip().startswith("size mismatch for ")]
    if mismatched:  # torch lists every tensor, one line each: say it once, with the first example
        return (f"{ref}: the weights do not fit the architecture its config names: {len(mismatched)} tensors differ "
                f"in shape ({mismatched[0].removeprefix('size mismatch for ').rstrip('.')}). Is the config's \"architecture\" "
                f"(and num_classes) the one the weights were trained with?")
    return f"{ref}: {msg}"


def _hub_id_of(ref: str) -> str | None:
    import timm

    cfg = timm.models.get_pretrained_cfg(ref, allow_unregistered=True)
    return cfg.hf_hub_id if cfg else None


def _missing_in_cache(repo_id: str) -> list[str]:
    """Which of the format's files the local Hub cache lacks for `repo_id` (no network)."""
    from huggingface_hub import try_to_load_from_cache

    repo, _, revision = repo_id.partition("@")
    return [f for f in (CONFIG_NAME, WEIGHTS_NAME)
            if not isinstance(try_to_load_from_cache(repo, f, revision=revision or None), str)]


# ---------------------------------------------------------------------------------------------
# Saving in the one format
# ---------------------------------------------------------------------------------------------


def save_pretrained(model: torch.nn.Module, directory: str | Path, weights: WeightSet | None = None,
                    card: str | None = None) -> Path:
    """Write `model` as `model.safetensors` + `config.json` (+ model card) into `directory`.

    The folder is built next to its destination and renamed into place, so an interrupted save
    never leaves a half-written weights folder. `weights` (a `WeightSet.local(...)` record: metrics,
    class counts, provenance) is stored in config.json under "glmc" by `WeightSet.glmc_block`; its name
    and pretrained cfg are the model's. `card` is the model card's markdown (default: `model_card`).
    """
    from timm.models import save_for_hf

    directory = Path(directory)
    check_replaceable(directory)  # before any work: nothing but an earlier weights folder is replaced
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.tmp-"))
    try:
        weights = dataclasses.replace(weights or WeightSet.local({}), name=weight_set_name(model.pretrained_cfg, "glmc"),
                                      cfg=dict(model.pretrained_cfg), availability="local")
        info = weights.glmc_block()
        labels = list(model.pretrained_cfg.get("label_names") or [])
        n = getattr(model, "num_classes", None)
        # names of another head (a 1000-class default cfg on a model built with num_classes=5) are no names
        # for this one: a folder never says 1000 labels for 5 outputs
        fits = bool(labels) and (n is None or len(labels) == n)
        model_config = dict(glmc=info, **(dict(label_names=labels) if fits else {}))
        was_training = model.training
        cfg = model.pretrained_cfg
        # Where these weights were read from (a bundled file's path on this machine, a Hub id) is
        # not part of the saved weight set: the folder is its own source.
        drop = ("file", "hf_hub_id", "url", "source") + (() if fits else ("label_names",))
        model.pretrained_cfg = {k: v for k, v in cfg.items() if k not in drop}
        try:
            save_for_hf(model.eval(), tmp, model_config=model_config, safe_serialization=True)
        finally:
            model.pretrained_cfg = cfg
            model.train(was_training)
        (tmp / CARD_NAME).write_text(card if card is not None else model_card(weights))
        replace_dir(tmp, directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory


def training_counts(model_ref: str, model) -> list[int] | None:
    """Training images per class of the weights `model` was loaded from `model_ref`: what a weights folder's
    config.json records (weights trained by glmc-zoo), else the registry's record of its `arch.tag`. Lets an
    evaluation group the classes into many / medium / few; None when unknown."""
    folder = Path(str(model_ref).removeprefix("local-dir:"))
    if folder.is_dir():
        counts = WeightSet.from_folder(folder).class_counts
    else:
        ws = find_weights(weight_set_name(model.pretrained_cfg, str(model_ref)))
        counts = ws.class_counts if ws else None
    return [int(n) for n in counts] if counts else None


WEIGHTS_FOLDER_FILES = frozenset({"config.json", "model.safetensors", CARD_NAME, "model.onnx"})


def check_replaceable(target: Path) -> None:
    """Refuse to write a weights folder over anything but an earlier weights folder or an empty folder:
    a folder of someone's files is never deleted, and neither is a file."""
    target = Path(target)
    if not target.exists() and not target.is_symlink():
        return
    if not target.is_dir():
        raise OutputExistsError(f"{target} is a file: nothing was written; give a folder path that does not exist yet")
    held = sorted(p.name for p in target.iterdir())
    foreign = [n for n in held if n not in WEIGHTS_FOLDER_FILES]
    if foreign:
        raise OutputExistsError(f"{target} holds files that are not a glmc-zoo weights folder's ({', '.join(foreign[:4])}"
                                f"{', ...' if len(foreign) > 4 else ''}): nothing was written or deleted; give a new "
                                f"or empty folder, or remove it yourself")


def check_new_output(target: Path, replace: bool = False) -> None:
    """`check_replaceable`, and an existing weights folder is replaced only when the user asked (`replace`,
    the CLI's `--replace`): a trained run's `model/`, a shipped weight set or the source itself is never
    written over by a command that was only asked to make a folder."""
    target = Path(target)
    check_not_package_weights(target)  # the package's own weight sets: `glmc-zoo bundle` alone writes there
    check_replaceable(target)
    if not replace and target.is_dir() and any(target.iterdir()):
        held = ", ".join(sorted(p.name for p in target.iterdir()))
        raise OutputExistsError(f"{target} already holds a weights folder ({held}): nothing was written; give a new "
                                f"folder, or --replace to replace it")


def replace_dir(new: Path, target: Path) -> None:
    """Move the finished folder `new` into `target`. An existing `target` (an earlier weights folder:
    `check_replaceable`) is first renamed aside and deleted only after the new one is in place, so a
    crash leaves either folder whole."""
    check_replaceable(target)
    new.chmod(0o755)
    for f in new.iterdir():
        f.chmod(0o644)
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    try:
        os.replace(new, target)
    except OSError:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
