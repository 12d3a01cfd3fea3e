"""The authors' released checkpoints: read them safely (`torch.load(weights_only=True)`), check them against
the architecture, and convert them into the one weights format; and the plain-timm export of the ImageNet
ResNets."""

from __future__ import annotations

import pickle
import shutil
import tempfile
import warnings
from pathlib import Path

import torch

from glmc_zoo.errors import CheckpointError, ModelLoadError, error_text
from glmc_zoo.hub import check_replaceable, create_model, replace_dir, save_pretrained


def load_weights_only(path: str | Path):
    """`torch.load(path, weights_only=True)` on the CPU: tensors and plain containers only, nothing in the file
    run; quiet about a pickle protocol other than torch's default (harmless)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected pickle protocol")
        return torch.load(path, map_location="cpu", weights_only=True)


def load_released_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a released `.pth.tar` (`{'epoch', 'state_dict', 'best_acc1'}`, or a bare state dict),
    with `torch.load(weights_only=True)` only; strip a DataParallel `module.` prefix.

    A file whose unpickling would run code (or anything but tensors and plain containers) is
    refused: nothing it contains is executed.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file. Give the path of the authors' ckpt.pth.tar.")
    try:
        obj = load_weights_only(path)
    except pickle.UnpicklingError as e:
        # torch's message is mostly boilerplate; keep its specific line ("Trying to load unsupported
        # GLOBAL posix.system ...", "Unsupported operand 0").
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip().lower().startswith(("trying to load", "unsupported"))]
        detail = lines[0] if lines else "not a torch.save file"
        raise CheckpointError(
            f"{path}: refused. It is not a plain weights checkpoint ({detail}). Nothing in it was run. "
            f"Only checkpoints of tensors and plain containers are loaded (torch.load weights_only=True); "
            f"re-save it as a state dict if you trust its source."
        ) from e
    except Exception as e:  # not a torch.save file (text, truncated, another format): whatever the unpickler hit
        raise CheckpointError(f"{path}: cannot be read as a PyTorch checkpoint ({error_text(e)}). "
                              f"Is it complete (not truncated) and a torch.save file?") from e
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{path}: holds no state dict (expected {{'state_dict': ...}} or a bare "
                              f"mapping of parameter names to tensors).")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def check_state_dict(model: torch.nn.Module, sd: dict[str, torch.Tensor], source: str) -> None:
    """Raise a `CheckpointError` listing every missing, unexpected and mis-shaped key."""
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    shapes = sorted(f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
                    for k in set(own) & set(sd) if sd[k].shape != own[k].shape)
    if missing or unexpected or shapes:
        parts = []
        for title, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
            if items:
                more = f" ... (+{len(items) - 20} more)" if len(items) > 20 else ""
                parts.append(f"{title} ({len(items)}): {', '.join(items[:20])}{more}")
        raise CheckpointError(f"{source} does not fit {model.pretrained_cfg.get('architecture')} with "
                              f"num_classes={model.num_classes}. " + "; ".join(parts) +
                              ". Check --model and --num-classes.")


def convert_checkpoint(checkpoint: str | Path, arch: str, num_classes: int, output: str | Path,
                       tag: str | None = None, released: bool = False) -> Path:
    """Convert an authors' `.pth.tar` into a weights folder (safetensors + config + card).

    `tag` picks the pretrained entry whose preprocessing and labels the folder carries (e.g.
    `cifar100_lt_if100`); without it the architecture's default entry is used, with its labels
    dropped when `num_classes` differs. `released=True` (the file is the authors' release for
    `tag`) attaches the numbers the authors report for it; otherwise the folder claims none.
    """
    import timm

    check_replaceable(Path(output))  # before reading anything: a folder of someone's files is never replaced

    import glmc_zoo  # noqa: F401

    name = f"{arch}.{tag}" if tag else arch
    if not timm.is_model(arch) or not arch.startswith("glmc_"):
        raise CheckpointError(f"unknown architecture {arch!r}: use one of {', '.join(timm.list_models('glmc_*'))}")
    sd = load_released_state_dict(checkpoint)
    model = timm.create_model(name, pretrained=False, num_classes=num_classes)
    check_state_dict(model, sd, str(checkpoint))
    model.load_state_dict(sd, strict=True)
    if model.pretrained_cfg.get("num_classes") != num_classes:
        from glmc_zoo.labels import index_labels

        model.pretrained_cfg = dict(model.pretrained_cfg, num_classes=num_classes, label_names=index_labels(num_classes))
    from glmc_zoo.registry import WeightSet, get_weights

    reported = {}
    if released:  # the user says this is the authors' file for `tag`: its reported numbers apply
        ws = get_weights(name)
        if ws is not None and ws.metrics_kind == "reported":
            reported = dict(metrics=dict(ws.metrics), metrics_kind="reported", metrics_source=ws.metrics_source)
    return save_pretrained(model, output, WeightSet.local(model.pretrained_cfg, **reported,
                                                          provenance=dict(converted_from=Path(checkpoint).name)))


#: GLMC architectures whose inference path is exactly a plain timm model (the same trunk, and
#: `fc_cb` as timm's `fc`). The CIFAR ResNet-32s have no timm counterpart.
PLAIN_TIMM_ARCH = {"glmc_resnet50": "resnet50", "glmc_resnext50_32x4d": "resnext50_32x4d"}


def export_timm(model_ref: str, output: str | Path) -> Path:
    """Write `model_ref` as a plain timm model folder (`model.safetensors` + `config.json`) that
    `timm.create_model("local-dir:OUTPUT", pretrained=True)` loads without glmc-zoo installed.

    The inference head `fc_cb` becomes timm's `fc`; the training-only heads (`fc`, projection,
    predictor) are dropped. Loading GLMC weights into timm's resnet with `strict=False` instead
    would silently keep GLMC's *plain* head `fc` and change the predictions.
    """
    import timm
    from timm.models import save_for_hf

    from glmc_zoo.models.glmc_resnet import without_training_heads

    model = create_model(model_ref, pretrained=True).eval()
    arch = model.pretrained_cfg.get("architecture")
    if arch not in PLAIN_TIMM_ARCH:
        raise ModelLoadError(f"{model_ref}: {arch} has no plain timm equivalent (only "
                             f"{', '.join(PLAIN_TIMM_ARCH)} do); use the glmc-zoo format or an ONNX export")
    plain = timm.create_model(PLAIN_TIMM_ARCH[arch], pretrained=False, num_classes=model.num_classes)
    sd = without_training_heads(model.state_dict())
    sd = {("fc." + k[len("fc_cb."):]) if k.startswith("fc_cb.") else k: v for k, v in sd.items()}
    plain.load_state_dict(sd, strict=True)
    keys = ("input_size", "interpolation", "crop_pct", "crop_mode", "mean", "std", "num_classes", "label_names",
            "license", "paper_ids")
    cfg = dict(model.pretrained_cfg)
    if len(cfg.get("label_names") or ()) != model.num_classes:
        cfg.pop("label_names", None)
    plain.pretrained_cfg = dict({k: cfg[k] for k in keys if k in cfg},
                                architecture=PLAIN_TIMM_ARCH[arch], tag=model.pretrained_cfg.get("tag"))
    output = Path(output)
    check_replaceable(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.tmp-"))
    try:
        extra = {"label_names": list(plain.pretrained_cfg["label_names"])} if plain.pretrained_cfg.get("label_names") \
            else {}
        save_for_hf(plain, tmp, model_config=extra, safe_serialization=True)
        replace_dir(tmp, output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return output


#: What a weights folder written by glmc-zoo holds; only such a folder (or an empty one) is ever replaced.
